//! What the FreeSWITCH and Kamailio players share: one POST per CDR or report on a kept-alive
//! connection with their senders' retry rules, the series tally their expectations are
//! made of, their counters, and the SIP domains they use.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::sync::watch;

use super::send::Target;
use super::{SimConfig, SimError};

/// The SIP domain of tenant `i`: FreeSWITCH's `domain_name`, Kamailio's `tenant`.
pub(crate) fn domain(i: usize) -> String {
    format!("tenant{i}.sim.example")
}

/// The key of one series in [`super::Expected::series`]: `name{k="v",...}`, or the bare
/// name for the family's total over all labels.
pub(crate) fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Splits a [`series_key`] back into the name and its labels.
pub fn parse_series_key(key: &str) -> (&str, Vec<(&str, &str)>) {
    let Some((name, rest)) = key.split_once('{') else {
        return (key, Vec::new());
    };
    let labels = rest
        .trim_end_matches('}')
        .split("\",")
        .filter_map(|kv| kv.split_once("=\""))
        .map(|(k, v)| (k, v.trim_end_matches('"')))
        .collect();
    (name, labels)
}

/// Expected series values; every increment also counts in the family's bare total.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    pub exact: BTreeMap<String, u64>,
    /// Lower bounds (duplicate counters: a retry after a lost answer is one more).
    pub at_least: BTreeMap<String, u64>,
}

impl Tally {
    pub fn inc(&mut self, name: &str, labels: &[(&str, &str)]) {
        *self.exact.entry(series_key(name, labels)).or_default() += 1;
        *self.exact.entry(name.to_owned()).or_default() += 1;
    }

    /// The series exists (at 0 until something counts in it).
    pub fn touch(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.exact.entry(series_key(name, labels)).or_default();
        self.exact.entry(name.to_owned()).or_default();
    }

    pub fn at_least(&mut self, name: &str, labels: &[(&str, &str)]) {
        *self.at_least.entry(series_key(name, labels)).or_default() += 1;
        *self.at_least.entry(name.to_owned()).or_default() += 1;
    }

    pub fn add(&mut self, o: &Tally) {
        add_counts(&mut self.exact, &o.exact);
        add_counts(&mut self.at_least, &o.at_least);
    }
}

pub(crate) fn add_counts(to: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *to.entry(k.clone()).or_default() += v;
    }
}

/// A sender's retry rule: after a failed attempt (connection error, timeout, non-2xx) wait
/// `delay` and try again, at most `retries` times, then give up.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub retries: u32,
    pub delay: Duration,
}

/// Live counters of one kind of player (all FreeSWITCH switches, or all Kamailio nodes).
#[derive(Debug, Default)]
pub(crate) struct PlayerCounters {
    pub calls: AtomicU64,
    pub generated: AtomicU64,
    pub acknowledged: AtomicU64,
    pub retries: AtomicU64,
    pub given_up: AtomicU64,
    pub duplicates: AtomicU64,
    pub err_log_files: AtomicU64,
    pub connections: AtomicU64,
}

/// What the FreeSWITCH switches or the Kamailio nodes did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PlayerSummary {
    pub instances: usize,
    pub calls: u64,
    /// CDRs (one per leg) or reports (one per call) produced.
    pub generated: u64,
    /// Answered 2xx (the first time; duplicates not included).
    pub acknowledged: u64,
    /// Attempts repeated after a failure.
    pub retries: u64,
    /// Given up after the last retry (FreeSWITCH: written to the err-log dir, if any).
    pub given_up: u64,
    /// Sent again after their 2xx.
    pub duplicates: u64,
    pub err_log_files: u64,
    /// Generated but neither acknowledged nor given up: the run was aborted first.
    pub unsent: u64,
}

impl PlayerCounters {
    pub fn summary(&self, instances: usize) -> PlayerSummary {
        let generated = self.generated.load(Relaxed);
        let acknowledged = self.acknowledged.load(Relaxed);
        let given_up = self.given_up.load(Relaxed);
        PlayerSummary {
            instances,
            calls: self.calls.load(Relaxed),
            generated,
            acknowledged,
            retries: self.retries.load(Relaxed),
            given_up,
            duplicates: self.duplicates.load(Relaxed),
            err_log_files: self.err_log_files.load(Relaxed),
            unsent: generated.saturating_sub(acknowledged + given_up),
        }
    }
}

