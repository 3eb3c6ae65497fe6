//! Helpers for the Kamailio + rtpengine + SIPp end-to-end test: process guards, free
//! loopback ports, a capturing HTTP server, and an RTP/RTCP generator for both call legs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The Debian 12 packages the test needs, for error messages.
pub const INSTALL: &str = "apt-get install -y kamailio kamailio-utils-modules \
    kamailio-extra-modules kamailio-lua-modules rtpengine-daemon sip-tester";

/// Path of a binary on PATH (or the usual sbin dirs); panics with the install line if absent.
pub fn require_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` not found: this test runs the real daemons; install them with: {INSTALL}")
}

/// A child process in its own process group; the whole group (Kamailio forks workers) is
/// killed and the child reaped on drop, also when the test panics.
pub struct Guard {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl Guard {
    /// Starts `cmd` with stdout and stderr into `log`.
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Guard {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({cmd:?}): {e}"));
        Guard { name, child, log }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// `Some(exit code)` once it has exited.
    pub fn try_exit(&mut self) -> Option<i32> {
        self.child
            .try_wait()
            .expect("try_wait")
            .map(|s| s.code().unwrap_or(-1))
    }

    /// Waits (polling) for the exit code; panics with the log tail after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(code) = self.try_exit() {
                return code;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not exit within {within:?}\n{}",
                    self.name,
                    tail(&self.log, 40)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGTERM first: Kamailio's main process then stops and reaps its workers
            // (a SIGKILL would leave them to init as zombies).
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
                thread::sleep(Duration::from_millis(10));
            }
        }
        if self.child.try_wait().ok().flatten().is_none() {
            // The group id is the child's pid (process_group(0)).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The last `n` lines of a file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned());
    match text {
        Ok(t) => {
            let lines: Vec<&str> = t.lines().collect();
            let from = lines.len().saturating_sub(n);
            format!(
                "--- {} (last {n} lines)\n{}",
                path.display(),
                lines[from..].join("\n")
            )
        }
        Err(e) => format!("--- {}: {e}", path.display()),
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` and `context()` after `within`.
pub fn poll<T>(
    within: Duration,
    what: &str,
    context: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {within:?} waiting for {what}\n{}",
                context()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A UDP port free on 127.0.0.1 right now (the kernel picks it).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `n` consecutive UDP ports free on 127.0.0.1, for rtpengine's media range.
pub fn free_udp_range(n: u16) -> u16 {
    for _ in 0..200 {
        // Ask the kernel for a starting point so parallel runs spread out.
        let base = free_udp_port() & !1;
        if base < 1024 || base > u16::MAX - n {
            continue;
        }
        let held: Vec<_> = (base..base + n)
            .map(|p| UdpSocket::bind(("127.0.0.1", p)))
            .collect();
        if held.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no {n} consecutive free UDP ports on 127.0.0.1")
}

/// The RTP and RTCP sockets of one call party: an even port and the next one.
pub struct Endpoint {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub port: u16,
}

impl Endpoint {
    pub fn bind() -> Endpoint {
        for _ in 0..200 {
            let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let port = rtp.local_addr().unwrap().port();
            if !port.is_multiple_of(2) || port == u16::MAX {
                continue;
            }
            if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
                return Endpoint { rtp, rtcp, port };
            }
        }
        panic!("no free even/odd UDP port pair on 127.0.0.1")
    }
}

/// One POST the capture server received.
#[derive(Debug, Clone)]
pub struct Post {
    /// The status the server answered.
    pub status: u16,
    pub path: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// An HTTP/1.1 server on 127.0.0.1:0 between Kamailio and the exporter: it keeps every
/// POST, answers 503 to the first `fail_first` (an exporter that is briefly unavailable),
/// and forwards the rest to the exporter at `upstream`, answering with its status.
pub struct Capture {
    pub addr: SocketAddr,
    pub posts: Arc<Mutex<Vec<Post>>>,
    stop: Arc<AtomicBool>,
}

impl Capture {
    pub fn start(fail_first: usize, upstream: SocketAddr) -> Capture {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind capture server");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (posts.clone(), stop.clone());
        let failures = Arc::new(std::sync::atomic::AtomicUsize::new(fail_first));
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (p, f) = (p.clone(), failures.clone());
                        thread::spawn(move || serve(conn, p, f, upstream));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Capture { addr, posts, stop }
    }

    pub fn snapshot(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    conn: TcpStream,
    posts: Arc<Mutex<Vec<Post>>>,
    failures: Arc<std::sync::atomic::AtomicUsize>,
    upstream: SocketAddr,
) {
    conn.set_nonblocking(false).ok();
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut w = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    // Keep-alive: curl (http_client keep_connections) reuses the connection.
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (method, path) = (method.to_owned(), path.to_owned());
        let (mut len, mut ctype, mut expect) = (0usize, None, false);
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let v = v.trim();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.parse().unwrap_or(0),
                    "content-type" => ctype = Some(v.to_owned()),
                    "expect" => expect = v.eq_ignore_ascii_case("100-continue"),
                    _ => {}
                }
            }
        }
        if expect && w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            return;
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let fail = method == "POST"
            && failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        let status = if fail {
            503
        } else {
            http_request(upstream, &method, &path, ctype.as_deref(), &body).0
        };
        if method == "POST" {
            posts.lock().unwrap().push(Post {
                status,
                path,
                content_type: ctype,
                body,
            });
        }
        let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// One HTTP/1.1 request (`Connection: close`): the status and the body (0 if no answer).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(10)) else {
        return (0, String::new());
    };
    c.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let ct = content_type
        .map(|t| format!("Content-Type: {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{ct}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if c.write_all(head.as_bytes())
        .and_then(|_| c.write_all(body))
        .is_err()
    {
        return (0, String::new());
    }
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_owned())
}

