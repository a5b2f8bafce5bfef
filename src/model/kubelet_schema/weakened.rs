//! Which overrides weaken a secure default of kubelet's API (see the module docs of
//! [`super`] for the list and why it is this list).
//!
//! An override counts when it names the field itself (as `render::kubelet_config` decides
//! what the user "set explicitly"): `authentication: null` removes the section, but the secure
//! fields are then put back, so only the field's own key counts.

use serde_norway::Value;

use super::schema::CIPHER_SUITES;
use super::Step;

/// One rule: the field, and what makes its value weaker (`Some(shown value)`), and why.
struct Rule {
    path: &'static [&'static str],
    weakens: fn(&Value) -> Option<String>,
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        path: &["authentication", "anonymous", "enabled"],
        weakens: is_true,
        why: "anonymous requests reach kubelet's API (CIS 4.2.1)",
    },
    Rule {
        path: &["authentication", "webhook", "enabled"],
        weakens: is_false,
        why: "kubelet stops checking bearer tokens with the API server (TokenReview): \
              service-account clients such as metrics-server are no longer authenticated",
    },
    Rule {
        path: &["authentication", "x509", "clientCAFile"],
        weakens: is_empty_or_null,
        why:
            "kubelet no longer verifies client certificates, the API server's included (CIS 4.2.3)",
    },
    Rule {
        path: &["authorization", "mode"],
        weakens: is_always_allow,
        why: "every request that gets past authentication is allowed, without asking the API \
              server (SubjectAccessReview) (CIS 4.2.2)",
    },
    Rule {
        path: &["readOnlyPort"],
        weakens: is_nonzero,
        why: "opens kubelet's read-only port, which serves pod and node data without \
              authentication or authorization (CIS 4.2.4)",
    },
    Rule {
        path: &["rotateCertificates"],
        weakens: is_false_or_null,
        why: "kubelet no longer renews its client certificate: the node drops out of the cluster \
              when it expires (CIS 4.2.11)",
    },
    Rule {
        path: &["serverTLSBootstrap"],
        weakens: is_false,
        why: "kubelet serves a self-signed certificate, which the API server cannot verify, \
              instead of one signed by the cluster CA (CIS 4.2.12)",
    },
    Rule {
        path: &["featureGates", "RotateKubeletServerCertificate"],
        weakens: is_false,
        why: "kubelet can no longer request or renew a serving certificate from the cluster \
              (CIS 4.2.12)",
    },
    Rule {
        path: &["tlsCipherSuites"],
        weakens: weak_cipher_suites,
        why: "allows cipher suites without forward secrecy or with CBC, RC4 or 3DES on kubelet's \
              API (CIS 4.2.13)",
    },
    Rule {
        path: &["tlsMinVersion"],
        weakens: is_old_tls,
        why: "allows TLS 1.0 or 1.1 on kubelet's API",
    },
    Rule {
        path: &["makeIPTablesUtilChains"],
        weakens: is_false,
        why: "kubelet stops maintaining its iptables utility chains (CIS 4.2.7)",
    },
    Rule {
        path: &["enableSystemLogQuery"],
        weakens: is_true,
        why: "the node's system logs can be queried through kubelet's /logs endpoint (kubelet's \
              docs: enable it only while debugging)",
    },
];

/// The overrides that weaken a secure default: field path, the value as shown, and why. The
/// overrides have passed the schema check (types are right).
pub(super) fn weakenings(overrides: &Value) -> Vec<(Vec<Step>, String, &'static str)> {
    RULES
        .iter()
        .filter_map(|rule| {
            let value = named(overrides, rule.path)?;
            let shown = (rule.weakens)(value)?;
            let path = rule.path.iter().map(|s| Step::Field((*s).into())).collect();
            Some((path, shown, rule.why))
        })
        .collect()
}

/// The value under `path` when the overrides name its last key (a `null` included).
fn named<'v>(overrides: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter()
        .try_fold(overrides, |at, key| at.as_mapping()?.get(*key))
}

fn is_true(v: &Value) -> Option<String> {
    (v.as_bool() == Some(true)).then(|| "true".into())
}

fn is_false(v: &Value) -> Option<String> {
    (v.as_bool() == Some(false)).then(|| "false".into())
}

fn is_false_or_null(v: &Value) -> Option<String> {
    if v.is_null() {
        Some("null (kubelet's default: false)".into())
    } else {
        is_false(v)
    }
}

fn is_empty_or_null(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("null".into()),
        Value::String(s) if s.is_empty() => Some("\"\"".into()),
        _ => None,
    }
}

fn is_always_allow(v: &Value) -> Option<String> {
    (v.as_str() == Some("AlwaysAllow")).then(|| "AlwaysAllow".into())
}

fn is_nonzero(v: &Value) -> Option<String> {
    let port = v.as_i64()?;
    (port != 0).then(|| port.to_string())
}

fn is_old_tls(v: &Value) -> Option<String> {
    let version = v.as_str()?;
    matches!(version, "VersionTLS10" | "VersionTLS11").then(|| version.to_owned())
}

/// The weak suites of the list, by their names (known names only: the schema refused others).
fn weak_cipher_suites(v: &Value) -> Option<String> {
    let weak: Vec<&str> = v
        .as_sequence()?
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|name| CIPHER_SUITES.iter().find(|(known, _)| *known == name))
        .filter(|(_, strong)| !strong)
        .map(|(name, _)| *name)
        .collect();
    (!weak.is_empty()).then(|| format!("[{}]", weak.join(", ")))
}
