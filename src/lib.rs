//! cdr-exporter: a CDR receiver for Cisco Meeting Server that exposes Prometheus metrics.
//!
//! Wiring lives here: [`run`] builds the state from a [`config::Config`] and serves it.

pub mod cdr;
pub mod config;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod quality;
pub mod rtpengine;
pub mod rules;
pub mod sim;
pub mod store;
pub mod tracker;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use config::Config;
use ingest::{Ingest, Names};
use metrics::{Exposition, FloatGauge, LabelLimits, Metrics, ProcessCollector};

/// The exporter's shared state, built from a config.
pub struct App {
    pub ingest: Arc<Ingest>,
    pub state: Arc<http::AppState>,
    store: Option<Durable>,
}

/// The on-disk side: where snapshots go and how many to keep.
struct Durable {
    snapshot_dir: PathBuf,
    journal_dir: PathBuf,
    keep: usize,
    status: Arc<StoreStatus>,
}

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("data directory: {0}")]
    Store(#[from] store::StoreError),
}

impl From<StartError> for std::io::Error {
    fn from(e: StartError) -> Self {
        std::io::Error::other(e.to_string())
    }
}

impl App {
    /// Builds the state in memory only: no journal, no recovery (tests, benches, tools).
    pub fn new(cfg: &Config) -> Result<App, config::ConfigError> {
        Self::build(cfg, Vec::new())
    }

    /// Builds the state and makes it durable: loads the newest snapshot from
    /// `data_dir`, replays the journal after it, and opens the journal for new batches.
    pub fn open(cfg: &Config) -> Result<App, StartError> {
        let journal_dir = cfg.data_dir.join("journal");
        let snapshot_dir = cfg.data_dir.join("snapshots");
        let status = Arc::new(StoreStatus::default());
        let mut app = Self::build(cfg, vec![Box::new(StoreCollector(status.clone()))])?;
        let started = std::time::Instant::now();
        let mut seq = 0;
        if let Some((snap_seq, state)) =
            store::load_snapshot::<ingest::StateSnapshot>(&snapshot_dir)
        {
            app.ingest.restore(&state);
            seq = snap_seq;
        }
        let ingest = app.ingest.clone();
        let mut failed = 0u64;
        let report = store::journal::read(&journal_dir, seq, |e| match cdr::parse(&e.body) {
            Ok(batch) => {
                let src = ingest::Source {
                    query_call_bridge: e.query_call_bridge.as_deref(),
                    peer: e.peer,
                };
                ingest.apply(&batch, &src, e.received_at);
            }
            // Only parsed batches are journaled; a failure here means a parser change.
            Err(_) => failed += 1,
        })?;
        status.replayed.store(report.replayed, Ordering::Relaxed);
        status
            .corrupt_bytes
            .store(report.corrupt_bytes, Ordering::Relaxed);
        tracing::info!(
            snapshot_seq = seq,
            replayed = report.replayed,
            corrupt_bytes = report.corrupt_bytes,
            unparsable = failed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state recovered"
        );
        let policy = match cfg.journal.fsync {
            config::Fsync::Always => store::FsyncPolicy::Always,
            config::Fsync::Interval => {
                store::FsyncPolicy::Interval(Duration::from_millis(cfg.journal.fsync_interval_ms))
            }
            config::Fsync::Never => store::FsyncPolicy::Never,
        };
        let journal = store::Journal::open(
            journal_dir.clone(),
            report.last_seq.max(seq),
            policy,
            cfg.journal.segment_max_bytes,
        )?;
        status.journal.lock().replace(journal.stats.clone());
        status.snapshot_seq.store(seq, Ordering::Relaxed);
        app.state.set_journal(journal);
        app.store = Some(Durable {
            snapshot_dir,
            journal_dir,
            keep: cfg.snapshot.keep,
            status,
        });
        Ok(app)
    }

