//! A machine for the real binary's `kaas-join join` and `kaas-join run` against the sandbox: a
//! temporary directory holding the `--root` and, outside it as cloud-init would put them, a 0600
//! token file and a `kaas-join.io/v1alpha1` config file; a kubelet healthz port and a metrics
//! port of its own (so tests never collide on 10248 or 20258); a listening fake container
//! runtime socket under the root.
//! Used by tests/fault_matrix_run.rs, tests/metrics.rs, tests/reidentify.rs, tests/reset.rs,
//! tests/run.rs and tests/secret_hygiene.rs.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Child;

use kaas_join::host::paths::Paths;
use kaas_join::node::join_state::{self as state, Phase};
use kaas_join::node::run_status::RUN_STATUS_FILE;
use kaas_sandbox::Sandbox;
use serde_json::Value;

#[allow(unused_imports)] // the binary's path, for the tests that name it through here
pub use super::process::BIN;
/// The container runtime endpoint in the config file (its socket listens under the root).
pub const CRI: &str = "unix:///run/containerd/containerd.sock";

/// What differs between machines; [`Machine::builder`].
pub struct MachineBuilder<'a> {
    sb: &'a Sandbox,
    node: String,
    token: Option<String>,
    extra_config: String,
    files_later: bool,
}

impl MachineBuilder<'_> {
    /// Uses `token` instead of minting a new one on the sandbox.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Adds top-level config file lines (each ending in a newline), before `kubelet:`.
    pub fn config_lines(mut self, lines: &str) -> Self {
        self.extra_config.push_str(lines);
        self
    }

    /// Writes neither the token file nor the config file yet: [`Machine::write_files`] does.
    pub fn files_later(mut self) -> Self {
        self.files_later = true;
        self
    }

    pub fn build(self) -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let files = dir.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        let token_file = files.join("token");
        let config_file = files.join("config.yaml");
        let healthz_port = super::free_port();
        let metrics_port = super::free_port();
        let config_text = format!(
            "apiVersion: kaas-join.io/v1alpha1\n\
             kind: JoinConfiguration\n\
             servers: [\"{server}\"]\n\
             caCertHashes: [\"{hash}\"]\n\
             tokenFile: {token}\n\
             nodeName: {node}\n\
             criSocket: {CRI}\n\
             cgroupDriver: systemd\n\
             {extra}\
             kubelet:\n  healthzPort: {healthz_port}\n",
            server = self.sb.url(),
            hash = self.sb.ca_cert_hash(),
            token = token_file.display(),
            node = self.node,
            extra = self.extra_config,
        );
        let socket = root.join("run/containerd/containerd.sock");
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let runtime = UnixListener::bind(&socket).unwrap();
        let m = Machine {
            dir,
            root,
            files,
            token_file,
            config_file,
            config_text,
            token: self.token.unwrap_or_else(|| self.sb.create_token()),
            healthz_port,
            metrics_port,
            _runtime: runtime,
        };
        if !self.files_later {
            m.write_files();
        }
        m
    }
}

pub struct Machine {
    /// Holds everything below; removed on drop.
    dir: tempfile::TempDir,
    pub root: PathBuf,
    /// Beside the root: the token and config files, anything else a test adds.
    pub files: PathBuf,
    pub token_file: PathBuf,
    pub config_file: PathBuf,
    pub config_text: String,
    pub token: String,
    /// The fake kubelet's healthz port (`kubelet: {healthzPort: N}` in the config file).
    pub healthz_port: u16,
    /// Where `run` serves its metrics (`--metrics-address 127.0.0.1:N` in [`Machine::run_args`]).
    pub metrics_port: u16,
    /// The fake container runtime: connections queue in its backlog, which is all the probe needs.
    _runtime: UnixListener,
}

impl Machine {
    /// A machine for node `node` joining `sb` with a new token, its files written.
    pub fn new(sb: &Sandbox, node: &str) -> Machine {
        Machine::builder(sb, node).build()
    }

