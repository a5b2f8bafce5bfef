//! The control plane's side of discovery: the cluster-info kubeconfig text and the
//! bootstrapsigner's detached JWS (`cluster-bootstrap/token/jws`).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

/// `<b64url header>..<b64url signature>`: HS256 over `<b64url header>.<b64url payload>`, keyed by
/// the 16-character token secret, header bytes exactly `{"alg":"HS256","kid":"<token-id>"}`.
pub fn sign_detached_jws(payload: &[u8], token_id: &str, token_secret: &str) -> String {
    let header = format!("{{\"alg\":\"HS256\",\"kid\":\"{token_id}\"}}");
    let header_b64 = URL_SAFE_NO_PAD.encode(header.as_bytes());
    let signing_input = format!("{header_b64}.{}", URL_SAFE_NO_PAD.encode(payload));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token_secret.as_bytes());
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{header_b64}..{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The kubeconfig kubeadm writes into `kube-public/cluster-info`, byte for byte in the recorded
/// format (`fixtures/200-anonymous-get-cluster-info-signed.json`).
pub fn cluster_info_kubeconfig(ca_pem: &str, server: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        STANDARD.encode(ca_pem.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_exact() {
        let jws = sign_detached_jws(b"x", "abcdef", "0123456789abcdef");
        let (h, rest) = jws.split_once("..").unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(h).unwrap(),
            br#"{"alg":"HS256","kid":"abcdef"}"#
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(rest).unwrap().len(), 32);
    }
}
