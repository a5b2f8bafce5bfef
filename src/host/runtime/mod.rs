//! The container runtime: its CRI socket and the cgroup driver it uses (kubelet must use the
//! same one, or pods fail to start).
//!
//! Everything is read under `--root` through [`crate::host::paths::Paths`], so tests run
//! against a temporary directory.
//!
//! The cgroup driver is read from the runtime's configuration files, like an admin would:
//! - containerd: `/etc/containerd/config.toml` and the files its `imports = [...]` name (globs
//!   allowed in the file name, later files override earlier ones), key `SystemdCgroup` in the
//!   options of the default runtime (`default_runtime_name`, `runc` unless set):
//!   `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]` (config version 2,
//!   containerd 1.x), `[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]`
//!   (version 3, containerd 2.x) or `[plugins.cri.containerd.runtimes.runc.options]` (version 1).
//!   Unset means cgroupfs: containerd 1.x and 2.x both default to `SystemdCgroup = false`
//!   (containerd/containerd#7319 and #12101 are still open about changing or showing that).
//! - CRI-O: `/etc/crio/crio.conf`, then `/etc/crio/crio.conf.d/*.conf` in lexical order (later
//!   files override), key `cgroup_manager` in `[crio.runtime]`; unset means systemd.
//! - cri-dockerd: `/etc/docker/daemon.json`, `exec-opts: ["native.cgroupdriver=..."]`; unset
//!   means systemd on a cgroup v2 host and cgroupfs on cgroup v1 (Docker 20.10 and later).
//!
//! The TOML files are read with a small line-based scanner (section headers, `key = value`,
//! dotted and quoted keys, comments, multi-line arrays), not a TOML parser: it is all these few
//! keys need. Where the files say nothing (none there, or no setting: a runtime started with a
//! `--config` of its own) or are unknown (an endpoint that is none of the well-known sockets),
//! the running runtime is asked over CRI ([`cri`]: `RuntimeConfig`, else containerd's verbose
//! `Status`); an unknown endpoint whose runtime does not tell is an error asking for
//! `--cgroup-driver`. When nothing tells, [`fallback_cgroup_driver`] picks one that can work on
//! the root (systemd only where systemd runs, or the image has it).
//!
//! No runtime socket under a `--root` that is not this machine's own (an image being built)
//! falls back to containerd's default endpoint, as kubeadm does ([`cri_socket_for_join`]).

use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::{fs, io};

mod containerd;
pub mod cri;
mod crio;
mod docker;
mod toml_scan;

use containerd::containerd_cgroup_driver;
use crio::crio_cgroup_driver;
use docker::docker_cgroup_driver;

use crate::host::paths::Paths;
use crate::host::Host;
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::exit_code::ExitCode;

/// A container runtime kaas-join knows how to find and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    CriO,
    CriDockerd,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "CRI-O",
            Runtime::CriDockerd => "cri-dockerd",
        }
    }
}

/// Well-known CRI endpoints, in the order they are tried (as kubeadm's `DetectCRISocket`; for
/// each runtime the first one present is used, so `/run` wins over the legacy `/var/run`, which
/// is usually a symlink to it).
pub const KNOWN_CRI_ENDPOINTS: &[(Runtime, &str)] = &[
    (
        Runtime::Containerd,
        "unix:///run/containerd/containerd.sock",
    ),
    (
        Runtime::Containerd,
        "unix:///var/run/containerd/containerd.sock",
    ),
    (Runtime::CriO, "unix:///run/crio/crio.sock"),
    (Runtime::CriO, "unix:///var/run/crio/crio.sock"),
    (Runtime::CriDockerd, "unix:///run/cri-dockerd.sock"),
    (Runtime::CriDockerd, "unix:///var/run/cri-dockerd.sock"),
];

pub(super) const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
pub(super) const CRIO_CONFIG: &str = "/etc/crio/crio.conf";
pub(super) const CRIO_CONFIG_DIR: &str = "/etc/crio/crio.conf.d";
pub(super) const DOCKER_DAEMON_JSON: &str = "/etc/docker/daemon.json";
/// Present only on a cgroup v2 (unified) hierarchy.
pub(super) const CGROUP_V2_MARKER: &str = "/sys/fs/cgroup/cgroup.controllers";
/// How deep containerd `imports` may nest before we stop following them.
pub(super) const MAX_IMPORT_DEPTH: usize = 8;