/// One CDR or report ready to post, with what it adds to the exporter once applied.
pub(crate) struct Post {
    pub path_and_query: String,
    pub content_type: &'static str,
    pub body: Bytes,
    pub tally: Tally,
    /// The err-log-dir file name and contents, for a sender that keeps what it gave up on.
    pub err_log: Option<(String, Vec<u8>)>,
    /// The duplicate counter (name, labels) a second delivery increases.
    pub duplicate: (&'static str, Vec<(&'static str, String)>),
}

/// A player's calls: when the next one ends and the posts it makes.
pub(crate) trait Calls {
    /// µs after the start when the next call ends, or `None` when no call starts any more.
    fn next_at(&mut self) -> Option<u64>;
    /// The posts of the call at hand (its end: CDRs and reports are sent at hangup).
    fn posts(&mut self) -> Vec<Post>;
}

/// How a player sends.
pub(crate) struct PlayConfig {
    pub target: Target,
    pub retry: Retry,
    pub timeout: Duration,
    pub duplicate_rate: f64,
    pub err_log_dir: Option<PathBuf>,
    /// Virtual time runs this many times faster (`SimConfig::speedup`), as for the bridges.
    pub speedup: f64,
}

/// What a player's deliveries add up to.
#[derive(Debug, Default)]
pub(crate) struct Played {
    pub acknowledged: Tally,
    /// Of the posts given up on: what they add once imported from the err-log dir.
    pub given_up: Tally,
}

/// Plays calls in real time until they run out or `stop` turns true (no new call), posting
/// each as it ends; `abort` ends the run at once.
pub(crate) async fn play(
    mut calls: impl Calls,
    cfg: PlayConfig,
    mut rng: ChaCha8Rng,
    counters: Arc<PlayerCounters>,
    mut stop: watch::Receiver<bool>,
    mut abort: watch::Receiver<bool>,
    started: Instant,
) -> Played {
    let mut out = Played::default();
    let mut conn = Conn {
        target: cfg.target.clone(),
        send: None,
        timeout: cfg.timeout,
        counters: counters.clone(),
    };
    while let Some(at) = calls.next_at() {
        if *stop.borrow() {
            break;
        }
        let when =
            tokio::time::Instant::from_std(started + super::realism::wall_offset(at, cfg.speedup));
        if tokio::time::Instant::now() < when {
            tokio::select! {
                _ = tokio::time::sleep_until(when) => {}
                _ = stop.changed() => break,
            }
        }
        counters.calls.fetch_add(1, Relaxed);
        for p in calls.posts() {
            counters.generated.fetch_add(1, Relaxed);
            match conn.deliver(&p, cfg.retry, &mut abort).await {
                Delivery::Acknowledged => {
                    counters.acknowledged.fetch_add(1, Relaxed);
                    out.acknowledged.add(&p.tally);
                    // As when the sender missed our answer: the same post again.
                    if cfg.duplicate_rate > 0.0 && rng.random_bool(cfg.duplicate_rate) {
                        if let Delivery::Acknowledged =
                            conn.deliver(&p, cfg.retry, &mut abort).await
                        {
                            counters.duplicates.fetch_add(1, Relaxed);
                            let labels: Vec<(&str, &str)> = p
                                .duplicate
                                .1
                                .iter()
                                .map(|(k, v)| (*k, v.as_str()))
                                .collect();
                            out.acknowledged.at_least(p.duplicate.0, &labels);
                        }
                    }
                }
                Delivery::GaveUp(why) => {
                    counters.given_up.fetch_add(1, Relaxed);
                    tracing::warn!(target = %cfg.target.path_and_query, error = %why, "simulated CDR given up after its last retry");
                    out.given_up.add(&p.tally);
                    if let (Some(dir), Some((name, text))) = (&cfg.err_log_dir, &p.err_log) {
                        match std::fs::write(dir.join(name), text) {
                            Ok(()) => {
                                counters.err_log_files.fetch_add(1, Relaxed);
                            }
                            Err(e) => {
                                tracing::warn!(dir = %dir.display(), error = %e, "cannot write the err-log file")
                            }
                        }
                    }
                }
                Delivery::Aborted => return out,
            }
        }
    }
    out
}

enum Delivery {
    Acknowledged,
    GaveUp(String),
    Aborted,
}

/// One player's kept-alive connection.
struct Conn {
    target: Target,
    send: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
    counters: Arc<PlayerCounters>,
}