/// What the generator does on both legs.
#[derive(Debug, Clone)]
pub struct MediaPlan {
    /// Packet interval (PCMU, 160 samples).
    pub ptime: Duration,
    /// Sequence numbers divisible by this are never sent: a known loss.
    pub drop_every: u16,
    /// Every other packet is sent this much late: the receiver measures it as jitter.
    pub jitter_offset: Duration,
    /// Send RTCP (SR + RR + SDES) at all.
    pub rtcp: bool,
    pub rtcp_interval: Duration,
    /// RTCP packets per side before the media stops (with RTCP).
    pub rtcp_rounds: usize,
    /// How long the media runs without RTCP.
    pub duration_without_rtcp: Duration,
    /// DLSR is reported this much short, so rtpengine measures each leg's round trip
    /// this much longer than loopback: a known round trip.
    pub extra_rtt_per_leg: Duration,
}

/// One receiver report block the generator sent.
#[derive(Debug, Clone, Copy)]
pub struct SentRr {
    pub fraction_lost: u8,
    pub cumulative_lost: u32,
    /// Interarrival jitter in RTP timestamp units (8 kHz).
    pub jitter: u32,
    pub lsr: u32,
    pub dlsr: u32,
}

/// What one side did.
#[derive(Debug, Clone, Default)]
pub struct SideLog {
    pub ssrc: u32,
    pub rtp_sent: u32,
    pub rtp_received: u32,
    pub reports: Vec<SentRr>,
}

#[derive(Default)]
struct Rx {
    base_seq: Option<u16>,
    max_seq: u16,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    jitter: f64,
    last_transit: Option<f64>,
    peer_ssrc: u32,
    last_sr: Option<(u32, Instant)>,
}

impl Rx {
    fn expected(&self) -> u32 {
        match self.base_seq {
            // No wrap in a test call of a few hundred packets.
            Some(b) => u32::from(self.max_seq.wrapping_sub(b)) + 1,
            None => 0,
        }
    }
}

/// Runs RTP (and RTCP, per plan) on both legs until the plan is done: `a` sends to
/// rtpengine's port `a_dst`, `b` to `b_dst`. Blocks; returns what each side did.
pub fn run_media(
    a: Endpoint,
    a_dst: u16,
    b: Endpoint,
    b_dst: u16,
    plan: &MediaPlan,
) -> (SideLog, SideLog) {
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let side = |ep: Endpoint, dst: u16, ssrc: u32, rtcp_phase: Duration| {
        let plan = plan.clone();
        let stop = stop.clone();
        thread::spawn(move || run_side(ep, dst, ssrc, start, rtcp_phase, &plan, &stop))
    };
    // The two sides' RTCP are half an interval apart, so each RR answers an SR that
    // arrived well before it (DLSR stays positive after the injected round trip).
    let ta = side(a, a_dst, 0x0a0a_0001, plan.rtcp_interval / 4);
    let tb = side(b, b_dst, 0x0b0b_0002, plan.rtcp_interval * 3 / 4);
    let la = ta.join().expect("side A");
    let lb = tb.join().expect("side B");
    stop.store(true, Ordering::Relaxed);
    (la, lb)
}

