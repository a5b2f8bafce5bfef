//! A node's host for the real kubelet under `kaas-join run`: the node paths kaas-join and
//! kubelet use ([`NODE_PATHS`]: `/etc/kubernetes`, `/var/lib/kubelet`, ...) are folders of the
//! test's own, bind-mounted at those very paths in a private mount namespace (`unshare
//! --mount`). containerd runs in that namespace, and `kaas-join run --root /` is started in it
//! (`nsenter --mount`), so kubelet, its child, and every container are in it too.
//!
//! Why a namespace rather than `--root DIR` or a chroot: under a root, `run` still gives kubelet
//! node paths (`--kubeconfig=/etc/kubernetes/kubelet.conf`, whose client certificate is
//! `/var/lib/kubelet/pki/...`), which a kubelet outside a chroot reads on the machine itself; and
//! containerd must find the `/var/lib/kubelet/pods/...` files kubelet mounts into containers at
//! the same paths. A chroot (kubeadm.rs does one for kubeadm) would need /proc, /sys, /dev, the
//! cgroups and the runtime inside it. In the namespace everything runs at the real paths, as on a
//! node, and this machine's own files there are never touched: the mounts exist only in the
//! namespace and vanish with its last process, also when the test is killed outright.
//!
//! What stays global, and is cleaned up by [`Containerd`]'s drop: the kubepods cgroups (cgroupfs
//! driver), the pods' processes and containerd's shims. The mount points themselves are empty
//! folders on this machine, removed afterwards when they were not there before. kubelet's ports
//! (10248, 10250) are fixed: one such node at a time on a machine ([`one_at_a_time`]).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, MutexGuard};

use super::kubeadm::Containerd;

/// The node paths that are the test's own folders in the namespace: kubelet's and kaas-join's
/// files, state and status, the pods' logs, and `/opt/bin` holding the kubelet under test (one of
/// the places `join`'s preflight looks for it, so `join` checks its version as `run` does).
pub const NODE_PATHS: [&str; 8] = [
    "/opt/bin",
    "/etc/kubernetes",
    "/etc/kaas-join",
    "/var/lib/kubelet",
    "/var/lib/kaas-join",
    "/run/kaas-join",
    "/var/log/pods",
    "/var/log/containers",
];
/// How long a killed daemon's kubelet may take to die (PR_SET_PDEATHSIG is immediate).
pub const KUBELET_GONE_WAIT: Duration = Duration::from_secs(10);
/// kubelet's verbosity under `run` and from a script alike (its reasons in the log).
pub const KUBELET_VERBOSITY: &str = "--v=2";
/// Lines of the daemon's log printed when a test fails.
const LOG_TAIL_LINES: usize = 80;

/// Serialises the tests that run a real kubelet (its ports are fixed). An async lock: it is
/// held across the whole test (and tokio's lock is not poisoned by a failed one).
pub async fn one_at_a_time() -> MutexGuard<'static, ()> {
    static KUBELET: Mutex<()> = Mutex::const_new(());
    KUBELET.lock().await
}

/// What this machine lacks to run a real node (empty: nothing): root, util-linux's `unshare`
/// and `nsenter`, containerd and runc, a mount namespace of our own, kubelet in `assets`.
pub fn missing(assets: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root (kubelet and containerd mount and make cgroups)".to_string());
    }
    for (tool, package) in [
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("containerd", "containerd"),
        ("ctr", "containerd"),
        ("runc", "runc"),
    ] {
        if which(tool).is_none() {
            missing.push(format!(
                "{tool} on PATH (Debian: apt-get install {package})"
            ));
        }
    }
    missing.extend(super::missing_binaries(assets, &["kubelet"]));
    if missing.is_empty() {
        let probe = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "true"])
            .stdin(Stdio::null())
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            Ok(out) => missing.push(format!(
                "a mount namespace (unshare --mount: {})",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => missing.push(format!("a mount namespace (unshare: {e})")),
        }
    }
    missing
}

/// The namespace, its folders and containerd; see the module documentation.
pub struct NodeHost {
    /// containerd, in the namespace (it holds the namespace while no daemon runs).
    pub containerd: Containerd,
    dir: tempfile::TempDir,
    /// Mount points this made on the machine (removed on drop).
    created: Vec<PathBuf>,
}

