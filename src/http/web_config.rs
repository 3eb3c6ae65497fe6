//! The Prometheus exporter-toolkit web configuration file (`--web.config.file`, the format
//! node_exporter and the official exporters read) for the metrics listener: TLS (with client
//! certificates), bcrypt basic-auth users and extra response headers.
//!
//! What the toolkit accepts but rustls cannot do (TLS 1.0/1.1, chosen cipher suites or
//! curves, client certificates requested but not verified) is refused with the key named,
//! never silently ignored: a security setting that does nothing is worse than an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;

use super::tls::{ClientAuth, TlsSettings};

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("{path}: `{key}`: {msg}")]
    Key {
        path: String,
        key: &'static str,
        msg: String,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    tls_server_config: Option<TlsFormat>,
    http_server_config: Option<HttpFormat>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TlsFormat {
    cert_file: Option<String>,
    key_file: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HttpFormat {
    /// We serve HTTP/1.1, which every scraper speaks; the setting changes nothing.
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// A loaded web configuration.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    pub tls: Option<TlsSettings>,
    /// User → bcrypt hash.
    users: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl WebConfig {
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| WebConfigError::File {
            path: p.clone(),
            msg: e.to_string(),
        })?;
        // An empty file is a valid, empty configuration (as in the toolkit).
        let f: FileFormat = if text.trim().is_empty() {
            FileFormat::default()
        } else {
            serde_yaml::from_str(&text).map_err(|e| WebConfigError::File {
                path: p.clone(),
                msg: e.to_string(),
            })?
        };
        let bad = |key, msg: &str| WebConfigError::Key {
            path: p.clone(),
            key,
            msg: msg.to_owned(),
        };
        // Relative paths are relative to the file, as the toolkit reads them.
        let dir = path.parent().unwrap_or(Path::new("."));
        let rel = |s: &str| -> PathBuf {
            let q = Path::new(s);
            if q.is_absolute() {
                q.to_owned()
            } else {
                dir.join(q)
            }
        };
        let tls = match f.tls_server_config {
            None => None,
            Some(t) => {
                if t.cert.is_some() || t.key.is_some() {
                    return Err(bad(
                        "cert",
                        "inline certificates are not supported; use cert_file and key_file",
                    ));
                }
                if t.cipher_suites.is_some() || t.curve_preferences.is_some() {
                    return Err(bad(
                        "cipher_suites",
                        "not supported: rustls' defaults apply (TLS 1.2 and 1.3 AEAD suites)",
                    ));
                }
                if t.client_allowed_sans.is_some() {
                    return Err(bad("client_allowed_sans", "not supported"));
                }
                let _ = t.prefer_server_cipher_suites;
                let (cert, key) = match (t.cert_file, t.key_file) {
                    (Some(c), Some(k)) => (rel(&c), rel(&k)),
                    _ => return Err(bad("tls_server_config", "needs cert_file and key_file")),
                };
                let client_auth = match t.client_auth_type.as_deref().unwrap_or("NoClientCert") {
                    "NoClientCert" => ClientAuth::None,
                    "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
                    "RequireAndVerifyClientCert" => ClientAuth::Require,
                    "RequestClientCert" | "RequireAnyClientCert" => {
                        return Err(bad("client_auth_type", "certificates that are not verified are not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"))
                    }
                    _ => return Err(bad("client_auth_type", "one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert")),
                };
                let client_ca = t.client_ca_file.as_deref().map(rel);
                if client_auth != ClientAuth::None && client_ca.is_none() {
                    return Err(bad(
                        "client_ca_file",
                        "needed to verify client certificates",
                    ));
                }
                let tls13_only = match t.min_version.as_deref().unwrap_or("TLS12") {
                    "TLS12" => false,
                    "TLS13" => true,
                    _ => {
                        return Err(bad(
                            "min_version",
                            "TLS12 or TLS13 (older versions are not supported)",
                        ))
                    }
                };
                match t.max_version.as_deref() {
                    None | Some("TLS13") => {}
                    Some("TLS12") if !tls13_only => {
                        return Err(bad(
                            "max_version",
                            "only TLS13 (TLS 1.3 cannot be turned off)",
                        ))
                    }
                    Some(_) => return Err(bad("max_version", "only TLS13")),
                }
                Some(TlsSettings {
                    cert,
                    key,
                    client_auth,
                    client_ca,
                    tls13_only,
                })
            }
        };
        let users = f.basic_auth_users.unwrap_or_default();
        for (user, hash) in &users {
            if user.contains(':') {
                return Err(bad("basic_auth_users", "a user name must not contain ':'"));
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(WebConfigError::Key {
                    path: p.clone(),
                    key: "basic_auth_users",
                    msg: format!("the hash of {user:?} is not a bcrypt hash ($2y$...)"),
                });
            }
        }
        let mut headers = Vec::new();
        for (k, v) in f
            .http_server_config
            .and_then(|h| h.headers)
            .unwrap_or_default()
        {
            let name = HeaderName::try_from(k.as_str())
                .map_err(|_| bad("headers", &format!("{k:?} is not a header name")))?;
            let value = HeaderValue::try_from(v.as_str()).map_err(|_| {
                bad(
                    "headers",
                    &format!("the value of {k} is not a header value"),
                )
            })?;
            headers.push((name, value));
        }
        Ok(WebConfig {
            tls,
            users,
            headers,
        })
    }
}

/// Most successful (user, password) checks remembered: bcrypt costs tens of milliseconds,
/// and Prometheus sends the same credentials every scrape.
const CACHE: usize = 64;

/// Basic auth and headers for the metrics listener, replaceable on SIGHUP.
pub struct Guard {
    config: RwLock<Arc<WebConfig>>,
    verified: Mutex<std::collections::HashSet<u128>>,
    /// bcrypt runs off the async workers, two at a time: a flood of wrong passwords costs
    /// two cores at most and never stalls batches.
    slots: tokio::sync::Semaphore,
}

impl Guard {
    pub fn new(config: WebConfig) -> Arc<Guard> {
        Arc::new(Guard {
            config: RwLock::new(Arc::new(config)),
            verified: Mutex::new(Default::default()),
            slots: tokio::sync::Semaphore::new(2),
        })
    }

    pub fn replace(&self, config: WebConfig) {
        *self.config.write() = Arc::new(config);
        self.verified.lock().clear();
    }

    /// Whether the request's credentials match a user (always, with no users).
    pub async fn allows(&self, headers: &HeaderMap) -> bool {
        let cfg = self.config.read().clone();
        if cfg.users.is_empty() {
            return true;
        }
        let Some((user, password)) = basic_credentials(headers) else {
            return false;
        };
        // An unknown user costs a bcrypt too, so timing does not tell which users exist.
        let hash = cfg.users.get(&user).cloned();
        let key = {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            for part in [
                user.as_bytes(),
                password.as_bytes(),
                hash.as_deref().unwrap_or("").as_bytes(),
            ] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part);
            }
            h.digest128()
        };
        if hash.is_some() && self.verified.lock().contains(&key) {
            return true;
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        let h = hash.clone().unwrap_or_else(|| DUMMY_HASH.clone());
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &h).unwrap_or(false))
            .await
            .unwrap_or(false)
            && hash.is_some();
        if ok {
            let mut v = self.verified.lock();
            if v.len() >= CACHE {
                v.clear();
            }
            v.insert(key);
        }
        ok
    }

    pub fn has_users(&self) -> bool {
        !self.config.read().users.is_empty()
    }

    /// The configured response headers.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        self.config.read().headers.clone()
    }
}

