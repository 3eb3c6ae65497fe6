//! Accepting a batch: parse, quarantine what is rejected, journal, apply, all under the
//! snapshot gate; at start, the newest readable snapshot and a replay of the journal after it
//! through the same apply; snapshots and the journal pruning they allow.

mod quarantine;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::ingest::{Ingest, Origin, Outcome, StateSnapshot};
use crate::metrics::{FloatGauge, Scraped, Source, Value};
use crate::store::{self, Entry, FsyncPolicy, Journal, JournalStats, StoreError};
use crate::{cdr, freeswitch, rtpengine};
pub use quarantine::{Quarantine, QuarantineLimits};

/// Which sender's format a body is in. New variants go last: the journal stores the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    /// A Cisco Meeting Server `<records>` batch.
    Cms,
    /// One FreeSWITCH CDR (mod_xml_cdr in any `encode`, or mod_json_cdr).
    FreeSwitch,
    /// One Kamailio/rtpengine MOS report (JSON).
    Kamailio,
}

impl Format {
    /// The `source` label value.
    pub fn source(self) -> &'static str {
        match self {
            Format::Cms => "cms",
            Format::FreeSwitch => "freeswitch",
            Format::Kamailio => "kamailio",
        }
    }
}

/// One received batch: what the HTTP edge saw, and what the journal keeps. Replay
/// rebuilds exactly this, so live and replayed batches take the same path.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub format: Format,
    /// The exporter's clock when the batch arrived (Unix seconds).
    pub received_at: f64,
    pub peer: Option<IpAddr>,
    /// The sender's identity from the receiver URI: `?call_bridge=` (or `?system_id=`) for
    /// CMS, `?switch=` for FreeSWITCH, `?node=` for Kamailio.
    pub sender_param: Option<String>,
    /// The request's Content-Type (FreeSWITCH's `encode` is told by it).
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// `Received` without its body: the journal entry's metadata. Fields are only ever added
/// at the end (entries from before `content_type` still read).
#[derive(Serialize, Deserialize)]
struct Meta {
    format: Format,
    received_at: f64,
    peer: Option<IpAddr>,
    sender_param: Option<String>,
    content_type: Option<String>,
}

/// [`Meta`] as written before FreeSWITCH and Kamailio were received.
#[derive(Deserialize)]
struct MetaV1 {
    format: Format,
    received_at: f64,
    peer: Option<IpAddr>,
    sender_param: Option<String>,
}

impl Received {
    fn to_entry(&self) -> Entry {
        let meta = Meta {
            format: self.format,
            received_at: self.received_at,
            peer: self.peer,
            sender_param: self.sender_param.clone(),
            content_type: self.content_type.clone(),
        };
        Entry {
            meta: postcard::to_stdvec(&meta)
                .expect("serialising plain values")
                .into(),
            body: self.body.clone(),
        }
    }

    fn from_entry(e: Entry) -> Option<Received> {
        let m: Meta = postcard::from_bytes(&e.meta).ok().or_else(|| {
            let m: MetaV1 = postcard::from_bytes(&e.meta).ok()?;
            Some(Meta {
                format: m.format,
                received_at: m.received_at,
                peer: m.peer,
                sender_param: m.sender_param,
                content_type: None,
            })
        })?;
        Some(Received {
            format: m.format,
            received_at: m.received_at,
            peer: m.peer,
            sender_param: m.sender_param,
            content_type: m.content_type,
            body: e.body,
        })
    }
}

/// Why a batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// Not a batch at all; nothing of it was applied (it was quarantined). `reason` is the
    /// label value, `message` the one-line reason the client sees.
    #[error("{message}")]
    Rejected {
        reason: &'static str,
        message: String,
    },
    /// The journal could not take it; nothing of it was applied.
    #[error("cannot store the batch now ({0}); retry later")]
    Unavailable(StoreError),
}

/// Where the durable state lives and how it is written.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub fsync: FsyncPolicy,
    pub segment_max_bytes: u64,
    pub snapshots_kept: usize,
    /// Journal bytes written since the last snapshot that make the next one start at once.
    pub snapshot_after_bytes: u64,
    pub quarantine: QuarantineLimits,
}

