#!/usr/bin/env bash
# Hostile soak (issue 9; not run in CI): legitimate Call Bridge traffic from the simulator
# and, at the same time, hostile clients spraying every attack of tests/under_attack.rs, for
# MINUTES minutes (default 5), against the exporter with journal.fsync "always", a snapshot
# every 30 s and the default bounds. It proves that the bounds hold over minutes: memory,
# snapshot, journal, quarantine, tracked sessions and objects, series and scrape size stay
# flat (or under their configured bound) while the attack goes on. Results go in
# BENCHMARKS.md ("Hostile soak (issue 9)").
#
#   scripts/soak-hostile.sh [MINUTES]
#
# Concurrently, for MINUTES minutes:
# - legitimate: `cdr-exporter simulate` with 4 clustered Call Bridges, 10 tenants, 20 calls/s;
#   at the end every exporter counter *for the simulator's call_bridge label values* must
#   equal its --expect-json totals (the labels are taken before the attack starts, so the
#   label cap cannot turn them into "other");
# - hostile (one Python process, one thread per attack, each at a bounded rate, counting what
#   it sent and how it was answered):
#     sessions    new session GUIDs under one clustered callBridge GUID, first record at
#                 correlatorIndex 500 (not a boot): a callStart and a callLegStart each;
#     identities  a new ?call_bridge= value per batch (unclustered), a new session with one
#                 callStart;
#     long        tenant, leg end reason and codec of 10-100 KB, under a 4 KB ?call_bridge=;
#     mover       1,000 callLegUpdates per batch moving one leg between two calls that never
#                 start;
#     junk        empty and 1-byte bodies (400, quarantined); junk-large: 20 non-XML
#                 bodies of 1 MB at the start of every minute, so that the quarantine's
#                 byte bound binds too (then the file bound again);
#     invalid     batches of 5,000 callEnds with <durationSeconds>sixty</durationSeconds>;
#     absurd      correlatorIndex 0, then 18446744073709551615, then 5 on each new session;
#   and a canary, not an attack: a quiet legitimate Call Bridge (?call_bridge=quiet-canary, a
#   new batch every 30 s, each sent again 15 s later as after a lost 200), first to send; the
#   script says whether the identity spray made the exporter forget it (reported, not fatal);
# - every 10 s: exporter RSS, newest snapshot size, journal bytes, quarantine files and bytes,
#   stderr bytes and lines, and from /metrics tracked objects by kind, series, scrape bytes,
#   label overflow, quarantine files, suppressed log lines, evicted sessions, the longest
#   label value.
# Report: the first sample after warm-up (after the first quarter and the first snapshot) vs
# the last, per figure, with a verdict: flat (within SOAK_TOLERANCE, default 10 %), under
# its bound (quarantine files and bytes, sessions <= max_call_bridges x
# sessions_per_call_bridge, objects <= tracking.max_objects, label values <=
# labels.max_value_bytes, journal <= what was written in the last snapshot.keep + 1
# snapshot intervals, warnings <= 10 per call site per 10 s), or a counter (per minute).
# Exits non-zero if the legitimate totals do not match, a bound is exceeded or the exporter
# died; a figure that is not flat is reported as NOT FLAT / GROWING, not fatal.
#
# Settings (environment): SOAK_TOLERANCE (0.10), SOAK_SNAPSHOT_SECONDS (30),
# SOAK_HOSTILE_SCALE (1.0: multiplies every sprayer's rate), SOAK_DIR (where the data dir
# goes; default a temp dir on the disk under /tmp), SOAK_KEEP=1 keeps the work dir.
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=${1:-5}
TOLERANCE=${SOAK_TOLERANCE:-0.10}
SNAPSHOT=${SOAK_SNAPSHOT_SECONDS:-30}
SCALE=${SOAK_HOSTILE_SCALE:-1.0}
BRIDGES=4
TENANTS=10
CPS=20

case $MINUTES in '' | *[!0-9]*) echo "soak-hostile.sh: MINUTES must be a whole number" >&2; exit 2 ;; esac
[ "$MINUTES" -ge 1 ] || { echo "soak-hostile.sh: MINUTES must be at least 1" >&2; exit 2; }
command -v python3 >/dev/null || { echo "soak-hostile.sh: python3 is needed" >&2; exit 2; }
echo "== build (release)"
cargo build --release --quiet --bin cdr-exporter
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$target_dir/release/cdr-exporter

work=$(mktemp -d "${SOAK_DIR:-/tmp}/cdr-soak-hostile.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${SOAK_KEEP:-0}" = 1 ]; then echo "   work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$work/h.py" <<'PY'
import http.client, json, os, random, re, signal, socket, sys, threading, time, tomllib, uuid

LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

def get(port, path):
    c = http.client.HTTPConnection('127.0.0.1', int(port), timeout=30)
    c.request('GET', path)
    r = c.getresponse()
    b = r.read().decode()
    c.close()
    return r.status, b

def parse(body):
    """[(name, {label: value}, value)] of the text exposition."""
    out = []
    for line in body.splitlines():
        if not line or line[0] == '#':
            continue
        head, val = line.rsplit(' ', 1)
        name, _, labels = head.partition('{')
        out.append((name, dict(LABEL.findall(labels)), float(val)))
    return out

