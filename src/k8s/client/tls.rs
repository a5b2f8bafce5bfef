//! The rustls configurations of [`super::ApiClient`]: which server to trust ([`super::Trust`])
//! and, for an admin kubeconfig's client certificate, who we are.
//!
//! TLS 1.3 and 1.2 over ring. The only place that skips server verification is [`dangerous`],
//! for discovery's first, anonymous fetch.

use std::sync::Arc;

use super::{ApiError, Trust};

/// The client configuration for `trust`, with `identity_pem` (certificate chain and key) as the
/// client certificate when given.
pub(super) fn tls_config(
    trust: &Trust,
    identity_pem: Option<&[u8]>,
) -> Result<rustls::ClientConfig, ApiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ApiError::TlsSetup(e.to_string()))?;
    let config = match trust {
        Trust::Ca(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for der in crate::model::pin::certificates_from_pem(pem)
                .map_err(|e| ApiError::TlsSetup(e.to_string()))?
            {
                roots
                    .add(rustls::pki_types::CertificateDer::from(der))
                    .map_err(|e| {
                        ApiError::TlsSetup(format!("the cluster CA is not usable: {e}"))
                    })?;
            }
            let builder = builder.with_root_certificates(roots);
            match identity_pem {
                None => builder.with_no_client_auth(),
                Some(pem) => {
                    let (certs, key) = client_identity(pem)?;
                    builder.with_client_auth_cert(certs, key).map_err(|e| {
                        ApiError::TlsSetup(format!("the client certificate is not usable: {e}"))
                    })?
                }
            }
        }
        Trust::DangerousAnyServer => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(dangerous::AnyServer(provider)))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Certificates and the private key from one PEM (kubelet's cert+key file).
fn client_identity(
    pem: &[u8],
) -> Result<
    (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    ApiError,
> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::TlsSetup(format!("bad client certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ApiError::TlsSetup(
            "no client certificate in the PEM".into(),
        ));
    }
    // The key's own parse error could quote key bytes; say only that it is unusable.
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
        ApiError::TlsSetup("no usable private key in the client certificate PEM".into())
    })?;
    Ok((certs, key))
}

/// The one place that skips server certificate verification.
///
/// kubeadm fetches cluster-info anonymously before it knows the CA; so do we. The answer is
/// trusted only after its JWS signature (keyed by the bootstrap token secret) and the CA pin are
/// checked, and the second fetch verifies TLS against the pinned CA. The handshake signature is
/// still checked, so the peer at least holds the key of the certificate it showed.
mod dangerous {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::DigitallySignedStruct;
    use std::sync::Arc;

    #[derive(Debug)]
    pub struct AnyServer(pub Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
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
                &self.0.signature_verification_algorithms,
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
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
