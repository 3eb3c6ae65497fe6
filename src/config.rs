//! The one `Config` struct: built-in defaults < TOML file < `CDR_EXPORTER_*` environment < flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Prefix of environment variables; nested keys use `__` (e.g. `CDR_EXPORTER_TRACKING__MAX_AGE_SECONDS`).
pub const ENV_PREFIX: &str = "CDR_EXPORTER_";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the receiver and `/metrics` listen on.
    pub listen: String,
    /// Path Call Bridges POST their records to.
    pub cdr_path: String,
    /// Path Prometheus scrapes.
    pub metrics_path: String,
    /// Where the exporter keeps its state (quarantined bodies now; journal and snapshots later).
    pub data_dir: PathBuf,
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter such as `cdr_exporter=debug`.
    pub log_level: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Largest POST body accepted; larger ones get 413.
    pub max_body_bytes: u64,
    /// Total size of rejected bodies kept in `data_dir/quarantine` (0 disables).
    pub quarantine_max_bytes: u64,
    pub tracking: Tracking,
    pub labels: Labels,
    pub names: Names,
    pub mos: Mos,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tracking {
    /// Calls, legs, recordings and streamings with no end record after this long are evicted.
    pub max_age_seconds: u64,
    /// At most this many objects of each kind per Call Bridge session.
    pub max_objects: usize,
    /// How often the max-age sweep runs.
    pub sweep_interval_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Labels {
    /// Distinct `call_bridge` values before new ones become `other`.
    pub max_call_bridges: usize,
    /// Distinct `tenant` values before new ones become `other`.
    pub max_tenants: usize,
    /// Distinct values of every other label (reason, record_type, ...).
    pub max_values: usize,
}

/// The MOS estimate's assumptions (see README "How MOS is estimated").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mos {
    /// One-way delay Ta (ms) assumed for every leg; 0 = listening quality only.
    pub assumed_delay_ms: f64,
    /// Per-codec overrides of the impairment table, e.g. `g729 = { ie = 11, bpl = 19 }`.
    pub codecs: BTreeMap<String, CodecValues>,
}

/// Equipment impairment `ie` and packet-loss robustness `bpl` of one codec (ITU-T G.113).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodecValues {
    pub ie: f64,
    pub bpl: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Names {
    /// Call Bridge GUID (or `?call_bridge=` value, or address) → `call_bridge` label.
    pub call_bridges: BTreeMap<String, String>,
    /// Tenant GUID → `tenant` label.
    pub tenants: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:19477".into(),
            cdr_path: "/cdr".into(),
            metrics_path: "/metrics".into(),
            data_dir: PathBuf::from("./data"),
            log_level: "info".into(),
            log_format: LogFormat::Text,
            max_body_bytes: 8 * 1024 * 1024,
            quarantine_max_bytes: 16 * 1024 * 1024,
            tracking: Tracking::default(),
            labels: Labels::default(),
            names: Names::default(),
            mos: Mos::default(),
        }
    }
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            max_age_seconds: 2 * 86400,
            max_objects: 500_000,
            sweep_interval_seconds: 60,
        }
    }
}

impl Default for Labels {
    fn default() -> Self {
        Labels {
            max_call_bridges: 256,
            max_tenants: 2000,
            max_values: 64,
        }
    }
}

/// Command-line values; `None` leaves the lower layers in force.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("invalid configuration: key `{key}`: {msg}")]
    Invalid { key: &'static str, msg: String },
}

impl Config {
    /// Loads the layers in order and validates the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        Self::load_with_env(file, overrides, Env::prefixed(ENV_PREFIX).split("__"))
    }

    fn load_with_env(
        file: Option<&Path>,
        overrides: &Overrides,
        env: Env,
    ) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::MissingFile(f.to_owned()));
            }
            fig = fig.merge(Toml::file_exact(f));
        }
        let cfg: Config = fig
            .merge(env)
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, msg: String| Err(ConfigError::Invalid { key, msg });
        if let Err(e) = self.listen.parse::<SocketAddr>() {
            return bad(
                "listen",
                format!("{:?} is not an address:port ({e})", self.listen),
            );
        }
        for (key, p) in [
            ("cdr_path", &self.cdr_path),
            ("metrics_path", &self.metrics_path),
        ] {
            if !p.starts_with('/') || p.contains(char::is_whitespace) {
                return bad(key, format!("{p:?} must be a path starting with /"));
            }
        }
        if self.cdr_path == self.metrics_path {
            return bad("cdr_path", "must differ from metrics_path".into());
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return bad(
                "log_level",
                format!("{:?} is not a level or tracing filter", self.log_level),
            );
        }
        if self.max_body_bytes < 1024 {
            return bad("max_body_bytes", "must be at least 1024".into());
        }
        if self.tracking.max_age_seconds == 0 {
            return bad("tracking.max_age_seconds", "must be positive".into());
        }
        if self.tracking.max_objects < 10 {
            return bad("tracking.max_objects", "must be at least 10".into());
        }
        if self.tracking.sweep_interval_seconds == 0 {
            return bad("tracking.sweep_interval_seconds", "must be positive".into());
        }
        if !(self.mos.assumed_delay_ms.is_finite() && self.mos.assumed_delay_ms >= 0.0) {
            return bad(
                "mos.assumed_delay_ms",
                "must be a non-negative number of milliseconds".into(),
            );
        }
        for (key, v) in [
            ("labels.max_call_bridges", self.labels.max_call_bridges),
            ("labels.max_tenants", self.labels.max_tenants),
            ("labels.max_values", self.labels.max_values),
        ] {
            if v == 0 {
                return bad(key, "must be positive".into());
            }
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated")
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;

    fn env_none() -> Env {
        Env::prefixed("CDR_EXPORTER_TEST_NOTHING_")
    }

    #[test]
    fn defaults_validate() {
        let c = Config::load_with_env(None, &Overrides::default(), env_none()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen, "0.0.0.0:19477");
    }

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "listen = \"127.0.0.1:1\"\nlog_level = \"debug\"\n[tracking]\nmax_objects = 99\n",
            )?;
            jail.set_env("CDR_EXPORTER_LISTEN", "127.0.0.1:2");
            jail.set_env("CDR_EXPORTER_TRACKING__MAX_AGE_SECONDS", "77");
            let o = Overrides {
                log_level: Some("warn".into()),
                ..Default::default()
            };
            let c = Config::load(Some(Path::new("c.toml")), &o).map_err(|e| e.to_string())?;
            assert_eq!(c.listen, "127.0.0.1:2", "env beats file");
            assert_eq!(c.log_level, "warn", "flag beats file");
            assert_eq!(c.tracking.max_objects, 99, "file beats default");
            assert_eq!(c.tracking.max_age_seconds, 77, "nested env key");
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[tracking]\nmax_objects = \"many\"\n")?;
            let e = Config::load(Some(Path::new("bad.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("max_objects"), "{e}");
            jail.create_file("typo.toml", "listn = \"1.2.3.4:5\"\n")?;
            let e = Config::load(Some(Path::new("typo.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("listn"), "{e}");
            let o = Overrides {
                listen: Some("nonsense".into()),
                ..Default::default()
            };
            let e = Config::load(None, &o).unwrap_err().to_string();
            assert!(e.contains("`listen`"), "{e}");
            let e = Config::load(Some(Path::new("missing.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("missing.toml"), "{e}");
            Ok(())
        });
    }
}
