#!/usr/bin/env bash
# End-to-end benchmarks of cdr-exporter on loopback, each figure beside the ceiling measured in
# the same run on the same machine (BENCHMARKS.md: "End to end (HTTP)", "Memory per leg",
# "Startup"). Release build; bounded in time (about 3 minutes with the defaults).
#
#   scripts/bench.sh
#
# (a) records/s and acknowledgement latency at 1 and at 10 records per POST, wrk (closed loop)
#     with a Lua script that makes unique, valid batches (one Call Bridge, session and
#     correlatorIndex sequence per wrk thread and connection; callLegStart and full-media
#     callLegEnd records), against the exporter with journal.fsync "always" and "never" (each
#     in its own fresh data dir) and against examples/null_receiver.rs (reads the body, answers
#     200: the ceiling). Afterwards /metrics must show every record wrk sent exactly once, and
#     no rejection, invalid, missing or duplicate record.
# (b) /metrics latency (p50/p99 over a keep-alive connection, every 100 ms) while (a) ingests.
# (c) memory per active call leg: RSS growth after BENCH_LEGS distinct callLegStart records.
# (d) startup: exec to the first 200 from /-/ready, with an empty data dir and with the
#     snapshot (c) leaves (BENCH_LEGS tracked legs); the null receiver's is the floor.
# (e) a summary table. Missed targets are reported, not fatal; the exit status is non-zero
#     only if the exporter reported errors or lost or double-counted records.
#
# Settings (environment): BENCH_DURATION (s per wrk run, 10), BENCH_CONNECTIONS (wrk threads =
# connections = Call Bridges, 8), BENCH_LEGS (100000), BENCH_STARTUP_RUNS (20), BENCH_DIR
# (where data dirs go; default a temp dir on the disk under /tmp: the journal's real cost),
# BENCH_MAX_OTHER_LOAD (busy cores of other processes above which a run is repeated, 0.3).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNECTIONS:-8}
LEGS=${BENCH_LEGS:-100000}
STARTUP_RUNS=${BENCH_STARTUP_RUNS:-20}
MAX_OTHER=${BENCH_MAX_OTHER_LOAD:-0.3}

for tool in wrk python3 cargo; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is needed (apt-get install wrk)" >&2; exit 2; }
done

echo "== build (release)"
cargo build --release --quiet --bin cdr-exporter --example null_receiver
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$target_dir/release/cdr-exporter
NULL=$target_dir/release/examples/null_receiver

