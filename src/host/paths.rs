//! Every path kaas-join touches.
//!
//! Two kinds of path: *node paths* (`/etc/kubernetes/kubelet.conf`), which the running node uses
//! and which go into file contents, and *host paths*, where this process reads and writes:
//! `--root` joined with the node path. Only [`Paths::host`] makes host paths, so `--root` can move
//! where files land but never what they say (and symlinks stay relative).

use std::path::{Path, PathBuf};

/// kubelet's kubeconfig after TLS bootstrap (0600).
pub const KUBELET_KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
/// The cluster CA bundle (0644); also kubelet's `authentication.x509.clientCAFile`.
pub const CA_CERT: &str = "/etc/kubernetes/pki/ca.crt";
/// kubelet's state directory (0700).
pub const KUBELET_DIR: &str = "/var/lib/kubelet";
/// KubeletConfiguration (0644).
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
/// `KUBELET_KUBEADM_ARGS=...` read by kubeadm's systemd drop-in (0644).
pub const KUBELET_FLAGS_ENV: &str = "/var/lib/kubelet/kubeadm-flags.env";
/// kubelet's certificate directory.
pub const KUBELET_PKI_DIR: &str = "/var/lib/kubelet/pki";
/// Symlink to the current client cert+key; kubelet's rotation repoints it.
pub const KUBELET_CLIENT_CURRENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
/// Our own state (phase file, node key until the certificate is issued).
pub const STATE_DIR: &str = "/var/lib/kaas-join";
/// Default `--config` file.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/kaas-join/config.yaml";

/// Maps node paths to host paths under `--root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>) -> Paths {
        Paths { root: root.into() }
    }

    /// The prefix (`/` on a real node).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where to read or write `node_path` on this machine. `Path::join` with an absolute path
    /// would replace the root, so the leading `/` is stripped first.
    pub fn host(&self, node_path: &str) -> PathBuf {
        self.root.join(node_path.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_are_under_root() {
        let p = Paths::new("/tmp/x");
        assert_eq!(
            p.host(KUBELET_KUBECONFIG),
            PathBuf::from("/tmp/x/etc/kubernetes/kubelet.conf")
        );
        assert_eq!(p.root(), Path::new("/tmp/x"));
        assert_eq!(Paths::new("/").host(CA_CERT), PathBuf::from(CA_CERT));
    }
}
