//! The config file's kubelet overrides checked against KubeletConfiguration
//! `kubelet.config.k8s.io/v1beta1` as of Kubernetes v1.33, before they reach
//! `/var/lib/kubelet/config.yaml`: a typo (`maxPod: 50`), a wrong type (`maxPods: fifty`) or a
//! value out of range (`healthzPort: 99999`) is refused here, with the field's path, its line in
//! the file and the nearest known name, instead of making kubelet ignore it or fail at start.
//! Overrides that weaken a secure default are let through but listed, each with a reason, for
//! the caller to warn about.
//!
//! Pure: the config loader calls [`validate`] (an error is a usage error, exit 2); `join`,
//! `preflight` and the join report show the [`Weakened`] list. The schema itself is data in
//! `schema.rs`; `check.rs` walks it, `locate.rs` finds lines, `weakened.rs` holds the rules.
//!
//! # What counts as weakening
//!
//! An override that switches off a protection of kubelet's API — who may talk to it, and
//! whether either side can verify the other — where kubelet, kubeadm or kaas-join has it on by
//! default, or where a cluster may have turned it on; and the CIS Kubernetes Benchmark's
//! kubelet items (section 4.2) whose kubelet default is the secure value:
//!
//! | override | why |
//! |---|---|
//! | `authentication.anonymous.enabled: true` | anonymous requests reach the API (CIS 4.2.1) |
//! | `authentication.webhook.enabled: false` | bearer tokens are no longer checked (TokenReview) |
//! | `authentication.x509.clientCAFile: ""` or `null` | client certificates are not verified (CIS 4.2.3) |
//! | `authorization.mode: AlwaysAllow` | no SubjectAccessReview (CIS 4.2.2) |
//! | `readOnlyPort` other than 0 | unauthenticated read-only port (CIS 4.2.4) |
//! | `rotateCertificates: false` or `null` | the client certificate is not renewed (CIS 4.2.11) |
//! | `serverTLSBootstrap: false` | a self-signed serving certificate the API server cannot verify (CIS 4.2.12) |
//! | `featureGates: {RotateKubeletServerCertificate: false}` | no cluster-signed serving certificate (CIS 4.2.12) |
//! | `tlsCipherSuites` with a weak suite | no forward secrecy, or CBC/RC4/3DES (CIS 4.2.13) |
//! | `tlsMinVersion: VersionTLS10` or `VersionTLS11` | old TLS on the API |
//! | `makeIPTablesUtilChains: false` | CIS 4.2.7 |
//! | `enableSystemLogQuery: true` | node logs through `/logs` (kubelet's docs: only while debugging) |
//!
//! Not counted, on purpose:
//! - `protectKernelDefaults: false`, `seccompDefault: false`, any `podPidsLimit`: kubelet's
//!   own defaults; their CIS values are hardening choices (`protectKernelDefaults: true` makes
//!   kubelet refuse to start on most stock kernels), not a protection switched off.
//! - `streamingConnectionIdleTimeout: 0s`: in a config file 0 means kubelet's default (4h); the
//!   CIS item is about the command-line flag, where 0 means no timeout. kubeadm writes `0s`.
//! - `eventRecordQPS: 0`: no limit on events, which CIS 4.2.9 accepts.
//! - `null` for `authentication.anonymous.enabled`, `authentication.webhook.enabled` or
//!   `authorization.mode`: kubelet's v1beta1 defaults for them are the secure values.
//! - `address`, `healthzBindAddress`, `enableDebuggingHandlers`, `allowedUnsafeSysctls`: where
//!   kubelet listens and what pods may ask for; kubelet's defaults, or workload policy.
//!
//! # Limits
//!
//! Checked: field names, types, enums, formats (durations, quantities, percentages, IP
//! addresses) and the single-field ranges of kubelet's validation. Not checked: rules across
//! fields (`imageGCLowThresholdPercent` below the high one, `systemCgroups` needing
//! `cgroupRoot`, ...) and feature-gate requirements, since an override is only a fragment of
//! the configuration kubelet ends up with.

