//! The bootstrap token (`<token-id>.<token-secret>`), validated exactly as kubeadm does.
//!
//! The token id is public (it names the token's Secret and the `jws-kubeconfig-<id>` key); the
//! secret is the credential and the HMAC key of the cluster-info signatures. The secret is kept in
//! zeroized memory and never printed: `Debug` and `Display` mask it, and parse errors never echo
//! the input (a half-typed token is still mostly secret).

use std::fmt;

use zeroize::Zeroizing;

/// kubeadm's default extra group for node tokens.
pub const DEFAULT_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// The usages kubeadm knows (`bootstrapapi.KnownTokenUsages`).
pub const KNOWN_USAGES: &[&str] = &["signing", "authentication"];

/// Length of the public token id (`[a-z0-9]{6}`).
const ID_LEN: usize = 6;
/// Length of the secret part (`[a-z0-9]{16}`).
const SECRET_LEN: usize = 16;

/// Why a token string was refused. The reason names the broken part, never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "bootstrap token is malformed ({reason}): expected \"<6 chars [a-z0-9]>.<16 chars [a-z0-9]>\", \
         as printed by \"kubeadm token create\""
    )]
    Malformed { reason: &'static str },
}

/// A bootstrap token. `Clone` copies the secret into another zeroized buffer.
#[derive(Clone)]
pub struct BootstrapToken {
    id: String,
    secret: Zeroizing<String>,
}

/// The secret is in a [`Zeroizing`] buffer; the id is public.
impl zeroize::ZeroizeOnDrop for BootstrapToken {}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl BootstrapToken {
    /// Parses `<id>.<secret>` after trimming surrounding whitespace (token files usually end in a
    /// newline). Matches kubeadm's `^([a-z0-9]{6})\.([a-z0-9]{16})$` exactly.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let malformed = |reason| Err(TokenError::Malformed { reason });
        let s = s.trim();
        let Some((id, secret)) = s.split_once('.') else {
            return malformed("missing the '.' between token id and secret");
        };
        if id.len() != ID_LEN {
            return malformed("the token id before the '.' must be 6 characters long");
        }
        if !id.bytes().all(is_token_char) {
            return malformed("the token id may contain only lowercase letters a-z and digits 0-9");
        }
        if secret.contains('.') {
            return malformed("more than one '.'");
        }
        if secret.len() != SECRET_LEN {
            return malformed("the token secret after the '.' must be 16 characters long");
        }
        if !secret.bytes().all(is_token_char) {
            return malformed(
                "the token secret may contain only lowercase letters a-z and digits 0-9",
            );
        }
        Ok(BootstrapToken {
            id: id.to_owned(),
            secret: Zeroizing::new(secret.to_owned()),
        })
    }

    /// The public token id, e.g. `abcdef`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The 16-character secret: the HMAC key for cluster-info signatures. Do not log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The whole token for an `Authorization: Bearer` header.
    pub fn bearer(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(ID_LEN + 1 + SECRET_LEN));
        s.push_str(&self.id);
        s.push('.');
        s.push_str(&self.secret);
        s
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The id alone identifies the token (`kubeadm token list`); the secret stays masked.
        write!(f, "BootstrapToken({}.****************)", self.id)
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "abcdef.0123456789abcdef";

    #[test]
    fn parses_and_trims() {
        let t = BootstrapToken::parse("  abcdef.0123456789abcdef\n").unwrap();
        assert_eq!(t.id(), "abcdef");
        assert_eq!(t.secret(), "0123456789abcdef");
        assert_eq!(t.bearer().as_str(), TOKEN);
    }

    #[test]
    fn debug_and_display_mask_the_secret() {
        let t = BootstrapToken::parse(TOKEN).unwrap();
        assert_eq!(format!("{t}"), "BootstrapToken(abcdef.****************)");
        assert_eq!(format!("{t:?}"), "BootstrapToken(abcdef.****************)");
        assert!(!format!("{:?}", t.clone()).contains("0123456789abcdef"));
    }

    /// A compile-time check that the secret lives in zeroized memory (changing the field's type
    /// fails here); tests/secret_hygiene.rs checks that it reaches no output.
    #[test]
    fn the_secret_is_zeroized_on_drop() {
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        let t = BootstrapToken::parse(TOKEN).unwrap();
        zeroized_on_drop(&t);
        let BootstrapToken { id: _, secret } = &t;
        zeroized_on_drop(secret);
        zeroized_on_drop(&t.bearer());
        assert_eq!(secret.as_str(), "0123456789abcdef");
    }

    #[test]
    fn rejects_malformed_without_echoing() {
        let bad = [
            "",
            "abcdef0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdefg.0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789ABCDEF",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdef0",
            "abcdef.0123456789abcde.",
            "abcdef.01234567-9abcdef",
            "abc def.0123456789abcdef",
            "abcdef.0123456789abcdé",
        ];
        for b in bad {
            let err = BootstrapToken::parse(b).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("bootstrap token is malformed ("), "{msg}");
            assert!(msg.contains("kubeadm token create"), "{msg}");
            if b.len() > 6 {
                assert!(!msg.contains(&b[7.min(b.len())..]), "{msg} echoes input");
            }
            assert!(!format!("{err:?}").contains("0123456789"), "{err:?}");
        }
    }

    #[test]
    fn names_the_broken_part() {
        let r = |s| match BootstrapToken::parse(s) {
            Err(TokenError::Malformed { reason }) => reason,
            Ok(_) => panic!("accepted"),
        };
        assert!(r("abcdef0123456789abcdef").contains("missing the '.'"));
        assert!(r("abcde.0123456789abcdef").contains("6 characters"));
        assert!(r("abcdef.0123456789").contains("16 characters"));
        assert!(r("ABCDEF.0123456789abcdef").contains("lowercase"));
    }
}
