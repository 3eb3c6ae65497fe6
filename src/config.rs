//! The one `Config` struct: built-in defaults < TOML file < `CDR_EXPORTER_*` environment < flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// What a secret is shown as.
pub const MASKED: &str = "(set, not shown)";

/// Prefix of environment variables; nested keys use `__` (e.g. `CDR_EXPORTER_TRACKING__MAX_AGE_SECONDS`).
pub const ENV_PREFIX: &str = "CDR_EXPORTER_";

/// Variables with the prefix that are not configuration keys but flags of the command line
/// (`--config`, `import-freeswitch --token`, `--user`).
pub const ENV_FLAGS: &[&str] = &["CONFIG", "IMPORT_TOKEN", "IMPORT_USER", "WEB_CONFIG_FILE"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the receiver and `/metrics` listen on.
    pub listen: String,
    /// Path Call Bridges POST their records to.
    pub cdr_path: String,
    /// Path FreeSWITCH mod_xml_cdr / mod_json_cdr POSTs its CDRs to.
    pub freeswitch_path: String,
    /// Path Kamailio POSTs its rtpengine MOS reports to.
    pub kamailio_path: String,
    /// Path Prometheus scrapes.
    pub metrics_path: String,
    /// Where the exporter keeps its state: `journal/`, `snapshots/`, `quarantine/` and a `lock`.
    pub data_dir: PathBuf,
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter such as `cdr_exporter=debug`.
    pub log_level: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Largest POST body accepted; larger ones get 413.
    pub max_body_bytes: u64,
    /// Total size of rejected bodies kept in `data_dir/quarantine` (0 disables).
    pub quarantine_max_bytes: u64,
    /// Number of rejected bodies kept in `data_dir/quarantine` (0 disables).
    pub quarantine_max_files: usize,
    pub tracking: Tracking,
    pub labels: Labels,
    pub dedupe: Dedupe,
    pub names: Names,
    pub mos: Mos,
    pub journal: JournalCfg,
    pub snapshot: SnapshotCfg,
    pub server: Server,
    pub tls: Tls,
    pub auth: Auth,
}

/// When accepted batches are forced to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Before every 200 (group commit across concurrent requests).
    Always,
    /// Every `fsync_interval_ms`.
    Interval,
    /// Left to the operating system.
    Never,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalCfg {
    pub fsync: Fsync,
    pub fsync_interval_ms: u64,
    /// A new segment file is started beyond this size.
    pub segment_max_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotCfg {
    /// How often all state is snapshotted (and older journal segments pruned).
    pub interval_seconds: u64,
    /// Snapshots kept on disk.
    pub keep: usize,
    /// Journal bytes written since the last snapshot that start the next one at once, so the
    /// journal on disk stays within about twice this whatever the senders' rate.
    pub journal_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// A separate address for /metrics (and the probes); empty serves it on `listen`.
    pub metrics_listen: String,
    /// Prometheus exporter-toolkit web config file (TLS, basic auth users, headers) for the
    /// metrics listener (flag `--web.config.file`); needs `metrics_listen`.
    pub web_config_file: String,
    /// Connections beyond this are closed at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (also bounds idle keep-alive).
    pub header_timeout_seconds: u64,
    /// Time a client has to send a request's body.
    pub body_timeout_seconds: u64,
    /// A connection whose answer cannot be written for this long (the client does not read)
    /// is dropped.
    pub write_timeout_seconds: u64,
    /// Request bodies held at once over all connections; beyond it new batches get 503.
    pub max_inflight_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain; with `key_file`, the listener speaks HTTPS (TLS 1.2 and 1.3).
    pub cert_file: String,
    /// PEM private key.
    pub key_file: String,
    /// How often the files are checked for changes (SIGHUP reloads at once). 0 disables polling.
    pub reload_interval_seconds: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Shared secret required on the CDR path: `?token=...` in the receiver URI or
    /// `Authorization: Bearer ...`. Empty disables the check.
    pub token: String,
    /// File holding the token (first line), instead of putting it in the config.
    pub token_file: String,
    /// Networks (CIDR) allowed to POST records; empty allows every address.
    pub allow: Vec<String>,
    /// HTTP basic credentials accepted on the receiver paths (FreeSWITCH `cred`), beside
    /// the token: either one lets a request in. Empty disables.
    pub basic_user: String,
    pub basic_password: String,
    /// File holding the basic password (first line), instead of `basic_password`.
    pub basic_password_file: String,
}

/// The memories of FreeSWITCH legs and rtpengine calls already applied, one per source:
/// a retry after a lost 200 is answered 200 and not counted again while it is remembered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dedupe {
    /// Entries per source (about 40 bytes each in memory, 20 in a snapshot); beyond it the
    /// oldest tenth is forgotten (counted).
    pub max_entries: usize,
    /// Entries older than this are forgotten (counted): the window in which a retry or an
    /// `import-freeswitch` of the same leg is recognised.
    pub max_age_seconds: u64,
}