impl NodeHost {
    /// Makes the folders (`kubelet` linked at `/opt/bin/kubelet`) and the namespace and starts
    /// containerd in it.
    pub fn start(kubelet: &Path) -> Result<NodeHost, String> {
        let dir = tempfile::Builder::new()
            .prefix("kaas-node-host-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let mut created = Vec::new();
        // `sh -c` mounts each SOURCE on its TARGET, then execs containerd (the arguments after
        // `--`), so containerd's pid names the namespace.
        let mut wrapper: Vec<String> = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "set -e; while [ \"$1\" != -- ]; do mount --bind \"$1\" \"$2\"; shift 2; done; \
             shift; exec \"$@\"",
            "sh",
        ]
        .map(String::from)
        .to_vec();
        for node_path in NODE_PATHS {
            // Each folder made for a mount point, parents first (removed children first).
            let missing: Vec<&Path> = Path::new(node_path)
                .ancestors()
                .take_while(|p| !p.exists())
                .collect();
            for dir in missing.into_iter().rev() {
                std::fs::create_dir(dir).map_err(|e| format!("mount point {node_path}: {e}"))?;
                created.push(dir.to_path_buf());
            }
            let source = dir.path().join(node_path.trim_start_matches('/'));
            std::fs::create_dir_all(&source).map_err(|e| e.to_string())?;
            wrapper.push(source.display().to_string());
            wrapper.push(node_path.to_string());
        }
        std::os::unix::fs::symlink(kubelet, dir.path().join("opt/bin/kubelet"))
            .map_err(|e| format!("linking kubelet: {e}"))?;
        wrapper.push("--".into());
        let containerd = Containerd::start_with(&wrapper);
        let containerd = match containerd {
            Ok(c) => c,
            Err(e) => {
                remove_mount_points(&created);
                return Err(e);
            }
        };
        Ok(NodeHost {
            containerd,
            dir,
            created,
        })
    }

    /// Where the test reads a node path's file (`/etc/kubernetes/kubelet.conf`).
    pub fn file(&self, node_path: &str) -> PathBuf {
        assert!(
            NODE_PATHS
                .iter()
                .any(|p| Path::new(node_path).starts_with(p)),
            "{node_path} is not one of the node's own paths"
        );
        self.dir.path().join(node_path.trim_start_matches('/'))
    }

    /// `unix://` + containerd's socket.
    pub fn cri_endpoint(&self) -> String {
        self.containerd.endpoint()
    }

    /// A folder for the test's own files (token file, images), outside the node paths.
    pub fn scratch(&self) -> PathBuf {
        let dir = self.dir.path().join("scratch");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The folder whose `etc/kubernetes`, `var/lib/kubelet`, ... are the node's paths: a
    /// [`kaas_join::host::paths::Paths`] root for reading the node's files from outside.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A command running `program` in the namespace (nsenter without --fork execs it: the pid
    /// is the program's).
    pub fn enter(&self, program: &Path) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--mount=/proc/{}/ns/mnt", self.containerd.pid()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// `kaas-join run` (or, with `subcommand` "join", `kaas-join join`) as a node's unit would
    /// run it, at the real paths (`--root /`), with the real kubelet from `assets` and
    /// containerd's socket. `--cgroup-driver cgroupfs` and `--cri-socket` are explicit until
    /// detection without systemd (branch `real-fixes`) is merged.
    pub fn kaas_join_args(
        &self,
        subcommand: &str,
        cp: &super::RealControlPlane,
        token_file: &Path,
        node: &str,
    ) -> Vec<String> {
        let mut args: Vec<String> = [
            subcommand,
            "-v",
            "--server",
            &cp.server,
            "--token-file",
            &token_file.display().to_string(),
            "--discovery-token-ca-cert-hash",
            &cp.pin().to_string(),
            "--root",
            "/",
            "--node-name",
            node,
            "--cri-socket",
            &self.cri_endpoint(),
            "--cgroup-driver",
            "cgroupfs",
            // Pods here use the host's network (no CNI is set up), so IP forwarding, off on a
            // build machine, is not needed; kaas-join's preflight, like kubeadm's, fails
            // without it.
            "--ignore-preflight-errors=FileContent--proc-sys-net-ipv4-ip_forward",
        ]
        .map(String::from)
        .to_vec();
        if subcommand == "run" {
            let kubelet = cp.assets.join("kubelet").display().to_string();
            args.extend(
                [
                    "--kubelet",
                    &kubelet,
                    "--heartbeat",
                    "2s",
                    // As the unit runs it: metrics served (on a free port here).
                    "--metrics-address",
                    &format!("127.0.0.1:{}", crate::common::free_port()),
                    "--kubelet-arg",
                    KUBELET_VERBOSITY,
                ]
                .map(String::from),
            );
        }
        args
    }

    /// A 0600 token file holding `token`, in the scratch folder.
    pub fn token_file(&self, token: &super::Token) -> PathBuf {
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.scratch().join("token");
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, format!("{}\n", token.full()).as_bytes()).unwrap();
        path
    }

