//! `kubeadm join` as a node runs it, for the benchmark's side-by-side comparison: the real
//! kubeadm in a chroot of its own (`--rootfs`, so it writes `/etc/kubernetes` and
//! `/var/lib/kubelet` there, never on this machine), and the real kubelet against a real
//! containerd, started the moment kubeadm has written kubelet's files (where kubeadm itself
//! would `systemctl restart kubelet`). kubeadm delegates the TLS bootstrap to kubelet and waits
//! for it, so without kubelet it would stop at "Waiting for a healthy kubelet".
//!
//! Two things make the chroot work for both: kubelet gets kubeadm's config.yaml with its
//! `/etc/kubernetes` paths moved under the chroot, and the chroot holds a symlink from its own
//! host path to `/`, so the host paths kubelet writes into kubelet.conf resolve for kubeadm too.
//! kubelet's ports (10248, 10250) are fixed, so joins run one at a time. kubelet bind-mounts its
//! root directory onto itself (for mount propagation); that mount is undone when it stops, or the
//! folder could not be removed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How long kubeadm may take (its own kubelet wait is 4 minutes).
const KUBEADM_GUARD: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(2);
/// The pod sandbox image: kubelet v1.33's default (`--pod-infra-container-image`, which it keeps
/// from image GC), set as containerd's `sandbox_image` (containerd 1.6's own default is 3.6).
pub const SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// Paths kubelet and containerd create on the host whatever their flags say
/// (`/var/lib/kubelet/device-plugins`, `/var/log/containers`, ...); removed afterwards when
/// they were not there before.
const HOST_LEFTOVERS: [&str; 4] = [
    "/var/lib/kubelet",
    "/var/log/pods",
    "/var/log/containers",
    "/etc/cni",
];

/// kubelet's cgroups (`cgroupDriver: cgroupfs`): `kubepods` in each hierarchy.
fn kubepods_cgroups() -> Vec<PathBuf> {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    hierarchies
        .flatten()
        .map(|h| h.path().join("kubepods"))
        .filter(|p| p.is_dir())
        .collect()
}