impl Default for Dedupe {
    fn default() -> Self {
        Dedupe {
            max_entries: 1_000_000,
            max_age_seconds: 7 * 86400,
        }
    }
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
    /// At most this many objects of each kind in all (a session above its fair share evicts
    /// its own oldest first).
    pub max_objects: usize,
    /// Call Bridge identities tracked (GUID, URI parameter or address); the least recently
    /// active beyond it are forgotten.
    pub max_call_bridges: usize,
    /// Sessions remembered per identity: live streams sharing it and replaced sessions kept
    /// to recognise late copies.
    pub sessions_per_call_bridge: usize,
    /// How often the max-age sweep runs.
    pub sweep_interval_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Labels {
    /// Distinct `call_bridge` values before new ones become `other`.
    pub max_call_bridges: usize,
    /// Distinct `tenant` values (CMS) before new ones become `other`.
    pub max_tenants: usize,
    /// Distinct FreeSWITCH `switch` values.
    pub max_switches: usize,
    /// Distinct Kamailio/rtpengine `node` values.
    pub max_nodes: usize,
    /// Distinct FreeSWITCH `domain` values, and the same again for rtpengine `tenant`.
    pub max_domains: usize,
    /// Distinct values of every other label (reason, record_type, ...).
    pub max_values: usize,
    /// Longest label value, in bytes; longer values become `other` (counted).
    pub max_value_bytes: usize,
    /// Series in all families; beyond it new label combinations become `other` (counted).
    pub max_series: usize,
    /// Per-tenant detail: `compact` (calls, legs, MOS, alarms) or `full` (also end reasons,
    /// packet loss and durations per tenant).
    pub tenant_detail: TenantDetail,
    /// Labels to drop per family, e.g. `cms_call_legs_ended_total = ["remote_teardown"]`.
    pub drop: BTreeMap<String, Vec<String>>,
}

/// How much per-tenant detail `/metrics` carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantDetail {
    #[default]
    Compact,
    Full,
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
            freeswitch_path: "/freeswitch/cdr".into(),
            kamailio_path: "/kamailio/mos".into(),
            metrics_path: "/metrics".into(),
            data_dir: PathBuf::from("./data"),
            log_level: "info".into(),
            log_format: LogFormat::Text,
            max_body_bytes: 8 * 1024 * 1024,
            quarantine_max_bytes: 16 * 1024 * 1024,
            quarantine_max_files: 1000,
            tracking: Tracking::default(),
            labels: Labels::default(),
            dedupe: Dedupe::default(),
            names: Names::default(),
            mos: Mos::default(),
            journal: JournalCfg::default(),
            snapshot: SnapshotCfg::default(),
            server: Server::default(),
            tls: Tls::default(),
            auth: Auth::default(),
        }
    }
}

impl Default for JournalCfg {
    fn default() -> Self {
        JournalCfg {
            fsync: Fsync::Always,
            fsync_interval_ms: 1000,
            segment_max_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for SnapshotCfg {
    fn default() -> Self {
        SnapshotCfg {
            interval_seconds: 300,
            keep: 2,
            journal_bytes: 128 * 1024 * 1024,
        }
    }
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            cert_file: String::new(),
            key_file: String::new(),
            reload_interval_seconds: 10,
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Server {
            metrics_listen: String::new(),
            web_config_file: String::new(),
            max_connections: 1024,
            header_timeout_seconds: 30,
            body_timeout_seconds: 60,
            write_timeout_seconds: 10,
            max_inflight_bytes: 128 * 1024 * 1024,
        }
    }
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            max_age_seconds: 2 * 86400,
            max_objects: 500_000,
            max_call_bridges: 512,
            sessions_per_call_bridge: 8,
            sweep_interval_seconds: 60,
        }
    }
}

