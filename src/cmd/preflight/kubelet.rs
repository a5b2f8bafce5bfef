//! The kubelet binary: where it is (FileExisting-kubelet), and whether its version is within
//! the supported skew of the control plane's (KubeletVersion). `kubelet --version` runs through
//! [`Host::run`] ([`crate::host::kubelet_version`]); the version and the skew policy are
//! [`crate::model::kube_version`]'s, shared with `run`'s `KubeletVersionSkew` condition.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::names;
use super::report::CheckResult;
use crate::host::kubelet_version::{kubelet_version as ask_version, KubeletVersionError};
use crate::host::paths::Paths;
use crate::host::Host;
pub use crate::model::kube_version::KubeVersion;
use crate::model::kube_version::{Skew, MAX_KUBELET_MINOR_SKEW};

/// Where kubelet is looked for (under `--root`) when no `--kubelet` is given: the packages'
/// place, then the usual places of a manual install.
pub const KUBELET_SEARCH_PATHS: &[&str] = &[
    "/usr/bin/kubelet",
    "/usr/local/bin/kubelet",
    "/opt/bin/kubelet",
];
/// What is known of the control plane's version when the local checks run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVersion {
    /// No server given: the skew is not checked.
    NotAsked,
    Known(KubeVersion),
    /// Asked, but no usable answer (why).
    Unknown(String),
}

/// Which kubelet binary to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletBinary {
    /// The first of [`KUBELET_SEARCH_PATHS`] under the root.
    Search,
    /// A path on this machine, as given (`--kubelet`; not under the root).
    Given(PathBuf),
}

/// Error when missing: `run` cannot start kubelet, and a joined node without one never becomes
/// Ready. Returns the path to run for the version check.
pub(super) fn kubelet_binary(
    paths: &Paths,
    on_machine: bool,
    which: &KubeletBinary,
) -> (CheckResult, Option<PathBuf>) {
    let candidates: Vec<(PathBuf, String)> = match which {
        KubeletBinary::Given(p) => vec![(p.clone(), p.display().to_string())],
        KubeletBinary::Search => KUBELET_SEARCH_PATHS
            .iter()
            .map(|p| (paths.host(p), (*p).to_owned()))
            .collect(),
    };
    for (path, shown) in &candidates {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
                let at = if on_machine || matches!(which, KubeletBinary::Given(_)) {
                    String::new()
                } else {
                    format!(" under {}", paths.root().display())
                };
                return (
                    CheckResult::pass(names::KUBELET_BINARY, format!("kubelet at {shown}{at}")),
                    Some(path.clone()),
                );
            }
            Ok(_) => {
                return (
                    CheckResult::error(
                        names::KUBELET_BINARY,
                        format!("{shown} is not an executable file"),
                        format!("reinstall kubelet, or `chmod 755 {shown}`"),
                    ),
                    None,
                )
            }
            Err(_) => continue,
        }
    }
    let looked: Vec<&str> = candidates.iter().map(|(_, s)| s.as_str()).collect();
    let under = if on_machine {
        String::new()
    } else {
        format!(" under {}", paths.root().display())
    };
    (
        CheckResult::error(
            names::KUBELET_BINARY,
            format!("no kubelet binary at {}{under}", looked.join(", ")),
            "install kubelet (the package of the cluster's minor version, or the binary from \
             dl.k8s.io), or pass --kubelet PATH",
        ),
        None,
    )
}

/// Error when kubelet is newer than the API server or more than 3 minor versions older: the
/// supported skew; an unsupported kubelet may fail in ways that are hard to trace.
pub(super) fn kubelet_version(
    host: &dyn Host,
    kubelet: Option<&Path>,
    server: &ServerVersion,
) -> CheckResult {
    let Some(kubelet) = kubelet else {
        return CheckResult::skipped(
            names::KUBELET_VERSION,
            format!("no kubelet binary (see {})", names::KUBELET_BINARY),
        );
    };
    let version = match ask_version(host, kubelet) {
        Ok(version) => version,
        Err(e @ KubeletVersionError::NotKubelet { .. }) => {
            return CheckResult::error(
                names::KUBELET_VERSION,
                e.to_string(),
                "check that the binary is kubelet",
            )
        }
        Err(e @ KubeletVersionError::Failed { .. }) => {
            return CheckResult::error(
                names::KUBELET_VERSION,
                e.to_string(),
                "check that the binary is a working kubelet for this machine's architecture",
            )
        }
    };
    skew_verdict(&version, server)
}

/// The verdict on kubelet `version` against what is known of the control plane's.
fn skew_verdict(version: &KubeVersion, server: &ServerVersion) -> CheckResult {
    match server {
        ServerVersion::NotAsked => CheckResult::pass(
            names::KUBELET_VERSION,
            format!(
                "kubelet {}; its skew against the control plane is not checked without a server \
                 (`kaas-join preflight --server ...` checks it)",
                version.text
            ),
        ),
        ServerVersion::Unknown(why) => CheckResult::pass(
            names::KUBELET_VERSION,
            format!(
                "kubelet {}; the control plane's version is unknown ({why}), skew not checked",
                version.text
            ),
        ),
        ServerVersion::Known(api) => {
            let fix = format!(
                "install kubelet {}.{} (or up to {} minor versions older)",
                api.major, api.minor, MAX_KUBELET_MINOR_SKEW
            );
            match Skew::of(version, api) {
                Skew::KubeletNewer => CheckResult::error(
                    names::KUBELET_VERSION,
                    format!(
                        "kubelet {} is newer than the control plane {}: not a supported skew",
                        version.text, api.text
                    ),
                    fix,
                ),
                Skew::KubeletTooOld => CheckResult::error(
                    names::KUBELET_VERSION,
                    format!(
                        "kubelet {} is more than {MAX_KUBELET_MINOR_SKEW} minor versions older \
                         than the control plane {}: not a supported skew",
                        version.text, api.text
                    ),
                    fix,
                ),
                skew => {
                    let at_limit = if skew == Skew::AtLimit {
                        "; at the limit: the next control-plane upgrade puts it outside, \
                         upgrade kubelet first"
                    } else {
                        ""
                    };
                    CheckResult::pass(
                        names::KUBELET_VERSION,
                        format!(
                            "kubelet {}, control plane {}: within the supported skew (kubelet \
                             at most {MAX_KUBELET_MINOR_SKEW} minor versions older, never \
                             newer){at_limit}",
                            version.text, api.text
                        ),
                    )
                }
            }
        }
    }
}