/// Why the state could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("data directory {dir}: {msg}")]
    Locked { dir: String, msg: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Durable {
    journal: Journal,
    /// Batches are applied in journal order, so that replay rebuilds exactly the live state
    /// (gap accounting and restarts depend on order).
    turnstile: Turnstile,
    snapshot_dir: PathBuf,
    journal_dir: PathBuf,
    keep: usize,
    /// Damaged segments found at start: moved aside, never deleted, when pruned.
    damaged: Vec<PathBuf>,
    /// See [`Settings::snapshot_after_bytes`].
    snapshot_after_bytes: u64,
    /// Journal bytes written when the last snapshot copied the state.
    bytes_at_snapshot: AtomicU64,
    /// Wakes the snapshot loop before its interval.
    snapshot_soon: tokio::sync::Notify,
    /// Held for the life of the pipeline: one exporter per data directory.
    _lock: std::fs::File,
}

/// What recovery found and what snapshots did, for `/metrics`.
#[derive(Debug, Default)]
pub struct StoreStatus {
    journal: Mutex<Option<Arc<JournalStats>>>,
    replayed: AtomicU64,
    corrupt_bytes: AtomicU64,
    lost_batches: AtomicU64,
    unreadable_snapshots: AtomicU64,
    incomplete: AtomicU64,
    snapshot_seq: AtomicU64,
    snapshots: AtomicU64,
    last_snapshot: FloatGauge,
    snapshot_seconds: FloatGauge,
    snapshot_gate_seconds: FloatGauge,
}

/// The one owner of accepting batches.
pub struct Pipeline {
    ingest: Arc<Ingest>,
    durable: Option<Durable>,
    /// Held shared while a batch is journaled and applied, exclusively while a snapshot
    /// copies the state: a snapshot never sees half a batch.
    gate: tokio::sync::RwLock<()>,
    quarantine: Quarantine,
    status: Arc<StoreStatus>,
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Pipeline {
    /// A pipeline without a journal (tests, benches, tools): nothing survives a restart.
    pub fn in_memory(ingest: Arc<Ingest>, quarantine: Quarantine) -> Arc<Pipeline> {
        Arc::new(Pipeline {
            ingest,
            durable: None,
            gate: tokio::sync::RwLock::new(()),
            quarantine,
            status: Arc::default(),
        })
    }

    /// Opens the data directory: locks it, loads the newest readable snapshot, replays the
    /// journal after it through the same apply as live batches, and opens the journal.
    pub fn open(ingest: Arc<Ingest>, s: &Settings) -> Result<Arc<Pipeline>, OpenError> {
        let lock = lock_data_dir(&s.data_dir)?;
        let journal_dir = s.data_dir.join("journal");
        let snapshot_dir = s.data_dir.join("snapshots");
        let status = Arc::new(StoreStatus::default());
        let started = Instant::now();
        let loaded = store::load_snapshot::<StateSnapshot>(&snapshot_dir);
        let mut seq = 0;
        if let Some((snap_seq, state)) = &loaded.state {
            ingest.restore(state);
            seq = *snap_seq;
        }
        let mut unparsable = 0u64;
        let report = store::journal::read(&journal_dir, seq, |_, e| {
            // Only parsed batches are journaled: a failure here means a damaged entry that
            // passed its checksum, or a parser change.
            match Received::from_entry(e).as_ref().map(|r| (r, parse(r))) {
                Some((r, Ok(p))) => {
                    apply(&ingest, r, &p);
                }
                _ => unparsable += 1,
            }
        })?;
        // Entries missing between the state loaded and the journal, or inside it.
        let incomplete =
            report.lost_entries > 0 || (loaded.state.is_none() && report.first_seq > 1);
        let lost_before_journal = if loaded.state.is_none() && report.first_seq > 1 {
            report.first_seq - 1
        } else {
            0
        };
        status.replayed.store(report.replayed, Ordering::Relaxed);
        status
            .corrupt_bytes
            .store(report.corrupt_bytes, Ordering::Relaxed);
        status
            .lost_batches
            .store(report.lost_entries + unparsable, Ordering::Relaxed);
        status
            .unreadable_snapshots
            .store(loaded.unreadable.len() as u64, Ordering::Relaxed);
        status
            .incomplete
            .store(incomplete as u64, Ordering::Relaxed);
        if loaded.state.is_none() && !loaded.unreadable.is_empty() {
            tracing::error!(
                unreadable = loaded.unreadable.len(),
                journal_first_entry = report.first_seq,
                replayed = report.replayed,
                "no snapshot could be read: the state was rebuilt from the journal alone{}",
                if lost_before_journal > 0 {
                    "; what came before its first entry is lost (counters restart lower)"
                } else {
                    ", which reaches back to the start"
                }
            );
        }
        if report.lost_entries > 0 || unparsable > 0 {
            tracing::error!(
                lost_batches = report.lost_entries,
                unparsable,
                corrupt_bytes = report.corrupt_bytes,
                damaged_segments = ?report.damaged_segments(),
                "journal damage: acknowledged batches could not be replayed; every readable entry was"
            );
        }
        tracing::info!(
            snapshot_seq = seq,
            replayed = report.replayed,
            corrupt_bytes = report.corrupt_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state recovered"
        );
        let journal = Journal::open(
            journal_dir.clone(),
            report.last_seq.max(seq),
            s.fsync,
            s.segment_max_bytes,
        )?;
        status.journal.lock().replace(journal.stats.clone());
        status.snapshot_seq.store(seq, Ordering::Relaxed);
        let quarantine = Quarantine::new(s.data_dir.join("quarantine"), s.quarantine);
        Ok(Arc::new(Pipeline {
            ingest,
            durable: Some(Durable {
                turnstile: Turnstile::new(journal.last_seq() + 1),
                journal,
                snapshot_dir,
                journal_dir,
                keep: s.snapshots_kept,
                damaged: report.damaged_segments(),
                snapshot_after_bytes: s.snapshot_after_bytes,
                bytes_at_snapshot: AtomicU64::new(0),
                snapshot_soon: tokio::sync::Notify::new(),
                _lock: lock,
            }),
            gate: tokio::sync::RwLock::new(()),
            quarantine,
            status,
        }))
    }

    pub fn ingest(&self) -> &Arc<Ingest> {
        &self.ingest
    }

    pub fn quarantine(&self) -> &Quarantine {
        &self.quarantine
    }

    /// Accepts one batch: parse (a body that is not a batch is quarantined and refused),
    /// journal, apply. Runs to completion even if the client goes away meanwhile, so what
    /// was journaled is always applied.
    pub async fn accept(self: &Arc<Self>, r: Received) -> Result<Outcome, AcceptError> {
        let me = self.clone();
        match tokio::spawn(async move { me.accept_now(r).await }).await {
            Ok(res) => res,
            // Only a panic ends the task early; the runtime's shutdown cannot cancel it
            // before the server's drain ends.
            Err(e) => Err(AcceptError::Unavailable(StoreError::Io {
                path: "accept".into(),
                source: Arc::new(std::io::Error::other(e.to_string())),
            })),
        }
    }

    async fn accept_now(&self, r: Received) -> Result<Outcome, AcceptError> {
        let parsed = match parse(&r) {
            Ok(p) => p,
            Err(e) => {
                self.quarantine.keep(&r.body, e.reason).await;
                return Err(AcceptError::Rejected {
                    reason: e.reason,
                    message: e.message,
                });
            }
        };
        let _gate = self.gate.read().await;
        let Some(d) = &self.durable else {
            return Ok(apply(&self.ingest, &r, &parsed));
        };
        let seq = d
            .journal
            .append(r.to_entry())
            .await
            .map_err(AcceptError::Unavailable)?;
        let _turn = d.turnstile.wait(seq).await;
        let out = apply(&self.ingest, &r, &parsed);
        // The journal's disk use is bounded in bytes, not only by the snapshot interval.
        let written = d.journal.stats.bytes.load(Ordering::Relaxed);
        if written.saturating_sub(d.bytes_at_snapshot.load(Ordering::Relaxed))
            > d.snapshot_after_bytes
        {
            d.snapshot_soon.notify_one();
        }
        Ok(out)
    }

    /// New name maps (SIGHUP), applied between batches; returns the sessions relabelled.
    pub async fn set_names(&self, names: crate::ingest::Names) -> usize {
        let _gate = self.gate.write().await;
        self.ingest.set_names(names)
    }

    /// The max-age sweep; like a batch, it must not run while a snapshot copies the state.
    pub async fn sweep(&self, now: f64) -> u64 {
        let _gate = self.gate.read().await;
        self.ingest.sweep(now)
    }

    /// Writes a snapshot of all state and prunes the journal no kept snapshot needs. Batches
    /// wait only while the state is copied (pointer copies), not while it is serialised and
    /// written.
    pub async fn snapshot(&self) -> Result<(), StoreError> {
        let Some(d) = &self.durable else {
            return Ok(());
        };
        let started = Instant::now();
        let (seq, copy, gate_seconds) = {
            let _gate = self.gate.write().await;
            let held = Instant::now();
            let seq = d.journal.last_seq();
            if seq == self.status.snapshot_seq.load(Ordering::Relaxed)
                && self.status.snapshots.load(Ordering::Relaxed) > 0
            {
                return Ok(()); // nothing new since the last one
            }
            let copy = self.ingest.copy();
            let written = d.journal.stats.bytes.load(Ordering::Relaxed);
            d.bytes_at_snapshot.store(written, Ordering::Relaxed);
            (seq, copy, held.elapsed().as_secs_f64())
        };
        // A new segment from here on, so the snapshot can cover whole segments.
        d.journal.rotate().await?;
        let (dir, jdir, keep) = (d.snapshot_dir.clone(), d.journal_dir.clone(), d.keep);
        let damaged = d.damaged.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let state = copy.into_snapshot();
            let oldest_kept = store::write_snapshot(&dir, seq, &state, keep)?;
            store::journal::prune(&jdir, oldest_kept, &damaged)?;
            Ok(())
        })
        .await
        .map_err(|_| StoreError::Closed)??;
        let s = &self.status;
        s.snapshot_seq.store(seq, Ordering::Relaxed);
        s.snapshots.fetch_add(1, Ordering::Relaxed);
        s.last_snapshot.0.set(unix_now());
        s.snapshot_seconds.0.set(started.elapsed().as_secs_f64());
        s.snapshot_gate_seconds.0.set(gate_seconds);
        tracing::debug!(
            seq,
            gate_ms = gate_seconds * 1e3,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot written"
        );
        Ok(())
    }

    /// Durability, recovery and quarantine figures for `/metrics`.
    pub fn source(&self) -> StoreSource {
        StoreSource {
            status: self.status.clone(),
            quarantine: self.quarantine.stats(),
        }
    }
}

