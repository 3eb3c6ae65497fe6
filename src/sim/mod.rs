//! A Cisco Meeting Server Call Bridge simulator: a cluster of Call Bridges that generate
//! realistic call flows and POST them as CDRs to a receiver, with the sending side of the
//! protocol (batches, keep-alive, wait for 200, retry with backoff) and faults on request
//! (dropped records, restarts, duplicate batches).
//!
//! This module owns `cdr-exporter simulate` and the traffic of `cdr-exporter demo`. It imports
//! nothing of the crate (it talks to the exporter over HTTP like a real Call Bridge); only its
//! tests use `crate::cdr` to check that what it writes parses back.
//!
//! Layout: `flow` (call flows on a seeded virtual timeline → records), `xml` (rendering),
//! `send` (batches over HTTP), `expect` (what the exporter must show, mirroring
//! `src/ingest.rs`), and here the configuration, the run and its summary. Beside the Call
//! Bridges, FreeSWITCH switches (`freeswitch`) and Kamailio nodes (`kamailio`) post one CDR
//! or report per leg or call (`voip`: their sending and expected series).

mod expect;
mod flow;
mod freeswitch;
mod kamailio;
mod latency;
mod realism;
mod send;
mod voip;
mod xml;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

pub use expect::Expected;
use flow::{GenConfig, Generator, Shared, SimRecord};
pub use realism::{Durations, Incident};
use send::{Sender, Target};
pub use voip::{parse_series_key, PlayerSummary, Retry};

/// What to simulate and how to send it.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Receiver URL, `http://host:port/path[?query]`.
    pub target: String,
    /// More receivers (CMS takes up to 4 in all). Every record goes to each receiver
    /// independently: its own queue, connection and retries, as CMS does.
    pub extra_targets: Vec<String>,
    /// Call Bridges in the cluster.
    pub call_bridges: usize,
    /// How many of them are unclustered: no `callBridge` attribute; they add
    /// `call_bridge=sim-cb-<i>` to the target's query instead.
    pub unclustered: usize,
    /// Tenants (fixed GUIDs derived from the seed); 0 = calls without tenant.
    pub tenants: usize,
    /// New calls per second of simulated time over the whole cluster (a Poisson process).
    pub calls_per_second: f64,
    /// After this no call starts; calls in flight finish, then the run ends.
    /// `None`: until the stop future resolves.
    pub duration: Option<Duration>,
    /// Decides every record's content (not the session GUIDs, nor timing).
    pub seed: u64,
    /// Records per POST: each batch takes 1..=`batch_max` (random) of what is queued.
    pub batch_max: usize,
    /// Each record is discarded with this probability before sending.
    pub drop_rate: f64,
    /// Each bridge restarts this often (new session, its calls abandoned).
    pub restart_every: Option<Duration>,
    /// After a 200, the same batch is sent again with this probability.
    pub duplicate_rate: f64,
    /// Share of connected legs with heavy packet loss.
    pub bad_tail: f64,
    /// Per POST, until the answer is read; then the batch is retried.
    pub request_timeout: Duration,
    /// Records queued per bridge and receiver. With one receiver the call flows then wait
    /// for the sender; with several, a full queue drops the record for that receiver only
    /// (as CMS does), so a receiver that is down cannot hold up the others.
    pub queue_capacity: usize,
    /// After the stop future resolves: how long queued records may still be sent.
    pub drain_timeout: Duration,
    /// Show a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// FreeSWITCH switches (`fs-sim-<i>`) and Kamailio nodes (`kam-sim-<i>`) beside the
    /// Call Bridges, each with one bridge's call rate.
    pub freeswitch_switches: usize,
    pub kamailio_nodes: usize,
    /// Their receiver URLs; `None`: the CMS target's host and port with `/freeswitch/cdr`
    /// and `/kamailio/mos`.
    pub freeswitch_target: Option<String>,
    pub kamailio_target: Option<String>,
    /// mod_xml_cdr's `retries` and `delay` (any failure or non-2xx is retried).
    pub freeswitch_retry: Retry,
    pub kamailio_retry: Retry,
    /// mod_xml_cdr's `err-log-dir`: where a CDR given up on is written.
    pub freeswitch_err_log_dir: Option<PathBuf>,
    /// How long calls last and when participants join and leave.
    pub durations: Durations,
    /// Virtual time runs this many times faster than the wall clock: every virtual time
    /// (`duration`, `restart_every`, arrivals, call lengths) is played N× sooner, while the
    /// records say the virtual durations (`durationSeconds`, packet statistics).
    pub speedup: f64,
    /// A scripted degradation of one tenant (times on the wall clock).
    pub incident: Option<Incident>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            target: "http://127.0.0.1:19477/cdr".into(),
            extra_targets: Vec::new(),
            call_bridges: 3,
            unclustered: 0,
            tenants: 2,
            calls_per_second: 10.0,
            duration: Some(Duration::from_secs(10)),
            seed: 1,
            batch_max: 10,
            drop_rate: 0.0,
            restart_every: None,
            duplicate_rate: 0.0,
            bad_tail: 0.05,
            request_timeout: Duration::from_secs(10),
            queue_capacity: 10_000,
            drain_timeout: Duration::from_secs(5),
            progress: false,
            freeswitch_switches: 0,
            kamailio_nodes: 0,
            freeswitch_target: None,
            kamailio_target: None,
            freeswitch_retry: DEFAULT_RETRY,
            kamailio_retry: DEFAULT_RETRY,
            freeswitch_err_log_dir: None,
            durations: Durations::Short,
            speedup: 1.0,
            incident: None,
        }
    }
}

