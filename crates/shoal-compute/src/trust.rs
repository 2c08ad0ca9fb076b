//! Whom the agent trusts when it dials a `wss://` orchestrator.
//!
//! Three ways, in the order an operator meets them:
//! - the machine's own roots (an orchestrator with a publicly trusted certificate);
//! - `--ca-cert FILE`: exactly this CA (the orchestrator's `orchestrator/tls/ca.pem`);
//! - `--ca-hash sha256:<hex>`: the CA whose certificate has this hash, as `serve --tls`
//!   prints it. The orchestrator presents its CA after its own certificate; the agent checks
//!   that CA against the pin and the server's certificate against that CA (chain, name,
//!   validity), so nothing needs copying to the node but one line. There is no way to skip the
//!   check: a node that trusts nothing in particular trusts the system roots.

use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn config(
    verifier: Option<Arc<dyn ServerCertVerifier>>,
    roots: RootCertStore,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match verifier {
        Some(v) => builder
            .dangerous()
            .with_custom_certificate_verifier(v)
            .with_no_client_auth(),
        None => builder.with_root_certificates(roots).with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Trust exactly the CA certificate(s) in `pem`.
pub fn trust_ca_pem(pem: &[u8]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(pem) {
        let der = der.map_err(|e| format!("the CA file is not PEM certificates: {e}"))?;
        roots
            .add(der)
            .map_err(|e| format!("the CA certificate is not usable: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA file holds no certificate".into());
    }
    config(None, roots)
}

/// Trust the CA whose certificate's SHA-256 is `pin` (`sha256:<64 hex>`).
pub fn trust_pinned_ca(pin: &str) -> Result<Arc<ClientConfig>, String> {
    let hex = pin
        .strip_prefix("sha256:")
        .unwrap_or(pin)
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "--ca-hash {pin:?} is not sha256:<64 hex digits>; copy it from the line `shoal serve --tls` printed"
        ));
    }
    let verifier = Arc::new(PinnedCa {
        pin: hex,
        provider: provider(),
    });
    config(Some(verifier), RootCertStore::empty())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Accepts a server whose presented chain holds the pinned CA and whose own certificate that
/// CA signed for the name dialled.
struct PinnedCa {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl fmt::Debug for PinnedCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PinnedCa(sha256:{})", self.pin)
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| hex(&Sha256::digest(c.as_ref())) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "server certificate does not match pinned CA sha256:{}; is this the orchestrator whose `serve --tls` printed that hash?",
                    self.pin
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("the pinned CA is not usable: {e}")))?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_pin_is_refused_saying_where_the_right_one_is() {
        let e = trust_pinned_ca("sha256:abc").unwrap_err();
        assert!(e.contains("shoal serve --tls"), "{e}");
        assert!(trust_pinned_ca(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        assert!(trust_ca_pem(b"nothing here").is_err());
    }
}