    pub fn builder<'a>(sb: &'a Sandbox, node: &str) -> MachineBuilder<'a> {
        MachineBuilder {
            sb,
            node: node.to_owned(),
            token: None,
            extra_config: String::new(),
            files_later: false,
        }
    }

    /// The temporary directory holding the root and the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The token file (0600), then the config file (atomically: a reader never sees half).
    pub fn write_files(&self) {
        std::fs::write(&self.token_file, format!("{}\n", self.token)).unwrap();
        std::fs::set_permissions(&self.token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let tmp = self.config_file.with_extension("tmp");
        std::fs::write(&tmp, &self.config_text).unwrap();
        std::fs::rename(&tmp, &self.config_file).unwrap();
    }

    /// A copy of the stand-in kubelet of this machine's own (`files/bin/test-kubelet`), for tests
    /// that replace or swap the binary `run --kubelet` names.
    #[allow(dead_code)]
    pub fn own_kubelet(&self) -> PathBuf {
        let bin = self.files.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let kubelet = bin.join("test-kubelet");
        std::fs::copy(super::fake_kubelet(), &kubelet).unwrap();
        kubelet
    }

    pub fn paths(&self) -> Paths {
        Paths::new(&self.root)
    }

    /// Where node path `node_path` is under the root.
    pub fn host(&self, node_path: &str) -> PathBuf {
        self.paths().host(node_path)
    }

    /// Joined: the state says so and kubelet's kubeconfig is there.
    pub fn joined(&self) -> bool {
        state::load(&self.paths())
            .ok()
            .flatten()
            .is_some_and(|s| s.phase == Phase::Joined)
            && self.root.join("etc/kubernetes/kubelet.conf").exists()
    }

    /// `<subcommand> --config <file> --root <root> --ignore-preflight-errors=all`: a temporary
    /// root with a fake kubelet is no machine to preflight (kubelet's version, the cgroup
    /// driver, a real container runtime).
    pub fn args(&self, subcommand: &str) -> Vec<String> {
        vec![
            subcommand.to_string(),
            "--config".into(),
            self.config_file.display().to_string(),
            "--root".into(),
            self.root.display().to_string(),
            "--ignore-preflight-errors=all".into(),
        ]
    }

    /// [`Machine::args`] for `run`, with the fake kubelet, a 2 s heartbeat and this machine's
    /// metrics port.
    pub fn run_args(&self) -> Vec<String> {
        let mut args = self.args("run");
        args.extend([
            "--kubelet".into(),
            super::fake_kubelet().display().to_string(),
            "--heartbeat".into(),
            "2s".into(),
        ]);
        args.extend(self.metrics_args());
        args
    }

    /// `--metrics-address 127.0.0.1:<metrics_port>`.
    pub fn metrics_args(&self) -> [String; 2] {
        [
            "--metrics-address".into(),
            format!("127.0.0.1:{}", self.metrics_port),
        ]
    }

    /// `GET /metrics` from this machine's `run`: the body, or why there is none.
    pub fn scrape(&self) -> Result<String, String> {
        super::http_get(&format!("127.0.0.1:{}", self.metrics_port), "/metrics")
    }

    /// The environment that makes the fake kubelet serve healthz on this machine's port.
    pub fn fake_kubelet_env(&self) -> [(&'static str, String); 2] {
        [
            (
                "FAKE_KUBELET_HEALTHZ",
                format!("127.0.0.1:{}", self.healthz_port),
            ),
            ("FAKE_KUBELET_MODE", "serve".into()),
        ]
    }

    /// Starts the binary with `args` as a daemon with the fake kubelet's environment, none of
    /// ours ([`super::process::CLEANED_ENV`]), no stdin or stdout, its stderr to a log file.
    pub fn spawn(&self, args: &[String]) -> Daemon {
        self.spawn_with_env(args, &[])
    }

    /// [`Machine::spawn`] with `env` added (e.g. `NOTIFY_SOCKET`).
    pub fn spawn_with_env(&self, args: &[String], env: &[(&str, String)]) -> Daemon {
        // Each daemon's stderr (its log) goes to a file of its own beside the root.
        let log_file = (0..)
            .map(|i| self.dir.path().join(format!("daemon-{i}.log")))
            .find(|p| !p.exists())
            .unwrap();
        let child = super::Invocation::new(args)
            .envs(self.fake_kubelet_env())
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .spawn(&log_file);
        Daemon {
            child,
            status_file: self.host(RUN_STATUS_FILE),
            log_file,
        }
    }
}

/// A running `kaas-join run`; killed (and with it its kubelet) when dropped.
pub struct Daemon {
    pub child: Child,
    status_file: PathBuf,
    log_file: PathBuf,
}

impl Daemon {
    /// The run-status file, when it exists and parses.
    pub fn run_status(&self) -> Option<Value> {
        serde_json::from_slice(&std::fs::read(&self.status_file).ok()?).ok()
    }

    /// What the daemon has logged so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        super::process::kill(&mut self.child);
    }
}