/// A bcrypt hash at the default cost, checked for unknown users.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    bcrypt::hash("no such user", bcrypt::DEFAULT_COST).unwrap_or_default()
});

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<WebConfig, WebConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(&p, yaml).unwrap();
        WebConfig::load(&p)
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for (yaml, key) in [
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n", "min_version"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "cipher_suites"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n", "client_auth_type"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n", "client_ca_file"),
            ("basic_auth_users:\n  alice: notahash\n", "basic_auth_users"),
        ] {
            let e = load(yaml).unwrap_err().to_string();
            assert!(e.contains(key), "{yaml}: {e}");
        }
        assert!(load("tls_srever_config: {}\n")
            .unwrap_err()
            .to_string()
            .contains("tls_srever_config"));
        assert!(load("").unwrap().users.is_empty());
    }

    #[tokio::test]
    async fn users_need_their_password() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let g = Guard::new(load(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap());
        use base64::Engine;
        let with = |cred: &str| {
            let mut h = HeaderMap::new();
            let v = base64::engine::general_purpose::STANDARD.encode(cred);
            h.insert(header::AUTHORIZATION, format!("Basic {v}").parse().unwrap());
            h
        };
        assert!(g.allows(&with("alice:s3cret")).await);
        assert!(g.allows(&with("alice:s3cret")).await, "cached");
        assert!(!g.allows(&with("alice:wrong")).await);
        assert!(!g.allows(&with("bob:s3cret")).await);
        assert!(!g.allows(&HeaderMap::new()).await);
        g.replace(WebConfig::default());
        assert!(g.allows(&HeaderMap::new()).await, "no users: open");
    }
}
