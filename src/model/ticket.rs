//! The join ticket: server, bootstrap token and CA pin(s) in one pasteable string, so a tenant
//! runs `kaas-join join <ticket>` (made by `kaas-join token create --ticket`).
//!
//! # Format, version 1
//!
//! ```text
//! kj1.<payload>.<checksum>
//! ```
//!
//! - `kj1` names the format and its version. A later format is `kj2`, ...; an older kaas-join
//!   refuses it with "made by a newer kaas-join: upgrade".
//! - `<payload>` is base64url without padding (RFC 4648 §5: `A-Z a-z 0-9 - _`, nothing a shell,
//!   a URL or a double-click selection splits on) of UTF-8 lines joined by `\n`:
//!   line 1 the API server (`https://host:port`), line 2 the bootstrap token
//!   (`<id>.<secret>`), then one line per CA pin (`sha256:<64 hex>`, at least one).
//! - `<checksum>` is the first 8 hex digits (lowercase) of SHA-256 over the ASCII text
//!   `kj1.<payload>`. It catches a truncated paste and a changed character (a wrong ticket passes
//!   with odds of 1 in 2^32); it is not a signature: the CA pin and the token's signature on
//!   cluster-info are what make the join safe, exactly as with the separate flags.
//!
//! The ticket carries the token secret: it is a credential. It is printed only by `token create
//! --ticket`, never logged; [`Ticket`]'s `Debug` shows the token id only.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::model::pin::CaPin;
use crate::model::token::BootstrapToken;

/// The prefix of a version 1 ticket.
pub const PREFIX: &str = "kj1";
/// The longest ticket accepted: a server, a token and a few pins take a few hundred bytes; a
/// huge paste is refused before any decoding.
pub const MAX_LEN: usize = 4096;
const CHECKSUM_LEN: usize = 8;

/// Why a ticket was refused. No message contains the ticket or any part of the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error(
        "this is not a kaas-join join ticket (a ticket starts with \"kj1.\"; make one with \
         `kaas-join token create --ticket`)"
    )]
    NotATicket,
    #[error(
        "the join ticket is format {version}, made by a newer kaas-join: upgrade kaas-join on \
         this machine (this one reads {PREFIX})"
    )]
    NewerVersion { version: String },
    #[error("the join ticket is damaged (checksum mismatch): copy the whole line again")]
    Damaged,
    #[error(
        "the join ticket is {len} bytes long, more than a ticket can be ({MAX_LEN} at most): \
         copy the one line `kaas-join token create --ticket` printed"
    )]
    TooLong { len: usize },
    #[error(
        "the join ticket's contents are invalid ({reason}): make a new one with `kaas-join token \
         create --ticket`"
    )]
    Invalid { reason: String },
}

/// What a ticket carries.
#[derive(Clone)]
pub struct Ticket {
    /// `https://host:port`.
    pub server: String,
    pub token: BootstrapToken,
    pub pins: Vec<CaPin>,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("server", &self.server)
            .field("token", &self.token)
            .field("pins", &self.pins)
            .finish()
    }
}

fn checksum(head: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, head.as_bytes());
    digest.as_ref()[..CHECKSUM_LEN / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Ticket {
    /// The ticket text. A credential: print it only where the token may be printed.
    pub fn encode(&self) -> Zeroizing<String> {
        let mut payload = Zeroizing::new(String::new());
        payload.push_str(&self.server);
        payload.push('\n');
        payload.push_str(&self.token.bearer());
        for pin in &self.pins {
            payload.push('\n');
            payload.push_str(&pin.to_string());
        }
        let head = Zeroizing::new(format!(
            "{PREFIX}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes())
        ));
        let sum = checksum(&head);
        Zeroizing::new(format!("{}.{sum}", head.as_str()))
    }

    /// Parses and checks a ticket (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Ticket, TicketError> {
        let text = text.trim();
        if text.len() > MAX_LEN {
            return Err(TicketError::TooLong { len: text.len() });
        }
        let Some((version, rest)) = text.split_once('.') else {
            return Err(version_error(text));
        };
        if version != PREFIX {
            return Err(version_error(version));
        }
        // A truncated paste loses the checksum (or part of it): the same message either way.
        let (payload_b64, sum) = rest.rsplit_once('.').ok_or(TicketError::Damaged)?;
        let head = &text[..PREFIX.len() + 1 + payload_b64.len()];
        let want = checksum(head);
        // The checksum is no secret (anyone can compute it): a plain comparison will do.
        let sum_ok = sum == want;
        if !sum_ok {
            return Err(TicketError::Damaged);
        }
        let invalid = |reason: &str| TicketError::Invalid {
            reason: reason.to_string(),
        };
        let payload = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(payload_b64)
                .map_err(|_| invalid("not base64url"))?,
        );
        let payload = std::str::from_utf8(&payload).map_err(|_| invalid("not UTF-8 text"))?;
        let mut lines = payload.split('\n');
        let server = lines.next().unwrap_or("").trim();
        crate::model::endpoint::normalize_server(server)
            .map_err(|_| invalid("the server is not https://host:port"))?;
        let token = BootstrapToken::parse(lines.next().unwrap_or(""))
            .map_err(|_| invalid("the bootstrap token is malformed"))?;
        let mut pins = Vec::new();
        for line in lines {
            let pin: CaPin = line
                .trim()
                .parse()
                .map_err(|_| invalid("a CA pin is not sha256:<64 hex digits>"))?;
            pins.push(pin);
        }
        if pins.is_empty() {
            return Err(invalid("no CA pin"));
        }
        Ok(Ticket {
            server: server.to_string(),
            token,
            pins,
        })
    }
}