    fn build(
        cfg: &Config,
        extra: Vec<Box<dyn prometheus_client::collector::Collector>>,
    ) -> Result<App, config::ConfigError> {
        let metrics = Arc::new(Metrics::new(&LabelLimits {
            call_bridge: cfg.labels.max_call_bridges,
            tenant: cfg.labels.max_tenants,
            enumerated: cfg.labels.max_values,
        }));
        let limits = tracker::Limits {
            max_age_seconds: cfg.tracking.max_age_seconds,
            max_objects: cfg.tracking.max_objects,
            ..Default::default()
        };
        let names = Names {
            call_bridges: cfg.names.call_bridges.clone().into_iter().collect(),
            tenants: cfg.names.tenants.clone().into_iter().collect(),
        };
        let codecs = quality::CodecTable::with_overrides(cfg.mos.codecs.iter().map(|(k, v)| {
            (
                k.clone(),
                quality::CodecImpairment {
                    ie: v.ie,
                    bpl: v.bpl,
                },
            )
        }))
        .map_err(|e| config::ConfigError::Invalid {
            key: "mos.codecs",
            msg: e.to_string(),
        })?;
        let mos = ingest::MosSettings {
            codecs,
            assumed_delay_ms: cfg.mos.assumed_delay_ms,
        };
        let ingest = Arc::new(Ingest::new(metrics.clone(), limits, names, mos));
        let mut collectors: Vec<Box<dyn prometheus_client::collector::Collector>> =
            vec![Box::new(ProcessCollector)];
        collectors.extend(extra);
        let exposition = Exposition::new(metrics, collectors);
        let http_cfg = http::HttpConfig {
            cdr_path: cfg.cdr_path.clone(),
            metrics_path: cfg.metrics_path.clone(),
            max_body_bytes: cfg.max_body_bytes,
            quarantine_dir: cfg.data_dir.join("quarantine"),
            quarantine_max_bytes: cfg.quarantine_max_bytes,
            summary: summary(cfg),
            token: cfg.token()?,
            allow: cfg.allowed_networks(),
            body_timeout: Duration::from_secs(cfg.server.body_timeout_seconds),
        };
        let state = http::AppState::new(ingest.clone(), exposition, http_cfg);
        Ok(App {
            ingest,
            state,
            store: None,
        })
    }

    /// Writes a snapshot of all state and prunes the journal it covers. Batches wait
    /// while the state is copied (milliseconds), not while it is written.
    pub async fn snapshot(&self) -> Result<(), store::StoreError> {
        let Some(d) = &self.store else { return Ok(()) };
        let Some(journal) = self.state.journal() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let (seq, state) = {
            let _gate = self.state.gate.write().await;
            let seq = journal.last_seq();
            if seq == d.status.snapshot_seq.load(Ordering::Relaxed)
                && d.status.snapshots.load(Ordering::Relaxed) > 0
            {
                return Ok(()); // nothing new since the last one
            }
            journal.rotate().await?;
            (seq, self.ingest.snapshot())
        };
        let (dir, jdir, keep) = (d.snapshot_dir.clone(), d.journal_dir.clone(), d.keep);
        tokio::task::spawn_blocking(move || -> Result<(), store::StoreError> {
            store::write_snapshot(&dir, seq, &state, keep)?;
            store::journal::prune(&jdir, seq)?;
            Ok(())
        })
        .await
        .map_err(|_| store::StoreError::Closed)??;
        d.status.snapshot_seq.store(seq, Ordering::Relaxed);
        d.status.snapshots.fetch_add(1, Ordering::Relaxed);
        d.status.last_snapshot.0.set(unix_now());
        d.status
            .snapshot_seconds
            .0
            .set(started.elapsed().as_secs_f64());
        tracing::debug!(
            seq,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot written"
        );
        Ok(())
    }
}

/// Durability figures for `/metrics`.
#[derive(Debug, Default)]
struct StoreStatus {
    journal: parking_lot::Mutex<Option<Arc<store::JournalStats>>>,
    replayed: AtomicU64,
    corrupt_bytes: AtomicU64,
    snapshot_seq: AtomicU64,
    snapshots: AtomicU64,
    last_snapshot: FloatGauge,
    snapshot_seconds: FloatGauge,
}

/// `cdr_exporter_journal_*`, `cdr_exporter_snapshot_*` and `cdr_exporter_recovery_*`.
#[derive(Debug)]
struct StoreCollector(Arc<StoreStatus>);

