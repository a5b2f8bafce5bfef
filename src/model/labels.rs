//! Node labels given with `--node-labels` (or `nodeLabels:` in the config file): parsing and the
//! checks kubelet and the API server will apply, done up front so a bad label is a clear error
//! here instead of a crash-looping kubelet later.
//!
//! Two checks:
//! - syntax: keys are Kubernetes qualified names (`[prefix/]name`, the prefix a DNS-1123
//!   subdomain of at most 253 characters, the name at most 63 characters of `[A-Za-z0-9-_.]`
//!   starting and ending alphanumeric); values are empty or follow the name rule;
//! - NodeRestriction: kubelet registers its own Node, and the NodeRestriction admission plugin
//!   refuses a Node that carries a label kubelet may not set on itself (403 Forbidden; kubelet
//!   then exits and systemd restarts it, forever). The rule, from
//!   `plugin/pkg/admission/noderestriction` and `pkg/kubelet/apis/well_known_labels.go`
//!   (`IsKubeletLabel`): anything under `node-restriction.kubernetes.io` is refused; any other
//!   key whose prefix is `kubernetes.io`/`k8s.io` or a subdomain of them is refused unless it is
//!   one of [`KUBELET_LABELS`] or lies under one of [`KUBELET_LABEL_NAMESPACES`]. Labels such as
//!   `node-role.kubernetes.io/worker` must be set by an admin after the node has joined.

use std::collections::BTreeMap;

/// Label keys kubelet may set on its own Node (`KubeletLabels()` upstream).
pub const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

/// Label prefixes (and their subdomains) kubelet may set freely (`KubeletLabelNamespaces()`).
pub const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

/// The label prefix reserved for admins, so that nodes cannot steer workloads to themselves.
pub const NODE_RESTRICTION_NAMESPACE: &str = "node-restriction.kubernetes.io";

/// Maximum length of a label name and of a label value.
const MAX_NAME_LEN: usize = 63;
/// Maximum length of a DNS-1123 subdomain (a label prefix).
const MAX_PREFIX_LEN: usize = 253;

/// Why a node label was refused. Each message names the label and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error(
        "node label key {key:?} is not valid: {reason}; a key is [prefix/]name, e.g. \
         example.com/team or team"
    )]
    InvalidKey { key: String, reason: String },
    #[error(
        "node label {key:?} has an invalid value {value:?}: {reason}; a value is empty or at most \
         63 characters of [A-Za-z0-9-_.], starting and ending with a letter or digit"
    )]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error(
        "node label {key:?} cannot be set by kubelet on its own Node: {why}; the NodeRestriction \
         admission plugin would refuse the node's registration (403 Forbidden) and kubelet would \
         crash-loop. Leave it out and have an admin label the node once it has joined: \
         kubectl label node <node-name> {key}={value}",
        value = value.as_deref().unwrap_or("<value>")
    )]
    NotSettableByKubelet {
        key: String,
        value: Option<String>,
        why: &'static str,
    },
    #[error(
        "node label {key:?} is given twice with different values ({first:?}, then {second:?}): \
         keep the one you mean"
    )]
    GivenTwice {
        key: String,
        first: String,
        second: String,
    },
}

/// Parses `--node-labels` specs, each `key=value[,key=value...]`, into one map, and validates
/// every label with [`validate_label`]. A key given twice with different values is an error
/// (kubelet would silently keep the last: a typo that changes where pods land); the same
/// label twice is fine.
///
/// Like kubelet's own flag parser, surrounding whitespace is trimmed, empty items (`a=b,,c=d`)
/// are skipped and an item without `=` is a key with an empty value (`node.kubernetes.io/gpu`).
pub fn parse_node_labels(specs: &[String]) -> Result<BTreeMap<String, String>, LabelError> {
    let mut labels = BTreeMap::new();
    for spec in specs {
        for item in spec.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (item, ""),
            };
            validate_label(key, value)?;
            if let Some(first) = labels.insert(key.to_owned(), value.to_owned()) {
                if first != value {
                    return Err(LabelError::GivenTwice {
                        key: key.to_owned(),
                        first,
                        second: value.to_owned(),
                    });
                }
            }
        }
    }
    Ok(labels)
}

/// Validates one label: key syntax, value syntax and [`validate_kubelet_may_set`].
pub fn validate_label(key: &str, value: &str) -> Result<(), LabelError> {
    validate_key(key)?;
    if let Err(reason) = check_name(value, true) {
        return Err(LabelError::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        });
    }
    validate_kubelet_may_set(key).map_err(|e| match e {
        LabelError::NotSettableByKubelet { key, why, .. } => LabelError::NotSettableByKubelet {
            key,
            value: Some(value.to_owned()),
            why,
        },
        other => other,
    })
}

