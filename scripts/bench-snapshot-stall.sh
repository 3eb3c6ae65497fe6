#!/usr/bin/env bash
# Snapshot stall (BENCHMARKS.md "Snapshots under load", issue 9 item 14): how long POSTs wait
# while a snapshot of many tracked legs is taken. Not run in CI.
#
#   scripts/bench-snapshot-stall.sh [BINARY]
#
# Starts BINARY (default: the release build of this checkout) with a fresh data dir on disk,
# journal.fsync "always" and a snapshot every STALL_SNAPSHOT_SECONDS (5); loads STALL_LEGS
# (2,000,000) distinct callLegStart records in batches of 1,000; then posts one-record batches
# open-loop at STALL_RATE per second (100) on one keep-alive connection for STALL_SECONDS (30),
# so that several snapshots happen meanwhile, and prints the POST latency (p50, p99, p99.9, max),
# the snapshots taken, and the last snapshot's time holding batches back and in all.
set -euo pipefail
cd "$(dirname "$0")/.."

LEGS=${STALL_LEGS:-2000000}
RATE=${STALL_RATE:-100}
SECONDS_=${STALL_SECONDS:-30}
SNAP=${STALL_SNAPSHOT_SECONDS:-5}
BIN=${1:-}
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin cdr-exporter
  BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/cdr-exporter
fi

work=$(mktemp -d /tmp/cdr-stall.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Room for every leg (the default tracking.max_objects is 500,000): the figure is a snapshot of
# LEGS legs, not eviction.
CDR_EXPORTER_TRACKING__MAX_OBJECTS=$((LEGS + LEGS / 4)) CDR_EXPORTER_SNAPSHOT__INTERVAL_SECONDS=$SNAP "$BIN" --listen "127.0.0.1:$port" \
  --data-dir "$work/data" --log-level warn 2>"$work/stderr" &
pid=$!

python3 - "$port" "$LEGS" "$RATE" "$SECONDS_" "$pid" <<'PY'
import http.client, sys, time
port, legs, rate, seconds, pid = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
deadline = time.time() + 30
while True:
    try:
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=60); c.request('GET', '/-/ready'); c.getresponse().read(); break
    except OSError:
        if time.time() > deadline: sys.exit('exporter did not start')
        time.sleep(0.05)

SESSION = '5ea11000-0000-4000-8000-000000000001'
CB = '5ea11000-0000-4000-8000-0000000000cb'
def leg(i):
    return ('<record type="callLegStart" time="2026-01-01T00:00:00Z" correlatorIndex="%d">'
            '<callLeg id="1e900000-0000-4000-8000-%012d"><type>sip</type><direction>incoming</direction>'
            '</callLeg></record>' % (i, i))
def batch(lo, hi):
    return ('<records session="%s" callBridge="%s">%s</records>' % (SESSION, CB, ''.join(leg(i) for i in range(lo, hi)))).encode()
def post(c, body):
    c.request('POST', '/cdr', body, {'Content-Type': 'application/xml'})
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit('POST answered %d' % r.status)

def metrics(name):
    m = http.client.HTTPConnection('127.0.0.1', port, timeout=60); m.request('GET', '/metrics')
    text = m.getresponse().read().decode()
    return sum(float(l.rsplit(' ', 1)[1]) for l in text.splitlines() if l.startswith(name + ' ') or l.startswith(name + '{'))

c = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
t0 = time.time()
for lo in range(0, legs, 1000):
    post(c, batch(lo, min(lo + 1000, legs)))
print('loaded %d legs in %.1f s; legs active %d; RSS %s' % (
    legs, time.time() - t0, metrics('cms_call_legs_active'),
    [l for l in open('/proc/%s/status' % pid) if l.startswith('VmRSS')][0].split()[1] + ' kB'))

snaps0 = metrics('cdr_exporter_snapshot_last_success_timestamp_seconds')
lat = []
n = int(rate * seconds)
start = time.perf_counter()
i = legs
for k in range(n):
    due = start + k / rate
    now = time.perf_counter()
    if due > now:
        time.sleep(due - now)
    # Open loop: latency counts from when the POST was due, so a stall delays the next too.
    post(c, batch(i, i + 1)); i += 1
    lat.append(time.perf_counter() - due)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
print('%d POSTs at %g/s over %g s: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms' % (
    n, rate, seconds, q(0.5), q(0.99), q(0.999), lat[-1] * 1000))
last = metrics('cdr_exporter_snapshot_last_success_timestamp_seconds')
print('snapshots: last at +%.1f s after the load; last took %.3f s in all, held batches back %.4f s' % (
    last - snaps0, metrics('cdr_exporter_snapshot_last_duration_seconds'),
    metrics('cdr_exporter_snapshot_last_gate_seconds')))
PY
