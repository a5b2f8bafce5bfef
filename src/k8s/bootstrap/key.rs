//! The node's key and the CertificateSigningRequest it signs, as kubelet makes them.
//!
//! The key is ECDSA P-256, held only as zeroized PEM; the CSR's subject is
//! `O=system:nodes, CN=system:node:<name>` with no SANs, and its name is kubelet's deterministic
//! digest over the public key, subject and usages, so the same key always finds the same CSR.
//! Where the key is kept between runs is `cmd::join`'s business; this module touches no file.

use base64::Engine as _;
use serde_json::Value;
use x509_parser::prelude::FromDer as _;
use zeroize::Zeroizing;

use super::{BootstrapError, USAGES};

/// The node's private key (PKCS#8 PEM), zeroized on drop.
///
/// Only the zeroized PEM is kept. rcgen's `KeyPair` (and ring's key inside it) hold copies of
/// the private key that nothing wipes when they are dropped, so one exists only while a CSR is
/// signed ([`csr_pem`]), not for the whole wait for approval. Those short-lived copies are not
/// zeroized: neither library offers a way, and unsafe code is denied.
pub struct NodeKey {
    pem: Zeroizing<String>,
    /// DER SubjectPublicKeyInfo (not secret).
    public_key_der: Vec<u8>,
}

/// Everything secret in a [`NodeKey`] is in a [`Zeroizing`] buffer.
impl zeroize::ZeroizeOnDrop for NodeKey {}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(<redacted>)")
    }
}

impl NodeKey {
    pub fn generate() -> Result<NodeKey, BootstrapError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| BootstrapError::Crypto(e.to_string()))?;
        let pem = Zeroizing::new(pair.serialize_pem());
        Ok(NodeKey {
            public_key_der: rcgen::PublicKeyData::subject_public_key_info(&pair),
            pem,
        })
    }

    pub fn from_pem(pem: &str, path: &str) -> Result<NodeKey, BootstrapError> {
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| BootstrapError::BadKey {
            path: path.into(),
            detail: e.to_string(),
        })?;
        if pair.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(BootstrapError::BadKey {
                path: path.into(),
                detail: "not an ECDSA P-256 key".into(),
            });
        }
        Ok(NodeKey {
            public_key_der: rcgen::PublicKeyData::subject_public_key_info(&pair),
            pem: Zeroizing::new(pem.to_string()),
        })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.public_key_der.clone()
    }

    /// The key as rcgen needs it for signing; drop it as soon as the signature is made.
    fn signing_pair(&self) -> Result<rcgen::KeyPair, BootstrapError> {
        rcgen::KeyPair::from_pem(&self.pem).map_err(|e| BootstrapError::Crypto(e.to_string()))
    }
}

pub fn node_common_name(node_name: &str) -> String {
    format!("system:node:{node_name}")
}

/// kubelet's `digestedName`: `node-csr-` + base64url(SHA-512/256 over the base64url of the
/// public key, CN, organizations and usages, each followed by `|`).
pub fn csr_name(public_key_der: &[u8], node_name: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA512_256);
    let mut write = |data: &[u8]| {
        ctx.update(b64.encode(data).as_bytes());
        ctx.update(b"|");
    };
    write(public_key_der);
    write(node_common_name(node_name).as_bytes());
    write(b"system:nodes");
    for usage in USAGES {
        write(usage.as_bytes());
    }
    format!("node-csr-{}", b64.encode(ctx.finish().as_ref()))
}

/// The PEM CSR kubelet would make for this node and key.
pub fn csr_pem(key: &NodeKey, node_name: &str) -> Result<String, BootstrapError> {
    let crypto = |e: rcgen::Error| BootstrapError::Crypto(e.to_string());
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(crypto)?;
    let mut dn = rcgen::DistinguishedName::new();
    // Go's pkix.Name puts O before CN; so does the recorded kubelet CSR.
    dn.push(rcgen::DnType::OrganizationName, "system:nodes");
    dn.push(rcgen::DnType::CommonName, node_common_name(node_name));
    params.distinguished_name = dn;
    params
        .serialize_request(&key.signing_pair()?)
        .map_err(crypto)?
        .pem()
        .map_err(crypto)
}

/// Whether the CSR object `csr` was made for the key with `public_key_der` (its request's
/// SubjectPublicKeyInfo).
pub(super) fn is_ours(csr: &Value, public_key_der: &[u8]) -> bool {
    let Some(b64) = csr["spec"]["request"].as_str() else {
        return false;
    };
    let Ok(pem) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return false;
    };
    let Ok((_, block)) = x509_parser::pem::parse_x509_pem(&pem) else {
        return false;
    };
    match x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents) {
        Ok((_, req)) => req.certification_request_info.subject_pki.raw == public_key_der,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csr_name_is_deterministic_per_key_and_node() {
        let key = NodeKey::generate().unwrap();
        let a = csr_name(&key.public_key_der(), "n1");
        assert_eq!(a, csr_name(&key.public_key_der(), "n1"));
        assert_ne!(a, csr_name(&key.public_key_der(), "n2"));
        let other = NodeKey::generate().unwrap();
        assert_ne!(a, csr_name(&other.public_key_der(), "n1"));
        assert!(a.starts_with("node-csr-") && a.len() == "node-csr-".len() + 43);
    }

    #[test]
    fn csr_has_kubelets_subject_and_no_sans() {
        let key = NodeKey::generate().unwrap();
        let pem = csr_pem(&key, "worker-1").unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
                .unwrap();
        assert_eq!(
            req.certification_request_info.subject.to_string(),
            "O=system:nodes, CN=system:node:worker-1"
        );
        assert!(req
            .requested_extensions()
            .is_none_or(|mut e| e.next().is_none()));
        assert_eq!(
            req.certification_request_info.subject_pki.raw,
            key.public_key_der().as_slice()
        );
        let csr =
            json!({"spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem)}});
        assert!(is_ours(&csr, &key.public_key_der()));
        assert!(!is_ours(
            &csr,
            &NodeKey::generate().unwrap().public_key_der()
        ));
    }

    #[test]
    fn key_round_trips_and_never_prints() {
        let key = NodeKey::generate().unwrap();
        let again = NodeKey::from_pem(key.pem(), "k").unwrap();
        assert_eq!(key.public_key_der(), again.public_key_der());
        assert_eq!(format!("{key:?}"), "NodeKey(<redacted>)");
        assert!(NodeKey::from_pem("garbage", "/k").is_err());
    }

    /// The private key is only ever held in zeroized memory (tests/secret_hygiene.rs checks
    /// that it reaches no output). A compile-time check: changing the field's type fails here.
    #[test]
    fn key_material_is_zeroized_on_drop() {
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        let key = NodeKey::generate().unwrap();
        zeroized_on_drop(&key);
        zeroized_on_drop(&key.pem);
        let NodeKey {
            pem,
            public_key_der: _,
        } = &key;
        assert!(pem.contains("PRIVATE KEY"));
        assert!(!format!("{key:?}").contains(pem.lines().nth(1).unwrap()));
    }
}
