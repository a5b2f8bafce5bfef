//! Every path kaas-join touches.
//!
//! Two kinds of path: *node paths* (`/etc/kubernetes/kubelet.conf`), which the running node uses
//! and which go into file contents, and *host paths*, where this process reads and writes:
//! `--root` joined with the node path. Only [`Paths`] makes host paths, so `--root` can move
//! where files land but never what they say (and symlinks stay relative).
//!
//! Under a `--root` other than `/`, a path is resolved inside the root as a chroot would
//! resolve it: an absolute symlink `/var/lib/kubelet -> /data/kubelet` in an image means
//! `ROOT/data/kubelet`, a relative one is followed from where it stands, `..` stops at the root,
//! and a loop (more than [`MAX_SYMLINKS`] links) is an error. So nothing written, read or
//! removed under a root ever lands outside it, whatever links the image holds. On `/` paths are
//! taken as they are and the kernel follows links as usual (a kubelet directory on a data disk
//! is common).
//!
//! Two resolutions: [`Paths::host`] follows every link, for reading and writing a file's
//! content; [`Paths::entry`] follows all but the last component, for what acts on the
//! directory entry itself (replacing or removing a symlink such as
//! `kubelet-client-current.pem`, or a file that may be one).

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

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
/// More links than this while resolving one path under a root is a loop (Linux's limit).
pub const MAX_SYMLINKS: u32 = 40;

/// A path that cannot be resolved inside the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} cannot be resolved inside --root {}: {reason}; fix the link in the image",
    node_path,
    root.display()
)]
pub struct Unresolvable {
    pub root: PathBuf,
    pub node_path: String,
    pub reason: String,
}

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

    /// Whether this is the machine's own `/` (paths are then taken as they are).
    fn is_slash(&self) -> bool {
        self.root.as_os_str().is_empty() || self.root == Path::new("/")
    }

    /// Where to read or write `node_path`'s content on this machine, every link followed inside
    /// the root (see the module docs). A path that cannot be resolved (a loop) maps below
    /// `/dev/null`, where nothing can be created or read; [`Paths::resolve`] says why.
    pub fn host(&self, node_path: &str) -> PathBuf {
        self.resolve(node_path, true).unwrap_or_else(unusable)
    }

    /// Where `node_path`'s directory entry is: its parents resolved inside the root, the last
    /// component not followed. For replacing or removing a link itself.
    pub fn entry(&self, node_path: &str) -> PathBuf {
        self.resolve(node_path, false).unwrap_or_else(unusable)
    }

    /// [`Paths::host`] (`follow_last`) or [`Paths::entry`], with the reason when `node_path`
    /// cannot be resolved inside the root.
    pub fn resolve(&self, node_path: &str, follow_last: bool) -> Result<PathBuf, Unresolvable> {
        let relative = node_path.trim_start_matches('/');
        if self.is_slash() {
            return Ok(Path::new("/").join(relative));
        }
        let fail = |reason: String| Unresolvable {
            root: self.root.clone(),
            node_path: node_path.to_owned(),
            reason,
        };
        // Components still to walk, the next one last; what is resolved so far, under the root.
        let mut todo: Vec<OsString> = components(Path::new(relative));
        todo.reverse();
        let mut done: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(part) = todo.pop() {
            if part == ".." {
                done.pop(); // at the root, `..` is the root
                continue;
            }
            let here = self.root.join(done.iter().collect::<PathBuf>()).join(&part);
            let is_last = todo.is_empty();
            let link = match std::fs::symlink_metadata(&here) {
                Ok(m) if m.file_type().is_symlink() && (follow_last || !is_last) => {
                    std::fs::read_link(&here)
                        .map_err(|e| fail(format!("{}: {e}", here.display())))?
                }
                _ => {
                    done.push(part);
                    continue;
                }
            };
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(fail(format!(
                    "more than {MAX_SYMLINKS} symbolic links (a loop?) at {}",
                    here.display()
                )));
            }
            if link.is_absolute() {
                done.clear();
            }
            let mut target = components(&link);
            target.reverse();
            todo.extend(target);
        }
        Ok(self.root.join(done.iter().collect::<PathBuf>()))
    }
}

/// The normal components of `p` and its `..`s (`/` and `.` dropped).
fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Where an unresolvable path maps: below `/dev/null` (a device, so nothing below it can be
/// created or opened), with the reason in the path, so a failed write names it.
fn unusable(e: Unresolvable) -> PathBuf {
    tracing::warn!("{e}");
    Path::new("/dev/null/unresolvable-under-root").join(e.node_path.trim_start_matches('/'))
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

    fn link(root: &Path, at: &str, to: &str) {
        let at = root.join(at);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(to, at).unwrap();
    }

    #[test]
    fn links_are_followed_inside_the_root_as_a_chroot_would() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let p = Paths::new(root);
        // An absolute link: the image's /data, not this machine's.
        link(root, "var/lib/kubelet", "/data/kubelet");
        assert_eq!(
            p.host(KUBELET_CONFIG),
            root.join("data/kubelet/config.yaml")
        );
        // A relative link climbing out: `..` stops at the root.
        link(root, "etc/kubernetes", "../../../../../victim");
        assert_eq!(p.host(CA_CERT), root.join("victim/pki/ca.crt"));
        // A link to a link, then `..` inside the target.
        link(root, "var/lib/kaas-join", "/srv/state");
        link(root, "srv", "opt/../mnt");
        assert_eq!(
            p.host("/var/lib/kaas-join/state.json"),
            root.join("mnt/state/state.json")
        );
        // Nothing exists: the lexical path.
        assert_eq!(
            p.host("/run/kaas-join/status.json"),
            root.join("run/kaas-join/status.json")
        );
    }

    #[test]
    fn the_last_link_is_followed_for_content_not_for_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let p = Paths::new(root);
        // kubelet's rotation writes absolute links.
        link(
            root,
            "var/lib/kubelet/pki/kubelet-client-current.pem",
            "/var/lib/kubelet/pki/kubelet-client-2026.pem",
        );
        assert_eq!(
            p.host(KUBELET_CLIENT_CURRENT),
            root.join("var/lib/kubelet/pki/kubelet-client-2026.pem")
        );
        assert_eq!(
            p.entry(KUBELET_CLIENT_CURRENT),
            root.join("var/lib/kubelet/pki/kubelet-client-current.pem")
        );
    }

    #[test]
    fn a_loop_is_an_error_and_its_path_cannot_be_used() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let p = Paths::new(root);
        link(root, "etc/kubernetes", "/etc/kubernetes");
        let err = p.resolve(KUBELET_KUBECONFIG, true).unwrap_err();
        assert!(
            err.to_string().contains("more than 40 symbolic links"),
            "{err}"
        );
        let unusable = p.host(KUBELET_KUBECONFIG);
        assert!(unusable.starts_with("/dev/null"), "{}", unusable.display());
        assert!(std::fs::create_dir_all(unusable.parent().unwrap()).is_err());
    }

    #[test]
    fn on_slash_links_are_the_kernels_to_follow() {
        let p = Paths::new("/");
        assert_eq!(
            p.host("/proc/self/status"),
            PathBuf::from("/proc/self/status")
        );
        assert_eq!(
            p.entry(KUBELET_CLIENT_CURRENT),
            PathBuf::from(KUBELET_CLIENT_CURRENT)
        );
    }
}