/// Lets batches through in journal sequence order: each waits for its predecessor's apply.
struct Turnstile {
    next: Mutex<u64>,
    moved: tokio::sync::Notify,
}

/// The turn of one seq; the next one may go when this is dropped (even after a panic).
struct Turn<'a> {
    t: &'a Turnstile,
    seq: u64,
}

impl Turnstile {
    fn new(next: u64) -> Turnstile {
        Turnstile {
            next: Mutex::new(next),
            moved: tokio::sync::Notify::new(),
        }
    }

    async fn wait(&self, seq: u64) -> Turn<'_> {
        loop {
            let moved = self.moved.notified();
            if *self.next.lock() >= seq {
                return Turn { t: self, seq };
            }
            moved.await;
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut next = self.t.next.lock();
        *next = (*next).max(self.seq + 1);
        drop(next);
        self.t.moved.notify_waiters();
    }
}

/// A body parsed in its sender's format (the CMS batch borrows from it).
enum Parsed<'a> {
    Cms(cdr::Batch<'a>),
    FreeSwitch(Box<freeswitch::Cdr>),
    Kamailio(Box<rtpengine::Report>),
}

/// Why a body is not a batch: the label value and the one-line message.
struct Rejection {
    reason: &'static str,
    message: String,
}

fn parse(r: &Received) -> Result<Parsed<'_>, Rejection> {
    fn rejection(reason: &'static str, e: impl ToString) -> Rejection {
        Rejection {
            reason,
            message: e.to_string(),
        }
    }
    match r.format {
        Format::Cms => cdr::parse(&r.body)
            .map(Parsed::Cms)
            .map_err(|e| rejection(e.as_label(), e)),
        Format::FreeSwitch => freeswitch::parse(r.content_type.as_deref(), &r.body)
            .map(|c| Parsed::FreeSwitch(Box::new(c)))
            .map_err(|e| rejection(e.as_label(), e)),
        Format::Kamailio => rtpengine::parse_request(r.content_type.as_deref(), &r.body)
            .map(|c| Parsed::Kamailio(Box::new(c)))
            .map_err(|e| rejection(e.as_label(), e)),
    }
}

