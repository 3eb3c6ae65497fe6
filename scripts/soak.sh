#!/usr/bin/env bash
# Soak test (issue 6 item 8; not run in CI): the Call Bridge simulator with 24 clustered Call
# Bridges at about 5k records/s against the exporter with journal.fsync "always", for MINUTES
# minutes (default 10). Results go in BENCHMARKS.md ("Soak").
#
#   scripts/soak.sh [MINUTES]
#
# While it runs, the exporter's RSS, CPU and records_total are sampled every 10 s. At the end:
# - zero errors: the simulator had no rejected, retried or unacknowledged record, and every
#   exporter counter equals the simulator's --expect-json totals (records by type, calls, legs
#   by reason, recordings, streamings, sessions, missing, active gauges, MOS count); the
#   exporter counted no invalid, duplicate or rejected record and no journal error;
# - the simulator's acknowledgement latency (p50, p99, max per POST);
# - RSS over time, and whether it stayed flat (end vs. the first sample after the first
#   quarter of the run and the first snapshot, within SOAK_RSS_TOLERANCE, default 10 %),
#   with the /metrics time, series and size at each sample.
# Exits non-zero on any error; a growing RSS is reported, not fatal.
#
# Settings (environment): SOAK_CALLS_PER_SECOND (420: ~12 records per call, so ~5k records/s),
# SOAK_TENANTS (20), SOAK_SNAPSHOT_SECONDS (60: snapshots happen during the run),
# SOAK_DIR (where the data dir goes; default a temp dir on the disk under /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=${1:-10}
CPS=${SOAK_CALLS_PER_SECOND:-420}
TENANTS=${SOAK_TENANTS:-20}
SNAPSHOT=${SOAK_SNAPSHOT_SECONDS:-60}
TOLERANCE=${SOAK_RSS_TOLERANCE:-0.10}
BRIDGES=24

command -v python3 >/dev/null || { echo "soak.sh: python3 is needed" >&2; exit 2; }
echo "== build (release)"
cargo build --release --quiet --bin cdr-exporter
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$target_dir/release/cdr-exporter