impl prometheus_client::collector::Collector for StoreCollector {
    fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::NoLabelSet;
        use prometheus_client::metrics::MetricType::{Counter, Gauge};
        use prometheus_client::registry::Unit;
        let s = &self.0;
        let mut put =
            |name: &str, help: &str, unit: Option<Unit>, kind, v: f64| -> std::fmt::Result {
                let mut m = enc.encode_descriptor(name, help, unit.as_ref(), kind)?;
                match kind {
                    Counter => m.encode_counter::<NoLabelSet, f64, f64>(&v, None),
                    _ => m.encode_gauge(&v),
                }
            };
        let j = s.journal.lock().clone();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut rows: Vec<(
            &str,
            &str,
            Option<Unit>,
            prometheus_client::metrics::MetricType,
            f64,
        )> = Vec::new();
        if let Some(j) = &j {
            rows.extend([
                (
                    "cdr_exporter_journal_appends",
                    "Batches written to the journal",
                    None,
                    Counter,
                    load(&j.appends),
                ),
                (
                    "cdr_exporter_journal_written",
                    "Bytes written to the journal",
                    Some(Unit::Bytes),
                    Counter,
                    load(&j.bytes),
                ),
                (
                    "cdr_exporter_journal_fsyncs",
                    "fsync calls on the journal (one per group commit)",
                    None,
                    Counter,
                    load(&j.fsyncs),
                ),
                (
                    "cdr_exporter_journal_fsync",
                    "Time spent in journal fsync",
                    Some(Unit::Seconds),
                    Counter,
                    load(&j.fsync_nanos) / 1e9,
                ),
                (
                    "cdr_exporter_journal_errors",
                    "Failed journal writes (each answered 503)",
                    None,
                    Counter,
                    load(&j.errors),
                ),
            ]);
        }
        rows.extend([
            (
                "cdr_exporter_recovery_replayed_batches",
                "Journaled batches replayed at the last start",
                None,
                Gauge,
                load(&s.replayed),
            ),
            (
                "cdr_exporter_recovery_corrupt",
                "Torn or corrupt journal bytes discarded at the last start",
                Some(Unit::Bytes),
                Gauge,
                load(&s.corrupt_bytes),
            ),
            (
                "cdr_exporter_snapshot_last_success_timestamp",
                "When the last snapshot was written",
                Some(Unit::Seconds),
                Gauge,
                s.last_snapshot.0.get(),
            ),
            (
                "cdr_exporter_snapshot_last_duration",
                "How long the last snapshot took",
                Some(Unit::Seconds),
                Gauge,
                s.snapshot_seconds.0.get(),
            ),
        ]);
        for (name, help, unit, kind, v) in rows {
            put(name, help, unit, kind, v)?;
        }
        Ok(())
    }
}

/// Key/value lines for the landing page: every configuration key, secrets masked.
fn summary(cfg: &Config) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = toml::Value::try_from(cfg) {
        walk("", &v, &mut out);
    }
    for (k, v) in &mut out {
        if k == "auth.token" && v != "\"\"" {
            *v = "(set)".into();
        }
    }
    out
}