impl Conn {
    async fn deliver(
        &mut self,
        p: &Post,
        retry: Retry,
        abort: &mut watch::Receiver<bool>,
    ) -> Delivery {
        let mut attempt = 0;
        loop {
            let res = tokio::select! {
                r = self.attempt(p) => r,
                _ = aborted(abort) => return Delivery::Aborted,
            };
            let why = match res {
                Ok(s) if s.is_success() => return Delivery::Acknowledged,
                Ok(s) => format!("answered {s}"),
                Err(e) => {
                    self.send = None;
                    e
                }
            };
            if attempt >= retry.retries {
                return Delivery::GaveUp(why);
            }
            attempt += 1;
            self.counters.retries.fetch_add(1, Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(retry.delay) => {}
                _ = aborted(abort) => return Delivery::Aborted,
            }
        }
    }

    async fn attempt(&mut self, p: &Post) -> Result<hyper::StatusCode, String> {
        let timeout = self.timeout;
        let res = tokio::time::timeout(timeout, async {
            let send = match self.send.as_mut() {
                Some(c) if !c.is_closed() => c,
                _ => {
                    let c = connect(&self.target.connect).await?;
                    self.counters.connections.fetch_add(1, Relaxed);
                    self.send.insert(c)
                }
            };
            send.ready().await.map_err(|e| e.to_string())?;
            let req = hyper::Request::post(p.path_and_query.as_str())
                .header(hyper::header::HOST, self.target.host.as_str())
                .header(hyper::header::CONTENT_TYPE, p.content_type)
                .body(Full::new(p.body.clone()))
                .map_err(|e| e.to_string())?;
            let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            // Read to the end so the connection can carry the next post.
            resp.into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(status)
        })
        .await;
        res.unwrap_or_else(|_| {
            Err(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            ))
        })
    }
}

async fn aborted(abort: &mut watch::Receiver<bool>) {
    if abort.wait_for(|a| *a).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn connect(addr: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Which player a [`Played`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    FreeSwitch,
    Kamailio,
}

/// The counters of both kinds of player.
#[derive(Debug, Default)]
pub(crate) struct Players {
    pub freeswitch: Arc<PlayerCounters>,
    pub kamailio: Arc<PlayerCounters>,
}

/// The targets of the switches and nodes: as configured, else the CMS target's host and port
/// with their default paths.
pub(crate) fn targets(cfg: &SimConfig, cms: &Target) -> Result<(Target, Target), SimError> {
    let or_default = |url: &Option<String>, path: &str| match url {
        Some(u) => Target::parse(u),
        None => Ok(Target {
            path_and_query: path.to_owned(),
            ..cms.clone()
        }),
    };
    Ok((
        or_default(&cfg.freeswitch_target, DEFAULT_FREESWITCH_PATH)?,
        or_default(&cfg.kamailio_target, DEFAULT_KAMAILIO_PATH)?,
    ))
}

const DEFAULT_FREESWITCH_PATH: &str = "/freeswitch/cdr";
const DEFAULT_KAMAILIO_PATH: &str = "/kamailio/mos";

/// Starts the FreeSWITCH switches and Kamailio nodes, each at one Call Bridge's call rate.
pub(crate) fn spawn(
    cfg: &SimConfig,
    cms: &Target,
    run_seed: u64,
    players: &Players,
    stop: &watch::Receiver<bool>,
    abort: &watch::Receiver<bool>,
    started: Instant,
) -> Result<Vec<tokio::task::JoinHandle<(Kind, Played)>>, SimError> {
    let (fs_target, kam_target) = targets(cfg, cms)?;
    if let Some(dir) = &cfg.freeswitch_err_log_dir {
        std::fs::create_dir_all(dir).map_err(|e| SimError::Invalid {
            key: "freeswitch_err_log_dir",
            msg: format!("{}: {e}", dir.display()),
        })?;
    }
    let per_second = cfg.calls_per_second / cfg.call_bridges.max(1) as f64;
    let duration_us = cfg.duration.map(|d| d.as_micros() as u64);
    let rngs = |stream: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xF5CA);
        rng.set_stream(stream);
        let mut ids = ChaCha8Rng::seed_from_u64(run_seed);
        ids.set_stream(stream);
        (rng, ids)
    };
    let play_cfg = |target: &Target, retry, err_log_dir| PlayConfig {
        target: target.clone(),
        retry,
        timeout: cfg.request_timeout,
        duplicate_rate: cfg.duplicate_rate,
        err_log_dir,
        speedup: cfg.speedup,
    };
    let mut out = Vec::new();
    for i in 0..cfg.freeswitch_switches {
        let (rng, ids) = rngs(i as u64);
        let (dup_rng, _) = rngs(1_000_000 + i as u64);
        let sw = super::freeswitch::Switch::new(
            super::freeswitch_switch_name(i),
            cfg.tenants,
            per_second,
            duration_us,
            cfg.bad_tail,
            rng,
            ids,
            fs_target.path_and_query.clone(),
        );
        let pc = play_cfg(
            &fs_target,
            cfg.freeswitch_retry,
            cfg.freeswitch_err_log_dir.clone(),
        );
        let task = play(
            sw,
            pc,
            dup_rng,
            players.freeswitch.clone(),
            stop.clone(),
            abort.clone(),
            started,
        );
        out.push(tokio::spawn(async move { (Kind::FreeSwitch, task.await) }));
    }
    for i in 0..cfg.kamailio_nodes {
        let (rng, ids) = rngs(2_000_000 + i as u64);
        let (dup_rng, _) = rngs(3_000_000 + i as u64);
        let node = super::kamailio::Node::new(
            super::kamailio_node_name(i),
            cfg.tenants,
            per_second,
            duration_us,
            cfg.bad_tail,
            rng,
            ids,
            kam_target.path_and_query.clone(),
        );
        let pc = play_cfg(&kam_target, cfg.kamailio_retry, None);
        let task = play(
            node,
            pc,
            dup_rng,
            players.kamailio.clone(),
            stop.clone(),
            abort.clone(),
            started,
        );
        out.push(tokio::spawn(async move { (Kind::Kamailio, task.await) }));
    }
    Ok(out)
}

