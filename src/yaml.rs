//! Guards for YAML that comes from outside (cluster-info's kubeconfig, config files, admin
//! kubeconfigs) before it reaches serde_norway, and for the errors it returns.
//!
//! - Deeply nested flow collections (`[[[[...]]]]`) make the parser take quadratic time: 40 KB
//!   took 3 s, 4 MiB (our response cap) would take hours. Real documents nest a few levels, so
//!   anything deeper than [`MAX_FLOW_DEPTH`] is refused up front, in linear time.
//! - serde's messages quote the value they refused (`invalid type: string "…"`): a token put
//!   where a map belongs would be shown. [`redact_values`] keeps the message, not the value.

/// Deepest `[`/`{` nesting accepted.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Refuses flow collections nested deeper than [`MAX_FLOW_DEPTH`] (brackets inside quoted
/// scalars and on comment lines do not count).
pub fn check_nesting(text: &str) -> Result<(), String> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    let mut at_line_start = true;
    while let Some(c) = chars.next() {
        match quote {
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '#' if at_line_start => {
                    // A comment line: skip to its end.
                    for c in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                    at_line_start = true;
                    continue;
                }
                '[' | '{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                    if deepest > MAX_FLOW_DEPTH {
                        return Err(format!(
                            "collections nested more than {MAX_FLOW_DEPTH} levels deep; refusing to parse it"
                        ));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        at_line_start = c == '\n' || (at_line_start && c.is_whitespace());
    }
    Ok(())
}

/// A serde/YAML error message with every quoted value replaced by `<value>`, and any name that
/// looks like a bootstrap token masked: the message says what was wrong, never what was there.
pub fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..start]);
        match rest[start + 1..].find('"') {
            Some(len) => {
                out.push_str("\"<value>\"");
                rest = &rest[start + 1 + len + 1..];
            }
            None => {
                out.push_str("\"<value>");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    mask_token_like(&out)
}

/// Masks the secret half of anything shaped like `[a-z0-9]{6}.[a-z0-9]{16}`.
fn mask_token_like(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_tok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + 23 <= bytes.len() {
        let window = &bytes[i..i + 23];
        if window[6] == b'.'
            && window[..6].iter().all(|&b| is_tok(b))
            && window[7..].iter().all(|&b| is_tok(b))
        {
            out[i + 7..i + 23].fill(b'*');
            i += 23;
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_quickly_and_shallow_is_fine() {
        let deep = format!("clusters: {}{}", "[".repeat(20_000), "]".repeat(20_000));
        let started = std::time::Instant::now();
        assert!(check_nesting(&deep).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(check_nesting("a: [[1, 2], {b: [c]}]\n").is_ok());
        // Brackets in quoted scalars and comments do not count.
        let quoted = format!(
            "a: \"{}\"\n# {}\nb: '{}'\n",
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100)
        );
        assert!(check_nesting(&quoted).is_ok());
    }

    #[test]
    fn values_and_token_like_names_are_redacted() {
        let m = r#"invalid type: string "abcdef.0123456789abcdef", expected struct X"#;
        assert_eq!(
            redact_values(m),
            r#"invalid type: string "<value>", expected struct X"#
        );
        let m = "unknown field `abcdef.0123456789abcdef`, expected one of `a`, `b`";
        let r = redact_values(m);
        assert!(!r.contains("0123456789abcdef"), "{r}");
        assert!(r.contains("unknown field `abcdef.****************`"), "{r}");
        assert_eq!(
            redact_values("unknown field `tokn`"),
            "unknown field `tokn`"
        );
    }
}