impl Default for Labels {
    fn default() -> Self {
        Labels {
            max_call_bridges: 256,
            max_tenants: 2000,
            max_switches: 256,
            max_nodes: 256,
            max_domains: 2000,
            max_values: 64,
            max_value_bytes: 128,
            max_series: 150_000,
            tenant_detail: TenantDetail::Compact,
            drop: BTreeMap::new(),
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
    /// `--web.config.file`: becomes `server.web_config_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerOverrides>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerOverrides {
    pub web_config_file: String,
}

/// Why the configuration cannot be used; `Display` is one line naming the key and where it
/// came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Layer(String),
    #[error("invalid configuration: key `{key}`: {msg}")]
    Invalid { key: &'static str, msg: String },
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        ConfigError::Layer(describe(e))
    }
}

/// Each figment error as `key `a.b` (in FILE | from VAR): what is wrong; valid: ...`,
/// without the profile name figment puts in front of every key.
fn describe(e: figment::Error) -> String {
    use figment::error::Kind;
    let mut parts = Vec::new();
    for e in e {
        let key = e.path.join(".");
        let place = match &e.metadata {
            Some(md) => match &md.source {
                Some(figment::Source::File(p)) => format!(" in {}", p.display()),
                _ if md.name.contains("environment") => {
                    let var: String = e
                        .path
                        .iter()
                        .map(|p| p.to_uppercase())
                        .collect::<Vec<_>>()
                        .join("__");
                    format!(" from {ENV_PREFIX}{var}")
                }
                _ => String::new(),
            },
            None => String::new(),
        };
        let what = match &e.kind {
            Kind::UnknownField(f, valid) => {
                format!("unknown key `{f}`; valid keys here: {}", valid.join(", "))
            }
            Kind::UnknownVariant(v, valid) => {
                format!("`{v}` is not one of: {}", valid.join(", "))
            }
            Kind::InvalidType(actual, expected) => format!("expected {expected}, found {actual}"),
            Kind::InvalidValue(actual, expected) => {
                format!("expected {expected}, found {actual}")
            }
            other => other.to_string(),
        };
        parts.push(if key.is_empty() {
            format!("{what}{place}")
        } else {
            format!("key `{key}`{place}: {what}")
        });
    }
    parts.join("; ")
}

/// The environment layer: `CDR_EXPORTER_*` variables that name a key. Others (Kubernetes
/// injects `CDR_EXPORTER_PORT` for a Service named `cdr-exporter`) are left out and
/// reported by [`unknown_env_vars`], never fatal.
fn env_layer() -> Env {
    Env::prefixed(ENV_PREFIX)
        .split("__")
        .filter(|k| is_key(k.as_str()))
}

/// Whether a dotted key (from the environment) names a configuration key: a leaf of the
/// defaults, or anything inside a map (`names.call_bridges.*`, `labels.drop.*`, `mos.codecs.*`).
fn is_key(dotted: &str) -> bool {
    let tree = toml::Value::try_from(Config::default()).expect("defaults serialise");
    let mut node = &tree;
    for part in dotted.split('.') {
        match node {
            // An empty table in the defaults is a map: any key may go in it.
            toml::Value::Table(t) if t.is_empty() => return true,
            toml::Value::Table(t) => match t.get(&part.to_ascii_lowercase()) {
                Some(v) => node = v,
                None => return false,
            },
            _ => return false,
        }
    }
    true
}

/// `CDR_EXPORTER_*` variables that are neither a key nor a flag: to warn about at start.
pub fn unknown_env_vars() -> Vec<String> {
    let mut v: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter_map(|k| {
            let rest = k.strip_prefix(ENV_PREFIX)?;
            let dotted = rest.replace("__", ".");
            (!ENV_FLAGS.contains(&rest) && !is_key(&dotted)).then_some(k)
        })
        .collect();
    v.sort();
    v
}

impl Config {
    /// Loads the layers in order and validates the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        Self::load_with_env(file, overrides, env_layer())
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
            .extract()?;
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
        let paths = [
            ("cdr_path", &self.cdr_path),
            ("freeswitch_path", &self.freeswitch_path),
            ("kamailio_path", &self.kamailio_path),
            ("metrics_path", &self.metrics_path),
        ];
        for (i, (key, p)) in paths.iter().enumerate() {
            if !p.starts_with('/') || p.contains(char::is_whitespace) {
                return bad(key, format!("{p:?} must be a path starting with /"));
            }
            let norm = |p: &str| p.trim_end_matches('/').to_owned();
            if let Some((other, _)) = paths[i + 1..].iter().find(|(_, q)| norm(q) == norm(p)) {
                return bad(key, format!("must differ from {other}"));
            }
        }
        for (key, p) in &paths[1..3] {
            if p.trim_end_matches('/').is_empty() {
                return bad(key, "must not be / (POST / is the CMS receiver)".into());
            }
        }
        if let Err(msg) = check_log_level(&self.log_level) {
            return bad("log_level", msg);
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
        if !self.server.web_config_file.is_empty() && self.server.metrics_listen.is_empty() {
            return bad(
                "server.web_config_file",
                "applies to the metrics listener: set server.metrics_listen too (the receiver's TLS is tls.cert_file / tls.key_file)".into(),
            );
        }
        if !self.server.metrics_listen.is_empty() {
            if let Err(e) = self.server.metrics_listen.parse::<SocketAddr>() {
                return bad(
                    "server.metrics_listen",
                    format!(
                        "{:?} is not an address:port ({e})",
                        self.server.metrics_listen
                    ),
                );
            }
        }
        for (key, v) in [
            ("server.max_connections", self.server.max_connections as u64),
            (
                "server.header_timeout_seconds",
                self.server.header_timeout_seconds,
            ),
            (
                "server.body_timeout_seconds",
                self.server.body_timeout_seconds,
            ),
            (
                "server.write_timeout_seconds",
                self.server.write_timeout_seconds,
            ),
            (
                "tracking.max_call_bridges",
                self.tracking.max_call_bridges as u64,
            ),
            ("snapshot.interval_seconds", self.snapshot.interval_seconds),
            ("snapshot.keep", self.snapshot.keep as u64),
            ("journal.fsync_interval_ms", self.journal.fsync_interval_ms),
        ] {
            if v == 0 {
                return bad(key, "must be positive".into());
            }
        }
        if self.server.max_inflight_bytes < self.max_body_bytes {
            return bad(
                "server.max_inflight_bytes",
                format!(
                    "must be at least max_body_bytes ({}), or no full-size body fits",
                    self.max_body_bytes
                ),
            );
        }
        if self.tracking.sessions_per_call_bridge < 2 {
            return bad(
                "tracking.sessions_per_call_bridge",
                "must be at least 2 (the live session and the one it replaced)".into(),
            );
        }
        if !(16..=4096).contains(&self.labels.max_value_bytes) {
            return bad(
                "labels.max_value_bytes",
                "must be between 16 and 4096".into(),
            );
        }
        for (key, map) in [
            ("names.call_bridges", &self.names.call_bridges),
            ("names.tenants", &self.names.tenants),
        ] {
            if let Some(v) = map.values().find(|v| v.len() > self.labels.max_value_bytes) {
                return bad(
                    key,
                    format!(
                        "the name {v:?} is longer than labels.max_value_bytes ({})",
                        self.labels.max_value_bytes
                    ),
                );
            }
        }
        if self.snapshot.journal_bytes < self.max_body_bytes {
            return bad(
                "snapshot.journal_bytes",
                format!("must be at least max_body_bytes ({})", self.max_body_bytes),
            );
        }
        if self.journal.segment_max_bytes < 4096 {
            return bad("journal.segment_max_bytes", "must be at least 4096".into());
        }
        if self.tls.cert_file.is_empty() != self.tls.key_file.is_empty() {
            let key = if self.tls.cert_file.is_empty() {
                "tls.cert_file"
            } else {
                "tls.key_file"
            };
            return bad(key, "tls.cert_file and tls.key_file go together".into());
        }
        if !self.auth.token.is_empty() && !self.auth.token_file.is_empty() {
            return bad(
                "auth.token_file",
                "set auth.token or auth.token_file, not both".into(),
            );
        }
        if !self.auth.basic_password.is_empty() && !self.auth.basic_password_file.is_empty() {
            return bad(
                "auth.basic_password_file",
                "set auth.basic_password or auth.basic_password_file, not both".into(),
            );
        }
        let has_password =
            !self.auth.basic_password.is_empty() || !self.auth.basic_password_file.is_empty();
        if self.auth.basic_user.is_empty() && has_password {
            return bad("auth.basic_user", "a basic password needs a user".into());
        }
        if self.auth.basic_user.contains(':') {
            return bad("auth.basic_user", "must not contain ':'".into());
        }
        if !self.auth.basic_user.is_empty() && !has_password {
            return bad(
                "auth.basic_password",
                "auth.basic_user needs auth.basic_password or auth.basic_password_file".into(),
            );
        }
        if self.dedupe.max_entries < 100 {
            return bad("dedupe.max_entries", "must be at least 100".into());
        }
        if self.dedupe.max_age_seconds == 0 {
            return bad("dedupe.max_age_seconds", "must be positive".into());
        }
        for net in &self.auth.allow {
            if parse_net(net).is_none() {
                return bad(
                    "auth.allow",
                    format!("{net:?} is not an address or CIDR network"),
                );
            }
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
            ("labels.max_switches", self.labels.max_switches),
            ("labels.max_nodes", self.labels.max_nodes),
            ("labels.max_domains", self.labels.max_domains),
            ("labels.max_values", self.labels.max_values),
            ("labels.max_series", self.labels.max_series),
        ] {
            if v == 0 {
                return bad(key, "must be positive".into());
            }
        }
        Ok(())
    }