fn run_side(
    ep: Endpoint,
    dst: u16,
    ssrc: u32,
    start: Instant,
    rtcp_phase: Duration,
    plan: &MediaPlan,
    stop: &AtomicBool,
) -> SideLog {
    let rx = Arc::new(Mutex::new(Rx::default()));
    let done = Arc::new(AtomicBool::new(false));
    let rtp_rx = spawn_rtp_receiver(ep.rtp.try_clone().unwrap(), rx.clone(), start, done.clone());
    let rtcp_rx = spawn_rtcp_receiver(ep.rtcp.try_clone().unwrap(), rx.clone(), done.clone());
    let rtp_to: SocketAddr = ([127, 0, 0, 1], dst).into();
    let rtcp_to: SocketAddr = ([127, 0, 0, 1], dst + 1).into();
    let mut log = SideLog {
        ssrc,
        ..Default::default()
    };
    let mut seq: u16 = 0;
    let mut next_rtcp = start + rtcp_phase;
    let end_without_rtcp = start + plan.duration_without_rtcp;
    let mut octets = 0u32;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if plan.rtcp && log.reports.len() >= plan.rtcp_rounds {
            break;
        }
        if !plan.rtcp && Instant::now() >= end_without_rtcp {
            break;
        }
        seq = seq.wrapping_add(1);
        let k = u32::from(seq);
        let mut when = start + plan.ptime * k;
        if k % 2 == 1 {
            when += plan.jitter_offset;
        }
        let now = Instant::now();
        if when > now {
            thread::sleep(when - now);
        }
        let ts = k * 160;
        if !seq.is_multiple_of(plan.drop_every) {
            let mut pkt = Vec::with_capacity(172);
            pkt.extend_from_slice(&[0x80, 0]); // V=2, PT 0 (PCMU)
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(&ts.to_be_bytes());
            pkt.extend_from_slice(&ssrc.to_be_bytes());
            pkt.extend_from_slice(&[0xff; 160]); // PCMU silence
            ep.rtp.send_to(&pkt, rtp_to).expect("send RTP");
            log.rtp_sent += 1;
            octets += 160;
        }
        if plan.rtcp && Instant::now() >= next_rtcp {
            next_rtcp += plan.rtcp_interval;
            let (pkt, rr) = rtcp_compound(ssrc, ts, log.rtp_sent, octets, &rx, plan);
            ep.rtcp.send_to(&pkt, rtcp_to).expect("send RTCP");
            log.reports.push(rr);
        }
    }
    done.store(true, Ordering::Relaxed);
    rtp_rx.join().unwrap();
    rtcp_rx.join().unwrap();
    log.rtp_received = rx.lock().unwrap().received;
    log
}

fn spawn_rtp_receiver(
    sock: UdpSocket,
    rx: Arc<Mutex<Rx>>,
    start: Instant,
    done: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !done.load(Ordering::Relaxed) {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let arrival = start.elapsed().as_secs_f64() * 8000.0;
            if n < 12 {
                continue;
            }
            let seq = u16::from_be_bytes([buf[2], buf[3]]);
            let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            let peer = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
            let mut r = rx.lock().unwrap();
            r.peer_ssrc = peer;
            match r.base_seq {
                None => {
                    r.base_seq = Some(seq);
                    r.max_seq = seq;
                }
                Some(_) => {
                    if seq.wrapping_sub(r.max_seq) < 0x8000 {
                        r.max_seq = seq;
                    }
                }
            }
            r.received += 1;
            // RFC 3550 A.8 interarrival jitter, in timestamp units.
            let transit = arrival - f64::from(ts);
            if let Some(last) = r.last_transit {
                let d = (transit - last).abs();
                r.jitter += (d - r.jitter) / 16.0;
            }
            r.last_transit = Some(transit);
        }
    })
}