/// The FreeSWITCH and Kamailio players' retry rule unless told otherwise.
pub const DEFAULT_RETRY: Retry = Retry {
    retries: 5,
    delay: Duration::from_millis(500),
};

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid target URL {url:?}: {msg}")]
    Target { url: String, msg: String },
    #[error("invalid simulator setting `{key}`: {msg}")]
    Invalid { key: &'static str, msg: String },
    #[error("a simulated Call Bridge failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl SimConfig {
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |key, msg: &str| {
            Err(SimError::Invalid {
                key,
                msg: msg.to_owned(),
            })
        };
        if self.call_bridges == 0 {
            return bad("call_bridges", "must be at least 1");
        }
        if self.unclustered > self.call_bridges {
            return bad("unclustered", "cannot exceed call_bridges");
        }
        if !(self.calls_per_second.is_finite() && self.calls_per_second > 0.0) {
            return bad("calls_per_second", "must be a positive number");
        }
        if self.batch_max == 0 {
            return bad("batch_max", "must be at least 1");
        }
        for (key, p) in [
            ("drop_rate", self.drop_rate),
            ("duplicate_rate", self.duplicate_rate),
            ("bad_tail", self.bad_tail),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(key, "must be between 0 and 1");
            }
        }
        if self.drop_rate >= 1.0 {
            return bad("drop_rate", "must be below 1 (nothing would be sent)");
        }
        if self.restart_every.is_some_and(|d| d.is_zero()) {
            return bad("restart_every", "must be positive");
        }
        if self.request_timeout.is_zero() {
            return bad("request_timeout", "must be positive");
        }
        if self.queue_capacity == 0 {
            return bad("queue_capacity", "must be at least 1");
        }
        voip::targets(self, &Target::parse(&self.target)?)?;
        if !(self.speedup.is_finite() && self.speedup > 0.0) {
            return bad("speedup", "must be a positive number");
        }
        if let Some(i) = &self.incident {
            if i.tenant >= self.tenants {
                return bad("incident", "names a tenant that is not simulated");
            }
            if !(0.0..=1.0).contains(&i.bad_share) {
                return bad("incident", "bad share must be between 0 and 1");
            }
        }
        if self.extra_targets.len() > MAX_TARGETS - 1 {
            return bad("target", "CMS takes at most 4 CDR receivers");
        }
        for t in self.targets() {
            Target::parse(t)?;
        }
        Ok(())
    }

    /// Every receiver URL, `target` first.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.target.as_str()).chain(self.extra_targets.iter().map(|t| t.as_str()))
    }
}

/// CDR receivers a Call Bridge can have.
pub const MAX_TARGETS: usize = 4;