/// Removes a cgroup and its children (rmdir, deepest first: their files go with them).
fn remove_cgroup(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten() {
            if child.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&child.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// containerd with its state in a folder of its own; killed on drop, and then what kubelet and
/// containerd left on this machine (and was not there before) is removed.
pub struct Containerd {
    child: Child,
    pub socket: PathBuf,
    dir: tempfile::TempDir,
    leftovers: Vec<&'static str>,
    cgroups_before: Vec<PathBuf>,
}

impl Containerd {
    /// Starts `containerd` (PATH) with a configuration kubelet's `cgroupfs` driver agrees with
    /// (no systemd as PID 1 here), `restrict_oom_score_adj` (in a container), CNI configuration
    /// in its folder, kubelet v1.33's sandbox image. Err with the reason when there is no
    /// containerd or it does not start.
    pub fn start() -> Result<Containerd, String> {
        Self::start_with(&[])
    }

    /// [`Containerd::start`], run through `wrapper` (a command that ends by exec'ing its
    /// arguments, e.g. `unshare --mount ... sh -c '...; exec "$@"'`): the pid stays
    /// containerd's.
    pub fn start_with(wrapper: &[String]) -> Result<Containerd, String> {
        let bin = which("containerd")
            .ok_or("no containerd on PATH (Debian: apt-get install containerd runc)")?;
        let leftovers = HOST_LEFTOVERS
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
        let dir = tempfile::Builder::new()
            .prefix("kaas-containerd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        let socket = d.join("containerd.sock");
        // sandbox_image: containerd 1.6 runs its own (pause:3.6 by default) for every pod;
        // kubelet v1.33 keeps registry.k8s.io/pause:3.10 from image GC, so that one. A runc
        // table with only `.options` leaves runtime_type empty: every pod sandbox then fails
        // with "container.Runtime.Name must be set", so the type is said.
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n[grpc]\n  address = \"{sock}\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n\
             \x20 sandbox_image = \"{SANDBOX_IMAGE}\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  conf_dir = \"{cni}\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = false\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = socket.display(),
            cni = d.join("cni").display(),
        );
        std::fs::write(d.join("config.toml"), config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(d.join("containerd.log")).map_err(|e| e.to_string())?;
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start containerd: {e}"))?;
        let mut c = Containerd {
            child,
            socket,
            dir,
            leftovers,
            cgroups_before: kubepods_cgroups(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.socket.exists() {
            if let Ok(Some(status)) = c.child.try_wait() {
                return Err(format!("containerd exited with {status}: {}", c.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "containerd's socket not there after 30 s: {}",
                    c.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(c)
    }

    /// containerd's pid (the mount namespace it runs in: `/proc/<pid>/ns/mnt`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Imports an image tar (`ctr images import`) into kubelet's namespace, `k8s.io`.
    pub fn import(&self, tar: &Path) -> Result<(), String> {
        let out = Command::new("ctr")
            .args(["-n", "k8s.io", "-a"])
            .arg(&self.socket)
            .args(["images", "import"])
            .arg(tar)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("ctr: {e} (Debian: apt-get install containerd)"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ctr images import {}: {}{}",
                tar.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn log_tail(&self) -> String {
        tail(&self.dir.path().join("containerd.log"), 20)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // The pods' processes and their shims outlive containerd: kill them first (only ours:
        // in the kubepods cgroups made since containerd started, or shims of its socket).
        let new_cgroups: Vec<PathBuf> = kubepods_cgroups()
            .into_iter()
            .filter(|c| !self.cgroups_before.contains(c))
            .collect();
        for cgroup in &new_cgroups {
            kill_cgroup(cgroup);
        }
        kill_shims_of(&self.socket);
        let _ = self.child.kill();
        let _ = self.child.wait();
        for path in &self.leftovers {
            let _ = std::fs::remove_dir_all(path);
        }
        for cgroup in new_cgroups {
            remove_cgroup(&cgroup);
        }
    }
}

/// SIGKILL to every process in `dir` and the cgroups under it.
fn kill_cgroup(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten() {
            if child.file_type().is_ok_and(|t| t.is_dir()) {
                kill_cgroup(&child.path());
            }
        }
    }
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.split_whitespace().filter_map(|p| p.parse().ok()) {
        sigkill(pid);
    }
}

fn sigkill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// SIGKILL to the `containerd-shim` processes serving `socket`'s containerd.
fn kill_shims_of(socket: &Path) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let socket = socket.display().to_string();
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let words: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        let is_shim = words.first().is_some_and(|w| w.contains("containerd-shim"));
        if is_shim && words.contains(&socket) {
            sigkill(pid as i32);
        }
    }
}

/// What one `kubeadm join` took, each from its start.
#[derive(Debug, Clone)]
pub struct KubeadmRun {
    /// Until kubeadm exited 0.
    pub wall: Duration,
    /// Until kubeadm wrote kubelet's files (kubeadm-flags.env, its last): discovery, the
    /// cluster's configuration and the files, before any TLS bootstrap.
    pub files: Duration,
    /// Until kubelet's client certificate was written (kubelet-client-current.pem): discovery +
    /// TLS bootstrap + files, what kaas-join join does.
    pub certificate: Duration,
    /// From kubelet's start to its client certificate: kubelet's TLS bootstrap alone.
    pub kubelet_bootstrap: Duration,
    /// When kubeadm was started (for the audit log's times).
    pub started_at: SystemTime,
}

/// Joins `node` with `token` through `server` (`https://host:port`) with the real kubeadm and
/// kubelet from `assets`, in `work` (a fresh folder). Err with kubeadm's and kubelet's logs.
pub fn kubeadm_join(
    assets: &Path,
    containerd: &Containerd,
    server: &str,
    token: &str,
    pin: &str,
    node: &str,
    work: &Path,
) -> Result<KubeadmRun, String> {
    let rootfs = chroot(work)?;
    let kubeadm_log = work.join("kubeadm.log");
    let kubelet_log = work.join("kubelet.log");
    let logs = || {
        format!(
            "kubeadm:\n{}\nkubelet:\n{}",
            tail(&kubeadm_log, 30),
            tail(&kubelet_log, 30)
        )
    };

    let started_at = SystemTime::now();
    let started = Instant::now();
    let join = [
        "join",
        server.trim_start_matches("https://"),
        "--token",
        token,
        "--discovery-token-ca-cert-hash",
        pin,
        "--node-name",
        node,
        "--cri-socket",
        &containerd.endpoint(),
        // Its preflight checks this machine (swap, ports, a kubelet service) and fails here.
        "--ignore-preflight-errors=all",
        "--rootfs",
        &rootfs.display().to_string(),
    ];
    let mut kubeadm = spawn_logged(
        Command::new(assets.join("kubeadm")).args(join),
        &kubeadm_log,
    )?;
    let flags_env = rootfs.join("var/lib/kubelet/kubeadm-flags.env");
    let kubelet = loop {
        if flags_env.exists() {
            // kubeadm writes the file in one go; give it a moment to close it.
            std::thread::sleep(POLL);
            break start_kubelet(assets, &rootfs, node, &kubelet_log)?;
        }
        if let Ok(Some(status)) = kubeadm.try_wait() {
            return Err(format!(
                "kubeadm exited with {status} before writing kubelet's files\n{}",
                logs()
            ));
        }
        if started.elapsed() > KUBEADM_GUARD {
            let _ = kubeadm.kill();
            let _ = kubeadm.wait();
            return Err(format!(
                "kubeadm wrote no kubelet files in {KUBEADM_GUARD:?}\n{}",
                logs()
            ));
        }
        std::thread::sleep(POLL);
    };
    let (mut kubelet, kubelet_started) = kubelet;
    let status = loop {
        if let Ok(Some(status)) = kubeadm.try_wait() {
            break status;
        }
        if started.elapsed() > KUBEADM_GUARD {
            let _ = kubeadm.kill();
            let _ = kubeadm.wait();
            stop_kubelet(&mut kubelet, &rootfs);
            return Err(format!(
                "kubeadm did not finish in {KUBEADM_GUARD:?}\n{}",
                logs()
            ));
        }
        std::thread::sleep(POLL);
    };
    let wall = started.elapsed();
    stop_kubelet(&mut kubelet, &rootfs);
    if !status.success() {
        return Err(format!("kubeadm join exited with {status}\n{}", logs()));
    }
    let since_start = |path: &Path| written_after(path, started_at);
    let certificate = since_start(&rootfs.join("var/lib/kubelet/pki/kubelet-client-current.pem"))?;
    Ok(KubeadmRun {
        wall,
        files: since_start(&flags_env)?,
        certificate,
        kubelet_bootstrap: certificate.saturating_sub(kubelet_started.duration_since(started)),
        started_at,
    })
}

/// How long after `t` the file (or link) `path` was written.
fn written_after(path: &Path, t: SystemTime) -> Result<Duration, String> {
    let modified = std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(modified.duration_since(t).unwrap_or_default())
}

/// `work/rootfs`, kubeadm's chroot: its own host path inside it leads back to its root, so the
/// host paths kubelet writes into kubelet.conf resolve for kubeadm too.
fn chroot(work: &Path) -> Result<PathBuf, String> {
    let rootfs = work.join("rootfs");
    let inner = rootfs.join(rootfs.strip_prefix("/").map_err(|e| e.to_string())?);
    std::fs::create_dir_all(inner.parent().unwrap()).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink("/", &inner).map_err(|e| e.to_string())?;
    Ok(rootfs)
}

/// kubelet as kubeadm's systemd drop-in starts it (`10-kubeadm.conf`: bootstrap kubeconfig,
/// kubeconfig, config, `$KUBELET_KUBEADM_ARGS`), every path under the chroot.
fn start_kubelet(
    assets: &Path,
    rootfs: &Path,
    node: &str,
    log: &Path,
) -> Result<(Child, Instant), String> {
    let read = |p: &str| {
        std::fs::read_to_string(rootfs.join(p))
            .map_err(|e| format!("{p} under {}: {e}", rootfs.display()))
    };
    let config = read("var/lib/kubelet/config.yaml")?.replace(
        "/etc/kubernetes",
        &rootfs.join("etc/kubernetes").display().to_string(),
    );
    let config_path = rootfs.join("var/lib/kubelet/config-host-paths.yaml");
    std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
    let env = read("var/lib/kubelet/kubeadm-flags.env")?;
    let kubeadm_args = env
        .trim()
        .strip_prefix("KUBELET_KUBEADM_ARGS=")
        .ok_or_else(|| format!("unexpected kubeadm-flags.env: {env}"))?
        .trim_matches('"')
        .split_whitespace()
        .map(str::to_string)
        .collect::<Vec<_>>();
    let at = |p: &str| rootfs.join(p).display().to_string();
    let started = Instant::now();
    let child = spawn_logged(
        Command::new(assets.join("kubelet"))
            .arg(format!(
                "--bootstrap-kubeconfig={}",
                at("etc/kubernetes/bootstrap-kubelet.conf")
            ))
            .arg(format!(
                "--kubeconfig={}",
                at("etc/kubernetes/kubelet.conf")
            ))
            .arg(format!("--config={}", config_path.display()))
            .arg(format!("--cert-dir={}", at("var/lib/kubelet/pki")))
            .arg(format!("--root-dir={}", at("var/lib/kubelet")))
            .args(&kubeadm_args),
        log,
    )
    .map_err(|e| format!("kubelet for {node}: {e}"))?;
    Ok((child, started))
}

/// Kills kubelet and undoes the mounts it made under `rootfs` (deepest first, lazily: nothing
/// uses them any more).
fn stop_kubelet(kubelet: &mut Child, rootfs: &Path) {
    let _ = kubelet.kill();
    let _ = kubelet.wait();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut under: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| Path::new(m).starts_with(rootfs))
        .collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in under {
        let _ = Command::new("umount").args(["-l", mount]).status();
    }
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child, String> {
    let file = std::fs::File::create(log).map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().map_err(|e| e.to_string())?)
        .stderr(file)
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
