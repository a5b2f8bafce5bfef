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
                let quoted = &rest[start + 1..start + 1 + len];
                // A duplicate key is named by the key: show it when it is a field name (never
                // a value, and never a token's shape).
                if out.ends_with("with key ") && is_field_name(quoted) {
                    out.push_str(&format!("\"{quoted}\""));
                } else {
                    out.push_str("\"<value>\"");
                }
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

/// A YAML field name as KubeletConfiguration and our files have them: letters, digits, `_`,
/// `-`, `.`, `/`, at most 63 characters, and not a bootstrap token's shape.
pub fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !has_token_shape(s)
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

/// `value` quoted when it has the shape of an `apiVersion` (`v1`, `group/v1beta4`), else a note
/// that it is not shown: an error about an unknown apiVersion must not echo a token pasted there.
pub fn shown_api_version(value: &str) -> String {
    let version_ok = |v: &str| {
        let Some(rest) = v.strip_prefix('v') else {
            return false;
        };
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let tail = &rest[digits..];
        let level = ["alpha", "beta"].iter().find_map(|l| tail.strip_prefix(l));
        digits > 0
            && match level {
                None => tail.is_empty(),
                Some(n) => !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()),
            }
    };
    let group_ok = |g: &str| {
        !g.is_empty()
            && g.len() <= 253
            && g.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
            && !has_token_shape(g)
    };
    let shaped = match value.split_once('/') {
        Some((group, version)) => group_ok(group) && version_ok(version),
        None => version_ok(value),
    };
    if shaped {
        format!("{value:?}")
    } else {
        "(not shown: not an apiVersion)".to_owned()
    }
}

/// `value` quoted when it has the shape of a `kind` (`JoinConfiguration`: an upper-case letter,
/// then letters and digits), else a note that it is not shown (a token is lower-case).
pub fn shown_kind(value: &str) -> String {
    let shaped = value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_uppercase())
        && value.chars().all(|c| c.is_ascii_alphanumeric());
    if shaped {
        format!("{value:?}")
    } else {
        "(not shown: not a kind)".to_owned()
    }
}

/// Whether `s` contains `[a-z0-9]{6}.[a-z0-9]{16}`, a bootstrap token's shape.
fn has_token_shape(s: &str) -> bool {
    let tok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.as_bytes()
        .windows(23)
        .any(|w| w[..6].iter().all(tok) && w[6] == b'.' && w[7..].iter().all(tok))
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
    fn a_duplicate_key_is_named_by_its_name() {
        assert_eq!(
            redact_values("kubelet: duplicate entry with key \"maxPods\" at line 3 column 3"),
            "kubelet: duplicate entry with key \"maxPods\" at line 3 column 3"
        );
        // A token pasted as a key, or a key that is no field name, stays hidden.
        let token = redact_values("duplicate entry with key \"abcdef.0123456789abcdef\"");
        assert!(!token.contains("0123456789abcdef"), "{token}");
        assert_eq!(
            redact_values("duplicate entry with key \"a b: c\""),
            "duplicate entry with key \"<value>\""
        );
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

    #[test]
    fn only_identifier_shaped_api_versions_and_kinds_are_echoed() {
        for shown in [
            "v1",
            "kubeadm.k8s.io/v1beta2",
            "kaas-join.io/v1alpha1",
            "x.io/v2",
        ] {
            assert_eq!(shown_api_version(shown), format!("{shown:?}"));
        }
        for hidden in [
            "abcdef.0123456789abcdef",
            "0123456789abcdef",
            "abcdef.0123456789abcdef/v1",
            "kubeadm.k8s.io/v1beta",
            "kubeadm.k8s.io/v1 abcdef.0123456789abcdef",
            "v1abcdef0123456789",
            "",
        ] {
            assert_eq!(
                shown_api_version(hidden),
                "(not shown: not an apiVersion)",
                "{hidden}"
            );
        }
        assert_eq!(shown_kind("JoinConfiguration"), "\"JoinConfiguration\"");
        for hidden in [
            "JoinConfiguration abcdef.0123456789abcdef",
            "0123456789abcdef",
            "joinConfiguration",
            "",
        ] {
            assert_eq!(shown_kind(hidden), "(not shown: not a kind)", "{hidden}");
        }
    }
}