/// Live counters, shared by the bridges and the progress bar.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub generated: AtomicU64,
    pub dropped: AtomicU64,
    pub sent: AtomicU64,
    pub acknowledged: AtomicU64,
    pub retries: AtomicU64,
    pub duplicate_batches: AtomicU64,
    pub duplicate_records: AtomicU64,
    pub rejected_batches: AtomicU64,
    pub rejected_records: AtomicU64,
    pub restarts: AtomicU64,
    pub connections: AtomicU64,
    pub calls_started: AtomicU64,
    pub calls_completed: AtomicU64,
    pub calls_abandoned: AtomicU64,
    pub last_error: parking_lot::Mutex<Option<String>>,
    /// Per POST answered 200: from writing it to reading the answer.
    pub ack_latency: latency::Histogram,
}

/// One receiver's share of the sending counters (the totals in [`Counters`] sum them).
#[derive(Debug, Default)]
pub(crate) struct TargetCounters {
    pub sent: AtomicU64,
    pub acknowledged: AtomicU64,
    pub retries: AtomicU64,
    pub duplicate_records: AtomicU64,
    pub rejected_records: AtomicU64,
    pub connections: AtomicU64,
    /// Records a full queue could not take (several receivers only).
    pub queue_dropped: AtomicU64,
}

/// What one receiver got, and what it must show.
#[derive(Clone, Debug, Serialize)]
pub struct TargetSummary {
    pub target: String,
    pub records_sent: u64,
    pub records_acknowledged: u64,
    /// Records lost because this receiver's queue was full (it was down or slow too long).
    pub records_queue_dropped: u64,
    pub records_unsent: u64,
    pub rejected_records: u64,
    pub retries: u64,
    pub connections: u64,
    pub expected: Expected,
}

/// What a run did, and what the exporter must show for it.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub call_bridges: usize,
    pub unclustered: usize,
    pub tenants: usize,
    pub calls_started: u64,
    pub calls_completed: u64,
    /// Calls a restart (or an early stop) left without their end.
    pub calls_abandoned: u64,
    /// Records the Call Bridges produced (dropped ones included).
    pub records_generated: u64,
    /// Records put in a POST at least once.
    pub records_sent: u64,
    /// Records whose batch got its 200.
    pub records_acknowledged: u64,
    /// Records discarded by `drop_rate`.
    pub records_dropped: u64,
    /// Batches (and their records) sent again after their 200.
    pub duplicate_batches: u64,
    pub duplicate_records: u64,
    /// POSTs repeated after an error, a timeout or a 5xx.
    pub retries: u64,
    /// Batches answered with a 4xx (never retried), and their records.
    pub rejected_batches: u64,
    pub rejected_records: u64,
    pub restarts: u64,
    /// TCP connections opened (one per bridge unless they broke).
    pub connections: u64,
    /// Records generated but never acknowledged because the run was stopped first (summed
    /// over receivers).
    pub records_unsent: u64,
    /// Records full queues dropped (several receivers only), summed over receivers.
    pub records_queue_dropped: u64,
    #[serde(with = "duration_secs")]
    pub elapsed: Duration,
    /// POSTs answered 200 (duplicates included), over which the latencies are taken.
    pub acknowledged_posts: u64,
    /// Acknowledgement latency per POST (writing the request to reading its 200; retries
    /// and backoff are not included): median, 99th percentile (within 1.6 %) and maximum.
    #[serde(with = "duration_secs")]
    pub ack_latency_p50: Duration,
    #[serde(with = "duration_secs")]
    pub ack_latency_p99: Duration,
    #[serde(with = "duration_secs")]
    pub ack_latency_max: Duration,
    /// What the first receiver must show (every receiver, unless a queue overflowed).
    pub expected: Expected,
    pub freeswitch: PlayerSummary,
    pub kamailio: PlayerSummary,
    /// What the FreeSWITCH CDRs given up on add once imported from the err-log dir
    /// (`series` only).
    pub freeswitch_given_up: Expected,
    /// Per receiver, in the order given; the send counters above sum these.
    pub targets: Vec<TargetSummary>,
}

