//! cdr-exporter: a CDR receiver for Cisco Meeting Server that exposes Prometheus metrics.
//!
//! Wiring lives here: [`App`] builds the state from a [`config::Config`] and [`run`] serves it.
//! Data flows one way: `http` → `pipeline` (parse → journal → apply) → `ingest` → `metrics`.

pub mod cdr;
pub mod config;
pub mod cow_map;
pub mod dedupe;
pub mod freeswitch;
pub mod http;
pub mod import;
pub mod ingest;
pub mod log_limit;
pub mod metrics;
pub mod pipeline;
pub mod quality;
pub mod rtpengine;
pub mod rules;
pub mod sim;
pub mod store;
pub mod tracker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use config::Config;
use ingest::{Ingest, Names};
use metrics::{Exposition, LabelLimits, Metrics, ProcessSource};
use pipeline::{Pipeline, Quarantine, QuarantineLimits};

/// The exporter's shared state, built from a config.
pub struct App {
    pub pipeline: Arc<Pipeline>,
    pub state: Arc<http::AppState>,
}

/// Why the exporter could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Open(#[from] pipeline::OpenError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("server.web_config_file: {0}")]
    WebConfig(String),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl App {
    /// Builds the state in memory only: no journal, no recovery (tests, benches, tools).
    pub fn new(cfg: &Config) -> Result<App, config::ConfigError> {
        let ingest = ingest_for(cfg)?;
        let quarantine = Quarantine::new(cfg.data_dir.join("quarantine"), quarantine_limits(cfg));
        let pipeline = Pipeline::in_memory(ingest, quarantine);
        Self::with_pipeline(cfg, pipeline)
    }

    /// Builds the state and makes it durable: locks `data_dir`, loads the newest readable
    /// snapshot, replays the journal after it, and opens the journal for new batches.
    pub fn open(cfg: &Config) -> Result<App, RunError> {
        let ingest = ingest_for(cfg)?;
        let settings = pipeline::Settings {
            data_dir: cfg.data_dir.clone(),
            fsync: match cfg.journal.fsync {
                config::Fsync::Always => store::FsyncPolicy::Always,
                config::Fsync::Interval => store::FsyncPolicy::Interval(Duration::from_millis(
                    cfg.journal.fsync_interval_ms,
                )),
                config::Fsync::Never => store::FsyncPolicy::Never,
            },
            segment_max_bytes: cfg.journal.segment_max_bytes,
            snapshots_kept: cfg.snapshot.keep,
            snapshot_after_bytes: cfg.snapshot.journal_bytes,
            quarantine: quarantine_limits(cfg),
        };
        let pipeline = Pipeline::open(ingest, &settings)?;
        Ok(Self::with_pipeline(cfg, pipeline)?)
    }

    fn with_pipeline(cfg: &Config, pipeline: Arc<Pipeline>) -> Result<App, config::ConfigError> {
        let ingest = pipeline.ingest().clone();
        let sources: Vec<Box<dyn metrics::Source>> = vec![
            Box::new(ProcessSource),
            Box::new(pipeline.source()),
            Box::new(RuntimeSource(ingest.clone())),
        ];
        let exposition = Exposition::new(ingest.metrics.clone(), sources);
        let http_cfg = http::HttpConfig {
            cdr_path: cfg.cdr_path.clone(),
            freeswitch_path: cfg.freeswitch_path.clone(),
            kamailio_path: cfg.kamailio_path.clone(),
            metrics_path: cfg.metrics_path.clone(),
            max_body_bytes: cfg.max_body_bytes,
            max_inflight_bytes: cfg.server.max_inflight_bytes,
            summary: summary(cfg),
            access: access_for(cfg)?,
            body_timeout: Duration::from_secs(cfg.server.body_timeout_seconds),
        };
        let state = http::AppState::new(pipeline.clone(), exposition, http_cfg);
        Ok(App { pipeline, state })
    }
}

fn access_for(cfg: &Config) -> Result<http::Access, config::ConfigError> {
    Ok(http::Access {
        token: cfg.token()?,
        basic: cfg.basic_credentials()?,
        allow: cfg.allowed_networks(),
    })
}

fn names_for(cfg: &Config) -> Names {
    Names {
        call_bridges: cfg.names.call_bridges.clone().into_iter().collect(),
        tenants: cfg.names.tenants.clone().into_iter().collect(),
    }
}

