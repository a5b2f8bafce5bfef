//! Node names: what the API server accepts as a Node's name.

use crate::model::labels;

/// Checks a node name (already lowercased) is a DNS-1123 subdomain. The error is a phrase
/// following "it".
pub fn check_node_name(name: &str) -> Result<(), String> {
    labels::check_dns_subdomain(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for ok in [
            "worker-1",
            "a",
            "node.example.com",
            "1abc",
            &"a".repeat(253),
        ] {
            check_node_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a..b",
            "a_b",
            "Worker",
            &"a".repeat(254),
            "a b",
        ] {
            assert!(check_node_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