/// The one apply, for live batches and replay alike.
fn apply(ingest: &Ingest, r: &Received, parsed: &Parsed<'_>) -> Outcome {
    let src = Origin {
        query_sender: r.sender_param.as_deref(),
        peer: r.peer,
    };
    match parsed {
        Parsed::Cms(batch) => ingest.apply(batch, &src, r.received_at),
        Parsed::FreeSwitch(c) => ingest.apply_freeswitch(c, &src, r.received_at),
        Parsed::Kamailio(rep) => ingest.apply_rtpengine(rep, &src, r.received_at),
    }
}

/// Takes an exclusive lock on `dir/lock`, held until the process ends: a second exporter on
/// the same directory would write the same journal.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, OpenError> {
    let locked = |msg: String| OpenError::Locked {
        dir: dir.display().to_string(),
        msg,
    };
    std::fs::create_dir_all(dir).map_err(|e| locked(e.to_string()))?;
    let path = dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| locked(format!("{}: {e}", path.display())))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(locked(
            "another cdr-exporter is using it (its lock file is held); give each exporter its own data_dir".into(),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(locked(format!("{}: {e}", path.display()))),
    }
}

/// `cdr_exporter_journal_*`, `cdr_exporter_snapshot_*`, `cdr_exporter_recovery_*` and
/// `cdr_exporter_quarantine_*`.
pub struct StoreSource {
    status: Arc<StoreStatus>,
    quarantine: Arc<quarantine::QuarantineStats>,
}