fn quarantine_limits(cfg: &Config) -> QuarantineLimits {
    QuarantineLimits {
        max_bytes: cfg.quarantine_max_bytes,
        max_files: cfg.quarantine_max_files,
    }
}

fn ingest_for(cfg: &Config) -> Result<Arc<Ingest>, config::ConfigError> {
    let limits = LabelLimits {
        call_bridge: cfg.labels.max_call_bridges,
        tenant: cfg.labels.max_tenants,
        switch: cfg.labels.max_switches,
        node: cfg.labels.max_nodes,
        domain: cfg.labels.max_domains,
        enumerated: cfg.labels.max_values,
        value_bytes: cfg.labels.max_value_bytes,
        max_series: cfg.labels.max_series,
    };
    let opts = metrics::FamilyOptions {
        tenant_detail: match cfg.labels.tenant_detail {
            config::TenantDetail::Compact => metrics::TenantDetail::Compact,
            config::TenantDetail::Full => metrics::TenantDetail::Full,
        },
        drops: cfg.labels.drop.clone(),
    };
    let metrics =
        Arc::new(
            Metrics::new(&limits, &opts).map_err(|e| config::ConfigError::Invalid {
                key: "labels.drop",
                msg: e.to_string(),
            })?,
        );
    let limits = tracker::Limits {
        max_age_seconds: cfg.tracking.max_age_seconds,
        max_objects: cfg.tracking.max_objects,
        max_call_bridges: cfg.tracking.max_call_bridges,
        sessions_per_call_bridge: cfg.tracking.sessions_per_call_bridge,
    };
    let names = names_for(cfg);
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
    let dedupe = dedupe::Limits {
        max_entries: cfg.dedupe.max_entries,
        max_age_seconds: cfg.dedupe.max_age_seconds,
    };
    Ok(Arc::new(Ingest::new(metrics, limits, names, mos, dedupe)))
}

/// `cdr_exporter_tracked_objects{kind}` (from the tracker) and
/// `cdr_exporter_log_lines_suppressed_total`, read at scrape time.
struct RuntimeSource(Arc<Ingest>);

impl metrics::Source for RuntimeSource {
    fn collect(&self, out: &mut metrics::Scraped) {
        use metrics::catalogue::{DEDUPE_ENTRIES, LOG_LINES_SUPPRESSED, TRACKED_OBJECTS};
        for (kind, n) in self.0.tracked() {
            out.add(&TRACKED_OBJECTS, &[kind.as_str()], metrics::Value::U64(n));
        }
        for (source, n) in self.0.dedupe_entries() {
            out.add(&DEDUPE_ENTRIES, &[source], metrics::Value::U64(n));
        }
        let n = log_limit::suppressed_total();
        out.add(&LOG_LINES_SUPPRESSED, &[], metrics::Value::U64(n));
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
    if let Ok(v) = cfg.to_masked_toml().parse::<toml::Value>() {
        walk("", &v, &mut out);
    }
    out
}

/// Where the configuration came from, so that SIGHUP can read it again.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    pub file: Option<std::path::PathBuf>,
    pub overrides: config::Overrides,
}

/// Serves the exporter on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish. Tests bind port 0 and pass their own shutdown future. SIGHUP reloads
/// the TLS files only (see [`run_with`]).
pub async fn run(
    cfg: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    run_with(cfg, None, listener, shutdown).await
}

