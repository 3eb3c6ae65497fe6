//! TLS for the receiver and the metrics listener: rustls (TLS 1.2 and 1.3) from PEM files,
//! optionally verifying client certificates, reloaded without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

/// Whether and how clients present certificates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    #[default]
    None,
    /// Verified against the client CA when presented.
    VerifyIfGiven,
    /// Required and verified.
    Require,
}

/// Where the certificate and key are, and what clients must show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca: Option<PathBuf>,
    /// TLS 1.3 only (else 1.2 and 1.3).
    pub tls13_only: bool,
}

impl TlsSettings {
    pub fn files(cert: PathBuf, key: PathBuf) -> TlsSettings {
        TlsSettings {
            cert,
            key,
            ..TlsSettings::default()
        }
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// Builds a server config from the PEM files.
pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certs(&s.cert)?;
    let key = PrivateKeyDer::from_pem_file(&s.key).map_err(|e| file_err(&s.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if s.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let builder = match (s.client_auth, &s.client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError::File {
                path: "client_ca_file".into(),
                msg: "client certificates are verified against it: set it".into(),
            })
        }
        (auth, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| file_err(ca, e))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let v = if auth == ClientAuth::VerifyIfGiven {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| file_err(ca, e))?)
        }
    };
    let mut cfg = builder.with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The config in force, and how to notice that its files changed.
pub struct TlsReloader {
    settings: RwLock<TlsSettings>,
    current: RwLock<Arc<ServerConfig>>,
    stamp: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl TlsReloader {
    pub fn load(settings: TlsSettings) -> Result<TlsReloader, TlsError> {
        let cfg = server_config(&settings)?;
        let stamp = (mtime(&settings.cert), mtime(&settings.key));
        Ok(TlsReloader {
            settings: RwLock::new(settings),
            current: RwLock::new(cfg),
            stamp: Mutex::new(stamp),
        })
    }

    /// New settings (a reloaded web config file); on error the old ones stay in force.
    pub fn replace(&self, settings: TlsSettings) -> Result<(), TlsError> {
        let cfg = server_config(&settings)?;
        *self.stamp.lock() = (mtime(&settings.cert), mtime(&settings.key));
        *self.settings.write() = settings;
        *self.current.write() = cfg;
        Ok(())
    }

    /// The acceptor for a new connection (connections keep the config they started with).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }

    /// Re-reads the files. On error the old config stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let s = self.settings.read().clone();
        let cfg = server_config(&s)?;
        *self.current.write() = cfg;
        *self.stamp.lock() = (mtime(&s.cert), mtime(&s.key));
        Ok(())
    }

    /// Reloads if either file's modification time changed; true if it did reload.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = {
            let s = self.settings.read();
            (mtime(&s.cert), mtime(&s.key))
        };
        if *self.stamp.lock() == now {
            return Ok(false);
        }
        self.reload().map(|_| true)
    }
}