work=$(mktemp -d "${BENCH_DIR:-/tmp}/cdr-bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Helpers: Python for timing, /proc accounting and HTTP; Lua for wrk.
cat >"$work/h.py" <<'PY'
import http.client, json, os, resource, shutil, signal, socket, subprocess, sys, time

def busy():
    v = list(map(int, open('/proc/stat').readline().split()[1:]))
    return sum(v) - v[3] - v[4], sum(v)

def proc_cpu(pid):
    try:
        f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')
    except OSError:
        return 0.0

def rss(pid):
    for line in open(f'/proc/{pid}/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
    return 0

def get(port, path, headers=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    c.request('GET', path, headers=headers or {})
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, body

def metrics(port):
    """Sums of the counters the checks need."""
    want = {
        'records': ('cdr_exporter_records_total', None),
        'rejected': ('cdr_exporter_batches_rejected_total', None),
        'invalid': ('cdr_exporter_records_invalid_total', None),
        'missing': ('cdr_exporter_records_missing_total', None),
        'duplicate': ('cdr_exporter_records_duplicate_total', None),
        'unmatched': ('cdr_exporter_records_unmatched_total', None),
        'journal_errors': ('cdr_exporter_journal_errors_total', None),
        'legs_active': ('cms_call_legs_active', None),
        'legs_tracked': ('cdr_exporter_tracked_objects', 'kind="call_leg"'),
        'appends': ('cdr_exporter_journal_appends_total', None),
        'fsyncs': ('cdr_exporter_journal_fsyncs_total', None),
        'fsync_seconds': ('cdr_exporter_journal_fsync_seconds_total', None),
        'series': (None, None),
    }
    st, body = get(port, '/metrics')
    out = {k: 0.0 for k in want}
    for line in body.splitlines():
        if not line or line[0] == '#':
            continue
        out['series'] += 1
        name = line.split('{', 1)[0].split(' ', 1)[0]
        for k, (n, lab) in want.items():
            if n == name and (lab is None or lab in line):
                out[k] += float(line.rsplit(' ', 1)[1])
    return out

def cmd_metrics(port):
    print(' '.join(f'{k}={int(v)}' if v == int(v) else f'{k}={v:.6f}'
                   for k, v in metrics(int(port)).items()))

def cmd_wait_ready(port, timeout='30'):
    end = time.time() + float(timeout)
    while time.time() < end:
        try:
            if get(int(port), '/-/ready')[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    sys.exit(f'port {port} not ready after {timeout}s')

def cmd_free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()

def cmd_busy(secs):
    a = busy(); time.sleep(float(secs)); b = busy()
    print(f'{(b[0]-a[0])/(b[1]-a[1])*os.cpu_count():.2f}')

def kthreads_cpu():
    """CPU seconds of kernel threads (kworker, jbd2, ksoftirqd: partly our own I/O)."""
    t = 0.0
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                f = open(f'/proc/{d}/stat').read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if f[1] == '2' or d == '2':
                t += int(f[11]) + int(f[12])
    return t / os.sysconf('SC_CLK_TCK')

def cmd_wrk(pids, url, k, run, conns, duration, lua):
    """One wrk run; prints wrk's RESULT fields plus CPU use (cores) during the run: the
    server (first of `pids`), wrk, our helpers (other `pids`), kernel threads, and
    everything else on the machine ("other": builds or tests sharing it)."""
    pid, *helpers = [int(p) for p in pids.split(',')]
    b0, c0, k0 = busy(), proc_cpu(pid), kthreads_cpu()
    hc0 = sum(proc_cpu(p) for p in helpers)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    p = subprocess.run(['wrk', f'-t{conns}', f'-c{conns}', f'-d{duration}s', '--timeout', '10s',
                        '-s', lua, url, '--', str(k), str(run)], capture_output=True, text=True)
    wall = time.time() - t0
    b1, c1, k1 = busy(), proc_cpu(pid), kthreads_cpu()
    hc1 = sum(proc_cpu(p) for p in helpers)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
    if p.returncode != 0 or not res:
        sys.exit(f'wrk failed: {p.stdout}{p.stderr}')
    total = (b1[1] - b0[1])
    busy_cores = (b1[0] - b0[0]) / total * os.cpu_count() if total else 0
    server = (c1 - c0) / wall
    client = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / wall
    helper = (hc1 - hc0) / wall
    kernel = (k1 - k0) / wall
    other = max(0.0, busy_cores - server - client - helper - kernel)
    print(res[0][7:] + f' cpu_busy={busy_cores:.2f} cpu_server={server:.2f} cpu_wrk={client:.2f}'
          f' cpu_helpers={helper:.2f} cpu_kernel={kernel:.2f} cpu_other={other:.2f}')

def cmd_scrape_loop(port, out, stop):
    """GET /metrics every 100 ms on one keep-alive connection until `stop` exists."""
    c = http.client.HTTPConnection('127.0.0.1', int(port), timeout=30)
    with open(out, 'w') as f:
        while not os.path.exists(stop):
            t = time.perf_counter()
            c.request('GET', '/metrics')
            r = c.getresponse(); r.read()
            f.write(f'{(time.perf_counter() - t) * 1000:.3f} {r.status}\n'); f.flush()
            time.sleep(0.1)

def cmd_pct(path):
    v = []
    for line in open(path):
        ms, st = line.split()
        if st != '200':
            sys.exit(f'/metrics answered {st}')
        v.append(float(ms))
    if not v:
        print('n=0 p50=nan p99=nan max=nan'); return
    v.sort()
    q = lambda p: v[min(len(v), max(1, -(-int(p * len(v) * 1000) // 1000))) - 1]
    print(f'n={len(v)} p50={q(0.5):.2f} p99={q(0.99):.2f} max={v[-1]:.2f}')

LEG_START = ('<record type="callLegStart" time="2024-06-11T08:00:00Z" correlatorIndex="{ci}">'
             '<callLeg id="{id}"><displayName>Alice Example</displayName>'
             '<remoteAddress>alice@example.com</remoteAddress><type>sip</type>'
             '<direction>incoming</direction></callLeg></record>\n')
LEG_END = ('<record type="callLegEnd" time="2024-06-11T08:00:01Z" correlatorIndex="{ci}">'
           '<callLeg id="{id}"><reason>remoteTeardown</reason><remoteTeardown>true</remoteTeardown>'
           '<durationSeconds>60</durationSeconds><rxAudio><codec>opus</codec><packetStatistics>'
           '<packetLossBursts><duration>0</duration><density>0</density></packetLossBursts>'
           '<packetGap><duration>60</duration><density>0.1</density></packetGap>'
           '</packetStatistics></rxAudio></callLeg></record>\n')

def cmd_legs(port, n, batch, run, ends):
    """POSTs `n` distinct legs (callLegStart; with ends=1 also their callLegEnd) in batches."""
    n, batch, run, ends = int(n), int(batch), int(run), ends == '1'
    session = f'{run:08x}-5e55-4000-8000-00000000aaaa'
    bridge = f'{run:08x}-cb00-4000-8000-00000000aaaa'
    recs = []
    ci = 0
    for i in range(n):
        lid = f'{run:08x}-1e90-4000-8000-{i:012x}'
        recs.append(LEG_START.format(ci=ci, id=lid)); ci += 1
        if ends:
            recs.append(LEG_END.format(ci=ci, id=lid)); ci += 1
    c = http.client.HTTPConnection('127.0.0.1', int(port), timeout=60)
    for i in range(0, len(recs), batch):
        body = (f'<?xml version="1.0"?>\n<records session="{session}" callBridge="{bridge}">\n'
                + ''.join(recs[i:i + batch]) + '</records>\n')
        c.request('POST', '/cdr', body=body, headers={'Content-Type': 'application/xml'})
        r = c.getresponse(); r.read()
        if r.status != 200:
            sys.exit(f'POST answered {r.status}')

def cmd_rss(pid):
    print(rss(int(pid)))

def cmd_startup(binary, src, runs, workdir, check_legs, *extra):
    """exec → first 200 from /-/ready, `runs` times, each on a fresh copy of `src` (or an empty
    dir if src is '-'). Prints the times; checks the restored state on the first run."""
    times = []
    for i in range(int(runs)):
        d = os.path.join(workdir, f'start-{i}')
        shutil.rmtree(d, ignore_errors=True)
        if src == '-':
            os.makedirs(d)
        else:
            shutil.copytree(src, d)
        s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
        args = [binary]
        if binary.endswith('null_receiver'):
            args += [f'127.0.0.1:{port}']
        else:
            args += ['--listen', f'127.0.0.1:{port}', '--data-dir', d]
        log = open(os.path.join(workdir, f'start-{i}.log'), 'w')
        t0 = time.perf_counter()
        p = subprocess.Popen(args, stderr=log, stdout=subprocess.DEVNULL)
        ready = None
        while ready is None and time.perf_counter() - t0 < 30:
            try:
                c = socket.create_connection(('127.0.0.1', port), timeout=30)
                c.sendall(b'GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
                head = c.recv(64)
                c.close()
                if head.startswith(b'HTTP/1.1 200'):
                    ready = time.perf_counter() - t0
            except OSError:
                time.sleep(0.0002)
            if p.poll() is not None:
                sys.exit(f'{binary} exited with {p.returncode} during startup run {i}')
        if ready is None:
            sys.exit(f'{binary} not ready after 30 s')
        times.append(ready * 1000)
        if i == 0 and check_legs != '0':
            m = metrics(port)
            if int(m['legs_tracked']) != int(check_legs) or int(m['legs_active']) != int(check_legs):
                sys.exit(f'restored state is wrong: {m}')
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill(); p.wait()
        shutil.rmtree(d, ignore_errors=True)
    t = sorted(times)
    print(f'n={len(t)} min={t[0]:.2f} p50={t[len(t)//2]:.2f} p90={t[int(len(t)*0.9)]:.2f} max={t[-1]:.2f}')

globals()['cmd_' + sys.argv[1].replace('-', '_')](*sys.argv[2:])
PY

cat >"$work/cdr.lua" <<'LUA'
-- Unique, valid CMS CDR batches. One session and one callBridge GUID per wrk thread (run with
-- as many threads as connections, so each connection is one Call Bridge sending in order);
-- correlatorIndex increases per thread; records alternate callLegStart and callLegEnd (full
-- media: rx/tx audio and video, packetStatistics, alarms on some legs) of distinct legs.
-- Arguments after --: records per POST, run number (keeps GUIDs distinct between runs).
local threads = {}
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

local START = [[
  <record type="callLegStart" time="2024-06-11T08:00:00Z" recordIndex="%d" correlatorIndex="%d">
    <callLeg id="%s">
      <displayName>Alice Example</displayName>
      <localAddress>meet.example.com</localAddress>
      <remoteAddress>alice@example.com</remoteAddress>
      <remoteParty>alice@example.com</remoteParty>
      <guestConnection>false</guestConnection>
      <recording>false</recording>
      <streaming>false</streaming>
      <type>sip</type>
      <direction>incoming</direction>
    </callLeg>
  </record>
]]

local END = [[
  <record type="callLegEnd" time="2024-06-11T08:00:01Z" recordIndex="%d" correlatorIndex="%d">
    <callLeg id="%s">
      <reason>%s</reason>
      <remoteTeardown>%s</remoteTeardown>
      <encryptedMedia>true</encryptedMedia>
      <unencryptedMedia>false</unencryptedMedia>
      <durationSeconds>%d</durationSeconds>
      <activatedDuration>%d</activatedDuration>
      <mediaUsagePercentages>
        <mainVideoViewer>98.5</mainVideoViewer>
        <mainVideoContributor>76.0</mainVideoContributor>
      </mediaUsagePercentages>
%s      <rxAudio>
        <codec>%s</codec>
        <packetStatistics>
          <packetLossBursts>
            <duration>%d.250</duration>
            <density>%d.50</density>
          </packetLossBursts>
          <packetGap>
            <duration>%d.000</duration>
            <density>0.%02d</density>
          </packetGap>
        </packetStatistics>
      </rxAudio>
      <txAudio>
        <codec>%s</codec>
      </txAudio>
      <rxVideo>
        <codec>h264</codec>
        <maxSizeWidth>1280</maxSizeWidth>
        <maxSizeHeight>720</maxSizeHeight>
        <packetStatistics>
          <packetLossBursts>
            <duration>0.500</duration>
            <density>12.00</density>
          </packetLossBursts>
          <packetGap>
            <duration>%d.000</duration>
            <density>0.10</density>
          </packetGap>
        </packetStatistics>
      </rxVideo>
      <txVideo>
        <codec>h264</codec>
        <maxSizeWidth>1920</maxSizeWidth>
        <maxSizeHeight>1080</maxSizeHeight>
      </txVideo>
    </callLeg>
  </record>
]]

local REASONS = { "remoteTeardown", "remoteTeardown", "remoteTeardown", "callEnded",
                  "callDeactivated", "localTeardown", "timeout" }
local CODECS = { "opus", "g722", "g711u", "g711a", "aac", "g729" }
local ALARM = '      <alarm type="packetLoss" durationPercentage="4.5"/>\n'

function init(args)
  k = tonumber(args[1]) or 1
  run = tonumber(args[2]) or 0
  ci = 0
  posts = 0
  local session = string.format("%08x-5e55-4000-8000-%012x", run, tid)
  local bridge = string.format("%08x-cb00-4000-8000-%012x", run, tid)
  legprefix = string.format("%04x%04x", run % 65536, tid % 65536)
  head = '<?xml version="1.0"?>\n<records session="' .. session .. '" callBridge="' .. bridge .. '">\n'
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/xml"
end

function request()
  local parts = { head }
  for i = 1, k do
    local leg = math.floor(ci / 2)
    local id = string.format("%s-1e90-4000-8000-%012x", legprefix, leg)
    if ci % 2 == 0 then
      parts[#parts + 1] = string.format(START, ci + 1, ci, id)
    else
      local r = REASONS[leg % #REASONS + 1]
      local d = 30 + leg % 3000
      parts[#parts + 1] = string.format(END, ci + 1, ci, id, r,
        r == "remoteTeardown" and "true" or "false", d, d - 1,
        (leg % 5 == 0) and ALARM or "",
        CODECS[leg % #CODECS + 1], leg % 3, leg % 40, d - 2, leg % 60,
        CODECS[(leg + 1) % #CODECS + 1], d - 3)
    end
    ci = ci + 1
  end
  parts[#parts + 1] = "</records>\n"
  posts = posts + 1
  return wrk.format(nil, nil, nil, table.concat(parts))
end

function done(summary, latency, requests)
  local gp, gr = 0, 0
  for _, t in ipairs(threads) do
    gp = gp + t:get("posts")
    gr = gr + t:get("ci")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT posts_generated=%d records_generated=%d responses=%d status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d duration_us=%d lat_p50_us=%d lat_p90_us=%d lat_p99_us=%d lat_max_us=%d\n",
    gp, gr, summary.requests, e.status, e.connect, e.read, e.write, e.timeout,
    summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
LUA

h() { python3 "$work/h.py" "$@"; }
field() { # field NAME "k=v k=v ..."
  local kv
  for kv in $2; do [ "${kv%%=*}" = "$1" ] && { echo "${kv#*=}"; return; }; done
  echo "?"
}
fail=0
error() { echo "ERROR: $*" >&2; fail=1; }
declare -A R # results for the summary

# ---------------------------------------------------------------------------------------------
echo "== machine"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "nproc $(nproc), CPU ${cpu}, $(rustc --version), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "kernel $(uname -r); data dirs under $work ($(df -T "$work" | awk 'NR==2{print $2}'))"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' (src modified)')"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg); busy cores over 2 s before the runs: $(h busy 2)"

start_exporter() { # NAME FSYNC → sets EXP_PID, EXP_PORT
  local name=$1 fsync=$2
  EXP_PORT=$(h free-port)
  mkdir -p "$work/$name"
  CDR_EXPORTER_JOURNAL__FSYNC=$fsync CDR_EXPORTER_SNAPSHOT__INTERVAL_SECONDS=3600 \
    "$BIN" --listen "127.0.0.1:$EXP_PORT" --data-dir "$work/$name/data" \
    2>"$work/$name/exporter.log" &
  EXP_PID=$!
  pids+=("$EXP_PID")
  h wait-ready "$EXP_PORT"
}

stop() { # PID: SIGTERM and wait (the exporter writes its snapshot)
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

run_no=0
# Waits (up to 3 minutes) until other processes leave the machine quiet, so that runs do not
# compete with builds or tests of a shared machine.
wait_quiet() {
  local i b
  for i in $(seq 1 90); do
    b=$(h busy 1)
    python3 -c "import sys; sys.exit(0 if $b <= $MAX_OTHER else 1)" && return 0
    [ "$i" = 1 ] && echo "   (waiting for other processes: $b cores busy)" >&2
    sleep 1
  done
  echo "   (machine still busy: measuring anyway)" >&2
}

# One wrk run → sets RUN (its result line). PID PORT K
wrk_run() { # PIDS (server,helpers) PORT K
  run_no=$((run_no + 1))
  RUN=$(h wrk "$1" "http://127.0.0.1:$2/cdr" "$3" "$run_no" "$CONNS" "$DURATION" "$work/cdr.lua")
}
noisy() { python3 -c "import sys; sys.exit(0 if $(field cpu_other "$1") > $MAX_OTHER else 1)"; }

rate() { # records/s from a result line and K
  python3 -c "print(round($(field responses "$2") * $1 / ($(field duration_us "$2") / 1e6)))"
}
ms() { python3 -c "print(f'{$1/1000:.2f}')"; }

show() { # LABEL K RESULT
  local r=$3
  printf '   %-28s %8s records/s  ack p50 %6s ms  p99 %7s ms  max %7s ms\n' \
    "$1" "$(rate "$2" "$r")" "$(ms "$(field lat_p50_us "$r")")" "$(ms "$(field lat_p99_us "$r")")" \
    "$(ms "$(field lat_max_us "$r")")"
  printf '   %-28s cpu (cores): server %s, wrk %s, helpers %s, kernel threads %s, other processes %s\n' "" \
    "$(field cpu_server "$r")" "$(field cpu_wrk "$r")" "$(field cpu_helpers "$r")" "$(field cpu_kernel "$r")" "$(field cpu_other "$r")"
}

# ---------------------------------------------------------------------------------------------
echo "== (a) end to end: ${CONNS} connections (= wrk threads = Call Bridges), ${DURATION}s per run, closed loop"
NULL_PORT=$(h free-port)
"$NULL" "127.0.0.1:$NULL_PORT" 2>/dev/null &
null_pid=$!
pids+=("$null_pid")
h wait-ready "$NULL_PORT"
for k in 1 10; do
  for attempt in 1 2 3; do
    wait_quiet
    wrk_run "$null_pid" "$NULL_PORT" "$k"
    r=$RUN
    show "null receiver, $k/POST" "$k" "$r"
    [ "$(field status_errors "$r")" = 0 ] || error "null receiver answered errors"
    noisy "$r" || break
    echo "   (other processes used $(field cpu_other "$r") cores: repeating)"
  done
  R[null_$k]=$r
done
stop "$null_pid"

for fsync in always never; do
  start_exporter "exp-$fsync" "$fsync"
  stopfile="$work/exp-$fsync/stop-scrape"
  for k in 1 10; do
   for attempt in 1 2 3; do
    wait_quiet
    before=$(h metrics "$EXP_PORT")
    rm -f "$stopfile"
    h scrape-loop "$EXP_PORT" "$work/exp-$fsync/scrape-$k.txt" "$stopfile" &
    scraper=$!
    wrk_run "$EXP_PID,$scraper" "$EXP_PORT" "$k"
    r=$RUN
    touch "$stopfile"
    wait "$scraper"
    after=$(h metrics "$EXP_PORT")
    show "exporter fsync=$fsync, $k/POST" "$k" "$r"
    R[${fsync}_$k]=$r
    R[scrape_${fsync}_$k]=$(h pct "$work/exp-$fsync/scrape-$k.txt")
    echo "   /metrics while ingesting: ${R[scrape_${fsync}_$k]} (ms, $(field series "$after") series)"
    # Every record wrk wrote is applied once: at least the acknowledged ones, at most the
    # generated ones (a batch in flight when wrk stops may or may not have been applied).
    applied=$(($(field records "$after") - $(field records "$before")))
    acked=$(($(field responses "$r") * k))
    generated=$(field records_generated "$r")
    echo "   records: generated $generated, acknowledged $acked, applied $applied (in flight at stop: $((generated - acked)))"
    fs=$(($(field fsyncs "$after") - $(field fsyncs "$before")))
    if [ "$fs" -gt 0 ]; then
      echo "   journal: $fs fsyncs, $(python3 -c "print(f'{($(field appends "$after") - $(field appends "$before")) / $fs:.1f} batches per fsync, mean fsync {($(field fsync_seconds "$after") - $(field fsync_seconds "$before")) / $fs * 1000:.2f} ms')")"
    fi
    if [ "$applied" -lt "$acked" ] || [ "$applied" -gt "$generated" ]; then
      error "fsync=$fsync k=$k: exporter applied $applied records; wrk had $acked acknowledged of $generated sent"
    fi
    [ "$(field status_errors "$r")" = 0 ] || error "fsync=$fsync k=$k: $(field status_errors "$r") 4xx/5xx answers"
    for c in rejected invalid missing duplicate journal_errors; do
      d=$(($(field "$c" "$after") - $(field "$c" "$before")))
      [ "$d" = 0 ] || error "fsync=$fsync k=$k: exporter counted $d $c"
    done
    for c in connect_errors read_errors write_errors timeouts; do
      [ "$(field "$c" "$r")" = 0 ] || echo "   warning: wrk reports $(field "$c" "$r") $c"
    done
    noisy "$r" || break
    echo "   (other processes used $(field cpu_other "$r") cores: repeating)"
   done
  done
  R[journal_$fsync]=$(du -sh "$work/exp-$fsync/data/journal" | cut -f1)
  stop "$EXP_PID"
  grep -E " (ERROR|WARN) " "$work/exp-$fsync/exporter.log" | head -5 || true
  rm -rf "$work/exp-$fsync/data"
done

# ---------------------------------------------------------------------------------------------
echo "== (c) memory per active call leg: ${LEGS} distinct callLegStart records, no ends"
start_exporter exp-mem never
wait_quiet
h legs "$EXP_PORT" 2000 1000 900001 1 # warm-up: legs started and ended, buffers and series exist
sleep 1
rss0=$(h rss "$EXP_PID")
h legs "$EXP_PORT" "$LEGS" 1000 900002 0
sleep 1
rss1=$(h rss "$EXP_PID")
m=$(h metrics "$EXP_PORT")
if [ "$(field legs_tracked "$m")" != "$LEGS" ] || [ "$(field legs_active "$m")" != "$LEGS" ]; then
  error "after ${LEGS} starts the exporter tracks $(field legs_tracked "$m") legs, $(field legs_active "$m") active"
fi
per_leg=$(((rss1 - rss0) / LEGS))
R[mem]="$per_leg"
echo "   RSS $((rss0 / 1024)) KiB → $((rss1 / 1024)) KiB: $per_leg bytes per tracked leg"
[ "$LEGS" -ge 100000 ] || echo "   (with fewer than 100000 legs the figure mostly shows the allocator's free memory, not the legs)"
stop "$EXP_PID" # writes the snapshot used below
snapdir="$work/exp-mem/data"
ls "$snapdir/snapshots" | grep -q . || error "no snapshot after SIGTERM"
echo "   snapshot: $(du -sh "$snapdir/snapshots" | cut -f1)"

# ---------------------------------------------------------------------------------------------
echo "== (d) startup: exec to the first 200 from /-/ready, ${STARTUP_RUNS} runs each"
wait_quiet
R[start_null]=$(h startup "$NULL" - "$STARTUP_RUNS" "$work" 0)
echo "   null receiver (floor):           ${R[start_null]} ms"
wait_quiet
R[start_empty]=$(h startup "$BIN" - "$STARTUP_RUNS" "$work" 0)
echo "   exporter, empty data dir:        ${R[start_empty]} ms"
wait_quiet
R[start_snap]=$(h startup "$BIN" "$snapdir" "$STARTUP_RUNS" "$work" "$LEGS")
echo "   exporter, ${LEGS} legs in snapshot: ${R[start_snap]} ms"

# ---------------------------------------------------------------------------------------------
echo
echo "== (e) summary ($(nproc) cores, ${cpu}; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
verdict() { python3 -c "print('holds' if $1 else 'MISSED')"; }
printf '%-50s %-16s %-20s %-10s %s\n' "measurement" "cdr-exporter" "ceiling (same run)" "target" "verdict"
for k in 1 10; do
  tgt=$([ "$k" = 1 ] && echo 100000 || echo 300000)
  for fsync in always never; do
    v=$(rate "$k" "${R[${fsync}_$k]}")
    printf '%-50s %-16s %-20s %-10s %s\n' "records/s, $k/POST, fsync=$fsync" "$v" \
      "$(rate "$k" "${R[null_$k]}") (null)" "≥ $tgt" "$(verdict "$v >= $tgt")"
  done
  for fsync in always never; do
    printf '%-50s %-16s %-20s %-10s %s\n' "ack p99 ms (closed loop), $k/POST, fsync=$fsync" \
      "$(ms "$(field lat_p99_us "${R[${fsync}_$k]}")")" "$(ms "$(field lat_p99_us "${R[null_$k]}")") (null)" "-" "-"
  done
done
for fsync in always never; do
  for k in 1 10; do
    s=${R[scrape_${fsync}_$k]}
    printf '%-50s %-16s %-20s %-10s %s\n' "/metrics p50/p99 ms, ingesting $k/POST $fsync" \
      "$(field p50 "$s") / $(field p99 "$s")" "-" "-" "-"
  done
done
printf '%-50s %-16s %-20s %-10s %s\n' "bytes per active call leg" "${R[mem]}" "-" "≤ 128" "$(verdict "${R[mem]} <= 128")"
e=$(field p50 "${R[start_empty]}")
printf '%-50s %-16s %-20s %-10s %s\n' "startup ms (p50), empty data dir" "$e" "$(field p50 "${R[start_null]}") (null)" "≤ 10" "$(verdict "$e <= 10")"
s=$(field p50 "${R[start_snap]}")
printf '%-50s %-16s %-20s %-10s %s\n' "startup ms (p50), ${LEGS} legs in snapshot" "$s" "-" "< 1000" "$(verdict "$s < 1000")"
echo "(CPU of other processes during each run is in the lines above; a run with more than $MAX_OTHER cores of it was repeated)"

if [ "$fail" != 0 ]; then
  echo "bench.sh: the exporter reported errors (see ERROR lines above)" >&2
  exit 1
fi
