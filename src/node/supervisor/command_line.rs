//! kubelet's command line, as kubeadm's systemd drop-in (`10-kubeadm.conf`) builds it: the
//! kubeconfig and config flags, then `KUBELET_KUBEADM_ARGS` from the flags file `join` wrote,
//! then `KUBELET_EXTRA_ARGS` from `/etc/default/kubelet` (deb) or `/etc/sysconfig/kubelet` (rpm),
//! then `--kubelet-arg`s. The env files are read with `super::env_file` (systemd's rules).
//!
//! Reads files under [`Paths`]; used by `run` (`cmd::run`) before it starts the supervisor.

use std::io;
use std::path::Path;

use super::env_file;
use super::{read_file_join_wrote, SupervisorError};
use crate::host::paths::{Paths, KUBELET_CONFIG, KUBELET_FLAGS_ENV, KUBELET_KUBECONFIG};

/// kubeadm's bootstrap kubeconfig; kubeadm's drop-in always passes it (kubelet ignores it once
/// `kubelet.conf` exists, which `join` writes).
pub const BOOTSTRAP_KUBECONFIG: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
/// Env files of the kubelet packages holding `KUBELET_EXTRA_ARGS`: deb, then rpm. The first that
/// exists is read.
pub const EXTRA_ARGS_FILES: [&str; 2] = ["/etc/default/kubelet", "/etc/sysconfig/kubelet"];

/// kubelet's arguments, as kubeadm's systemd drop-in builds them (see the module docs). Paths in
/// the arguments are node paths; the files are read under `paths`.
pub fn kubelet_command_line(
    paths: &Paths,
    extra: &[String],
) -> Result<Vec<String>, SupervisorError> {
    let mut args = vec![
        format!("--bootstrap-kubeconfig={BOOTSTRAP_KUBECONFIG}"),
        format!("--kubeconfig={KUBELET_KUBECONFIG}"),
        format!("--config={KUBELET_CONFIG}"),
    ];
    let flags_path = paths.host(KUBELET_FLAGS_ENV);
    let flags = read_file_join_wrote(&flags_path)?;
    args.extend(env_file_words(&flags_path, &flags, "KUBELET_KUBEADM_ARGS")?);
    for file in EXTRA_ARGS_FILES {
        let path = paths.host(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                args.extend(env_file_words(&path, &text, "KUBELET_EXTRA_ARGS")?);
                break;
            }
            // The packages' env files are optional: the next one, or none.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(SupervisorError::Read { path, source }),
        }
    }
    args.extend(extra.iter().cloned());
    Ok(args)
}

/// The container runtime endpoint `argv` gives kubelet: the value of its last
/// `--container-runtime-endpoint` (`=value` or the next word), as kubelet's flag parsing keeps
/// the last; `None` when it is not given (kubelet then takes `containerRuntimeEndpoint` from its
/// config file, which `join` leaves empty). What the health probe must check: the socket
/// kubelet talks to, not a default.
pub fn container_runtime_endpoint(argv: &[String]) -> Option<String> {
    const FLAG: &str = "--container-runtime-endpoint";
    let mut found = None;
    let mut words = argv.iter();
    while let Some(word) = words.next() {
        if let Some(value) = word.strip_prefix(FLAG).and_then(|r| r.strip_prefix('=')) {
            found = Some(value.to_string());
        } else if word == FLAG {
            found = words.next().cloned();
        }
    }
    found.filter(|v| !v.is_empty())
}

/// The words of `var` in the env file at `path` (none when it is not set).
fn env_file_words(path: &Path, text: &str, var: &str) -> Result<Vec<String>, SupervisorError> {
    env_file::words_of(text, var).map_err(|message| SupervisorError::Invalid {
        path: path.to_owned(),
        message,
    })
}
