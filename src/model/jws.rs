//! Detached JWS signatures over cluster-info's kubeconfig, as the bootstrapsigner makes them.
//!
//! The bootstrapsigner controller publishes `jws-kubeconfig-<token-id>` in `kube-public/cluster-info`:
//! a compact JWS with the payload left out, `<b64url header>..<b64url signature>`, HS256-keyed with
//! the token's 16-character secret. A valid signature proves the publisher knew our token, which is
//! what lets us trust the (otherwise anonymous, unverified-TLS) first fetch.
//!
//! Like upstream (`cluster-bootstrap/token/jws`), verification recomputes the whole detached string
//! for our token and compares it in constant time, so any other header (another `alg`, `none`,
//! another `kid`, extra fields) or trailing data simply does not match.
//! Upstream zero-pads the secret to 32 bytes for go-jose; HMAC zero-pads keys to the block size
//! anyway, so keying with the bare 16-byte secret gives the same signatures.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::model::token::BootstrapToken;

/// Why a detached signature was refused. Neither variant carries the token or the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not of the form `<header>..<signature>` in base64url.
    #[error(
        "the cluster-info signature is malformed (expected a detached JWS \"<header>..<signature>\"): \
         the control plane's bootstrapsigner did not write it; check the kube-controller-manager"
    )]
    Malformed,
    /// Well-formed, but not what our token signs: wrong token, tampered kubeconfig, or another
    /// algorithm.
    #[error(
        "the cluster-info signature does not match this bootstrap token: the token is wrong or \
         expired, or the kubeconfig was altered in transit; check the token with \"kubeadm token list\""
    )]
    Mismatch,
}

/// The detached JWS that the bootstrapsigner would publish for `payload` and `token`.
pub fn sign_detached(payload: &[u8], token: &BootstrapToken) -> String {
    // Byte-exact header, as go-jose serializes it (fields sorted, no spaces).
    let header = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, token.id());
    let header_b64 = URL_SAFE_NO_PAD.encode(header.as_bytes());
    let payload_b64 = URL_SAFE_NO_PAD.encode(payload);
    let signing_input = format!("{header_b64}.{payload_b64}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.secret().as_bytes());
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{header_b64}..{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Checks `jws` against the signature our token makes over `payload`.
pub fn verify_detached(payload: &[u8], jws: &str, token: &BootstrapToken) -> Result<(), JwsError> {
    if !is_detached_form(jws) {
        return Err(JwsError::Malformed);
    }
    let expected = sign_detached(payload, token);
    if constant_time_eq(expected.as_bytes(), jws.as_bytes()) {
        Ok(())
    } else {
        Err(JwsError::Mismatch)
    }
}

/// `<non-empty b64url>..<non-empty b64url>`: only to tell "garbage" from "wrong signature".
fn is_detached_form(jws: &str) -> bool {
    let is_b64url = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let mut parts = jws.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(h), Some(""), Some(s), None) if is_b64url(h) && is_b64url(s)
    )
}

/// Compares without an early exit, so timing does not reveal how much of a forged signature
/// was right. Lengths are public (fixed by the header and HS256).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        crate::fixtures::fixtures_dir()
    }

    fn recorded() -> (BootstrapToken, String, String) {
        let line = std::fs::read_to_string(fixtures().join("token-used.txt")).unwrap();
        let token = BootstrapToken::parse(line.split_whitespace().next().unwrap()).unwrap();
        let body =
            std::fs::read(fixtures().join("200-anonymous-get-cluster-info-signed.json")).unwrap();
        let cm: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let data = &cm["data"];
        let kubeconfig = data["kubeconfig"].as_str().unwrap().to_owned();
        let jws = data[format!("jws-kubeconfig-{}", token.id())]
            .as_str()
            .unwrap()
            .to_owned();
        (token, kubeconfig, jws)
    }

    #[test]
    fn recorded_signature_verifies_and_is_reproduced() {
        let (token, kubeconfig, jws) = recorded();
        assert_eq!(verify_detached(kubeconfig.as_bytes(), &jws, &token), Ok(()));
        assert_eq!(sign_detached(kubeconfig.as_bytes(), &token), jws);
    }

    #[test]
    fn header_bytes_are_exact() {
        let (token, kubeconfig, _) = recorded();
        let jws = sign_detached(kubeconfig.as_bytes(), &token);
        let header = URL_SAFE_NO_PAD
            .decode(jws.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, br#"{"alg":"HS256","kid":"jjgm85"}"#);
    }

    #[test]
    fn other_secret_is_mismatch() {
        let (_, kubeconfig, jws) = recorded();
        let other = BootstrapToken::parse("jjgm85.aaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(
            verify_detached(kubeconfig.as_bytes(), &jws, &other),
            Err(JwsError::Mismatch)
        );
        // Same secret under another id: the kid differs, so does the whole string.
        let other_id = BootstrapToken::parse("abcdef.ntr5gbbemo4d3646").unwrap();
        assert_eq!(
            verify_detached(kubeconfig.as_bytes(), &jws, &other_id),
            Err(JwsError::Mismatch)
        );
    }

    #[test]
    fn tampered_payload_is_mismatch() {
        let (token, kubeconfig, jws) = recorded();
        let mut payload = kubeconfig.into_bytes();
        payload[20] ^= 0x01;
        assert_eq!(
            verify_detached(&payload, &jws, &token),
            Err(JwsError::Mismatch)
        );
    }

    #[test]
    fn other_headers_and_trailing_data_are_rejected() {
        let (token, kubeconfig, jws) = recorded();
        let sig = jws.split("..").nth(1).unwrap();
        for header in [
            r#"{"alg":"none","kid":"jjgm85"}"#,
            r#"{"alg":"HS512","kid":"jjgm85"}"#,
            r#"{"alg":"HS256","kid":"jjgm85","x":1}"#,
            r#"{"kid":"jjgm85","alg":"HS256"}"#,
        ] {
            let forged = format!("{}..{sig}", URL_SAFE_NO_PAD.encode(header));
            assert_eq!(
                verify_detached(kubeconfig.as_bytes(), &forged, &token),
                Err(JwsError::Mismatch),
                "{header}"
            );
        }
        // alg none with an empty signature is not even well-formed.
        let none = format!(
            "{}..",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"jjgm85"}"#)
        );
        assert_eq!(
            verify_detached(kubeconfig.as_bytes(), &none, &token),
            Err(JwsError::Malformed)
        );
        assert_eq!(
            verify_detached(kubeconfig.as_bytes(), &format!("{jws}x"), &token),
            Err(JwsError::Mismatch)
        );
        assert_eq!(
            verify_detached(kubeconfig.as_bytes(), &format!("{jws}.x"), &token),
            Err(JwsError::Malformed)
        );
    }

    #[test]
    fn malformed_forms() {
        let (token, kubeconfig, jws) = recorded();
        let (h, s) = jws.split_once("..").unwrap();
        let payload_b64 = URL_SAFE_NO_PAD.encode(kubeconfig.as_bytes());
        for bad in [
            String::new(),
            "..".to_owned(),
            format!("{h}.{payload_b64}.{s}"), // attached payload
            format!("{h}.{s}"),
            format!("{h}..{s}="), // padded
            format!(" {jws}"),
        ] {
            assert_eq!(
                verify_detached(kubeconfig.as_bytes(), &bad, &token),
                Err(JwsError::Malformed),
                "{bad}"
            );
        }
        let msg = JwsError::Mismatch.to_string();
        assert!(!msg.contains(token.secret()));
    }
}