/// Why a fact about this machine could not be established. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "no container runtime socket found (looked for {}): install and start containerd or \
         CRI-O, or pass --cri-socket unix:///path/to/runtime.sock",
        searched.join(", ")
    )]
    NoCriSocket { searched: Vec<String> },
    #[error(
        "found the sockets of more than one container runtime ({}): pass --cri-socket with the \
         one kubelet should use",
        found.join(", ")
    )]
    MultipleCriSockets { found: Vec<String> },
    #[error(
        "cannot tell which cgroup driver the container runtime at {endpoint} uses (not a \
         well-known containerd, CRI-O or cri-dockerd socket): pass --cgroup-driver systemd or \
         --cgroup-driver cgroupfs, matching the runtime's configuration"
    )]
    UnknownRuntime { endpoint: String },
    #[error("cannot read {}: {source}; fix the file or pass --cgroup-driver", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{}:{line}: {key} = {value} is not {expected}; fix the file or pass --cgroup-driver",
        path.display()
    )]
    InvalidSetting {
        path: PathBuf,
        line: usize,
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("cannot parse {}: {message}; fix the file or pass --cgroup-driver", path.display())]
    Parse { path: PathBuf, message: String },
}

impl HostError {
    /// The documented exit code: always Usage (the runtime could not be told apart: the user must say which (--cri-socket, --cgroup-driver)).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

/// Finds the CRI endpoint like kubeadm's `DetectCRISocket`: the well-known sockets of
/// [`KNOWN_CRI_ENDPOINTS`] that exist under the root and are sockets. None is an error, and so
/// are sockets of more than one runtime (kubeadm refuses to guess, and so do we).
pub fn detect_cri_socket(paths: &Paths) -> Result<String, HostError> {
    let mut found: Vec<(Runtime, &str)> = Vec::new();
    for &(runtime, endpoint) in KNOWN_CRI_ENDPOINTS {
        if found.iter().any(|(r, _)| *r == runtime) {
            continue;
        }
        let node_path = endpoint.trim_start_matches("unix://");
        let is_socket = fs::metadata(paths.host(node_path))
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false);
        if is_socket {
            found.push((runtime, endpoint));
        }
    }
    match found.as_slice() {
        [] => Err(HostError::NoCriSocket {
            searched: KNOWN_CRI_ENDPOINTS
                .iter()
                .map(|(_, e)| e.to_string())
                .collect(),
        }),
        [(_, endpoint)] => Ok(endpoint.to_string()),
        many => Err(HostError::MultipleCriSockets {
            found: many
                .iter()
                .map(|(r, e)| format!("{} at {e}", r.name()))
                .collect(),
        }),
    }
}

/// kubeadm's `DefaultCRISocket` (cmd/kubeadm/app/constants/constants_unix.go): what its
/// `DetectCRISocket` falls back to when no runtime socket is found.
pub const DEFAULT_CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";

/// The CRI endpoint a join gives kubelet when none is given: [`detect_cri_socket`], except that
/// under a `--root` other than this machine's own (`on_machine` false: an image being built,
/// whose runtime starts only when it boots) no socket falls back to [`DEFAULT_CRI_SOCKET`], as
/// kubeadm does, with the warning to show. On the machine's own root no socket stays an error:
/// kubeadm falls back there too, but only to fail its own CRI preflight check a moment later;
/// the error here says the same earlier and lists the sockets looked for.
pub fn cri_socket_for_join(
    paths: &Paths,
    on_machine: bool,
) -> Result<(String, Option<String>), HostError> {
    match detect_cri_socket(paths) {
        Err(HostError::NoCriSocket { searched }) if !on_machine => Ok((
            DEFAULT_CRI_SOCKET.to_owned(),
            Some(format!(
                "no container runtime socket under {} (looked for {}): using containerd's \
                 default {DEFAULT_CRI_SOCKET}, as kubeadm does; pass --cri-socket if the image \
                 runs another runtime",
                paths.root().display(),
                searched.join(", ")
            )),
        )),
        other => other.map(|endpoint| (endpoint, None)),
    }
}

/// The runtime behind a well-known endpoint (`unix://` URL or bare path), if it is one.
pub fn runtime_of_endpoint(endpoint: &str) -> Option<Runtime> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    KNOWN_CRI_ENDPOINTS
        .iter()
        .find(|(_, e)| e.trim_start_matches("unix://") == path)
        .map(|(r, _)| *r)
}

/// What the runtime's configuration files say about its cgroup driver.
pub(super) struct FromFiles {
    driver: CgroupDriver,
    how: String,
    /// False: the files say nothing and `driver` is the runtime's documented default.
    stated: bool,
}

impl FromFiles {
    pub(super) fn stated(driver: CgroupDriver, how: String) -> FromFiles {
        FromFiles {
            driver,
            how,
            stated: true,
        }
    }

    pub(super) fn unstated(driver: CgroupDriver, how: String) -> FromFiles {
        FromFiles {
            driver,
            how,
            stated: false,
        }
    }
}