work=$(mktemp -d "${SOAK_DIR:-/tmp}/cdr-soak.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/h.py" <<'PY'
import http.client, json, os, socket, sys, time

def get(port, path):
    c = http.client.HTTPConnection('127.0.0.1', int(port), timeout=30)
    c.request('GET', path)
    r = c.getresponse()
    b = r.read().decode()
    c.close()
    return r.status, b

def samples(port, timing=None):
    """[(name, {label: value}, value)] of the text exposition."""
    out = []
    t = time.perf_counter()
    body = get(port, '/metrics')[1]
    if timing is not None:
        timing.append((time.perf_counter() - t) * 1000)
        timing.append(len(body))
    for line in body.splitlines():
        if not line or line[0] == '#':
            continue
        head, val = line.rsplit(' ', 1)
        name, _, labels = head.partition('{')
        lab = {}
        for part in labels.rstrip('}').split('",'):
            if '=' in part:
                k, v = part.split('=', 1)
                lab[k.strip(',')] = v.strip('"')
        out.append((name, lab, float(val)))
    return out

def total(s, name, **labels):
    return sum(v for n, l, v in s if n == name and all(l.get(k) == x for k, x in labels.items()))

def cpu(pid):
    f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')

def rss(pid):
    for line in open(f'/proc/{pid}/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return 0

def cmd_free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()

def cmd_wait_ready(port):
    end = time.time() + 30
    while time.time() < end:
        try:
            if get(port, '/-/ready')[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    sys.exit(f'exporter not ready on port {port}')

def cmd_sample(pid, port, out, stop):
    """Every 10 s: elapsed s, RSS KiB, exporter CPU s, records_total, tracked objects,
    /metrics time (ms), series, bytes."""
    t0 = time.time()
    with open(out, 'w') as f:
        while not os.path.exists(stop):
            try:
                timing = []
                s = samples(port, timing)
                f.write(f'{time.time() - t0:.0f} {rss(pid)} {cpu(pid):.2f} '
                        f'{int(total(s, "cdr_exporter_records_total"))} '
                        f'{int(total(s, "cdr_exporter_tracked_objects"))} '
                        f'{timing[0]:.1f} {len(s)} {timing[1]}\n')
                f.flush()
            except OSError:
                pass
            for _ in range(100):
                if os.path.exists(stop):
                    break
                time.sleep(0.1)

def cmd_compare(port, expected):
    """Every exact equality between the simulator's expectation and the exporter."""
    e = json.load(open(expected))
    deadline = time.time() + 20
    while True:
        s = samples(port)
        bad = []
        def eq(what, want, got):
            if got != want:
                bad.append(f'{what}: expected {want}, exporter shows {got:g}')
        eq('cdr_exporter_records_total', e['records_total'], total(s, 'cdr_exporter_records_total'))
        for t, n in e['records_by_type'].items():
            eq(f'cdr_exporter_records_total{{record_type={t}}}', n,
               total(s, 'cdr_exporter_records_total', record_type=t))
        for name, key in [('cms_calls_started_total', 'calls_started'),
                          ('cms_calls_ended_total', 'calls_ended'),
                          ('cms_call_legs_started_total', 'legs_started'),
                          ('cms_call_legs_ended_total', 'legs_ended'),
                          ('cms_recordings_started_total', 'recordings_started'),
                          ('cms_recordings_ended_total', 'recordings_ended'),
                          ('cms_streamings_started_total', 'streamings_started'),
                          ('cms_streamings_ended_total', 'streamings_ended'),
                          ('cdr_exporter_records_missing_total', 'missing'),
                          ('cdr_exporter_sessions_total', 'sessions'),
                          ('cms_calls_active', 'active_calls'),
                          ('cms_call_legs_active', 'active_legs'),
                          ('cms_recordings_active', 'active_recordings'),
                          ('cms_streamings_active', 'active_streamings'),
                          ('cms_call_leg_mos_count', 'mos_legs')]:
            eq(name, e[key], total(s, name))
        for r, n in e['legs_ended_by_reason'].items():
            eq(f'cms_call_legs_ended_total{{reason={r}}}', n,
               total(s, 'cms_call_legs_ended_total', reason=r))
        eq('cdr_exporter_evicted_objects_total{reason=restart}', e.get('evicted_restart', 0),
           total(s, 'cdr_exporter_evicted_objects_total', reason='restart'))
        for name in ['cdr_exporter_records_invalid_total', 'cdr_exporter_records_duplicate_total',
                     'cdr_exporter_batches_rejected_total', 'cdr_exporter_journal_errors_total',
                     'cdr_exporter_label_overflow_total']:
            eq(name, 0, total(s, name))
        if not bad or time.time() > deadline:
            break
        time.sleep(0.5)
    fs = total(s, 'cdr_exporter_journal_fsyncs_total')
    ap = total(s, 'cdr_exporter_journal_appends_total')
    fsec = total(s, 'cdr_exporter_journal_fsync_seconds_total')
    print(f'   exporter: {int(total(s, "cdr_exporter_records_total"))} records, '
          f'{int(total(s, "cdr_exporter_batches_total"))} batches, {int(ap)} journal appends, '
          f'{int(fs)} fsyncs ({ap / max(fs, 1):.2f} batches per fsync, mean fsync '
          f'{fsec / max(fs, 1) * 1000:.2f} ms), snapshot took '
          f'{total(s, "cdr_exporter_snapshot_last_duration_seconds") * 1000:.1f} ms')
    if bad:
        print('   MISMATCH:\n     ' + '\n     '.join(bad))
        sys.exit(1)
    print(f'   every counter equals the simulator\'s expectation ({len(e["records_by_type"])} record types, '
          f'{len(e["legs_ended_by_reason"])} leg end reasons, {e["sessions"]} sessions)')

def cmd_report(path, minutes, tolerance, snapshot):
    rows = [list(map(float, l.split())) for l in open(path) if l.strip()]
    if len(rows) < 3:
        sys.exit('too few RSS samples')
    print('   t(s)   RSS(MiB)  CPU(cores)  records/s  tracked objects  /metrics ms  series  MB')
    prev = None
    for r in rows:
        rate = '' if prev is None else f'{(r[3] - prev[3]) / max(r[0] - prev[0], 1):9.0f}'
        cores = '' if prev is None else f'{(r[2] - prev[2]) / max(r[0] - prev[0], 1):10.2f}'
        print(f'   {r[0]:5.0f} {r[1] / 1024:9.1f} {cores:>11} {rate:>10} {int(r[4]):>16}'
              f' {r[5]:12.1f} {int(r[6]):7d} {r[7] / 1e6:5.1f}')
        prev = r
    # Reference: after the first quarter, and after the first snapshot and a few scrapes
    # (the allocator keeps the high-water mark of their buffers).
    start = max(float(minutes) * 60 / 4, float(snapshot) + 15)
    ref = next((r for r in rows if r[0] >= start), rows[len(rows) // 2])
    end = rows[-1]
    growth = (end[1] - ref[1]) / ref[1]
    steady = [r for r in rows if 10 <= r[0] <= float(minutes) * 60]
    rate = (steady[-1][3] - steady[0][3]) / max(steady[-1][0] - steady[0][0], 1) if len(steady) > 1 else 0
    print(f'   achieved rate while calls were starting: {rate:.0f} records/s')
    print(f'   RSS at t={ref[0]:.0f}s {ref[1]/1024:.1f} MiB, at the end {end[1]/1024:.1f} MiB '
          f'({growth * 100:+.1f} %), max {max(r[1] for r in rows)/1024:.1f} MiB: '
          + ('flat' if abs(growth) <= float(tolerance) else 'NOT FLAT'))

globals()['cmd_' + sys.argv[1].replace('-', '_')](*sys.argv[2:])
PY
h() { python3 "$work/h.py" "$@"; }

echo "== machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(rustc --version)"
echo "   load average $(cut -d' ' -f1-3 /proc/loadavg); data dir on $(df -T "$work" | awk 'NR==2{print $2}')"

port=$(h free-port)
CDR_EXPORTER_JOURNAL__FSYNC=always CDR_EXPORTER_SNAPSHOT__INTERVAL_SECONDS=$SNAPSHOT \
  "$BIN" --listen "127.0.0.1:$port" --data-dir "$work/data" 2>"$work/exporter.log" &
exporter=$!
pids+=("$exporter")
h wait-ready "$port"

echo "== soak: $MINUTES min, $BRIDGES Call Bridges, $TENANTS tenants, $CPS calls/s, fsync always, snapshot every ${SNAPSHOT}s"
stop="$work/stop"
h sample "$exporter" "$port" "$work/rss.txt" "$stop" &
sampler=$!
pids+=("$sampler")
fail=0
"$BIN" simulate --target "http://127.0.0.1:$port/cdr" --call-bridges "$BRIDGES" --tenants "$TENANTS" \
  --calls-per-second "$CPS" --duration "${MINUTES}m" --seed 20240611 --quiet \
  --expect-json "$work/expected.json" >"$work/sim.txt" 2>"$work/sim.log" || fail=1
touch "$stop"
wait "$sampler" || true
sed 's/^/   /' "$work/sim.txt"
if [ "$fail" != 0 ]; then
  echo "ERROR: the simulator failed:" >&2
  tail -5 "$work/sim.log" >&2
fi
read -r retries rejected unsent < <(python3 - "$work/sim.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
g = lambda p: int(re.search(p, t).group(1)) if re.search(p, t) else -1
print(g(r'retried\s+(\d+) POST'), g(r'rejected (\d+) batch'), g(r'(\d+) never acknowledged'))
PY
)
if [ "$retries" != 0 ] || [ "$rejected" != 0 ] || [ "$unsent" != 0 ]; then
  echo "ERROR: $retries retried POSTs, $rejected rejected batches, $unsent records never acknowledged" >&2
  fail=1
fi

echo "== exporter vs simulator"
h compare "$port" "$work/expected.json" || fail=1
grep -E " (ERROR|WARN) " "$work/exporter.log" | head -5 && echo "   (exporter logged warnings or errors, above)"

echo "== RSS and rate every 10 s"
h report "$work/rss.txt" "$MINUTES" "$TOLERANCE" "$SNAPSHOT"
echo "   journal on disk at the end: $(du -sh "$work/data/journal" | cut -f1); snapshots: $(du -sh "$work/data/snapshots" 2>/dev/null | cut -f1)"

kill -TERM "$exporter"
wait "$exporter" || { echo "ERROR: the exporter did not stop cleanly" >&2; fail=1; }
if [ "$fail" != 0 ]; then
  echo "soak.sh: FAILED" >&2
  exit 1
fi
echo "soak.sh: no errors"