/// Refuses label keys kubelet may not set on its own Node (see the module doc). Does not check
/// syntax; [`validate_label`] does both.
pub fn validate_kubelet_may_set(key: &str) -> Result<(), LabelError> {
    let refuse = |why| {
        Err(LabelError::NotSettableByKubelet {
            key: key.to_owned(),
            value: None,
            why,
        })
    };
    let namespace = key.split_once('/').map(|(p, _)| p).unwrap_or("");
    if in_namespace(namespace, NODE_RESTRICTION_NAMESPACE) {
        return refuse(
            "the node-restriction.kubernetes.io/ prefix is reserved for labels only admins may set",
        );
    }
    let kubernetes_label =
        in_namespace(namespace, "kubernetes.io") || in_namespace(namespace, "k8s.io");
    if kubernetes_label && !is_kubelet_label(key, namespace) {
        return refuse(
            "kubelet may set only a few well-known kubernetes.io/k8s.io labels (hostname, os, arch, \
             instance type, region, zone) and those under node.kubernetes.io/ or \
             kubelet.kubernetes.io/",
        );
    }
    Ok(())
}

/// `namespace` equals `domain` or is a subdomain of it.
fn in_namespace(namespace: &str, domain: &str) -> bool {
    namespace == domain
        || namespace
            .strip_suffix(domain)
            .is_some_and(|head| head.ends_with('.'))
}

fn is_kubelet_label(key: &str, namespace: &str) -> bool {
    KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES
            .iter()
            .any(|ns| in_namespace(namespace, ns))
}

fn validate_key(key: &str) -> Result<(), LabelError> {
    check_qualified_name(key).map_err(|reason| LabelError::InvalidKey {
        key: key.to_owned(),
        reason,
    })
}

/// A Kubernetes qualified name (`[prefix/]name`), as label and taint keys are. The error is a
/// phrase naming the broken part.
pub(crate) fn check_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if name.contains('/') {
            return Err("it contains more than one '/'".into());
        }
        check_dns_subdomain(prefix).map_err(|r| format!("the prefix {prefix:?} {r}"))?;
    }
    check_name(name, false).map_err(|r| format!("the name {name:?} {r}"))
}

/// A label (or taint) value: empty, or at most 63 characters of `[A-Za-z0-9-_.]` starting and
/// ending alphanumeric.
pub(crate) fn check_label_value(value: &str) -> Result<(), String> {
    check_name(value, true)
}

