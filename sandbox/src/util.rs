//! Small helpers: randomness (ring's system RNG), UIDs, names and Kubernetes timestamps.

use ring::rand::{SecureRandom, SystemRandom};
use time::macros::format_description;
use time::OffsetDateTime;

/// Fills `N` random bytes from the system RNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the system random number generator failed");
    buf
}

/// A random (version 4) UUID, as Kubernetes puts in `metadata.uid` and `Audit-Id`.
pub(crate) fn uuid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `n` characters drawn uniformly from `alphabet` (rejection sampling, no modulo bias).
pub(crate) fn random_from(alphabet: &[u8], n: usize) -> String {
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for byte in random_bytes::<32>() {
            if (byte as usize) < limit && out.len() < n {
                out.push(alphabet[byte as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

/// `[a-z0-9]{n}`, the bootstrap token alphabet.
pub(crate) fn random_token_chars(n: usize) -> String {
    random_from(b"abcdefghijklmnopqrstuvwxyz0123456789", n)
}

/// The suffix the apiserver appends to `metadata.generateName` (5 characters from
/// `k8s.io/apimachinery/pkg/util/rand`'s alphabet, which has no vowels or confusable digits).
pub(crate) fn generate_name_suffix() -> String {
    random_from(b"bcdfghjklmnpqrstvwxz2456789", 5)
}

/// A timestamp as Kubernetes serializes `metav1.Time`: RFC 3339, whole seconds, `Z`.
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .expect("formatting a UTC timestamp cannot fail")
}

pub(crate) fn now() -> String {
    format_time(OffsetDateTime::now_utc())
}

/// Decodes `application/x-www-form-urlencoded` style percent escapes (`+` is a space).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Splits a raw query string into decoded `(key, value)` pairs.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn query_decoding() {
        let q = parse_query("fieldSelector=metadata.name%3Dcsr-x&watch=true&x");
        assert_eq!(q[0], ("fieldSelector".into(), "metadata.name=csr-x".into()));
        assert_eq!(q[1], ("watch".into(), "true".into()));
        assert_eq!(q[2], ("x".into(), String::new()));
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[test]
    fn time_format() {
        let t = OffsetDateTime::from_unix_timestamp(1_795_673_285).unwrap();
        assert_eq!(format_time(t), "2026-11-26T06:08:05Z");
    }

    #[test]
    fn token_chars() {
        let s = random_token_chars(16);
        assert_eq!(s.len(), 16);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    }
}
