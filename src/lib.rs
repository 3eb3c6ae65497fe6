//! cdr-exporter: a CDR receiver for Cisco Meeting Server that exposes Prometheus metrics.
//!
//! Wiring lives here: [`run`] builds the state from a [`config::Config`] and serves it.

pub mod cdr;
pub mod config;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod quality;
pub mod tracker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use config::Config;
use ingest::{Ingest, Names};
use metrics::{Exposition, LabelLimits, Metrics, ProcessCollector};

/// The exporter's shared state, built from a config.
pub struct App {
    pub ingest: Arc<Ingest>,
    pub state: Arc<http::AppState>,
}

impl App {
    /// Builds the state; fails only on settings `Config::validate` cannot judge alone.
    pub fn new(cfg: &Config) -> Result<App, config::ConfigError> {
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
        let exposition = Exposition::new(metrics, vec![Box::new(ProcessCollector)]);
        let http_cfg = http::HttpConfig {
            cdr_path: cfg.cdr_path.clone(),
            metrics_path: cfg.metrics_path.clone(),
            max_body_bytes: cfg.max_body_bytes,
            quarantine_dir: cfg.data_dir.join("quarantine"),
            quarantine_max_bytes: cfg.quarantine_max_bytes,
            summary: summary(cfg),
        };
        let state = http::AppState::new(ingest.clone(), exposition, http_cfg);
        Ok(App { ingest, state })
    }
}

/// Key/value lines for the landing page.
fn summary(cfg: &Config) -> Vec<(String, String)> {
    let mut v = vec![
        ("listen".to_owned(), cfg.listen.clone()),
        ("cdr_path".to_owned(), cfg.cdr_path.clone()),
        ("metrics_path".to_owned(), cfg.metrics_path.clone()),
        ("data_dir".to_owned(), cfg.data_dir.display().to_string()),
        ("max_body_bytes".to_owned(), cfg.max_body_bytes.to_string()),
        (
            "tracking.max_age_seconds".to_owned(),
            cfg.tracking.max_age_seconds.to_string(),
        ),
        (
            "tracking.max_objects".to_owned(),
            cfg.tracking.max_objects.to_string(),
        ),
        (
            "labels.max_call_bridges".to_owned(),
            cfg.labels.max_call_bridges.to_string(),
        ),
        (
            "labels.max_tenants".to_owned(),
            cfg.labels.max_tenants.to_string(),
        ),
        (
            "labels.max_values".to_owned(),
            cfg.labels.max_values.to_string(),
        ),
    ];
    v.push((
        "names.call_bridges".to_owned(),
        cfg.names.call_bridges.len().to_string(),
    ));
    v.push((
        "names.tenants".to_owned(),
        cfg.names.tenants.len().to_string(),
    ));
    v
}

/// Serves the exporter on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish. Tests bind port 0 and pass their own shutdown future.
pub async fn run(
    cfg: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = App::new(&cfg).map_err(std::io::Error::other)?;
    let sweeper = {
        let ingest = app.ingest.clone();
        let every = Duration::from_secs(cfg.tracking.sweep_interval_seconds);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let n = ingest.sweep(unix_now());
                if n > 0 {
                    tracing::info!(evicted = n, "evicted objects past tracking.max_age_seconds");
                }
            }
        })
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, cdr_path = %cfg.cdr_path, metrics_path = %cfg.metrics_path, "cdr-exporter listening");
    let router = http::router(app.state.clone());
    let res = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    sweeper.abort();
    tracing::info!("cdr-exporter stopped");
    res
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