/// [`run`], and on SIGHUP the configuration is read again from `source`: name maps, token,
/// basic credentials and allowlist take effect at once, TLS files are reloaded, and other
/// changed keys are named in a warning (they need a restart).
pub async fn run_with(
    cfg: Config,
    source: Option<ConfigSource>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let app = App::open(&cfg)?;
    // Background work ends with `run`, even when its future is dropped, so nothing keeps
    // the data directory (and its lock) after it.
    let _snapshotter = AbortOnDrop(tokio::spawn(
        app.pipeline
            .clone()
            .snapshot_every(Duration::from_secs(cfg.snapshot.interval_seconds)),
    ));
    let sweeper =
        AbortOnDrop(tokio::spawn(app.pipeline.clone().sweep_every(
            Duration::from_secs(cfg.tracking.sweep_interval_seconds),
        )));
    let tls = match (cfg.tls.cert_file.as_str(), cfg.tls.key_file.as_str()) {
        ("", _) | (_, "") => None,
        (cert, key) => Some(Arc::new(
            http::tls::TlsReloader::load(http::tls::TlsSettings::files(cert.into(), key.into()))
                .map_err(|e| RunError::Tls(e.to_string()))?,
        )),
    };
    // SIGHUP's default action ends the process, and `systemctl reload` sends it: catch it
    // with or without TLS, registered before the listener accepts anything.
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    #[cfg(not(unix))]
    let hup = ();
    let web = match cfg.server.web_config_file.as_str() {
        "" => None,
        path => {
            let path = std::path::PathBuf::from(path);
            let wc = http::web_config::WebConfig::load(&path)
                .map_err(|e| RunError::WebConfig(e.to_string()))?;
            let tls = match wc.tls.clone() {
                Some(s) => Some(Arc::new(
                    http::tls::TlsReloader::load(s)
                        .map_err(|e| RunError::WebConfig(e.to_string()))?,
                )),
                None => None,
            };
            Some(WebSetup {
                path,
                guard: http::web_config::Guard::new(wc),
                tls,
            })
        }
    };
    let reload = Reload {
        web: web.clone(),
        tls: tls.clone(),
        every_seconds: cfg.tls.reload_interval_seconds,
        source,
        in_force: cfg.clone(),
        pipeline: app.pipeline.clone(),
        state: app.state.clone(),
    };
    let _reloader = AbortOnDrop(tokio::spawn(reload.run(hup)));
    let opts = http::serve::ServeOptions {
        max_connections: cfg.server.max_connections,
        header_timeout: Duration::from_secs(cfg.server.header_timeout_seconds),
        write_timeout: Duration::from_secs(cfg.server.write_timeout_seconds),
        tls,
        drain_timeout: Duration::from_secs(30),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let metrics = app.state.metrics.clone();
    let io = |what| move |source| RunError::Io { what, source };
    let addr = listener.local_addr().map_err(io("listener"))?;
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
        let ml = tokio::net::TcpListener::bind(&cfg.server.metrics_listen)
            .await
            .map_err(io("binding server.metrics_listen"))?;
        let maddr = ml.local_addr().map_err(io("metrics listener"))?;
        tracing::info!(%addr, scheme, cdr_path = %cfg.cdr_path, "cdr-exporter listening");
        let mscheme = if mopts_has_tls(&web) { "https" } else { "http" };
        let basic_auth = web.as_ref().is_some_and(|w| w.guard.has_users());
        tracing::info!(addr = %maddr, scheme = mscheme, basic_auth, metrics_path = %cfg.metrics_path, "metrics listening");
        // /metrics is plain HTTP on its own address unless the web config file adds TLS.
        let mopts = http::serve::ServeOptions {
            tls: web.as_ref().and_then(|w| w.tls.clone()),
            ..opts.clone()
        };
        let m = http::serve::serve(
            ml,
            http::metrics_router(app.state.clone(), web.as_ref().map(|w| w.guard.clone())),
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
    // No sweep may run after the final snapshot; a periodic snapshot in progress finishes
    // first (the gate orders them).
    drop(sweeper);
    // A final snapshot makes the next start quick; the journal is there if it fails.
    if let Err(e) = app.pipeline.snapshot().await {
        tracing::warn!(error = %e, "final snapshot failed");
    }
    tracing::info!("cdr-exporter stopped");
    res.map_err(io("serving"))
}

/// A task that is aborted when this is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

/// The metrics listener's web config file, loaded.
#[derive(Clone)]
struct WebSetup {
    path: std::path::PathBuf,
    guard: Arc<http::web_config::Guard>,
    tls: Option<Arc<http::tls::TlsReloader>>,
}

fn mopts_has_tls(web: &Option<WebSetup>) -> bool {
    web.as_ref().is_some_and(|w| w.tls.is_some())
}

/// What SIGHUP (and the TLS file watch) reload.
struct Reload {
    web: Option<WebSetup>,
    tls: Option<Arc<http::tls::TlsReloader>>,
    every_seconds: u64,
    source: Option<ConfigSource>,
    /// The configuration in force, to tell what changed.
    in_force: Config,
    pipeline: Arc<Pipeline>,
    state: Arc<http::AppState>,
}

impl Reload {
    /// Reloads the TLS files on SIGHUP and when they change, and the configuration on SIGHUP.
    #[cfg_attr(not(unix), allow(unused_mut, unused_variables))]
    async fn run(mut self, mut hup: Hangup) {
        let every = self.every_seconds;
        let mut tick = tokio::time::interval(Duration::from_secs(every.max(1)));
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
                _ = tick.tick(), if every > 0 && (self.tls.is_some() || mopts_has_tls(&self.web)) => false,
            };
            if forced {
                tracing::info!("SIGHUP received");
            }
            self.tls(forced);
            if forced {
                self.web_config();
                self.config().await;
            }
        }
    }

    fn tls(&self, forced: bool) {
        let web_tls = self.web.as_ref().and_then(|w| w.tls.as_ref());
        for (which, tls) in [("receiver", self.tls.as_ref()), ("metrics", web_tls)] {
            let Some(tls) = tls else { continue };
            let r = if forced {
                tls.reload().map(|_| true)
            } else {
                tls.reload_if_changed()
            };
            match r {
                Ok(true) => tracing::info!(listener = which, "TLS certificate reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(listener = which, error = %e, "TLS reload failed; the previous certificate stays in use")
                }
            }
        }
    }

    /// Re-reads the web config file: users and headers at once, TLS settings if TLS was
    /// on and stays on (turning it on or off needs a restart: the listener is built so).
    fn web_config(&self) {
        let Some(w) = &self.web else { return };
        let new = match http::web_config::WebConfig::load(&w.path) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "web config file not reloaded; the one in force stays");
                return;
            }
        };
        match (&w.tls, new.tls.clone()) {
            (Some(t), Some(s)) => {
                if let Err(e) = t.replace(s) {
                    tracing::error!(error = %e, "web config file not reloaded; the one in force stays");
                    return;
                }
            }
            (None, None) => {}
            _ => tracing::warn!(
                "web config file: turning TLS on or off for the metrics listener takes a restart"
            ),
        }
        w.guard.replace(new);
        tracing::info!(file = %w.path.display(), "web config file reloaded");
    }

    async fn config(&mut self) {
        let Some(src) = &self.source else {
            tracing::info!(
                "configuration not reloaded: it was not read from a file or the environment"
            );
            return;
        };
        let new = match Config::load(src.file.as_deref(), &src.overrides) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "configuration not reloaded; the one in force stays");
                return;
            }
        };
        let access = match access_for(&new) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "configuration not reloaded; the one in force stays");
                return;
            }
        };
        let mut reloaded = Vec::new();
        let mut relabelled = 0;
        let names = names_for(&new);
        if names != names_for(&self.in_force) {
            relabelled = self.pipeline.set_names(names).await;
            self.in_force.names = new.names.clone();
            reloaded.push("names");
        }
        if access != *self.state.access() {
            self.state.set_access(access);
            self.in_force.auth = new.auth.clone();
            reloaded.push("auth");
        }
        // Compared after the reloadable parts are taken over: what is left needs a restart.
        let before: std::collections::BTreeMap<_, _> =
            summary(&self.in_force).into_iter().collect();
        let after: std::collections::BTreeMap<_, _> = summary(&new).into_iter().collect();
        let restart: Vec<&String> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .chain(before.keys().filter(|k| !after.contains_key(*k)))
            .collect();
        if !restart.is_empty() {
            tracing::warn!(keys = ?restart, "changed in the configuration, applied only at the next start");
        }
        tracing::info!(reloaded = ?reloaded, relabelled_sessions = relabelled, "configuration reloaded");
    }
}