def samples(port):
    return parse(get(port, '/metrics')[1])

def total(s, name, bridges=None, **labels):
    return sum(v for n, l, v in s if n == name
               and (bridges is None or l.get('call_bridge') in bridges)
               and all(l.get(k) == x for k, x in labels.items()))

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

def cmd_bounds(config, out):
    """The bounds in force, from --print-config, as JSON."""
    c = tomllib.load(open(config, 'rb'))
    json.dump({
        'quarantine_max_files': c['quarantine_max_files'],
        'quarantine_max_bytes': c['quarantine_max_bytes'],
        'max_call_bridges': c['tracking']['max_call_bridges'],
        'sessions_per_call_bridge': c['tracking']['sessions_per_call_bridge'],
        'max_objects': c['tracking']['max_objects'],
        'label_max_call_bridges': c['labels']['max_call_bridges'],
        'max_value_bytes': c['labels']['max_value_bytes'],
        'snapshot_interval': c['snapshot']['interval_seconds'],
        'snapshot_keep': c['snapshot']['keep'],
        'fsync': c['journal']['fsync'],
    }, open(out, 'w'))

def cmd_sim_bridges(port, n, out):
    """Waits until the simulator's n Call Bridges have each had a batch accepted; writes their
    call_bridge label values (nothing else is sending yet)."""
    n = int(n)
    end = time.time() + 60
    while time.time() < end:
        b = sorted({l['call_bridge'] for name, l, v in samples(port)
                    if name == 'cdr_exporter_batches_total' and v > 0})
        if len(b) >= n:
            if len(b) > n:
                sys.exit(f'{len(b)} call_bridge values before the attack, expected {n}: {b}')
            open(out, 'w').write('\n'.join(b) + '\n')
            return
        time.sleep(0.2)
    sys.exit(f'the simulator\'s {n} Call Bridges did not all send within 60 s')

# --- hostile sprayers ------------------------------------------------------------------------

HOSTILE_CB = 'bad0cb00-0000-4000-8000-00000000dead'
U64_MAX = 18446744073709551615

def rec(t, idx, inner):
    return (f'<record type="{t}" time="2024-01-01T00:00:{idx % 60:02}Z" '
            f'correlatorIndex="{idx}">{inner}</record>\n')

def batch(session, cb, recs):
    head = f'<?xml version="1.0"?>\n<records session="{session}"'
    if cb:
        head += f' callBridge="{cb}"'
    return (head + '>\n' + ''.join(recs) + '</records>\n').encode()

def call_start(cid, tenant=None):
    t = f'<tenant>{tenant}</tenant>' if tenant is not None else ''
    return f'<call id="{cid}"><name>x</name><callType>coSpace</callType>{t}</call>'

def call_end(cid, duration='60'):
    return (f'<call id="{cid}"><callLegsCompleted>1</callLegsCompleted><callLegsMaxActive>1'
            f'</callLegsMaxActive><durationSeconds>{duration}</durationSeconds></call>')

def leg_start(lid, cid=None):
    c = f'<call>{cid}</call>' if cid else ''
    return f'<callLeg id="{lid}"><type>sip</type><direction>outgoing</direction>{c}</callLeg>'

def leg_update(lid, cid):
    return f'<callLeg id="{lid}"><state>connected</state><call>{cid}</call></callLeg>'

def leg_end(lid, reason, codec=None):
    media = f'<rxAudio><codec>{codec}</codec></rxAudio>' if codec is not None else ''
    return (f'<callLeg id="{lid}"><reason>{reason}</reason><remoteTeardown>false</remoteTeardown>'
            f'<durationSeconds>30</durationSeconds>{media}</callLeg>')

def g():
    return str(uuid.uuid4())

class Sprayer:
    """One attack: make() returns (path, body, records) for the next request."""
    def __init__(self, name, rate, expect):
        self.name, self.rate, self.expect = name, rate, expect
        self.target = rate  # requests/s on average (rate: how often make() is asked)
        self.requests = self.records = self.bytes = self.errors = self.unexpected = 0
        self.statuses = {}
        self.n = 0
        self.started = self.ended = 0.0

    def count(self, status, records, size):
        self.requests += 1
        self.records += records
        self.bytes += size
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        if status != self.expect:
            self.unexpected += 1

class Sessions(Sprayer):
    def make(self):
        self.n += 1
        return '/cdr', batch(g(), HOSTILE_CB, [rec('callStart', 500, call_start(g())),
                                               rec('callLegStart', 501, leg_start(g()))]), 2

class Identities(Sprayer):
    def make(self):
        self.n += 1
        return (f'/cdr?call_bridge=spray-{self.n}',
                batch(g(), None, [rec('callStart', 0, call_start(g()))]), 1)

class Long(Sprayer):
    def __init__(self, *a):
        super().__init__(*a)
        self.rng = random.Random(9)
        self.cbs = [f'{i}-' + 'b' * 4096 for i in range(3)]
    def make(self):
        self.n += 1
        v = lambda: f'{self.n}-' + 'x' * self.rng.randint(10_000, 100_000)
        cid, lid = g(), g()
        recs = [rec('callStart', 0, call_start(cid, v())),
                rec('callLegStart', 1, leg_start(lid, cid)),
                rec('callLegEnd', 2, leg_end(lid, v(), v()))]
        return f'/cdr?call_bridge={self.cbs[self.n % 3]}', batch(g(), None, recs), 3