impl Source for StoreSource {
    fn collect(&self, out: &mut Scraped) {
        use crate::metrics::catalogue::*;
        let s = &self.status;
        let n = |a: &AtomicU64| Value::U64(a.load(Ordering::Relaxed));
        if let Some(j) = s.journal.lock().clone() {
            out.add(&JOURNAL_APPENDS, &[], n(&j.appends));
            out.add(&JOURNAL_WRITTEN, &[], n(&j.bytes));
            out.add(&JOURNAL_FSYNCS, &[], n(&j.fsyncs));
            let secs = j.fsync_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            out.add(&JOURNAL_FSYNC, &[], Value::F64(secs));
            out.add(&JOURNAL_ERRORS, &[], n(&j.errors));
        }
        out.add(&RECOVERY_REPLAYED, &[], n(&s.replayed));
        out.add(&RECOVERY_CORRUPT, &[], n(&s.corrupt_bytes));
        out.add(&RECOVERY_LOST, &[], n(&s.lost_batches));
        out.add(&RECOVERY_UNREADABLE, &[], n(&s.unreadable_snapshots));
        out.add(&RECOVERY_INCOMPLETE, &[], n(&s.incomplete));
        let f = |g: &FloatGauge| Value::F64(g.0.get());
        out.add(&SNAPSHOT_LAST_SUCCESS, &[], f(&s.last_snapshot));
        out.add(&SNAPSHOT_LAST_DURATION, &[], f(&s.snapshot_seconds));
        out.add(&SNAPSHOT_LAST_GATE, &[], f(&s.snapshot_gate_seconds));
        let q = &self.quarantine;
        out.add(&QUARANTINE_FILES, &[], n(&q.files));
        out.add(&QUARANTINE_BYTES, &[], n(&q.bytes));
        out.add(&QUARANTINE_DROPPED, &[], n(&q.dropped));
    }
}

impl Pipeline {
    /// Snapshots every `every` (the first after one period), and at once when the journal
    /// has grown by `snapshot_after_bytes` since the last one.
    pub async fn snapshot_every(self: Arc<Self>, every: Duration) {
        let Some(d) = &self.durable else {
            return std::future::pending().await;
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = d.snapshot_soon.notified() => tick.reset(),
            }
            if let Err(e) = self.snapshot().await {
                tracing::error!(error = %e, "snapshot failed; the journal keeps growing until one succeeds");
            }
        }
    }

    /// The max-age sweep, every `every`.
    pub async fn sweep_every(self: Arc<Self>, every: Duration) {
        periodically(every, || async {
            let n = self.sweep(unix_now()).await;
            if n > 0 {
                tracing::info!(evicted = n, "evicted objects past tracking.max_age_seconds");
            }
            tracing::debug!(evicted = n, "max-age sweep done");
        })
        .await
    }
}

/// Runs `f` every `every`, a late run delaying the next rather than bunching up.
async fn periodically<F, Fut>(every: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        f().await;
    }
}