/// What `cdr-exporter demo` simulates (its flags).
#[derive(Clone, Debug, PartialEq)]
pub struct DemoOptions {
    /// New calls per second of simulated time, over the cluster.
    pub calls_per_second: f64,
    pub tenants: usize,
    /// Share of connected legs with heavy packet loss outside the incident.
    pub bad_share: f64,
    /// Simulated time runs this many times faster than the wall clock.
    pub speedup: f64,
    /// One tenant's network degrades for a while (wall-clock times); `None`: no incident.
    pub incident: Option<sim::Incident>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            // 360 calls an hour: about 130 calls in progress in simulated time, 3 new calls a
            // second at 30× (a tenant passes the low-MOS alert's 50 legs in well under a minute).
            calls_per_second: 0.1,
            tenants: 4,
            bad_share: 0.03,
            speedup: 30.0,
            incident: Some(sim::Incident {
                tenant: 0,
                after: Duration::from_secs(120),
                lasts: Duration::from_secs(720),
                bad_share: 0.8,
            }),
        }
    }
}

impl DemoOptions {
    /// The simulator's configuration for a demo posting to `target`.
    pub fn sim_config(&self, target: String) -> sim::SimConfig {
        sim::SimConfig {
            target,
            call_bridges: 3,
            unclustered: 1,
            tenants: self.tenants,
            calls_per_second: self.calls_per_second,
            duration: None,
            // Fixed: the same three Call Bridges (and tenants) on every demo run, each run a
            // new session of theirs, so a kept data dir does not collect new bridges.
            seed: 2024,
            bad_tail: self.bad_share,
            drain_timeout: Duration::from_secs(2),
            progress: false,
            durations: sim::Durations::Realistic,
            speedup: self.speedup,
            incident: self.incident,
            // All three sources: one FreeSWITCH switch and one Kamailio node beside the
            // bridges, at one bridge's call rate each.
            freeswitch_switches: 1,
            kamailio_nodes: 1,
            ..sim::SimConfig::default()
        }
    }
}