class Mover(Sprayer):
    def __init__(self, *a):
        super().__init__(*a)
        self.session, self.leg, self.calls = g(), g(), (g(), g())
    def make(self):
        base = self.n * 1000
        self.n += 1
        recs = [rec('callLegUpdate', base + k, leg_update(self.leg, self.calls[k % 2]))
                for k in range(1000)]
        return '/cdr?call_bridge=mover', batch(self.session, None, recs), 1000

class Junk(Sprayer):
    def make(self):
        self.n += 1
        return '/cdr', (b'' if self.n % 2 else b'x'), 0

class JunkLarge(Sprayer):
    """1 MB bodies that are not XML, 20 in the first 10 s of every minute: then the byte
    bound of the quarantine binds, and the file bound again once the small bodies of the
    rest of the minute have pushed them out."""
    def __init__(self, *a):
        super().__init__(*a)
        self.target, self.minute, self.k = 20 / 60 * self.rate / 2, -1, 0
    def make(self):
        el = time.time() - self.started
        if int(el // 60) != self.minute:
            self.minute, self.k = int(el // 60), 0
        if el % 60 > 10 or self.k >= 20 * self.rate / 2:
            return None
        self.k += 1
        self.n += 1
        return '/cdr', b'<' + str(self.n).encode() + b'\x01' * 1_000_000, 0

class Invalid(Sprayer):
    def __init__(self, *a):
        super().__init__(*a)
        self.session = g()
    def make(self):
        base = self.n * 5000
        self.n += 1
        recs = [rec('callEnd', base + k, call_end(g(), 'sixty')) for k in range(5000)]
        return '/cdr?call_bridge=invalid', batch(self.session, None, recs), 5000

class Absurd(Sprayer):
    def make(self):
        step = self.n % 3
        if step == 0:
            self.session = g()
        self.n += 1
        idx = (0, U64_MAX, 5)[step]
        return ('/cdr?call_bridge=absurd',
                batch(self.session, None, [rec('callLegStart', idx, leg_start(g()))]), 1)

class Canary(Sprayer):
    """Not an attack: a quiet, legitimate unclustered Call Bridge (one new batch every 30 s,
    each sent again 15 s later as after a lost 200), to see whether the identity spray makes
    the exporter forget it."""
    def __init__(self, *a):
        super().__init__(*a)
        self.session, self.prev, self.new, self.resent = g(), None, 0, 0
    def make(self):
        if self.n % 2 == 1:
            self.n += 1
            self.resent += 1
            return '/cdr?call_bridge=quiet-canary', self.prev, 1
        self.prev = batch(self.session, None, [rec('callStart', self.new, call_start(g()))])
        self.n += 1
        self.new += 1
        return '/cdr?call_bridge=quiet-canary', self.prev, 1

def spray_loop(sp, port, deadline, stop, skip_first=False):
    conn = None
    nxt = time.monotonic()
    if skip_first:
        nxt += 1 / sp.rate
        stop.wait(1 / sp.rate)
    sp.started = time.time()
    while not stop.is_set() and time.time() < deadline:
        job = sp.make()
        try:
            if job is None:
                raise StopIteration
            path, body, n = job
            if conn is None:
                conn = http.client.HTTPConnection('127.0.0.1', int(port), timeout=60)
            conn.request('POST', path, body=body, headers={'Content-Type': 'application/xml'})
            r = conn.getresponse()
            r.read()
            sp.count(r.status, n, len(body))
            if r.will_close:
                conn.close()
                conn = None
        except StopIteration:
            pass
        except (OSError, http.client.HTTPException):
            sp.errors += 1
            if conn is not None:
                conn.close()
            conn = None
            stop.wait(0.5)
        nxt += 1 / sp.rate
        delay = nxt - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        elif delay < -2:
            nxt = time.monotonic()  # fell behind (a stall): do not burst to catch up
    sp.ended = time.time()
    if conn is not None:
        conn.close()

def cmd_spray(port, seconds, out, scale):
    s = float(scale)
    sprayers = [Sessions('sessions', 100 * s, 200), Identities('identities', 50 * s, 200),
                Long('long', 2 * s, 200), Mover('mover', 1 * s, 200), Junk('junk', 20 * s, 400),
                JunkLarge('junk-large', 2 * s, 400),
                Invalid('invalid', 0.5 * s, 200), Absurd('absurd', 15 * s, 200)]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.time() + float(seconds)
    # The canary's first batch goes first, so that its call_bridge value gets a label
    # before the identity spray takes the label cap.
    canary = Canary('canary', 1 / 15, 200)
    canary.started = time.time()
    path, body, n = canary.make()
    c = http.client.HTTPConnection('127.0.0.1', int(port), timeout=60)
    c.request('POST', path, body=body)
    r = c.getresponse(); r.read(); c.close()
    canary.count(r.status, n, len(body))
    threads = [threading.Thread(target=spray_loop, args=(sp, port, deadline, stop))
               for sp in sprayers]
    threads.append(threading.Thread(target=spray_loop, args=(canary, port, deadline, stop, True)))
    sprayers.append(canary)
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    json.dump([{k: getattr(sp, k, None) for k in ('name', 'target', 'expect', 'requests', 'records',
                'bytes', 'errors', 'unexpected', 'statuses', 'started', 'ended', 'new', 'resent')}
               for sp in sprayers], open(out, 'w'), indent=1)

# --- sampling ----------------------------------------------------------------------------

def dir_files(d, suffix=''):
    out = []
    try:
        with os.scandir(d) as it:
            for e in it:
                if e.is_file() and e.name.endswith(suffix):
                    st = e.stat()
                    out.append((st.st_mtime, st.st_size))
    except FileNotFoundError:
        pass
    return out

class LogCount:
    def __init__(self, path):
        self.path, self.pos, self.lines = path, 0, 0
    def update(self):
        with open(self.path, 'rb') as f:
            f.seek(self.pos)
            data = f.read()
        self.pos += len(data)
        self.lines += data.count(b'\n')
        return self.pos, self.lines

def cmd_sample(pid, port, data, log, out, stop):
    t0 = time.time()
    lc = LogCount(log)
    with open(out, 'w') as f:
        while not os.path.exists(stop):
            row = {'t': round(time.time() - t0, 1), 'wall': time.time(),
                   'load1': float(open('/proc/loadavg').read().split()[0])}
            try:
                row['rss_kib'] = rss(pid)
                row['cpu_s'] = cpu(pid)
            except OSError:
                row['dead'] = True
            # Files first, then the scrape: the journal on disk is then compared with a
            # written-bytes counter read after it.
            snaps = dir_files(os.path.join(data, 'snapshots'), '.bin')
            row['snapshot_bytes'] = max(snaps)[1] if snaps else 0
            row['snapshots'] = len(snaps)
            row['journal_bytes'] = sum(sz for _, sz in dir_files(os.path.join(data, 'journal')))
            q = dir_files(os.path.join(data, 'quarantine'))
            row['quarantine_files'] = len(q)
            row['quarantine_bytes'] = sum(sz for _, sz in q)
            row['log_bytes'], row['log_lines'] = lc.update()
            try:
                t = time.perf_counter()
                body = get(port, '/metrics')[1]
                row['scrape_ms'] = round((time.perf_counter() - t) * 1000, 1)
                row['scrape_bytes'] = len(body)
                s = parse(body)
                row['series'] = len(s)
                for kind in ('call', 'call_leg', 'recording', 'streaming', 'session'):
                    row['tracked_' + kind] = total(s, 'cdr_exporter_tracked_objects', kind=kind)
                for cause in ('cap', 'too_long'):
                    row['overflow_' + cause] = total(s, 'cdr_exporter_label_overflow_total', cause=cause)
                row['overflow'] = total(s, 'cdr_exporter_label_overflow_total')
                row['quarantine_files_metric'] = total(s, 'cdr_exporter_quarantine_files')
                row['quarantine_bytes_metric'] = total(s, 'cdr_exporter_quarantine_bytes')
                row['quarantine_dropped'] = total(s, 'cdr_exporter_quarantine_dropped_total')
                row['log_suppressed'] = total(s, 'cdr_exporter_log_lines_suppressed_total')
                row['evicted_sessions'] = total(s, 'cdr_exporter_evicted_objects_total', kind='session')
                row['journal_written'] = total(s, 'cdr_exporter_journal_written_bytes_total')
                row['records'] = total(s, 'cdr_exporter_records_total')
                row['call_bridge_values'] = len({l['call_bridge'] for n, l, v in s if 'call_bridge' in l})
                longest = max(((len(v), k) for n, l, _ in s for k, v in l.items()), default=(0, ''))
                row['longest_label'], row['longest_label_name'] = longest
            except (OSError, http.client.HTTPException, ValueError) as e:
                row['scrape_error'] = str(e)
            f.write(json.dumps(row) + '\n')
            f.flush()
            if row.get('dead'):
                return
            for _ in range(100):
                if os.path.exists(stop):
                    break
                time.sleep(0.1)

# --- checks and report -------------------------------------------------------------------

def cmd_compare(port, expected, bridges_file):
    """Every exact equality between the simulator's expectation and the exporter, on the
    simulator's call_bridge values only."""
    e = json.load(open(expected))
    bridges = set(open(bridges_file).read().split())
    deadline = time.time() + 20
    while True:
        s = samples(port)
        bad = []
        def eq(what, want, got):
            if got != want:
                bad.append(f'{what}: expected {want}, exporter shows {got:g}')
        t = lambda name, **kw: total(s, name, bridges, **kw)
        eq('cdr_exporter_records_total', e['records_total'], t('cdr_exporter_records_total'))
        for ty, n in e['records_by_type'].items():
            eq(f'cdr_exporter_records_total{{record_type={ty}}}', n,
               t('cdr_exporter_records_total', record_type=ty))
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
            eq(name, e[key], t(name))
        for r, n in e['legs_ended_by_reason'].items():
            eq(f'cms_call_legs_ended_total{{reason={r}}}', n,
               t('cms_call_legs_ended_total', reason=r))
        for name in ['cdr_exporter_records_invalid_total', 'cdr_exporter_records_duplicate_total']:
            eq(name, 0, t(name))
        eq('cdr_exporter_journal_errors_total', 0, total(s, 'cdr_exporter_journal_errors_total'))
        if not bad or time.time() > deadline:
            break
        time.sleep(0.5)
    print(f'   simulator\'s Call Bridges ({len(bridges)}): '
          f'{int(t("cdr_exporter_records_total"))} records, {int(t("cdr_exporter_batches_total"))} batches; '
          f'all Call Bridges: {int(total(s, "cdr_exporter_records_total"))} records, '
          f'{int(total(s, "cdr_exporter_batches_total"))} batches, '
          f'{int(total(s, "cdr_exporter_journal_fsyncs_total"))} fsyncs, snapshot took '
          f'{total(s, "cdr_exporter_snapshot_last_duration_seconds") * 1000:.1f} ms')
    rej = {l.get('reason'): int(v) for n, l, v in s if n == 'cdr_exporter_batches_rejected_total' and v}
    inv = {l.get('reason'): int(v) for n, l, v in s if n == 'cdr_exporter_records_invalid_total' and v}
    ev = {f'{l.get("kind")}/{l.get("reason")}': int(v) for n, l, v in s
          if n == 'cdr_exporter_evicted_objects_total' and v}
    print(f'   hostile effects: rejected batches {rej}; invalid records {inv}; evictions {ev}')
    if bad:
        print('   MISMATCH:\n     ' + '\n     '.join(bad))
        sys.exit(1)
    print(f'   every counter of the simulator\'s Call Bridges equals its expectation '
          f'({len(e["records_by_type"])} record types, {len(e["legs_ended_by_reason"])} leg end '
          f'reasons, {e["sessions"]} sessions, 0 invalid, 0 duplicate; 0 journal errors)')

def mib(x): return f'{x / 1048576:.1f} MiB'
def kib(x): return f'{x / 1024:.1f} KiB'
def num(x): return f'{x:,.0f}'

def cmd_spray_report(path):
    rows = json.load(open(path))
    print(f'   {"sprayer":<11} {"target/s":>8} {"requests":>9} {"achieved/s":>10} {"records":>10} '
          f'{"MB sent":>8}  answers (errors)')
    for r in rows:
        secs = max(r['ended'] - r['started'], 1e-9)
        st = ', '.join(f'{k}: {v}' for k, v in sorted(r['statuses'].items()))
        print(f'   {r["name"]:<11} {r["target"]:8.2f} {r["requests"]:9d} {r["requests"] / secs:10.1f} '
              f'{r["records"]:10d} {r["bytes"] / 1e6:8.1f}  {st} ({r["errors"]})')
    by = {r['name']: r['requests'] for r in rows}
    made = (by['sessions'] + by['identities'] + by['long'] + (by['absurd'] + 2) // 3 + 2
            + (1 if by['canary'] else 0))
    print(f'   new CDR sessions the sprayers opened: {made:,} (every sessions, identities and long '
          f'request, every third absurd one, one mover, one invalid, one canary session)')
    bad = [r['name'] for r in rows if r['unexpected'] or r['requests'] == 0]
    if bad:
        print(f'   WARNING: sprayers answered other than expected or sent nothing: {bad}')

def cmd_canary(port, path):
    """Whether the quiet Call Bridge was kept through the identity spray."""
    c = next(r for r in json.load(open(path)) if r['name'] == 'canary')
    s = samples(port)
    t = lambda name: total(s, name, {'quiet-canary'})
    got = (t('cdr_exporter_sessions_total'), t('cdr_exporter_records_total'),
           t('cdr_exporter_records_duplicate_total'), t('cms_calls_active'))
    want = (1, c['new'], c['resent'], c['new'])
    print(f'   quiet Call Bridge (?call_bridge=quiet-canary: a new batch every 30 s, each sent again '
          f'15 s later): sessions {got[0]:g} (kept: {want[0]}), records {got[1]:g} ({want[1]}), '
          f'duplicates {got[2]:g} ({want[2]}), active calls {got[3]:g} ({want[3]})')
    if got == want:
        print('   -> kept through the identity spray')
    else:
        print('   -> FINDING: the identity spray made the exporter forget this quiet Call Bridge '
              '(tracking.max_call_bridges evicts the least recently active): a new session was '
              'counted (a false restart), re-sent batches were counted again and its active calls '
              'were evicted')

def cmd_smaps(pid):
    """Where the exporter's resident memory is, by mapping (for the RSS diagnosis)."""
    maps, cur = [], None
    for line in open(f'/proc/{pid}/smaps'):
        f = line.split()
        if re.match(r'^[0-9a-f]+-[0-9a-f]+ ', line):
            lo, hi = (int(x, 16) for x in f[0].split('-'))
            cur = {'size': hi - lo, 'name': f[5] if len(f) > 5 else '[anon]', 'rss': 0}
            maps.append(cur)
        elif f[0] == 'Rss:':
            cur['rss'] = int(f[1]) * 1024
    tot = sum(m['rss'] for m in maps)
    by = {}
    for m in maps:
        k = m['name'] if m['name'].startswith('[') else ('binary' if 'cdr-exporter' in m['name'] else 'libraries')
        n, r = by.get(k, (0, 0))
        by[k] = (n + (m['rss'] > 0), r + m['rss'])
    print(f'   exporter RSS by mapping at the end ({mib(tot)}): ' + '; '.join(
        f'{k} {mib(r)} in {n}' for k, (n, r) in sorted(by.items(), key=lambda kv: -kv[1][1]) if r))
    big = sorted((m for m in maps if m['name'] == '[anon]'), key=lambda m: -m['rss'])[:8]
    print('   largest anonymous mappings (RSS / size): ' +
          ', '.join(f'{mib(m["rss"])}/{mib(m["size"])}' for m in big))

def log_lines_by_message(log):
    """{(level, message): [unix seconds]} of the exporter's text log."""
    pat = re.compile(r'^(\S+)\s+(ERROR|WARN|INFO|DEBUG|TRACE)\s+\S+?:\s+(.*)$')
    out = {}
    import datetime
    for line in open(log, errors='replace'):
        m = pat.match(line.rstrip('\n'))
        if not m:
            continue
        ts, level, rest = m.groups()
        # The message is what precedes the first key=value field (tracing's text format).
        msg = re.split(r'\s+[a-z_]+=', rest, maxsplit=1)[0][:90]
        try:
            t = datetime.datetime.fromisoformat(ts.replace('Z', '+00:00')).timestamp()
        except ValueError:
            continue
        out.setdefault((level, msg), []).append(t)
    return out

def cmd_report(path, sprays, bounds_file, log, minutes, tolerance, snapshot):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    b = json.load(open(bounds_file))
    tol = float(tolerance)
    fail = []
    good = [r for r in rows if 'series' in r and 'rss_kib' in r]
    if len(good) < 3:
        print('   too few samples'); sys.exit(1)
    start = max(float(minutes) * 60 / 4, float(snapshot) + 15)
    ref = next((r for r in good if r['t'] >= start and r['snapshots'] > 0), good[len(good) // 2])
    end = good[-1]
    span_min = max(end['t'] - ref['t'], 1) / 60
    print('   every 10 s:')
    print('    t(s) RSS(MiB) CPU(cores) snap(KiB) journal(MiB) quar(files) quar(MiB) log(lines) '
          'sessions  calls   legs  series scrape(MB) longest load')
    prev = None
    for r in good:
        cores = '' if prev is None else f'{(r["cpu_s"] - prev["cpu_s"]) / max(r["t"] - prev["t"], 1):.2f}'
        print(f'   {r["t"]:5.0f} {r["rss_kib"] / 1024:8.1f} {cores:>10} {r["snapshot_bytes"] / 1024:9.1f} '
              f'{r["journal_bytes"] / 1048576:12.1f} {r["quarantine_files"]:11d} '
              f'{r["quarantine_bytes"] / 1048576:9.2f} {r["log_lines"]:10d} '
              f'{int(r["tracked_session"]):8d} {int(r["tracked_call"]):6d} {int(r["tracked_call_leg"]):6d} '
              f'{r["series"]:7d} {r["scrape_bytes"] / 1e6:10.2f} {r["longest_label"]:7d} {r["load1"]:4.1f}')
        prev = r
    if any(r.get('dead') for r in rows):
        fail.append('the exporter died during the run')

    table = []
    def change(a, z):
        return (z - a) / a if a else (0.0 if z == a else float('inf'))
    def flat(label, key, fmt, bound=None, bound_text=''):
        a, z = ref[key], end[key]
        c = change(a, z)
        mx = max(r[key] for r in good)
        verdict = 'flat' if abs(c) <= tol else ('NOT FLAT (growing)' if c > 0 else 'NOT FLAT (shrinking)')
        if bound is not None:
            if mx > bound:
                verdict = f'BOUND EXCEEDED (max {fmt(mx)} > {bound_text})'
                fail.append(f'{label}: max {fmt(mx)} > {bound_text}')
            else:
                verdict += f'; max {fmt(mx)} <= {bound_text}'
        elif c > tol:
            verdict += f', {fmt((z - a) / span_min)}/min'
        if c > tol:
            rises = [r['t'] for p, r in zip(good, good[1:]) if r[key] > p[key] and r['t'] > ref['t']]
            verdict += f'; max {fmt(mx)}, last rise at t={rises[-1]:.0f}s' if rises else ''
        table.append((label, fmt(a), fmt(z), f'{c * 100:+.1f} %' if c != float('inf') else 'new', verdict))
    def bounded(label, key, fmt, bound, bound_text):
        a, z = ref[key], end[key]
        mx = max(r[key] for r in good)
        ok = mx <= bound
        if not ok:
            fail.append(f'{label}: max {fmt(mx)} > {bound_text}')
        c = change(a, z)
        table.append((label, fmt(a), fmt(z), f'{c * 100:+.1f} %' if c != float('inf') else 'new',
                      (f'<= bound ({bound_text}), max {fmt(mx)}' if ok else
                       f'BOUND EXCEEDED (max {fmt(mx)} > {bound_text})')))
    def counter(label, key, fmt, note):
        a, z = ref[key], end[key]
        table.append((label, fmt(a), fmt(z), '', f'counter, +{fmt((z - a) / span_min)}/min ({note})'))

    flat('exporter RSS', 'rss_kib', lambda x: f'{x / 1024:.1f} MiB')
    flat('newest snapshot', 'snapshot_bytes', kib)
    # The journal holds what was written since the oldest snapshot kept: at most the bytes
    # written in the last (keep + 1) snapshot intervals (one interval of slack for the
    # snapshot's own duration and the sampling), plus 1 MiB for a group commit written to
    # the file but not yet counted when the directory was listed.
    window = (b['snapshot_keep'] + 1) * b['snapshot_interval']
    worst = None
    for r in good:
        past = [p for p in good if p['t'] <= r['t'] - window]
        allowed = r['journal_written'] - (past[-1]['journal_written'] if past else 0) + 1048576
        if worst is None or r['journal_bytes'] - allowed > worst[0]:
            worst = (r['journal_bytes'] - allowed, r, allowed)
    jw = (end['journal_written'] - ref['journal_written']) / span_min
    jmax = max(r['journal_bytes'] for r in good)
    if worst[0] > 0:
        fail.append(f'journal: {mib(worst[1]["journal_bytes"])} at t={worst[1]["t"]:.0f}s, more than '
                    f'the {mib(worst[2])} written in the {window}s before it')
        jv = f'BOUND EXCEEDED at t={worst[1]["t"]:.0f}s'
    else:
        jv = (f'<= written in the last {window} s at every sample (max {mib(jmax)}; '
              f'{jw / 1048576:.1f} MiB/min written)')
    table.append(('journal on disk', mib(ref['journal_bytes']), mib(end['journal_bytes']),
                  f'{change(ref["journal_bytes"], end["journal_bytes"]) * 100:+.1f} %', jv))
    bounded('quarantine files (dir)', 'quarantine_files', num, b['quarantine_max_files'],
            f'quarantine_max_files {b["quarantine_max_files"]}')
    bounded('quarantine bytes (dir)', 'quarantine_bytes', mib, b['quarantine_max_bytes'],
            f'quarantine_max_bytes {mib(b["quarantine_max_bytes"])}')
    bounded('cdr_exporter_quarantine_files', 'quarantine_files_metric', num, b['quarantine_max_files'],
            f'{b["quarantine_max_files"]}')
    mism = [r['t'] for r in good if abs(r['quarantine_files_metric'] - r['quarantine_files']) > 5]
    if mism:
        table.append(('  metric vs dir', '', '', '', f'differ by > 5 files at t={mism[:5]} (read '
                      'a few ms apart: a burst of large bodies removes hundreds of small ones)'))
    sess_bound = b['max_call_bridges'] * b['sessions_per_call_bridge']
    bounded('tracked sessions', 'tracked_session', num, sess_bound,
            f'max_call_bridges x sessions_per_call_bridge = {sess_bound}')
    for kind in ('call', 'call_leg', 'recording', 'streaming'):
        bounded(f'tracked {kind}s', 'tracked_' + kind, num, b['max_objects'],
                f'max_objects {num(b["max_objects"])}')
    flat('series', 'series', num)
    flat('scrape size', 'scrape_bytes', lambda x: f'{x / 1e6:.2f} MB')
    bounded('call_bridge label values', 'call_bridge_values', num, b['label_max_call_bridges'] + 1,
            f'labels.max_call_bridges {b["label_max_call_bridges"]} + "other"')
    bounded('longest label value', 'longest_label', lambda x: f'{x:.0f} B', b['max_value_bytes'],
            f'labels.max_value_bytes {b["max_value_bytes"]}')
    counter('label_overflow_total', 'overflow', num, 'values replaced by "other"')
    counter('  cause="too_long"', 'overflow_too_long', num, 'long values')
    counter('log_lines_suppressed_total', 'log_suppressed', num, 'warnings not written')
    counter('evicted sessions', 'evicted_sessions', num, 'sessions past their bounds')
    counter('quarantine_dropped_total', 'quarantine_dropped', num, 'bodies not kept')
    lines_min = (end['log_lines'] - ref['log_lines']) / span_min
    bytes_min = (end['log_bytes'] - ref['log_bytes']) / span_min
    table.append(('stderr log', f'{num(ref["log_lines"])} lines, {mib(ref["log_bytes"])}',
                  f'{num(end["log_lines"])} lines, {mib(end["log_bytes"])}', '',
                  ('GROWING' if lines_min > 60 else 'slow') +
                  f': +{num(lines_min)} lines/min, +{kib(bytes_min)}/min'))

    w = [max(len(str(x[i])) for x in table + [('figure', f'after warm-up (t={ref["t"]:.0f}s)',
                                                f'last (t={end["t"]:.0f}s)', 'change', '')])
         for i in range(4)]
    print(f'\n   {"figure":<{w[0]}}  {"after warm-up (t=" + format(ref["t"], ".0f") + "s)":>{w[1]}}  '
          f'{"last (t=" + format(end["t"], ".0f") + "s)":>{w[2]}}  {"change":>{w[3]}}  verdict')
    for row in table:
        print(f'   {row[0]:<{w[0]}}  {row[1]:>{w[1]}}  {row[2]:>{w[2]}}  {row[3]:>{w[3]}}  {row[4]}')

    # Log lines by message between warm-up and the end: rate-limited warnings must stay
    # within 10 per call site per 10 s (60/min); other lines are shown with their rate.
    by = log_lines_by_message(log)
    lo, hi = ref['wall'], end['wall']
    print(f'\n   stderr lines per minute, t={ref["t"]:.0f}-{end["t"]:.0f}s, by message (all lines of the run in brackets):')
    for (level, msg), ts in sorted(by.items(), key=lambda kv: -len(kv[1])):
        n = sum(lo <= t <= hi for t in ts)
        per = n / span_min
        note = ''
        if level == 'WARN' and per > 60 * 1.1 + 1:
            note = '  RATE LIMIT EXCEEDED (> 60/min per call site)'
            fail.append(f'warning "{msg}" at {per:.0f} lines/min')
        elif level == 'WARN':
            note = '  (rate-limited: <= 10 per 10 s)'
        elif per > 60:
            note = '  NOT RATE-LIMITED: grows with the attack'
        print(f'   {per:9.1f}/min  ({len(ts):6d})  {level:<5} {msg}{note}')
    if fail:
        print('\n   BOUNDS BROKEN:\n     ' + '\n     '.join(fail))
        sys.exit(1)
    print('\n   every bound held')

globals()['cmd_' + sys.argv[1].replace('-', '_')](*sys.argv[2:])
PY
h() { python3 "$work/h.py" "$@"; }

echo "== machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r), $(rustc --version)"
echo "   load average $(cut -d' ' -f1-3 /proc/loadavg); data dir on $(df -T "$work" | awk 'NR==2{print $2}'); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (src modified)')"

export CDR_EXPORTER_JOURNAL__FSYNC=always CDR_EXPORTER_SNAPSHOT__INTERVAL_SECONDS=$SNAPSHOT
"$BIN" --data-dir "$work/data" --print-config >"$work/config.toml"
h bounds "$work/config.toml" "$work/bounds.json"
port=$(h free-port)
"$BIN" --listen "127.0.0.1:$port" --data-dir "$work/data" 2>"$work/exporter.log" &
exporter=$!
pids+=("$exporter")
h wait-ready "$port"

echo "== hostile soak: $MINUTES min; legitimate: $BRIDGES Call Bridges, $TENANTS tenants, $CPS calls/s; hostile rate x$SCALE; fsync always, snapshot every ${SNAPSHOT}s"
stop="$work/stop"
h sample "$exporter" "$port" "$work/data" "$work/exporter.log" "$work/samples.jsonl" "$stop" &
pids+=("$!")
sampler=$!
fail=0
timeout $((MINUTES * 60 + 300)) "$BIN" simulate --target "http://127.0.0.1:$port/cdr" \
  --call-bridges "$BRIDGES" --tenants "$TENANTS" --calls-per-second "$CPS" --duration "${MINUTES}m" \
  --seed 20240611 --quiet --expect-json "$work/expected.json" >"$work/sim.txt" 2>"$work/sim.log" &
sim=$!
pids+=("$sim")
# The simulator's call_bridge values, before any hostile batch can take the label cap.
h sim-bridges "$port" "$BRIDGES" "$work/sim-bridges.txt"
echo "   simulator's call_bridge values: $(paste -sd' ' "$work/sim-bridges.txt")"
h spray "$port" "$((MINUTES * 60))" "$work/spray.json" "$SCALE" &
sprayer=$!
pids+=("$sprayer")
wait "$sim" || fail=1
wait "$sprayer" || { echo "ERROR: the sprayers failed" >&2; fail=1; }
touch "$stop"
wait "$sampler" || true

echo "== legitimate traffic (simulator)"
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
if kill -0 "$exporter" 2>/dev/null; then
  h compare "$port" "$work/expected.json" "$work/sim-bridges.txt" || fail=1
else
  echo "ERROR: the exporter died" >&2
  tail -20 "$work/exporter.log" >&2
  fail=1
fi

echo "== hostile traffic (sprayers)"
if [ -s "$work/spray.json" ]; then h spray-report "$work/spray.json"; else echo "ERROR: no sprayer counts" >&2; fail=1; fi

if kill -0 "$exporter" 2>/dev/null && [ -s "$work/spray.json" ]; then h canary "$port" "$work/spray.json"; fi

echo "== bounds over time"
h report "$work/samples.jsonl" "$work/spray.json" "$work/bounds.json" "$work/exporter.log" \
  "$MINUTES" "$TOLERANCE" "$SNAPSHOT" || fail=1
grep -E " ERROR " "$work/exporter.log" | head -5 && echo "   (exporter logged errors, above)"

if kill -0 "$exporter" 2>/dev/null; then
  h smaps "$exporter" || true
  kill -TERM "$exporter"
  wait "$exporter" || { echo "ERROR: the exporter did not stop cleanly" >&2; fail=1; }
fi
if [ "$fail" != 0 ]; then
  echo "soak-hostile.sh: FAILED" >&2
  exit 1
fi
echo "soak-hostile.sh: every bound held and the legitimate totals match"