/// Serves the exporter on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish. Tests bind port 0 and pass their own shutdown future.
pub async fn run(
    cfg: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Arc::new(App::open(&cfg)?);
    let snapshotter = {
        let app = app.clone();
        let every = Duration::from_secs(cfg.snapshot.interval_seconds);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = app.snapshot().await {
                    tracing::error!(error = %e, "snapshot failed; the journal keeps growing until one succeeds");
                }
            }
        })
    };
    let sweeper = {
        let app = app.clone();
        let every = Duration::from_secs(cfg.tracking.sweep_interval_seconds);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                // Like a batch, a sweep must not run while a snapshot copies the state.
                let _gate = app.state.gate.read().await;
                let n = app.ingest.sweep(unix_now());
                if n > 0 {
                    tracing::info!(evicted = n, "evicted objects past tracking.max_age_seconds");
                }
            }
        })
    };
    let tls = match (cfg.tls.cert_file.as_str(), cfg.tls.key_file.as_str()) {
        ("", _) | (_, "") => None,
        (cert, key) => Some(Arc::new(
            http::tls::TlsReloader::load(cert.into(), key.into()).map_err(std::io::Error::other)?,
        )),
    };
    let reloader = tls
        .clone()
        .map(|t| tokio::spawn(reload_tls(t, cfg.tls.reload_interval_seconds)));
    let opts = http::serve::ServeOptions {
        max_connections: cfg.server.max_connections,
        header_timeout: Duration::from_secs(cfg.server.header_timeout_seconds),
        tls,
        drain_timeout: Duration::from_secs(30),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let metrics = app.ingest.metrics.clone();
    let addr = listener.local_addr()?;
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let res = if cfg.server.metrics_listen.is_empty() {
        tracing::info!(%addr, scheme, cdr_path = %cfg.cdr_path, metrics_path = %cfg.metrics_path, "cdr-exporter listening");
        http::serve::serve(
            listener,
            http::router(app.state.clone()),
            opts,
            metrics,
            stop_rx,
        )
        .await
    } else {
        let ml = tokio::net::TcpListener::bind(&cfg.server.metrics_listen).await?;
        let maddr = ml.local_addr()?;
        tracing::info!(%addr, scheme, cdr_path = %cfg.cdr_path, "cdr-exporter listening");
        tracing::info!(addr = %maddr, metrics_path = %cfg.metrics_path, "metrics listening");
        // /metrics stays plain HTTP on its own (usually internal) address.
        let mopts = http::serve::ServeOptions {
            tls: None,
            ..opts.clone()
        };
        let m = http::serve::serve(
            ml,
            http::metrics_router(app.state.clone()),
            mopts,
            metrics.clone(),
            stop_rx.clone(),
        );
        let c = http::serve::serve(
            listener,
            http::cdr_router(app.state.clone()),
            opts,
            metrics,
            stop_rx,
        );
        let (a, b) = tokio::join!(c, m);
        a.and(b)
    };
    if let Some(r) = reloader {
        r.abort();
    }
    sweeper.abort();
    snapshotter.abort();
    // A final snapshot makes the next start quick; the journal is there if it fails.
    if let Err(e) = app.snapshot().await {
        tracing::warn!(error = %e, "final snapshot failed");
    }
    tracing::info!("cdr-exporter stopped");
    res
}

/// Reloads the TLS files on SIGHUP and when they change.
async fn reload_tls(tls: Arc<http::tls::TlsReloader>, every_seconds: u64) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(every_seconds.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hup_fut = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup_fut = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = hup_fut => true,
            _ = tick.tick(), if every_seconds > 0 => false,
        };
        let r = if forced {
            tls.reload().map(|_| true)
        } else {
            tls.reload_if_changed()
        };
        match r {
            Ok(true) => tracing::info!("TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "TLS reload failed; the previous certificate stays in use")
            }
        }
    }
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `cdr-exporter demo`: the exporter on `listener`, fed by an in-process Call Bridge
/// simulator with moderate traffic (3 bridges, one unclustered, 4 tenants, 2 calls/s, a 10 %
/// bad tail) until `shutdown` resolves; then the simulator ends its calls and stops first.
pub async fn demo(
    cfg: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    // Listening on every address: talk to ourselves over loopback.
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let base = SocketAddr::new(ip, addr.port());
    let metrics_url = format!("http://{base}{}", cfg.metrics_path);
    let sim_cfg = sim::SimConfig {
        target: format!("http://{base}{}", cfg.cdr_path),
        call_bridges: 3,
        unclustered: 1,
        tenants: 4,
        calls_per_second: 2.0,
        duration: None,
        // Fixed: the same three Call Bridges (and tenants) on every demo run, each run a new
        // session of theirs, so a kept data dir does not collect new bridges.
        seed: 2024,
        bad_tail: 0.1,
        drain_timeout: Duration::from_secs(2),
        progress: false,
        ..sim::SimConfig::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(run(cfg, listener, async move {
        let _ = stop_rx.await;
    }));
    tracing::info!(
        url = %metrics_url,
        call_bridges = sim_cfg.call_bridges,
        calls_per_second = sim_cfg.calls_per_second,
        seed = sim_cfg.seed,
        "demo: simulated Call Bridges are feeding the exporter; open the URL for live metrics (Ctrl-C stops)"
    );
    let simulation = sim::run(sim_cfg, shutdown);
    tokio::select! {
        // The exporter stopped by itself (it could not serve): nothing to demo.
        res = &mut server => return res.map_err(std::io::Error::other)?,
        summary = simulation => match summary {
            Ok(s) => tracing::info!(
                calls = s.calls_started,
                records = s.records_acknowledged,
                "demo: simulator stopped"
            ),
            Err(e) => tracing::error!(error = %e, "demo: simulator failed"),
        },
    }
    let _ = stop_tx.send(());
    server.await.map_err(std::io::Error::other)?
}