/// Determines the cgroup driver the runtime at `cri_endpoint` uses from its configuration files
/// under the root alone (see the module doc), and says how: e.g. `containerd: SystemdCgroup =
/// true for runtime runc in /etc/containerd/config.toml`. Where the files say nothing, the
/// runtime's documented default.
pub fn detect_cgroup_driver(
    paths: &Paths,
    cri_endpoint: &str,
) -> Result<(CgroupDriver, String), HostError> {
    from_files(paths, cri_endpoint).map(|f| (f.driver, f.how))
}

/// The cgroup driver kubelet should be given for the runtime at `cri_endpoint`: what its
/// configuration files say; where they say nothing or are unknown (not a well-known socket),
/// what the running runtime answers over CRI ([`cri::ask_cgroup_driver`], on the socket under
/// the root); else the files' default, or the error asking for `--cgroup-driver`.
pub fn runtime_cgroup_driver(
    machine: &dyn Host,
    paths: &Paths,
    cri_endpoint: &str,
) -> Result<(CgroupDriver, String), HostError> {
    let files = match from_files(paths, cri_endpoint) {
        Ok(f) if f.stated => return Ok((f.driver, f.how)),
        Ok(f) => Ok(f),
        // No file is known for this runtime: its answer may still tell.
        Err(e @ HostError::UnknownRuntime { .. }) => Err(e),
        // A file that says something wrong is for the user to fix, not to guess around.
        Err(e) => return Err(e),
    };
    let socket = cri_endpoint
        .strip_prefix("unix://")
        .filter(|p| p.starts_with('/'));
    let asked = match socket {
        Some(path) => cri::ask_cgroup_driver(machine, &paths.host(path)),
        None => Err(format!("{cri_endpoint} is not a unix socket")),
    };
    match (asked, files) {
        (Ok(found), _) => Ok(found),
        (Err(why), Ok(f)) => Ok((f.driver, format!("{}; {why}", f.how))),
        (Err(why), Err(e)) => {
            tracing::debug!("cgroup driver over CRI: {why}");
            Err(e)
        }
    }
}

fn from_files(paths: &Paths, cri_endpoint: &str) -> Result<FromFiles, HostError> {
    match runtime_of_endpoint(cri_endpoint) {
        Some(Runtime::Containerd) => containerd_cgroup_driver(paths),
        Some(Runtime::CriO) => crio_cgroup_driver(paths),
        Some(Runtime::CriDockerd) => docker_cgroup_driver(paths),
        None => Err(HostError::UnknownRuntime {
            endpoint: cri_endpoint.to_owned(),
        }),
    }
}

/// Where systemd's own binary is in an image (Debian and Fedora layouts): an image that has it
/// boots with systemd.
const SYSTEMD_BINARIES: [&str; 2] = ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"];

/// The driver kubelet gets when neither the user nor the runtime tells, and why. kubeadm's
/// default is systemd, but kubelet exits at once with it where systemd does not run ("systemd
/// not running on this host, cannot use systemd cgroups manager"), so:
/// - on this machine's own root: systemd if systemd runs it (`/run/systemd/system`), else
///   cgroupfs;
/// - under another `--root` (an image being built, which boots later): systemd if the root has
///   systemd installed, else cgroupfs. Whether systemd runs *here* says nothing about the
///   machine the image will boot.
pub fn fallback_cgroup_driver(host: &dyn Host, paths: &Paths) -> (CgroupDriver, String) {
    if host.is_machine_root(paths.root()) {
        return if host.systemd_running() {
            (
                CgroupDriver::Systemd,
                "default: systemd runs this machine".to_owned(),
            )
        } else {
            (
                CgroupDriver::Cgroupfs,
                "default: systemd does not run this machine (no /run/systemd/system), so not \
                 systemd"
                    .to_owned(),
            )
        };
    }
    match SYSTEMD_BINARIES.iter().find(|b| paths.host(b).exists()) {
        Some(binary) => (
            CgroupDriver::Systemd,
            format!("default: the root has systemd ({binary}), the image boots with it"),
        ),
        None => (
            CgroupDriver::Cgroupfs,
            format!(
                "default: the root has no systemd ({}), so not systemd",
                SYSTEMD_BINARIES.join(" or ")
            ),
        ),
    }
}

/// One configuration file as read: the path on the node (for messages) and the real path.
pub(super) struct ConfigFile {
    pub(super) node_path: String,
    pub(super) host_path: PathBuf,
    pub(super) text: String,
}

/// Reads a file under the root; `Ok(None)` when it does not exist.
pub(super) fn read_optional(
    paths: &Paths,
    node_path: &str,
) -> Result<Option<ConfigFile>, HostError> {
    let host_path = paths.host(node_path);
    match fs::read_to_string(&host_path) {
        Ok(text) => Ok(Some(ConfigFile {
            node_path: node_path.to_owned(),
            host_path,
            text,
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HostError::Read {
            path: host_path,
            source,
        }),
    }
}

#[cfg(test)]
mod tests;
