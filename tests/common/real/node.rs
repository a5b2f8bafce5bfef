//! A node's folder for the real `kaas-join` binary against a real control plane: a `--root`,
//! a 0600 token file beside it (as cloud-init would put it), and the `join` arguments. Nothing
//! runs kubelet or a container runtime here, so the preflight is told to ignore both.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use super::RealControlPlane;

pub struct Node {
    dir: tempfile::TempDir,
    pub name: String,
    pub root: PathBuf,
    pub token_file: PathBuf,
}

impl Node {
    /// A node named `name` whose token file holds `token`.
    pub fn new(name: &str, token: &str) -> Node {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir()
            .unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let token_file = dir.path().join("token");
        let node = Node {
            dir,
            name: name.to_string(),
            root,
            token_file,
        };
        node.set_token(token);
        node
    }

    /// Writes `token` into the token file (mode 0600).
    pub fn set_token(&self, token: &str) {
        let _ = std::fs::remove_file(&self.token_file);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.token_file)
            .unwrap();
        std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes()).unwrap();
    }

    /// A file under the root, by its path on the node (`/etc/kubernetes/kubelet.conf`).
    pub fn file(&self, node_path: &str) -> PathBuf {
        self.root.join(node_path.trim_start_matches('/'))
    }

    /// `kaas-join join` against `cp` with `pin` (`sha256:...`), both phase timeouts `timeout`,
    /// plus `extra`.
    pub fn join_args_with_pin(
        &self,
        cp: &RealControlPlane,
        pin: &str,
        timeout: Duration,
        extra: &[&str],
    ) -> Vec<String> {
        let timeout = format!("{}s", timeout.as_secs().max(1));
        let mut args: Vec<String> = [
            "join",
            "-v",
            "--server",
            &cp.server,
            "--token-file",
            &self.token_file.display().to_string(),
            "--discovery-token-ca-cert-hash",
            pin,
            "--root",
            &self.root.display().to_string(),
            "--node-name",
            &self.name,
            "--cri-socket",
            "unix:///run/containerd/containerd.sock",
            "--cgroup-driver",
            "systemd",
            "--discovery-timeout",
            &timeout,
            "--tls-bootstrap-timeout",
            &timeout,
            // No kubelet and no runtime under the temporary root.
            "--ignore-preflight-errors=FileExisting-kubelet,CRI",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// [`Node::join_args_with_pin`] with the control plane's own pin.
    pub fn join_args(
        &self,
        cp: &RealControlPlane,
        timeout: Duration,
        extra: &[&str],
    ) -> Vec<String> {
        self.join_args_with_pin(cp, &cp.pin().to_string(), timeout, extra)
    }

    /// The folder holding root and token file.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