    /// Starts `kaas-join ARGS` in the namespace, its stderr (its log, kubelet's lines included)
    /// into a file of its own; none of our environment (token, log filter, systemd's sockets).
    pub fn spawn_kaas_join(&self, args: &[String]) -> RunDaemon {
        let log = (0..)
            .map(|i| self.dir.path().join(format!("kaas-join-{i}.log")))
            .find(|p| !p.exists())
            .unwrap();
        let file = std::fs::File::create(&log).unwrap();
        let child = self
            .enter(Path::new(crate::common::machine::BIN))
            .args(args)
            .env_remove("KAAS_JOIN_TOKEN")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("nsenter starts kaas-join");
        RunDaemon {
            child,
            log,
            status_file: self.file("/run/kaas-join/status.json"),
            kubelets: Vec::new(),
        }
    }
}

impl Drop for NodeHost {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os(super::processes::KEEP_ENV).is_some() {
            let kept = std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().expect("a placeholder temp dir"),
            )
            .keep();
            eprintln!("node host folder kept: {}", kept.display());
        }
        remove_mount_points(&self.created);
    }
}

fn remove_mount_points(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// A `kaas-join` started in the namespace. Dropped: SIGKILL, and then no kubelet it started may
/// be left (waited for, bounded, and killed if one is).
pub struct RunDaemon {
    pub child: Child,
    log: PathBuf,
    status_file: PathBuf,
    /// Every kubelet pid seen in its run-status file.
    kubelets: Vec<u32>,
}

impl RunDaemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
        text
    }

    /// The run-status file, when it exists and parses.
    pub fn run_status(&mut self) -> Option<serde_json::Value> {
        let status: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&self.status_file).ok()?).ok()?;
        if let Some(pid) = status["kubelet"]["pid"].as_u64() {
            if !self.kubelets.contains(&(pid as u32)) {
                self.kubelets.push(pid as u32);
            }
        }
        Some(status)
    }

    /// kubelet's pid while this daemon's status file says it is running (healthz answered).
    /// (A SIGKILLed daemon's file says "running" still: the pid in it tells.)
    pub fn running_kubelet(&mut self) -> Option<u32> {
        let status = self.run_status()?;
        (status["pid"] == self.pid() && status["kubelet"]["phase"] == "running")
            .then(|| status["kubelet"]["pid"].as_u64())
            .flatten()
            .map(|p| p as u32)
    }

    /// When the daemon logged that it started kubelet (the first time), from its log's
    /// timestamps.
    pub fn kubelet_started_at(&self) -> Option<std::time::SystemTime> {
        let log = self.log();
        let line = log.lines().find(|l| l.contains("kubelet started pid="))?;
        let at = time::OffsetDateTime::parse(
            line.split_whitespace().next()?,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?;
        Some(at.into())
    }

    /// Every kubelet pid seen so far.
    pub fn kubelets(&self) -> &[u32] {
        &self.kubelets
    }

    /// Panics (with its log, on drop) when the daemon has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("kaas-join exited with {status}");
        }
    }

    /// Waits (bounded) for the daemon to exit; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The kubelets seen that are still alive after [`KUBELET_GONE_WAIT`].
    pub fn kubelets_left(&self) -> Vec<u32> {
        let deadline = Instant::now() + KUBELET_GONE_WAIT;
        loop {
            let alive: Vec<u32> = self
                .kubelets
                .iter()
                .copied()
                .filter(|p| crate::common::alive(*p))
                .collect();
            if alive.is_empty() || Instant::now() > deadline {
                return alive;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RunDaemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "----- kaas-join: last {} of {} lines of {} -----\n{}",
                tail.len(),
                lines.len(),
                self.log.display(),
                tail.join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in self.kubelets_left() {
            eprintln!("kubelet {pid} outlived its kaas-join: killing it");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// When the API server completed the Node's creation by `node` itself (kubelet registering),
/// from the audit log's `stageTimestamp`.
pub fn node_created_at(
    events: &[super::audit::Event],
    node: &str,
) -> Option<std::time::SystemTime> {
    let user = format!("system:node:{node}");
    let event = events.iter().find(|e| {
        e.verb == "create"
            && e.uri.starts_with("/api/v1/nodes")
            && e.stage == "ResponseComplete"
            && e.code == 201
            && e.user == user
    })?;
    let at = time::OffsetDateTime::parse(
        event.raw["stageTimestamp"].as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    Some(std::time::SystemTime::from(at))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