/// Poisson arrivals: the gap to the next call, µs.
pub(crate) fn gap_us(rng: &mut ChaCha8Rng, per_second: f64) -> u64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    (-u.ln() / per_second * 1e6) as u64
}

/// A random version-4 style UUID from the seeded stream.
pub(crate) fn uuid(rng: &mut ChaCha8Rng) -> String {
    let mut h: Vec<u8> = format!("{:032x}", rng.random::<u128>()).into_bytes();
    h[12] = b'4';
    h[16] = b"89ab"[(h[16] % 4) as usize];
    let h = String::from_utf8(h).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_keys_round_trip() {
        let k = series_key("x_total", &[("switch", "fs-1"), ("leg", "a")]);
        assert_eq!(k, "x_total{switch=\"fs-1\",leg=\"a\"}");
        assert_eq!(
            parse_series_key(&k),
            ("x_total", vec![("switch", "fs-1"), ("leg", "a")])
        );
        assert_eq!(parse_series_key("x_total"), ("x_total", vec![]));
        let mut t = Tally::default();
        t.inc("x_total", &[("a", "1")]);
        t.inc("x_total", &[("a", "2")]);
        t.touch("y_total", &[("a", "1")]);
        assert_eq!(t.exact["x_total"], 2);
        assert_eq!(t.exact["y_total{a=\"1\"}"], 0);
    }

    #[test]
    fn targets_default_to_the_cms_host() {
        let cfg = SimConfig {
            target: "http://10.0.0.1:9000/cdr?x=1".into(),
            ..SimConfig::default()
        };
        let (fs, kam) = targets(&cfg, &Target::parse(&cfg.target).unwrap()).unwrap();
        assert_eq!(
            (fs.connect.as_str(), fs.path_and_query.as_str()),
            ("10.0.0.1:9000", "/freeswitch/cdr")
        );
        assert_eq!(kam.path_and_query, "/kamailio/mos");
        let cfg = SimConfig {
            kamailio_target: Some("http://k:1/mos?node=x".into()),
            ..cfg
        };
        let (_, kam) = targets(&cfg, &Target::parse(&cfg.target).unwrap()).unwrap();
        assert_eq!(
            (kam.connect.as_str(), kam.path_and_query.as_str()),
            ("k:1", "/mos?node=x")
        );
        let bad = SimConfig {
            freeswitch_target: Some("ftp://x/cdr".into()),
            ..SimConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn uuids_look_like_uuids() {
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let u = uuid(&mut rng);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
