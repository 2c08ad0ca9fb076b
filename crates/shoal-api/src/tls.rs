//! TLS on the API and agent-link port: rustls with the aws-lc-rs provider (the one provider in
//! the tree), certificates that reload from disk without a restart, and an automatic CA kept
//! in the data dir for operators who bring none.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

/// How often a handshake may look at the certificate files for a change.
const RECHECK: Duration = Duration::from_secs(1);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error(
        "{path}: {message}; give a PEM certificate chain and a PEM private key (--tls-cert, --tls-key)"
    )]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The automatic CA could not be made or kept.
    #[error("cannot create the TLS certificates in {dir}: {message}")]
    AutoCa {
        /// Where they go.
        dir: String,
        /// Why.
        message: String,
    },
}

/// A certificate chain and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&files.cert, e))?;
    if chain.is_empty() {
        return Err(file_error(&files.cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| file_error(&files.key, e))?;
    let certified = CertifiedKey::new(chain, signing);
    // A renewal caught between writing the key and the certificate must not be served.
    certified.keys_match().map_err(|e| {
        file_error(
            &files.key,
            format!(
                "does not belong to the certificate in {} ({e})",
                files.cert.display()
            ),
        )
    })?;
    Ok(Arc::new(certified))
}

fn modified(files: &TlsFiles) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(&files.cert)?, m(&files.key)?))
}

struct Current {
    checked: Instant,
    stamp: Option<(SystemTime, SystemTime)>,
    key: Arc<CertifiedKey>,
}

/// Serves the certificate in `files`, reading them again when their modification time
/// changes (looked at no more than once a second, during a handshake). A file that no longer
/// parses is logged and the previous certificate kept, so a half-written renewal never takes
/// the port down.
struct Reloading {
    files: TlsFiles,
    current: Mutex<Current>,
}

impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("files", &self.files)
            .finish()
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.checked.elapsed() >= RECHECK {
            cur.checked = Instant::now();
            let stamp = modified(&self.files);
            if stamp != cur.stamp {
                match load(&self.files) {
                    Ok(key) => {
                        tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                        cur.key = key;
                        cur.stamp = stamp;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificate changed but cannot be read; still serving the previous one")
                    }
                }
            }
        }
        Some(cur.key.clone())
    }
}

/// A rustls server config over `files`, reloading them when they change.
pub fn server_config(files: TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let key = load(&files)?;
    let resolver = Reloading {
        current: Mutex::new(Current {
            checked: Instant::now(),
            stamp: modified(&files),
            key,
        }),
        files,
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| file_error(Path::new("rustls"), e))?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The automatic CA of an orchestrator: `ca.pem` to give clients, and the server's own
/// certificate signed by it.
#[derive(Debug, Clone)]
pub struct AutoCa {
    /// The CA certificate clients trust (`curl --cacert`, `SHOAL_CA_CERT`).
    pub ca_cert: PathBuf,
    /// `sha256:<hex>` of the CA certificate (DER), for pinning.
    pub ca_hash: String,
    /// The server's certificate and key.
    pub server: TlsFiles,
}

/// `sha256:<hex>` of a PEM certificate file's first certificate.
pub fn cert_hash(pem: &Path) -> Result<String, TlsError> {
    let der = CertificateDer::from_pem_file(pem).map_err(|e| file_error(pem, e))?;
    Ok(format!(
        "sha256:{}",
        hex_lower(&Sha256::digest(der.as_ref()))
    ))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The CA and server certificate in `dir`, made on first use: a CA valid for ten years and a
/// server certificate for `names` (host names or IP addresses; `localhost` and `127.0.0.1` are
/// always included). Keys are written readable by their owner only. Kept files are reused as
/// they are, so clients' trust in the CA survives restarts.
pub fn auto_ca(dir: &Path, names: &[String]) -> Result<AutoCa, TlsError> {
    let err = |m: String| TlsError::AutoCa {
        dir: dir.display().to_string(),
        message: m,
    };
    let ca_cert = dir.join("ca.pem");
    let server = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    if !(ca_cert.exists() && server.cert.exists() && server.key.exists()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| err(e.to_string()))?;
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Shoal orchestrator CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        ca_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let ca_key = rcgen::KeyPair::generate().map_err(|e| err(e.to_string()))?;
        let issuer = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)
            .map_err(|e| err(e.to_string()))?;

        let mut all: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
        all.extend(names.iter().filter(|n| !n.is_empty()).cloned());
        all.dedup();
        let mut params = rcgen::CertificateParams::new(all).map_err(|e| err(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Shoal orchestrator");
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let key = rcgen::KeyPair::generate().map_err(|e| err(e.to_string()))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| err(e.to_string()))?;
        write_private(&server.key, &key.serialize_pem()).map_err(err)?;
        // The CA follows the server's certificate, so an agent that pins the CA by hash
        // (`--ca-hash`) finds it in the handshake.
        std::fs::write(&server.cert, format!("{}{}", cert.pem(), issuer.pem()))
            .map_err(|e| err(e.to_string()))?;
        std::fs::write(&ca_cert, issuer.pem()).map_err(|e| err(e.to_string()))?;
    }
    let ca_hash = cert_hash(&ca_cert)?;
    Ok(AutoCa {
        ca_cert,
        ca_hash,
        server,
    })
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path).map_err(|e| e.to_string())?;
    f.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves (then no new connection is
/// accepted). A failed handshake (plain HTTP on this port, an untrusting client) ends that
/// connection only.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "TLS connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auto_ca_is_made_once_and_its_hash_stays() {
        let dir = tempfile::tempdir().unwrap();
        let first = auto_ca(dir.path(), &["shoal.example".into()]).unwrap();
        assert!(first.ca_hash.starts_with("sha256:"));
        assert_eq!(first.ca_hash.len(), "sha256:".len() + 64);
        let again = auto_ca(dir.path(), &[]).unwrap();
        assert_eq!(
            first.ca_hash, again.ca_hash,
            "a restart keeps the CA clients trust"
        );
        server_config(again.server).expect("the server certificate loads");
    }

    #[test]
    fn a_missing_or_broken_certificate_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let e = server_config(TlsFiles {
            cert: cert.clone(),
            key: dir.path().join("missing.key"),
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("c.pem"), "{e}");
        assert!(e.contains("--tls-cert"), "{e}");
    }
}