fn spawn_rtcp_receiver(
    sock: UdpSocket,
    rx: Arc<Mutex<Rx>>,
    done: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !done.load(Ordering::Relaxed) {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let at = Instant::now();
            // The SR leads the compound: NTP timestamp at bytes 8..16.
            if n >= 28 && buf[1] == 200 {
                let msw = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                let lsw = u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]);
                rx.lock().unwrap().last_sr = Some(((msw << 16) | (lsw >> 16), at));
            }
        }
    })
}

fn ntp_now() -> (u32, u32) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs as u32, frac as u32)
}

/// SR with one report block about the peer's stream, then SDES CNAME (RFC 3550 6.4, 6.5).
fn rtcp_compound(
    ssrc: u32,
    rtp_ts: u32,
    packets: u32,
    octets: u32,
    rx: &Mutex<Rx>,
    plan: &MediaPlan,
) -> (Vec<u8>, SentRr) {
    let mut r = rx.lock().unwrap();
    let expected = r.expected();
    let lost = expected.saturating_sub(r.received);
    let exp_int = expected - r.expected_prior;
    let rec_int = r.received - r.received_prior;
    r.expected_prior = expected;
    r.received_prior = r.received;
    let lost_int = exp_int.saturating_sub(rec_int);
    let fraction_lost = (lost_int << 8).checked_div(exp_int).unwrap_or(0) as u8;
    let (lsr, dlsr) = match r.last_sr {
        None => (0, 0),
        Some((mid, at)) => {
            let held = at.elapsed().saturating_sub(plan.extra_rtt_per_leg);
            // 1/65536 s units; never 0, which rtpengine takes as "no SR seen".
            let units = (held.as_secs_f64() * 65536.0) as u32;
            (mid, units.max(1))
        }
    };
    let rr = SentRr {
        fraction_lost,
        cumulative_lost: lost,
        jitter: r.jitter as u32,
        lsr,
        dlsr,
    };
    let (msw, lsw) = ntp_now();
    let mut p = Vec::with_capacity(80);
    p.extend_from_slice(&[0x81, 200]);
    p.extend_from_slice(&12u16.to_be_bytes()); // (28 + 24) / 4 - 1
    for w in [ssrc, msw, lsw, rtp_ts, packets, octets] {
        p.extend_from_slice(&w.to_be_bytes());
    }
    p.extend_from_slice(&r.peer_ssrc.to_be_bytes());
    p.push(fraction_lost);
    p.extend_from_slice(&lost.min(0x7f_ffff).to_be_bytes()[1..]);
    let ext_max = u32::from(r.max_seq);
    for w in [ext_max, rr.jitter, lsr, dlsr] {
        p.extend_from_slice(&w.to_be_bytes());
    }
    let cname = b"gen@127.0.0.1";
    let mut sdes = Vec::new();
    sdes.extend_from_slice(&ssrc.to_be_bytes());
    sdes.push(1);
    sdes.push(cname.len() as u8);
    sdes.extend_from_slice(cname);
    sdes.push(0);
    while sdes.len() % 4 != 0 {
        sdes.push(0);
    }
    p.extend_from_slice(&[0x81, 202]);
    p.extend_from_slice(&((sdes.len() / 4) as u16).to_be_bytes());
    p.extend_from_slice(&sdes);
    (p, rr)
}

/// rtpengine 10.5's MOS for one RTCP block (`daemon/ssrc.c`, `mos_calc`), ×10 and
/// truncated as it stores it: end-to-end round trip in µs, jitter in ms, loss in percent.
pub fn rtpengine_10_5_mos_x10(rtt_us: u64, jitter_ms: u64, loss_percent: u64) -> u64 {
    let eff = (rtt_us / 1000 + jitter_ms * 2 + 10) as f64;
    let mut r = if eff < 160.0 {
        93.2 - eff / 40.0
    } else {
        93.2 - (eff - 120.0) / 10.0
    };
    r -= loss_percent as f64 * 2.5;
    if r < 0.0 {
        return 10;
    }
    let mos = 1.0 + 0.035 * r + 0.000007 * r * (r - 60.0) * (100.0 - r);
    let x10 = (mos * 10.0) as u64;
    if x10 < 10 {
        0
    } else {
        x10
    }
}