/// `kjN` with another N is a newer format; anything else is not a ticket.
fn version_error(version: &str) -> TicketError {
    if version == PREFIX {
        // "kj1" and nothing after it: cut off.
        return TicketError::Damaged;
    }
    let newer = version
        .strip_prefix("kj")
        .is_some_and(|n| !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()));
    if newer {
        TicketError::NewerVersion {
            version: version.to_string(),
        }
    } else {
        TicketError::NotATicket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "abcdef.0123456789abcdef";
    const PIN: &str = "sha256:9be846df07d1a8c8b2c4a3d4c1e26ad5d42fd5ce1fdf5fc3c1263b9a80b6db8d";

    fn ticket() -> Ticket {
        Ticket {
            server: "https://10.0.0.5:6443".into(),
            token: BootstrapToken::parse(TOKEN).unwrap(),
            pins: vec![PIN.parse().unwrap()],
        }
    }

    #[test]
    fn round_trip() {
        let text = ticket().encode();
        assert!(text.starts_with("kj1."), "{}", text.as_str());
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
        let back = Ticket::parse(&format!("  {}\n", text.as_str())).unwrap();
        assert_eq!(back.server, "https://10.0.0.5:6443");
        assert_eq!(back.token.bearer().as_str(), TOKEN);
        assert_eq!(back.pins[0].to_string(), PIN);
        // Several pins.
        let mut two = ticket();
        two.pins.push(CaPin::from_str_unchecked());
        assert_eq!(Ticket::parse(&two.encode()).unwrap().pins.len(), 2);
    }

    impl CaPin {
        fn from_str_unchecked() -> CaPin {
            format!("sha256:{}", "ab".repeat(32)).parse().unwrap()
        }
    }

    #[test]
    fn the_documented_format() {
        let text = ticket().encode();
        let (head, sum) = text.rsplit_once('.').unwrap();
        let payload = URL_SAFE_NO_PAD
            .decode(head.strip_prefix("kj1.").unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            format!("https://10.0.0.5:6443\n{TOKEN}\n{PIN}")
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, head.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sum, &hex[..8]);
    }

    #[test]
    fn truncation_and_typos_are_caught() {
        let text = ticket().encode();
        for cut in 1..text.len() - 4 {
            let err = Ticket::parse(&text[..text.len() - cut]).unwrap_err();
            assert!(
                matches!(err, TicketError::Damaged | TicketError::NotATicket),
                "cut {cut}: {err:?}"
            );
        }
        let bytes = text.as_bytes();
        for i in 4..bytes.len() {
            if bytes[i] == b'.' {
                continue;
            }
            let mut changed = bytes.to_vec();
            changed[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            assert_eq!(
                Ticket::parse(&changed).unwrap_err(),
                TicketError::Damaged,
                "position {i}"
            );
        }
    }

    #[test]
    fn a_huge_ticket_is_refused_before_decoding() {
        let huge = format!("kj1.{}.00000000", "A".repeat(MAX_LEN));
        assert!(matches!(
            Ticket::parse(&huge),
            Err(TicketError::TooLong { len }) if len == huge.len()
        ));
        assert!(Ticket::parse(&ticket().encode()).is_ok());
    }

    #[test]
    fn versions() {
        let text = ticket().encode().replacen("kj1.", "kj2.", 1);
        let err = Ticket::parse(&text).unwrap_err();
        assert!(
            err.to_string().contains("newer kaas-join: upgrade"),
            "{err}"
        );
        assert_eq!(
            Ticket::parse("abcdef.0123456789abcdef").unwrap_err(),
            TicketError::NotATicket
        );
    }

    #[test]
    fn errors_and_debug_never_show_the_secret() {
        let t = ticket();
        assert!(!format!("{t:?}").contains("0123456789abcdef"));
        let text = t.encode();
        let damaged = &text[..text.len() - 1];
        let msg = Ticket::parse(damaged).unwrap_err().to_string();
        assert!(!msg.contains(&text[4..20]), "{msg}");
        assert_eq!(
            msg,
            "the join ticket is damaged (checksum mismatch): copy the whole line again"
        );
    }
}