mod duration_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl Summary {
    /// Acknowledged records per second of the run.
    pub fn records_per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.records_acknowledged as f64 / s
        } else {
            0.0
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulated {} Call Bridge(s) ({} unclustered), {} tenant(s), seed {}",
            self.call_bridges, self.unclustered, self.tenants, self.seed
        )?;
        writeln!(
            f,
            "  calls      {} started, {} completed, {} abandoned",
            self.calls_started, self.calls_completed, self.calls_abandoned
        )?;
        writeln!(
            f,
            "  records    {} generated, {} sent, {} acknowledged, {} dropped, {} never acknowledged",
            self.records_generated,
            self.records_sent,
            self.records_acknowledged,
            self.records_dropped,
            self.records_unsent
        )?;
        writeln!(
            f,
            "  duplicates {} batch(es), {} record(s) re-sent after their 200",
            self.duplicate_batches, self.duplicate_records
        )?;
        writeln!(
            f,
            "  retried    {} POST(s); rejected {} batch(es), {} record(s); {} connection(s)",
            self.retries, self.rejected_batches, self.rejected_records, self.connections
        )?;
        writeln!(f, "  restarts   {}", self.restarts)?;
        if self.targets.len() > 1 {
            for t in &self.targets {
                writeln!(
                    f,
                    "  receiver   {}: {} acknowledged, {} dropped by a full queue, {} never acknowledged, {} retried",
                    t.target, t.records_acknowledged, t.records_queue_dropped, t.records_unsent, t.retries
                )?;
            }
        }
        writeln!(
            f,
            "  latency    ack p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} POST(s)",
            ms(self.ack_latency_p50),
            ms(self.ack_latency_p99),
            ms(self.ack_latency_max),
            self.acknowledged_posts
        )?;
        for (what, p) in [
            ("freeswitch", &self.freeswitch),
            ("kamailio  ", &self.kamailio),
        ] {
            if p.instances > 0 {
                // Only FreeSWITCH keeps what it gave up on.
                let files = if p.err_log_files > 0 {
                    format!(" ({} written to the err-log dir)", p.err_log_files)
                } else {
                    String::new()
                };
                writeln!(
                    f,
                    "  {what} {} instance(s), {} calls, {} posted, {} acknowledged, {} retried, {} given up{files}, {} duplicates, {} unsent",
                    p.instances, p.calls, p.generated, p.acknowledged, p.retries, p.given_up,
                    p.duplicates, p.unsent
                )?;
            }
        }
        write!(
            f,
            "  elapsed    {:.1}s, {:.0} records/s acknowledged",
            self.elapsed.as_secs_f64(),
            self.records_per_second()
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The GUID of tenant `k` of a cluster (as its records and the `tenant` label show it).
pub fn tenant_guid(seed: u64, call_bridges: usize, tenants: usize, k: usize) -> String {
    Shared::new(seed, call_bridges, tenants)
        .tenants
        .get(k)
        .map(|t| xml::guid(*t))
        .unwrap_or_default()
}

/// The label value an unclustered bridge sends as `?call_bridge=`.
pub fn unclustered_name(i: usize) -> String {
    format!("sim-cb-{i}")
}

/// The `switchname` of simulated FreeSWITCH switch `i`.
pub fn freeswitch_switch_name(i: usize) -> String {
    format!("fs-sim-{i}")
}

/// The `node` of simulated Kamailio node `i`.
pub fn kamailio_node_name(i: usize) -> String {
    format!("kam-sim-{i}")
}

/// Runs the simulation until `duration` has passed and every call has ended (or `stop`
/// resolves: then no call starts, the calls in flight end at once, and what is queued has
/// `drain_timeout` to be acknowledged).
pub async fn run(cfg: SimConfig, stop: impl Future<Output = ()>) -> Result<Summary, SimError> {
    cfg.validate()?;
    let targets = cfg
        .targets()
        .map(Target::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let per_target: Vec<Arc<TargetCounters>> = targets.iter().map(|_| Arc::default()).collect();
    let started = Instant::now();
    let counters = Arc::new(Counters::default());
    let n = cfg.call_bridges;
    let shared = Arc::new(Shared::new(cfg.seed, n, cfg.tenants));
    let session_seed: u64 = rand::random();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (abort_tx, abort_rx) = watch::channel(false);
    // senders[t][i]: receiver t, bridge i.
    let mut senders: Vec<Vec<_>> = targets.iter().map(|_| Vec::with_capacity(n)).collect();
    let mut generators = Vec::with_capacity(n);
    for i in 0..n {
        let clustered = i < n - cfg.unclustered;
        let gen_cfg = GenConfig {
            calls_per_second: cfg.calls_per_second / n as f64,
            duration_us: cfg.duration.map(|d| d.as_micros() as u64),
            restart_every_us: cfg.restart_every.map(|d| d.as_micros() as u64),
            restart_offset_us: cfg
                .restart_every
                .map_or(0, |d| (d.as_micros() as u64) * i as u64 / (2 * n as u64)),
            drop_rate: cfg.drop_rate,
            bad_tail: cfg.bad_tail,
            durations: cfg.durations,
            incident: cfg.incident.map(|i| i.virtual_us(cfg.speedup)),
        };
        let generator = Generator::new(
            gen_cfg,
            shared.clone(),
            cfg.seed,
            i,
            session_seed,
            counters.clone(),
        );
        let mut queues = Vec::with_capacity(targets.len());
        for (t, target) in targets.iter().enumerate() {
            let (bridge, target, call_bridge) = if clustered {
                let g = xml::guid(shared.bridges[i]);
                (g.clone(), target.clone(), Some(g))
            } else {
                let name = unclustered_name(i);
                let t = target.with_query("call_bridge", &name);
                (name, t, None)
            };
            let (tx, rx) = mpsc::channel(cfg.queue_capacity);
            queues.push(Queue::new(tx, per_target[t].clone()));
            // The same stream for every receiver: batches and duplicates do not depend on
            // how many receivers there are.
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5e4d);
            rng.set_stream(i as u64);
            let sender = Sender::new(
                bridge,
                target,
                call_bridge,
                cfg.batch_max,
                cfg.duplicate_rate,
                cfg.request_timeout,
                rng,
                counters.clone(),
                per_target[t].clone(),
            );
            senders[t].push(tokio::spawn(sender.run(rx, abort_rx.clone())));
        }
        generators.push(tokio::spawn(drive(
            generator,
            queues,
            stop_rx.clone(),
            started,
            cfg.speedup,
        )));
    }
    let players = voip::Players::default();
    let voip_tasks = voip::spawn(
        &cfg,
        &targets[0],
        session_seed,
        &players,
        &stop_rx,
        &abort_rx,
        started,
    )?;
    let progress = Progress::start(&cfg, counters.clone(), started);
    let mut all = tokio::spawn(async move {
        let mut mirrors = Vec::with_capacity(senders.len());
        for per in senders {
            let mut m = Vec::with_capacity(per.len());
            for s in per {
                m.push(s.await?);
            }
            mirrors.push(m);
        }
        let mut played = Vec::with_capacity(voip_tasks.len());
        for p in voip_tasks {
            played.push(p.await?);
        }
        Ok::<_, tokio::task::JoinError>((mirrors, played))
    });
    tokio::pin!(stop);
    let mirrors = tokio::select! {
        m = &mut all => m,
        _ = &mut stop => {
            let _ = stop_tx.send(true);
            progress.message("stopping: ending calls in flight, sending what is queued");
            match tokio::time::timeout(cfg.drain_timeout, &mut all).await {
                Ok(m) => m,
                Err(_) => {
                    let _ = abort_tx.send(true);
                    all.await
                }
            }
        }
    };
    let _ = abort_tx.send(true);
    progress.finish();
    for g in generators {
        g.await?;
    }
    let (mirrors, played) = mirrors??;
    let c = &counters;
    let mut voip_expected = Expected::default();
    let mut freeswitch_given_up = Expected::default();
    for (kind, p) in &played {
        voip::add_counts(&mut voip_expected.series, &p.acknowledged.exact);
        voip::add_counts(&mut voip_expected.series_at_least, &p.acknowledged.at_least);
        if *kind == voip::Kind::FreeSwitch {
            voip::add_counts(&mut freeswitch_given_up.series, &p.given_up.exact);
        }
    }
    let restarts = c.restarts.load(Relaxed);
    let generated = c.generated.load(Relaxed);
    let dropped = c.dropped.load(Relaxed);
    let mut target_summaries = Vec::with_capacity(targets.len());
    for ((url, tc), ms) in cfg.targets().zip(&per_target).zip(&mirrors) {
        let mut expected = Expected::default();
        for m in ms {
            expected.add(&m.expected());
        }
        expected.restarts = restarts;
        expected.duplicate_records_sent = tc.duplicate_records.load(Relaxed);
        let acknowledged = tc.acknowledged.load(Relaxed);
        let rejected = tc.rejected_records.load(Relaxed);
        let queue_dropped = tc.queue_dropped.load(Relaxed);
        target_summaries.push(TargetSummary {
            target: url.to_owned(),
            records_sent: tc.sent.load(Relaxed),
            records_acknowledged: acknowledged,
            records_queue_dropped: queue_dropped,
            records_unsent: generated
                .saturating_sub(dropped + queue_dropped + acknowledged + rejected),
            rejected_records: rejected,
            retries: tc.retries.load(Relaxed),
            connections: tc.connections.load(Relaxed),
            expected,
        });
    }
    // FreeSWITCH and Kamailio post to one receiver each (mod_xml_cdr's urls are a failover
    // list), by default the first one's host: their totals belong to it.
    target_summaries[0].expected.add(&voip_expected);
    Ok(Summary {
        seed: cfg.seed,
        call_bridges: n,
        unclustered: cfg.unclustered,
        tenants: cfg.tenants,
        calls_started: c.calls_started.load(Relaxed),
        calls_completed: c.calls_completed.load(Relaxed),
        calls_abandoned: c.calls_abandoned.load(Relaxed),
        records_generated: generated,
        records_sent: c.sent.load(Relaxed),
        records_acknowledged: c.acknowledged.load(Relaxed),
        records_dropped: dropped,
        duplicate_batches: c.duplicate_batches.load(Relaxed),
        duplicate_records: c.duplicate_records.load(Relaxed),
        retries: c.retries.load(Relaxed),
        rejected_batches: c.rejected_batches.load(Relaxed),
        rejected_records: c.rejected_records.load(Relaxed),
        restarts,
        connections: c.connections.load(Relaxed),
        records_unsent: target_summaries.iter().map(|t| t.records_unsent).sum(),
        records_queue_dropped: target_summaries
            .iter()
            .map(|t| t.records_queue_dropped)
            .sum(),
        elapsed: started.elapsed(),
        acknowledged_posts: c.ack_latency.count(),
        ack_latency_p50: c.ack_latency.quantile(0.5),
        ack_latency_p99: c.ack_latency.quantile(0.99),
        ack_latency_max: c.ack_latency.max(),
        expected: target_summaries[0].expected.clone(),
        targets: target_summaries,
        freeswitch: players.freeswitch.summary(cfg.freeswitch_switches),
        kamailio: players.kamailio.summary(cfg.kamailio_nodes),
        freeswitch_given_up,
    })
}

/// A receiver's queue for one bridge.
pub(crate) struct Queue {
    tx: mpsc::Sender<SimRecord>,
    counters: Arc<TargetCounters>,
    /// Records a full queue dropped since the last one it took: (session, count, counting
    /// what those records announced as missing themselves).
    lost: Option<(u32, u64)>,
}

impl Queue {
    pub(crate) fn new(tx: mpsc::Sender<SimRecord>, counters: Arc<TargetCounters>) -> Queue {
        Queue {
            tx,
            counters,
            lost: None,
        }
    }
}

/// Paces one bridge's generator to the wall clock and queues its records for every receiver.
async fn drive(
    mut g: Generator,
    mut queues: Vec<Queue>,
    mut stop: watch::Receiver<bool>,
    started: Instant,
    speedup: f64,
) {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let mut out = Vec::new();
    let mut stopping = false;
    while let Some(at) = g.next_at() {
        if !stopping {
            if *stop.borrow() {
                stopping = true;
                g.finish();
                continue;
            }
            let when = tokio::time::Instant::from_std(started + realism::wall_offset(at, speedup));
            if tokio::time::Instant::now() < when {
                tokio::select! {
                    _ = tokio::time::sleep_until(when) => {}
                    _ = stop.changed() => continue,
                }
            }
        }
        let now = time::OffsetDateTime::now_utc()
            .format(&fmt)
            .unwrap_or_default();
        g.step(&now, &mut out);
        if !enqueue(&mut queues, out.drain(..)).await {
            return; // the senders gave up (run aborted)
        }
    }
    tracing::debug!(in_flight = g.in_flight(), "simulated Call Bridge done");
}

/// Queues records for every receiver. One receiver: wait for room (back-pressure keeps every
/// record). Several: a full queue drops the record for that receiver only, as CMS does, so
/// a receiver that is down never slows the others; the next record it takes announces the
/// loss in `numPreceedingRecordsMissing`, as CMS does after an outage. False once every sender
/// has gone.
async fn enqueue(queues: &mut [Queue], records: impl Iterator<Item = SimRecord>) -> bool {
    for r in records {
        if let [q] = queues {
            if q.tx.send(r).await.is_err() {
                return false;
            }
            continue;
        }
        let mut open = 0;
        for q in queues.iter_mut() {
            match q.tx.try_reserve() {
                Ok(permit) => {
                    open += 1;
                    let mut r = r.clone();
                    // Only losses of this session are announced: a restart starts afresh.
                    if let Some((session, n)) = q.lost.take() {
                        if session == r.session_no {
                            r.xml = xml::with_missing(&r.xml, r.index, r.missing, r.missing + n);
                            r.missing += n;
                        }
                    }
                    permit.send(r);
                }
                Err(mpsc::error::TrySendError::Full(())) => {
                    open += 1;
                    q.counters.queue_dropped.fetch_add(1, Relaxed);
                    let before = match q.lost {
                        Some((session, n)) if session == r.session_no => n,
                        _ => 0,
                    };
                    q.lost = Some((r.session_no, before + r.missing + 1));
                }
                Err(mpsc::error::TrySendError::Closed(())) => {}
            }
        }
        if open == 0 {
            return false;
        }
    }
    true
}

/// The progress bar (hidden unless asked for and stderr is a terminal).
struct Progress {
    bar: indicatif::ProgressBar,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(cfg: &SimConfig, counters: Arc<Counters>, started: Instant) -> Progress {
        use std::io::IsTerminal;
        if !cfg.progress || !std::io::stderr().is_terminal() {
            return Progress {
                bar: indicatif::ProgressBar::hidden(),
                ticker: None,
            };
        }
        // The bar runs on the wall clock.
        let wall = cfg.duration.map(|d| d.div_f64(cfg.speedup));
        let (bar, style) = match wall {
            Some(d) => (
                indicatif::ProgressBar::new(d.as_millis() as u64),
                "{spinner} [{elapsed_precise}] {wide_bar} {msg}",
            ),
            None => (
                indicatif::ProgressBar::new_spinner(),
                "{spinner} [{elapsed_precise}] {msg}",
            ),
        };
        if let Ok(s) = indicatif::ProgressStyle::with_template(style) {
            bar.set_style(s);
        }
        let b = bar.clone();
        let duration = wall;
        let receivers = cfg.targets().count();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let el = started.elapsed();
                if let Some(d) = duration {
                    b.set_position(el.min(d).as_millis() as u64);
                }
                let c = &counters;
                let acked = c.acknowledged.load(Relaxed);
                let mut msg =
                    format!(
                    "calls {}/{} · records {} acked of {}{} · {:.0}/s · retries {} · restarts {}",
                    c.calls_completed.load(Relaxed),
                    c.calls_started.load(Relaxed),
                    acked,
                    c.generated.load(Relaxed),
                    // Each receiver acknowledges every record.
                    if receivers > 1 { format!(" × {receivers}") } else { String::new() },
                    acked as f64 / el.as_secs_f64().max(0.001),
                    c.retries.load(Relaxed),
                    c.restarts.load(Relaxed),
                );
                if duration.is_some_and(|d| el >= d) {
                    msg.push_str(" · finishing calls in flight");
                }
                if let Some(e) = c.last_error.lock().as_ref() {
                    msg.push_str(" · last error: ");
                    msg.push_str(e);
                }
                b.set_message(msg);
            }
        });
        Progress {
            bar,
            ticker: Some(ticker),
        }
    }

    fn message(&self, m: &'static str) {
        self.bar.set_message(m);
    }

    fn finish(&self) {
        if let Some(t) = &self.ticker {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests;