/// The qualified-name / label-value rule: at most 63 characters of `[A-Za-z0-9-_.]`, starting and
/// ending with an alphanumeric character. `allow_empty` for values.
fn check_name(s: &str, allow_empty: bool) -> Result<(), String> {
    if s.is_empty() {
        return if allow_empty {
            Ok(())
        } else {
            Err("is empty".into())
        };
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!(
            "is {} characters long, more than {MAX_NAME_LEN}",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "contains {c:?}; only letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    let b = s.as_bytes();
    if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

/// DNS-1123 subdomain: at most 253 characters, dot-separated labels of `[a-z0-9-]`, each starting
/// and ending alphanumeric. Returns the reason as a phrase that follows the value.
pub(crate) fn check_dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > MAX_PREFIX_LEN {
        return Err(format!(
            "is {} characters long, more than {MAX_PREFIX_LEN}",
            s.len()
        ));
    }
    for part in s.split('.') {
        if part.is_empty() {
            return Err("has an empty part between dots".into());
        }
        if let Some(c) = part
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!(
                "contains {c:?}; only lowercase letters, digits, '-' and '.' are allowed \
                 (a DNS-1123 subdomain)"
            ));
        }
        if part.starts_with('-') || part.ends_with('-') {
            return Err("has a part that starts or ends with '-' (a DNS-1123 subdomain)".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_comma_lists_and_repeats() {
        let l = parse_node_labels(&specs(&["team=a, env=prod", "zone=z1,,team=a"])).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l["team"], "a", "the same label twice is one label");
        assert_eq!(l["env"], "prod");
        assert_eq!(l["zone"], "z1");
    }

    #[test]
    fn a_key_given_twice_with_different_values_is_refused() {
        let e = parse_node_labels(&specs(&["team=a,team=b"])).unwrap_err();
        assert_eq!(
            e,
            LabelError::GivenTwice {
                key: "team".into(),
                first: "a".into(),
                second: "b".into()
            }
        );
        assert!(e.to_string().contains("given twice"), "{e}");
        assert!(parse_node_labels(&specs(&["team=a", "team=b"])).is_err());
    }

    #[test]
    fn item_without_equals_is_an_empty_value() {
        let l = parse_node_labels(&specs(&["example.com/gpu", "x="])).unwrap();
        assert_eq!(l["example.com/gpu"], "");
        assert_eq!(l["x"], "");
    }

    #[test]
    fn empty_input_is_no_labels() {
        assert!(parse_node_labels(&[]).unwrap().is_empty());
        assert!(parse_node_labels(&specs(&[""])).unwrap().is_empty());
    }

    #[test]
    fn accepts_valid_keys_and_values() {
        for (k, v) in [
            ("team", "a"),
            ("example.com/team", "A_b-c.d"),
            ("a.b-c.example/Name_1.x", ""),
            ("x", &"v".repeat(63)),
            (&format!("p/{}", "n".repeat(63)), "v"),
        ] {
            validate_label(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
        }
    }

    #[test]
    fn refuses_bad_keys() {
        for k in [
            "",
            "/name",
            "example.com/",
            "a/b/c",
            "Example.com/x",
            "exa_mple.com/x",
            "-x",
            "x-",
            "x y",
            "example..com/x",
        ] {
            let e = validate_label(k, "v").unwrap_err();
            assert!(matches!(e, LabelError::InvalidKey { .. }), "{k}: {e}");
            assert!(e.to_string().contains(&format!("{k:?}")), "{e}");
        }
        let long = "n".repeat(64);
        assert!(matches!(
            validate_label(&long, "v"),
            Err(LabelError::InvalidKey { .. })
        ));
        let long_prefix = format!("{}/x", "a".repeat(254));
        assert!(matches!(
            validate_label(&long_prefix, "v"),
            Err(LabelError::InvalidKey { .. })
        ));
    }

    #[test]
    fn refuses_bad_values() {
        for v in ["-a", "a-", "a b", "a/b", "ä"] {
            let e = validate_label("k", v).unwrap_err();
            assert!(matches!(e, LabelError::InvalidValue { .. }), "{v}: {e}");
        }
        let long = "v".repeat(64);
        assert!(matches!(
            validate_label("k", &long),
            Err(LabelError::InvalidValue { .. })
        ));
        assert!(parse_node_labels(&specs(&["k=a b"])).is_err());
    }

    #[test]
    fn kubelet_may_set_well_known_labels() {
        for k in KUBELET_LABELS {
            validate_kubelet_may_set(k).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
    }

    #[test]
    fn kubelet_may_set_allowed_namespaces_and_subdomains() {
        for k in [
            "node.kubernetes.io/gpu",
            "kubelet.kubernetes.io/x",
            "foo.node.kubernetes.io/x",
            "a.b.kubelet.kubernetes.io/x",
        ] {
            validate_kubelet_may_set(k).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
    }

    #[test]
    fn kubelet_may_set_unrelated_and_unprefixed_labels() {
        for k in [
            "team",
            "example.com/team",
            "notkubernetes.io/x",
            "kubernetes.io.example.com/x",
            "k8s.io.example/x",
        ] {
            validate_kubelet_may_set(k).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
    }

    #[test]
    fn refuses_node_role_with_admin_hint() {
        let e = parse_node_labels(&specs(&["node-role.kubernetes.io/worker="])).unwrap_err();
        assert!(matches!(e, LabelError::NotSettableByKubelet { .. }));
        let msg = e.to_string();
        assert!(msg.contains("NodeRestriction"), "{msg}");
        assert!(msg.contains("403"), "{msg}");
        assert!(msg.contains("crash-loop"), "{msg}");
        assert!(
            msg.contains("kubectl label node <node-name> node-role.kubernetes.io/worker="),
            "{msg}"
        );
    }

    #[test]
    fn refuses_other_kubernetes_and_k8s_io_labels() {
        for k in [
            "kubernetes.io/role",
            "k8s.io/x",
            "foo.k8s.io/x",
            "topology.kubernetes.io/other",
            "beta.kubernetes.io/fluentd-ds-ready",
            "kubernetes.io/instance-type-x",
        ] {
            let e = validate_kubelet_may_set(k).unwrap_err();
            assert!(matches!(e, LabelError::NotSettableByKubelet { .. }), "{k}");
            assert!(e.to_string().contains("<value>"), "{e}");
        }
    }

    #[test]
    fn refuses_node_restriction_namespace() {
        for k in [
            "node-restriction.kubernetes.io/pool",
            "team.node-restriction.kubernetes.io/pool",
        ] {
            let e = validate_label(k, "blue").unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("reserved"), "{msg}");
            assert!(msg.contains(&format!("{k}=blue")), "{msg}");
        }
    }
}
