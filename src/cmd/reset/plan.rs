//! Which files are ours (step 4 of a reset): what kaas-join wrote and kubelet rotated from it
//! (the rotated client pairs, the temp files of a killed write), in the reverse of the join's
//! order; a `kubelet.conf` or `ca.crt` that another join wrote is kept, with why. And removing
//! them: files only, never a directory.

use std::io;
use std::path::Path;

use super::report::Kept;
use super::{Recorded, ResetError};
use crate::host::paths::{
    Paths, CA_CERT, KUBELET_CLIENT_CURRENT, KUBELET_CONFIG, KUBELET_DIR, KUBELET_FLAGS_ENV,
    KUBELET_KUBECONFIG, KUBELET_PKI_DIR, STATE_DIR,
};
use crate::model::pin::CaPin;
use crate::node::join_state::{NODE_KEY, STATE_FILE};
use crate::node::run_status::RUN_STATUS_FILE;

/// The user's own files: never removed.
const USER_CONFIG_DIR: &str = "/etc/kaas-join";
/// kubelet's self-signed serving certificate: kubelet made it, not kaas-join.
const KUBELET_SERVING: [&str; 2] = [
    "/var/lib/kubelet/pki/kubelet.crt",
    "/var/lib/kubelet/pki/kubelet.key",
];
/// The temporary link kubelet's certificate store makes while rotating.
const KUBELET_CLIENT_UPDATED: &str = "/var/lib/kubelet/pki/kubelet-client-updated.pem";

/// The files to remove (node paths, in order; those that do not exist are skipped when
/// removing) and those kept on purpose.
#[derive(Debug, Default)]
pub(super) struct Plan {
    remove: Vec<String>,
    pub(super) kept: Vec<Kept>,
}

impl Plan {
    /// Removes the files to remove, in order (with `dry_run`, only lists them): the node paths
    /// removed. Stops at the first that cannot be removed, so `state.json` (the last) stays.
    pub(super) fn remove_files(
        &self,
        paths: &Paths,
        dry_run: bool,
    ) -> Result<Vec<String>, ResetError> {
        let mut removed = Vec::new();
        for node_path in &self.remove {
            // The entry itself: a link is removed, not what it points to.
            let host = paths.entry(node_path);
            if dry_run {
                removed.push(node_path.clone());
                continue;
            }
            match remove_file(&host) {
                Ok(true) => removed.push(node_path.clone()),
                Ok(false) => {}
                Err(source) => {
                    return Err(ResetError::Remove {
                        path: host,
                        source,
                        removed: removed.len(),
                    })
                }
            }
        }
        Ok(removed)
    }
}

/// What reset removes (ours, and what kubelet rotated from it), in the reverse of the join's
/// order with `state.json` last, and what it keeps on purpose (with why).
pub(super) fn plan(paths: &Paths, rec: &Recorded) -> Result<Plan, ResetError> {
    let mut plan = Plan::default();
    let mut remove_or_keep = |node_path: &str, foreign: Option<String>| match foreign {
        None => plan.remove.push(node_path.to_string()),
        Some(reason) => plan.kept.push(Kept {
            path: node_path.to_string(),
            reason,
        }),
    };

    // The reverse of the join's order: kubelet.conf (what says "joined") first.
    if exists(paths, KUBELET_KUBECONFIG) {
        remove_or_keep(KUBELET_KUBECONFIG, foreign_kubeconfig(paths, rec));
    }
    remove_or_keep(KUBELET_FLAGS_ENV, None);
    remove_or_keep(KUBELET_CONFIG, None);
    if exists(paths, CA_CERT) {
        remove_or_keep(CA_CERT, foreign_ca(paths, rec));
    }
    // kubelet's client certificate: the link, the link kubelet makes while rotating, then every
    // pair (ours and those kubelet rotated from it). Not its serving certificate.
    remove_or_keep(KUBELET_CLIENT_CURRENT, None);
    remove_or_keep(KUBELET_CLIENT_UPDATED, None);
    for p in names_in(paths, KUBELET_PKI_DIR, is_kubelet_client_pair)? {
        remove_or_keep(&p, None);
    }
    // Temp files a killed write of ours left behind.
    let ours = |dir: &str, names: &'static [&'static str]| {
        names_in(paths, dir, move |n| {
            is_our_temp_file(n, |base| {
                names.contains(&base) || is_kubelet_client_pair(base)
            })
        })
    };
    for (dir, names) in [
        ("/etc/kubernetes", &["kubelet.conf"][..]),
        ("/etc/kubernetes/pki", &["ca.crt"][..]),
        (KUBELET_DIR, &["config.yaml", "kubeadm-flags.env"][..]),
        (KUBELET_PKI_DIR, &["kubelet-client-current.pem"][..]),
        (STATE_DIR, &["state.json", "node-key.pem"][..]),
        ("/run/kaas-join", &["status.json"][..]),
    ] {
        for p in ours(dir, names)? {
            remove_or_keep(&p, None);
        }
    }
    remove_or_keep(NODE_KEY, None);
    remove_or_keep(RUN_STATUS_FILE, None);
    // Last: while it exists, a re-run knows the node is ours and finishes the job.
    remove_or_keep(STATE_FILE, None);
    plan.remove.retain(|p| exists(paths, p));

    for p in KUBELET_SERVING {
        if exists(paths, p) {
            plan.kept.push(Kept {
                path: p.into(),
                reason: "kubelet's serving certificate (kubelet made it, not kaas-join)".into(),
            });
        }
    }
    if exists(paths, USER_CONFIG_DIR) {
        plan.kept.push(Kept {
            path: format!("{USER_CONFIG_DIR}/"),
            reason: "your configuration and token file: remove them yourself if this machine \
                     will not join again"
                .into(),
        });
    }
    Ok(plan)
}