/// `cdr-exporter demo`: the exporter on `listener`, fed by an in-process Call Bridge
/// simulator with realistic calls, time-compressed, and a scripted incident (see
/// [`DemoOptions`]) until `shutdown` resolves; then the simulator ends its calls and stops
/// first.
pub async fn demo(
    cfg: Config,
    opts: DemoOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let addr = listener.local_addr().map_err(|source| RunError::Io {
        what: "listener",
        source,
    })?;
    // Listening on every address: talk to ourselves over loopback.
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let base = SocketAddr::new(ip, addr.port());
    let metrics_url = format!("http://{base}{}", cfg.metrics_path);
    let mut sim_cfg = opts.sim_config(format!("http://{base}{}", cfg.cdr_path));
    sim_cfg.freeswitch_target = Some(format!("http://{base}{}", cfg.freeswitch_path));
    sim_cfg.kamailio_target = Some(format!("http://{base}{}", cfg.kamailio_path));
    if let Err(e) = sim_cfg.validate() {
        return Err(RunError::Io {
            what: "demo options",
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
        });
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(run(cfg, listener, async move {
        let _ = stop_rx.await;
    }));
    tracing::info!(
        url = %metrics_url,
        call_bridges = sim_cfg.call_bridges,
        freeswitch_switches = sim_cfg.freeswitch_switches,
        kamailio_nodes = sim_cfg.kamailio_nodes,
        tenants = sim_cfg.tenants,
        calls_per_second = sim_cfg.calls_per_second,
        speedup = sim_cfg.speedup,
        bad_share = sim_cfg.bad_tail,
        seed = sim_cfg.seed,
        "demo: simulated Call Bridges, a FreeSWITCH switch and a Kamailio node are feeding the exporter; open the URL for live metrics (Ctrl-C stops)"
    );
    match &sim_cfg.incident {
        Some(i) => tracing::info!(
            tenant = %sim::tenant_guid(sim_cfg.seed, sim_cfg.call_bridges, sim_cfg.tenants, i.tenant),
            after = %humantime::format_duration(i.after),
            lasts = %humantime::format_duration(i.lasts),
            bad_share = i.bad_share,
            "demo: scripted incident: this tenant's network will degrade (low MOS) for a while, then recover"
        ),
        None => tracing::info!("demo: no scripted incident"),
    }
    // A new simulator process is a new CMS session (correlatorIndex from 0): the exporter
    // cannot tell it from a reboot, and it ends the previous run's calls instead of leaving
    // them active for ever.
    tracing::info!(
        "demo: each start is a new CDR session of the simulated Call Bridges: with a kept data dir, the exporter counts it as a restart of each (cdr_exporter_sessions_total, CmsCallBridgeRestarted) and ends the previous run's calls"
    );
    let simulation = sim::run(sim_cfg, shutdown);
    tokio::select! {
        // The exporter stopped by itself (it could not serve): nothing to demo.
        res = &mut server => return res.map_err(|e| RunError::Io { what: "exporter task", source: std::io::Error::other(e) })?,
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
    server.await.map_err(|e| RunError::Io {
        what: "exporter task",
        source: std::io::Error::other(e),
    })?
}
