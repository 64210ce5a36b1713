//! TLS on `PORT` (`TLS_CERT_PATH`, `TLS_KEY_PATH`): rustls with the ring
//! provider. The certificate is loaded at start (a missing file, a file
//! without a certificate or key, or a key that does not belong to the
//! certificate stops the server with a message that says which), and again
//! on SIGHUP or when either file's modification time changes (checked every
//! [`WATCH_INTERVAL`]): new connections get the new certificate, connections
//! already open keep theirs, so no session drops. A reload that fails keeps
//! the certificate in use and logs why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// How often the files' modification times are checked.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The two files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Reads and checks the certificate and key; the error names the setting
/// and the file.
pub fn load(paths: &TlsPaths) -> Result<CertifiedKey, String> {
    let cert_pem = std::fs::read(&paths.cert)
        .map_err(|e| format!("TLS_CERT_PATH {}: cannot read: {e}", paths.cert.display()))?;
    let key_pem = std::fs::read(&paths.key)
        .map_err(|e| format!("TLS_KEY_PATH {}: cannot read: {e}", paths.key.display()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("TLS_CERT_PATH {}: not PEM: {e}", paths.cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "TLS_CERT_PATH {}: no certificate in it (expected PEM, BEGIN CERTIFICATE)",
            paths.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "TLS_KEY_PATH {}: no private key in it (expected PEM: PKCS#8, PKCS#1 or SEC1): {e}",
            paths.key.display()
        )
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "TLS_KEY_PATH {} is not the key of the certificate in TLS_CERT_PATH {}",
            paths.key.display(),
            paths.cert.display()
        ),
        e => format!(
            "TLS_CERT_PATH {} / TLS_KEY_PATH {}: {e}",
            paths.cert.display(),
            paths.key.display()
        ),
    })
}

/// The certificate in use, swapped on reload.
#[derive(Debug)]
pub struct CertStore {
    paths: TlsPaths,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: std::sync::Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl CertStore {
    /// Loads the files (see [`load`]).
    pub fn new(paths: TlsPaths) -> Result<Arc<CertStore>, String> {
        let stamp = (mtime(&paths.cert), mtime(&paths.key));
        let key = load(&paths)?;
        Ok(Arc::new(CertStore {
            paths,
            current: RwLock::new(Arc::new(key)),
            stamp: std::sync::Mutex::new(stamp),
        }))
    }

    /// Loads the files again; on success new connections get them.
    pub fn reload(&self, why: &str) {
        match load(&self.paths) {
            Ok(key) => {
                // A poisoned lock only means a panic elsewhere while it was
                // held; the value (an Arc) is still whole.
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                tracing::info!(cert = %self.paths.cert.display(), why, "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(
                    why,
                    "TLS certificate not reloaded, the previous one stays in use: {e}"
                )
            }
        }
    }

    /// Reloads when either file's modification time changed.
    fn reload_if_changed(&self) {
        let now = (mtime(&self.paths.cert), mtime(&self.paths.key));
        let changed = {
            let mut stamp = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
            let changed = *stamp != now;
            *stamp = now;
            changed
        };
        if changed {
            self.reload("file changed");
        }
    }

    /// The acceptor for the listener (HTTP/1.1 only: WebSocket upgrades).
    pub fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Reloads on SIGHUP and on file changes, for as long as the task runs.
    pub fn watch(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hup =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!("no SIGHUP handler ({e}); TLS files are still watched");
                        None
                    }
                };
            let mut tick = tokio::time::interval(WATCH_INTERVAL);
            loop {
                #[cfg(unix)]
                let hup_recv = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hup_recv = std::future::pending::<Option<()>>();
                tokio::select! {
                    _ = hup_recv => {
                        // Keep the stamp in step so the change is not
                        // reloaded a second time.
                        let now = (mtime(&self.paths.cert), mtime(&self.paths.key));
                        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = now;
                        self.reload("SIGHUP");
                    }
                    _ = tick.tick() => self.reload_if_changed(),
                }
            }
        })
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}
