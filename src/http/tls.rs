//! TLS for the receiver: rustls (TLS 1.2 and 1.3) from PEM files, reloaded without a restart.

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

/// Builds a server config from a PEM certificate chain and private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, e))?;
    if certs.is_empty() {
        return Err(file_err(cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The config in force, and how to notice that its files changed.
pub struct TlsReloader {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
    stamp: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl TlsReloader {
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<TlsReloader, TlsError> {
        let cfg = server_config(&cert, &key)?;
        let stamp = (mtime(&cert), mtime(&key));
        Ok(TlsReloader {
            cert,
            key,
            current: RwLock::new(cfg),
            stamp: Mutex::new(stamp),
        })
    }

    /// The acceptor for a new connection (connections keep the config they started with).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }

    /// Re-reads the files. On error the old config stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let cfg = server_config(&self.cert, &self.key)?;
        *self.current.write() = cfg;
        *self.stamp.lock() = (mtime(&self.cert), mtime(&self.key));
        Ok(())
    }

    /// Reloads if either file's modification time changed; true if it did reload.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = (mtime(&self.cert), mtime(&self.key));
        if *self.stamp.lock() == now {
            return Ok(false);
        }
        self.reload().map(|_| true)
    }
}
