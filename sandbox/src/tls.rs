//! The sandbox's PKI: a freshly generated cluster CA (ECDSA P-256, `CN=kubernetes` like kubeadm),
//! the serving certificate, client-certificate authentication, and the CSR signer.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName as TlsDn, SignatureScheme};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::util;

/// How far back issued certificates are dated, like the kube-controller-manager signer
/// (the recorded certificate's notBefore is 5 minutes before the CSR's creation).
const BACKDATE: Duration = Duration::minutes(5);

/// The cluster CA with its key.
pub(crate) struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    not_after: OffsetDateTime,
    spki_der: Vec<u8>,
    subject_der: Vec<u8>,
}

impl Ca {
    pub fn generate() -> Result<Ca, rcgen::Error> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kubernetes");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
        ];
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        params.serial_number = Some(SerialNumber::from_slice(&util::random_bytes::<16>()));
        let not_after = params.not_after;
        let issuer = CertifiedIssuer::self_signed(params, key)?;
        let (_, cert) = X509Certificate::from_der(issuer.der())
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        let spki_der = cert.tbs_certificate.subject_pki.raw.to_vec();
        let subject_der = cert.tbs_certificate.subject.as_raw().to_vec();
        Ok(Ca {
            issuer,
            not_after,
            spki_der,
            subject_der,
        })
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// `sha256:<hex>` over the DER SubjectPublicKeyInfo (kubeadm's CA pin).
    pub fn cert_hash(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.spki_der);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// A serving certificate for the given names (IP addresses and DNS names), and its key.
    pub fn serving_cert(
        &self,
        names: &[String],
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kube-apiserver");
        params.distinguished_name = dn;
        for name in names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.as_str().try_into()?),
            };
            if !params.subject_alt_names.contains(&san) {
                params.subject_alt_names.push(san);
            }
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        params.not_after = (now + Duration::days(365)).min(self.not_after);
        params.serial_number = Some(SerialNumber::from_slice(&util::random_bytes::<16>()));
        let cert = params.signed_by(&key, &self.issuer)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((cert.der().clone(), key_der))
    }

    /// Issues a certificate for a PEM/DER CSR as the csrsigning controller does: subject as
    /// requested, key usages from `usages` (Kubernetes usage strings), no SANs copied unless
    /// requested, `validity` capped at the CA's expiry, backdated 5 minutes.
    pub fn sign_csr(
        &self,
        csr_der: &[u8],
        usages: &[String],
        validity: Duration,
    ) -> Result<String, String> {
        let der = rustls::pki_types::CertificateSigningRequestDer::from(csr_der.to_vec());
        let mut req = CertificateSigningRequestParams::from_der(&der)
            .map_err(|e| format!("cannot parse the certificate request: {e}"))?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = req.params.distinguished_name.clone();
        params.subject_alt_names = req.params.subject_alt_names.clone();
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        params.not_after = (now + validity).min(self.not_after);
        params.serial_number = Some(SerialNumber::from_slice(&util::random_bytes::<16>()));
        for usage in usages {
            match usage.as_str() {
                "digital signature" => params.key_usages.push(KeyUsagePurpose::DigitalSignature),
                "key encipherment" => params.key_usages.push(KeyUsagePurpose::KeyEncipherment),
                "content commitment" => params.key_usages.push(KeyUsagePurpose::ContentCommitment),
                "data encipherment" => params.key_usages.push(KeyUsagePurpose::DataEncipherment),
                "key agreement" => params.key_usages.push(KeyUsagePurpose::KeyAgreement),
                "client auth" => params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ClientAuth),
                "server auth" => params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ServerAuth),
                "code signing" => params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::CodeSigning),
                "email protection" => params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::EmailProtection),
                _ => {}
            }
        }
        req.params = params;
        let cert = req
            .signed_by(&self.issuer)
            .map_err(|e| format!("cannot sign the certificate: {e}"))?;
        Ok(cert.pem())
    }

    /// The identity in a client certificate, when the CA signed it and it is valid now:
    /// `(CN, O...)`. `None` means "not ours" (the apiserver answers 401).
    pub fn client_identity(&self, cert_der: &[u8]) -> Option<(String, Vec<String>)> {
        let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
        if cert.tbs_certificate.issuer.as_raw() != self.subject_der.as_slice() {
            return None;
        }
        let (_, ca) = X509Certificate::from_der(self.issuer.der()).ok()?;
        cert.verify_signature(Some(ca.public_key())).ok()?;
        if !cert.validity().is_valid() {
            return None;
        }
        let subject = cert.subject();
        let cn = subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())?
            .to_string();
        let orgs = subject
            .iter_organization()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect();
        Some((cn, orgs))
    }

    /// A client certificate (CN = `user`, O = each of `groups`; client auth, 1 year) and its
    /// PKCS#8 key, both PEM.
    pub fn issue_client_cert(
        &self,
        user: &str,
        groups: &[&str],
    ) -> Result<(String, String), rcgen::Error> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for group in groups {
            dn.push(DnType::OrganizationName, *group);
        }
        dn.push(DnType::CommonName, user);
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        params.not_after = (now + Duration::days(365)).min(self.not_after);
        params.serial_number = Some(SerialNumber::from_slice(&util::random_bytes::<16>()));
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    pub fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }
}

/// Asks for a client certificate but never fails the handshake over it, like kube-apiserver:
/// a certificate from another CA is refused later with a 401 Status (recorded
/// `401-client-cert-from-unknown-ca.json`), not with a TLS alert. The handshake signature is
/// still checked, so the client does hold the key of the certificate it presents.
#[derive(Debug)]
pub(crate) struct OptionalClientCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
    hints: Vec<TlsDn>,
}

impl OptionalClientCert {
    pub fn new(provider: Arc<rustls::crypto::CryptoProvider>, ca_subject_der: &[u8]) -> Self {
        OptionalClientCert {
            provider,
            hints: vec![TlsDn::from(ca_subject_der.to_vec())],
        }
    }
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[TlsDn] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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

/// The rustls server configuration: ring provider, the serving certificate (plus the CA, as
/// kube-apiserver's serving bundle often does), optional client certificates, HTTP/1.1 only.
pub(crate) fn server_config(ca: &Ca, names: &[String]) -> std::io::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (cert, key) = ca.serving_cert(names).map_err(std::io::Error::other)?;
    let verifier = Arc::new(OptionalClientCert::new(provider.clone(), ca.subject_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)
        .map_err(std::io::Error::other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_hash_and_signing() {
        let ca = Ca::generate().unwrap();
        assert!(ca.cert_hash().starts_with("sha256:"));
        assert_eq!(ca.cert_hash().len(), 7 + 64);
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "system:nodes");
        dn.push(DnType::CommonName, "system:node:n1");
        params.distinguished_name = dn;
        let csr = params.serialize_request(&key).unwrap();
        let pem = ca
            .sign_csr(
                csr.der(),
                &["digital signature".into(), "client auth".into()],
                Duration::days(365),
            )
            .unwrap();
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents;
        let (cn, orgs) = ca.client_identity(&der).unwrap();
        assert_eq!(cn, "system:node:n1");
        assert_eq!(orgs, vec!["system:nodes".to_string()]);
        let other = Ca::generate().unwrap();
        assert!(other.client_identity(&der).is_none());
    }
}
