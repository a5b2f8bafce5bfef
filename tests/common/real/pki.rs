//! The control plane's certificates and keys, as kubeadm's `certs` phase makes them (ECDSA P-256
//! instead of kubeadm's RSA-2048), and rustls client configurations from them. Pure: nothing here
//! starts a process or touches the network, so the tests that always run check it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The second loopback address that plays the API server's Service address in the chart
/// set-up (see `forward.rs`); the serving certificate names it, as a hosted control plane's
/// certificate names its Service.
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Everything the control plane and the admin client need.
pub struct Pki {
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    pub ca_key_pem: String,
    pub serving_pem: String,
    pub serving_key_pem: String,
    pub sa_key_pem: String,
    pub sa_pub_pem: String,
    pub admin_pem: String,
    pub admin_der: CertificateDer<'static>,
    pub admin_key_pem: String,
    admin_key_der: Vec<u8>,
}

impl std::fmt::Debug for Pki {
    // The keys stay out of Debug output (a failing assertion prints its operands).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn leaf_params(cn: &str, org: Option<&str>) -> CertificateParams {
    let now = time::OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(org) = org {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(1);
    params.serial_number = Some(serial());
    params
}

/// Cluster CA (`CN=kubernetes`), kube-apiserver serving certificate for loopback, the Service
/// address [`SERVICE_IP`] and the in-cluster names, service-account key pair, admin client
/// certificate (`CN=kubernetes-admin`, `O=system:masters`).
pub fn generate() -> Pki {
    let p256 = &rcgen::PKCS_ECDSA_P256_SHA256;
    let now = time::OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate_for(p256).unwrap();
    let ca_key_pem = ca_key.serialize_pem();
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
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(2);
    params.serial_number = Some(serial());
    let ca = CertifiedIssuer::self_signed(params, ca_key).unwrap();

    let serving_key = KeyPair::generate_for(p256).unwrap();
    let mut params = leaf_params("kube-apiserver", None);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.subject_alt_names = vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V4(SERVICE_IP)),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1))),
    ];
    for name in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        params
            .subject_alt_names
            .push(SanType::DnsName(name.try_into().unwrap()));
    }
    let serving = params.signed_by(&serving_key, &ca).unwrap();

    let admin_key = KeyPair::generate_for(p256).unwrap();
    let mut params = leaf_params("kubernetes-admin", Some("system:masters"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin = params.signed_by(&admin_key, &ca).unwrap();

    let sa_key = KeyPair::generate_for(p256).unwrap();

    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        ca_key_pem,
        serving_pem: serving.pem(),
        serving_key_pem: serving_key.serialize_pem(),
        sa_key_pem: sa_key.serialize_pem(),
        sa_pub_pem: sa_key.public_key_pem(),
        admin_pem: admin.pem(),
        admin_der: admin.der().clone(),
        admin_key_pem: admin_key.serialize_pem(),
        admin_key_der: admin_key.serialize_der(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &CertificateDer<'static>) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("the CA is a usable root");
    roots
}

/// A rustls client configuration (ring) trusting only `ca`, presenting `chain` with `key`.
pub fn client_tls(
    ca: &CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_client_auth_cert(chain, key)
        .expect("client certificate and key match")
}

/// A client trusting only `ca`, without a client certificate (anonymous, or a bearer token).
pub fn anonymous_tls(ca: &CertificateDer<'static>) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_no_client_auth()
}

/// The admin's client configuration (`system:masters`).
pub fn admin_tls(pki: &Pki) -> rustls::ClientConfig {
    client_tls(
        &pki.ca_der,
        vec![pki.admin_der.clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.admin_key_der.clone())),
    )
}

/// A client authenticating with the certificate and key of a PEM file holding both (as
/// kubelet's `kubelet-client-current.pem`).
pub fn tls_from_pair_pem(ca: &CertificateDer<'static>, pair_pem: &[u8]) -> rustls::ClientConfig {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pair_pem)
        .collect::<Result<_, _>>()
        .expect("certificates in the PEM");
    assert!(!chain.is_empty(), "no certificate in the PEM");
    let key = PrivateKeyDer::from_pem_slice(pair_pem).expect("a private key in the PEM");
    client_tls(ca, chain, key)
}

/// A TLS handshake in memory between the apiserver's serving certificate and `client`, for
/// `server_name`; the client certificates the server saw.
pub fn handshake(
    pki: &Pki,
    client: rustls::ClientConfig,
    server_name: &str,
) -> Result<Vec<CertificateDer<'static>>, rustls::Error> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(&pki.ca_der)),
        provider(),
    )
    .build()
    .unwrap();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.serving_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.serving_key_pem.as_bytes()).unwrap();
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    let mut c = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
    let mut s = rustls::ServerConnection::new(Arc::new(server_cfg)).unwrap();
    // A handshake takes two round trips; ten is plenty and bounds the loop.
    for _ in 0..10 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut slice = &buf[..];
        while !slice.is_empty() {
            s.read_tls(&mut slice).unwrap();
            s.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut slice = &buf[..];
        while !slice.is_empty() {
            c.read_tls(&mut slice).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(s
                .peer_certificates()
                .map(|p| p.to_vec())
                .unwrap_or_default());
        }
    }
    panic!("handshake did not finish");
}