mod check;
mod locate;
mod scalars;
mod schema;
mod suggest;
mod weakened;

use std::fmt;

use serde_norway::Value;

use crate::model::yaml_guard::is_field_name;

/// The Kubernetes release whose KubeletConfiguration the schema describes.
pub const KUBERNETES_VERSION: &str = "v1.33";

/// A step of a field's path: a struct field, a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Key(String),
    Index(usize),
}

/// `authentication.webhook`, `evictionHard[memory.available]`, `registerWithTaints[0].effect`.
/// A name that is not shaped like a field name (a token pasted as a key) is not shown.
fn show_path(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Field(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(shown_name(name));
            }
            Step::Key(key) => {
                out.push('[');
                out.push_str(shown_name(key));
                out.push(']');
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn shown_name(name: &str) -> &str {
    if is_field_name(name) {
        name
    } else {
        "<name not shown>"
    }
}

/// One thing wrong with the overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field, as [`show_path`] writes it (`authentication.webhok`).
    pub path: String,
    /// Its line in the config file, when it could be found.
    pub line: Option<usize>,
    /// What is wrong, naming the value only when it is a number or a boolean.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str("the kubelet configuration")?;
        } else {
            write!(f, "`{}`", self.path)?;
        }
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        write!(f, " {}", self.message)
    }
}

/// The overrides do not fit KubeletConfiguration v1beta1: every problem found, up to a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    pub problems: Vec<Problem>,
    /// Problems beyond those listed.
    pub more: usize,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.problems.as_slice() {
            [only] if self.more == 0 => write!(f, "{only}"),
            all => {
                write!(f, "has {} problems:", all.len() + self.more)?;
                for problem in all {
                    write!(f, "\n  - {problem}")?;
                }
                if self.more > 0 {
                    write!(f, "\n  - and {} more", self.more)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SchemaError {}

/// An override that weakens a secure default of kubelet's API (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Weakened {
    /// The field (`authentication.anonymous.enabled`).
    pub path: String,
    /// The value it is given, as YAML would write it (`true`, `AlwaysAllow`, `10255`).
    pub value: String,
    /// Why it is weaker, in one line.
    pub reason: &'static str,
    /// Its line in the config file, when it could be found.
    pub line: Option<usize>,
}

impl fmt::Display for Weakened {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "kubelet override `{}: {}`", self.path, self.value)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        write!(f, " weakens a secure default: {}", self.reason)
    }
}

/// Checks the kubelet overrides against KubeletConfiguration v1beta1 (Kubernetes v1.33).
///
/// `overrides` is the fragment as read from the config file: the value of our format's
/// `kubelet:` or the `KubeletConfiguration` document, `apiVersion`/`kind` and all (before any
/// field is lifted out of it); `null` is an empty fragment. `source_text` is the whole config
/// file (every document), to give each problem its line; `None` when there is no file.
///
/// Returns the overrides that weaken a secure default, or every problem found.
pub fn validate(
    overrides: &Value,
    source_text: Option<&str>,
) -> Result<Vec<Weakened>, SchemaError> {
    if overrides.is_null() {
        return Ok(Vec::new());
    }
    let line = |path: &[Step]| source_text.and_then(|text| locate::line_of(text, path));
    let mut checker = check::Checker::default();
    checker.check(
        overrides,
        &schema::Type::Struct(schema::KUBELET_CONFIGURATION),
    );
    if !checker.findings.is_empty() {
        let problems = checker
            .findings
            .into_iter()
            .map(|finding| Problem {
                path: show_path(&finding.path),
                line: line(&finding.path),
                message: finding.message,
            })
            .collect();
        return Err(SchemaError {
            problems,
            more: checker.more,
        });
    }
    Ok(weakened::weakenings(overrides)
        .into_iter()
        .map(|(path, value, reason)| Weakened {
            path: show_path(&path),
            line: line(&path),
            value,
            reason,
        })
        .collect())
}

#[cfg(test)]
mod tests;