/// Why `kubelet.conf` is not the one kaas-join wrote (its server is not the recorded one);
/// `None` when it is, or when nothing was recorded to tell.
fn foreign_kubeconfig(paths: &Paths, rec: &Recorded) -> Option<String> {
    let server = rec.server.as_deref()?;
    let text = std::fs::read_to_string(paths.host(KUBELET_KUBECONFIG)).ok();
    let config = text
        .as_deref()
        .and_then(|t| crate::model::kubeconfig::parse(t).ok());
    let Some(config) = config else {
        return Some("not a kubeconfig kaas-join wrote (it does not parse as one)".into());
    };
    let servers: Vec<&str> = config
        .clusters
        .iter()
        .filter_map(|c| c.cluster.as_ref()?.server.as_deref())
        .collect();
    if servers.iter().any(|s| s.trim_end_matches('/') == server) {
        None
    } else {
        Some(format!(
            "not the kubeconfig kaas-join wrote: its server ({}) is not {server}, the one in {STATE_FILE}",
            if servers.is_empty() {
                "none".to_string()
            } else {
                servers.join(", ")
            }
        ))
    }
}

/// Why `ca.crt` is not the CA kaas-join wrote (none of its certificates has the recorded pin);
/// `None` when it is, or when no pin was recorded (a join with
/// `--discovery-token-unsafe-skip-ca-verification`).
fn foreign_ca(paths: &Paths, rec: &Recorded) -> Option<String> {
    let pin: CaPin = rec.ca_pin.as_deref()?.parse().ok()?;
    let pem = std::fs::read(paths.host(CA_CERT)).unwrap_or_default();
    let matches = crate::model::pin::certificates_from_pem(&pem).is_ok_and(|ders| {
        ders.iter()
            .any(|d| CaPin::of_certificate_der(d).is_ok_and(|p| p == pin))
    });
    (!matches).then(|| {
        format!("not the CA kaas-join wrote: no certificate in it has the pin {pin} recorded in {STATE_FILE}")
    })
}

/// `kubelet-client-YYYY-MM-DD-HH-MM-SS.pem`: kubelet's certificate store names a rotated pair
/// with Go's `time.Now().Format("2006-01-02-15-04-05")` (client-go
/// `util/certificate/certificate_store.go`), and `join` uses the same form.
pub fn is_kubelet_client_pair(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix("kubelet-client-")
        .and_then(|r| r.strip_suffix(".pem"))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 | 10 | 13 | 16 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// A temp file of our atomic writes (`fs`: `.<name>.<pid>.<n>.tmp`) for one of `names`.
fn is_our_temp_file(name: &str, ours: impl Fn(&str) -> bool) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|r| r.strip_suffix(".tmp")) else {
        return false;
    };
    let mut parts = inner.rsplitn(3, '.');
    let (Some(n), Some(pid), Some(base)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(n) && digits(pid) && ours(base)
}

/// File names in `dir` (a node path) matching `keep`, sorted; none when it does not exist.
fn names_in(
    paths: &Paths,
    dir: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<String>, ResetError> {
    let host = paths.host(dir);
    let entries = match std::fs::read_dir(&host) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ResetError::Read { path: host, source }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ResetError::Read {
            path: host.clone(),
            source,
        })?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if keep(&name) && !entry.file_type().is_ok_and(|t| t.is_dir()) {
            names.push(format!("{dir}/{name}"));
        }
    }
    names.sort();
    Ok(names)
}

fn exists(paths: &Paths, node_path: &str) -> bool {
    paths.entry(node_path).symlink_metadata().is_ok()
}

/// Removes a file or symlink (never a directory); `false` when there was none.
fn remove_file(path: &Path) -> io::Result<bool> {
    match path.symlink_metadata() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
        Ok(m) if m.is_dir() => {
            return Err(io::Error::other(
                "it is a directory, where kaas-join wrote a file",
            ))
        }
        Ok(_) => {}
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_client_pair_names() {
        assert!(is_kubelet_client_pair(
            "kubelet-client-2026-11-27-07-30-00.pem"
        ));
        for name in [
            "kubelet-client-current.pem",
            "kubelet-client-updated.pem",
            "kubelet-client-2026-11-27-07-30.pem",
            "kubelet-client-2026-11-27-07-30-00.pem.bak",
            "kubelet-client-2026_11-27-07-30-00.pem",
            "kubelet-server-2026-11-27-07-30-00.pem",
            "kubelet.crt",
        ] {
            assert!(!is_kubelet_client_pair(name), "{name}");
        }
        let ours = |b: &str| b == "state.json";
        assert!(is_our_temp_file(".state.json.123.0.tmp", ours));
        assert!(!is_our_temp_file(".state.json.tmp", ours));
        assert!(!is_our_temp_file(".other.json.1.2.tmp", ours));
        assert!(!is_our_temp_file("state.json.1.2.tmp", ours));
    }
}