    /// The configuration as TOML, with secrets masked (for `--print-config` and the
    /// landing page: a token must never be shown).
    pub fn to_masked_toml(&self) -> String {
        let mut c = self.clone();
        if !c.auth.token.is_empty() {
            c.auth.token = MASKED.into();
        }
        if !c.auth.basic_password.is_empty() {
            c.auth.basic_password = MASKED.into();
        }
        toml::to_string_pretty(&c).unwrap_or_default()
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated")
    }

    /// The allowlist as networks (validated).
    pub fn allowed_networks(&self) -> Vec<ipnet::IpNet> {
        self.auth
            .allow
            .iter()
            .filter_map(|n| parse_net(n))
            .collect()
    }

    /// The shared secret, from `auth.token` or `auth.token_file`.
    pub fn token(&self) -> Result<Option<String>, ConfigError> {
        secret(&self.auth.token, &self.auth.token_file, "auth.token_file")
    }

    /// The basic credentials (user, password), from `auth.basic_*`.
    pub fn basic_credentials(&self) -> Result<Option<(String, String)>, ConfigError> {
        if self.auth.basic_user.is_empty() {
            return Ok(None);
        }
        let pw = secret(
            &self.auth.basic_password,
            &self.auth.basic_password_file,
            "auth.basic_password_file",
        )?;
        Ok(pw.map(|p| (self.auth.basic_user.clone(), p)))
    }
}

/// A secret given inline or as a file (its first line, trimmed).
fn secret(value: &str, file: &str, key: &'static str) -> Result<Option<String>, ConfigError> {
    if !value.is_empty() {
        return Ok(Some(value.to_owned()));
    }
    if file.is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError::Invalid {
        key,
        msg: format!("{file}: {e}"),
    })?;
    let t = text.lines().next().unwrap_or("").trim().to_owned();
    if t.is_empty() {
        return Err(ConfigError::Invalid {
            key,
            msg: "the file is empty".into(),
        });
    }
    Ok(Some(t))
}

/// Levels `log_level` accepts, alone or after `target=`.
pub const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// A level, or a tracing filter whose every directive names a level (`cdr_exporter=debug,info`).
/// tracing would read a lone `inf` as "everything from target inf" and log nothing else.
fn check_log_level(s: &str) -> Result<(), String> {
    let is_level = |l: &str| LOG_LEVELS.iter().any(|v| v.eq_ignore_ascii_case(l.trim()));
    let valid = || {
        format!(
            "use one of {} or target=level directives",
            LOG_LEVELS.join(", ")
        )
    };
    if s.trim().is_empty() {
        return Err(format!("empty; {}", valid()));
    }
    for d in s.split(',') {
        let level = match d.rsplit_once('=') {
            Some((_, l)) => l,
            None => d,
        };
        if !is_level(level) {
            let whole = if d == s {
                String::new()
            } else {
                format!(" in {s:?}")
            };
            return Err(format!("{d:?}{whole} is not a level; {}", valid()));
        }
    }
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| ())
        .map_err(|e| format!("{s:?}: {e}; {}", valid()))
}

/// An address (`10.0.0.5`) or a network (`10.0.0.0/8`).
fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
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
