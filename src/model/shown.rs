//! How user input is echoed in an error message: cut to a length a terminal line holds, and
//! with any URL user info (`user:password@`) masked, so a 100 kB `--server` is not printed
//! twice and a password in a URL never reaches a log.

/// At most this many characters of a value are shown.
pub const MAX_SHOWN: usize = 120;

/// `value` as an error message may show it (see the module docs), quoted.
pub fn shown(value: &str) -> String {
    let masked = mask_user_info(value);
    let count = masked.chars().count();
    if count <= MAX_SHOWN {
        format!("{masked:?}")
    } else {
        let cut: String = masked.chars().take(MAX_SHOWN).collect();
        format!("{cut:?}… ({} bytes in all)", value.len())
    }
}

/// `scheme://user:pass@host...` → `scheme://***@host...` (and `user:pass@host:port` without a
/// scheme likewise): the part before the last `@` of the authority.
fn mask_user_info(value: &str) -> String {
    let (scheme, rest) = match value.find("://") {
        Some(i) => value.split_at(i + 3),
        None => ("", value),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_user_info_masked() {
        assert_eq!(shown("10.0.0.5:6443"), "\"10.0.0.5:6443\"");
        assert_eq!(
            shown("https://admin:s3cret@cp.example:6443/x"),
            "\"https://***@cp.example:6443/x\""
        );
        assert_eq!(shown("admin:s3cret@cp:6443"), "\"***@cp:6443\"");
        // An @ in the path is no user info.
        assert_eq!(shown("https://cp/a@b"), "\"https://cp/a@b\"");
        let long = "x".repeat(100_000);
        let s = shown(&long);
        assert!(s.len() < 200, "{}", s.len());
        assert!(s.ends_with("(100000 bytes in all)"), "{s}");
    }
}
