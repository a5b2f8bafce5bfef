//! Runs kubelet as a child process: starts it, watches its healthz, restarts it with a capped
//! backoff, stops it gracefully, and publishes what it knows as a [`KubeletState`] on a watch
//! channel (read by [`crate::node::health`] and by `run` for systemd's STATUS= line).
//!
//! # Command line
//! [`kubelet_command_line`] reproduces kubeadm's systemd drop-in (`10-kubeadm.conf`):
//! the kubeconfig and config flags, then `KUBELET_KUBEADM_ARGS` from the flags file `join` wrote,
//! then `KUBELET_EXTRA_ARGS` from `/etc/default/kubelet` (deb) or `/etc/sysconfig/kubelet` (rpm),
//! then `--kubelet-arg`s. The env files are parsed as systemd parses `EnvironmentFile=`, and the
//! values split into words as systemd splits an unquoted `$VAR` in `ExecStart=`.
//!
//! # Processes and threads
//! - One **spawner thread** lives as long as [`supervise`] and forks every kubelet. kubelet gets
//!   `PR_SET_PDEATHSIG(SIGKILL)`, which Linux fires when the *thread* that forked it exits, not
//!   the process: spawning from tokio's blocking pool would kill kubelet whenever tokio retired an
//!   idle thread. If kaas-join dies (even by SIGKILL), every thread dies and kubelet with them;
//!   no orphan kubelet keeps running unsupervised. If the future of [`supervise`] is dropped, the
//!   spawner thread's channel closes, the thread exits, and kubelet is killed the same way (and
//!   its process group too, by a guard).
//! - kubelet runs in its own process group (`process_group(0)`), so signals go to the group
//!   (`-pgid`): kubelet and anything it started.
//! - Per kubelet run: a **waiter thread** (`Child::wait`, result over a tokio oneshot; tokio's own
//!   process support cannot be used for a child forked on our thread) and two **reader threads**
//!   (stdout, stderr), which log each line under target `kubelet` and keep the last
//!   [`LAST_LINES`] for [`ExitInfo::last_lines`].
//! - The **healthz probe** is a tokio task with a minimal HTTP/1.0 client on loopback.
//!
//! Nothing here waits on the network (the probe is local and bounded by its timeout) or blocks
//! the runtime (the /proc scan runs on the blocking pool).
//!
//! # Policy
//! - Phase `Starting` after the start, `Running` at the first good healthz (or at once when
//!   healthz is off, `healthzPort: 0`). `liveness_failures` consecutive failures while `Running`
//!   → SIGKILL to the group, counted as a restart ("killed: healthz failed N times (hung)").
//!   `liveness_failures: 0` reports failures but never kills.
//! - After an exit: `BackingOff` for the backoff (initial, doubling, capped, ±10 % jitter; back to
//!   initial after a run of `stable_after`); `CrashLooping` when `crashloop_restarts` restarts fell
//!   within `crashloop_window` (then always the capped backoff). Still retried, forever.
//! - Missing or non-executable binary: `CannotStart`; another kubelet running: `Conflict`; both
//!   re-checked at each backoff step, never spinning.
//! - [`Control::Stop`] (or the control channel closing): SIGTERM to the group, SIGKILL after
//!   `grace`, phase `Stopped`, return. [`Control::Restart`]: the same stop, then an immediate
//!   start with a fresh backoff (counted as a restart); during a backoff wait, it starts at once.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use crate::host::paths::{Paths, KUBELET_CONFIG, KUBELET_FLAGS_ENV, KUBELET_KUBECONFIG};
use crate::host::{ChildSpec, Host, LinuxHost, Signal};
use crate::model::backoff::Backoff;
use crate::model::exit_code::ExitCode;
use crate::model::kubelet_process::{ExitInfo, Healthz, KubeletPhase, KubeletState};

/// kubeadm's bootstrap kubeconfig; kubeadm's drop-in always passes it (kubelet ignores it once
/// `kubelet.conf` exists, which `join` writes).
pub const BOOTSTRAP_KUBECONFIG: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
/// Env files of the kubelet packages holding `KUBELET_EXTRA_ARGS`: deb, then rpm. The first that
/// exists is read.
pub const EXTRA_ARGS_FILES: [&str; 2] = ["/etc/default/kubelet", "/etc/sysconfig/kubelet"];
/// How many of kubelet's last output lines an [`ExitInfo`] keeps.
pub const LAST_LINES: usize = 20;
/// Longer output lines are cut (a runaway line must not eat memory).
pub const MAX_LINE: usize = 4096;
/// After SIGKILL, how long to wait for the exit before giving up on it (a process stuck in
/// uninterruptible sleep cannot die before its I/O ends).
const KILL_WAIT: Duration = Duration::from_secs(10);
/// After kubelet exits, how long the waiter lets the readers drain the pipes (a grandchild that
/// inherited them must not hold the exit report up).
const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// Errors of the supervisor; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The flags file `join` writes is missing.
    #[error(
        "this node has not joined a cluster: {} is missing (run `kaas-join join` first)",
        path.display()
    )]
    NotJoined { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("cannot start the thread that spawns kubelet: {0}")]
    Thread(io::Error),
}

impl SupervisorError {
    /// The documented exit code.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            SupervisorError::NotJoined { .. } => ExitCode::NotJoined,
            SupervisorError::Read { .. } => ExitCode::Filesystem,
            SupervisorError::Invalid { .. } => ExitCode::Usage,
            SupervisorError::Thread(_) => ExitCode::Internal,
        }
    }
}

/// How to run kubelet. [`SupervisorConfig::new`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// The binary to run.
    pub kubelet: PathBuf,
    /// Its arguments (without the program name), from [`kubelet_command_line`].
    pub args: Vec<String>,
    /// `None`: no liveness probe (`healthzPort: 0`).
    pub healthz_url: Option<String>,
    /// Consecutive failed probes while Running before kubelet is killed and restarted (0: never).
    pub liveness_failures: u32,
    pub healthz_interval: Duration,
    pub healthz_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A run at least this long resets the backoff to `backoff_initial`.
    pub stable_after: Duration,
    /// This many restarts within `crashloop_window` → CrashLooping (0: never).
    pub crashloop_restarts: u32,
    pub crashloop_window: Duration,
    /// SIGTERM → SIGKILL after this.
    pub grace: Duration,
    /// Refuse to start while another process named `kubelet` runs.
    pub check_other_kubelet: bool,
    /// The machine kubelet runs on (spawn, signals, the process table).
    pub host: Arc<dyn Host>,
}

impl SupervisorConfig {
    pub fn new(kubelet: PathBuf, args: Vec<String>, healthz_url: Option<String>) -> Self {
        SupervisorConfig {
            kubelet,
            args,
            healthz_url,
            liveness_failures: 3,
            healthz_interval: Duration::from_secs(10),
            healthz_timeout: Duration::from_secs(2),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(600),
            crashloop_restarts: 5,
            crashloop_window: Duration::from_secs(600),
            grace: Duration::from_secs(30),
            check_other_kubelet: true,
            host: Arc::new(LinuxHost),
        }
    }
}

/// What `run` asks of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop kubelet gracefully and return (SIGTERM/SIGINT).
    Stop,
    /// Stop kubelet gracefully and start it again at once (SIGHUP, after the config was re-read).
    Restart,
}

// ---------------------------------------------------------------------------------------------
// Command line and healthz URL
// ---------------------------------------------------------------------------------------------

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
    let flags = match std::fs::read_to_string(&flags_path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SupervisorError::NotJoined { path: flags_path })
        }
        Err(source) => {
            return Err(SupervisorError::Read {
                path: flags_path,
                source,
            })
        }
    };
    args.extend(env_file_words(&flags_path, &flags, "KUBELET_KUBEADM_ARGS")?);
    for file in EXTRA_ARGS_FILES {
        let path = paths.host(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                args.extend(env_file_words(&path, &text, "KUBELET_EXTRA_ARGS")?);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(SupervisorError::Read { path, source }),
        }
    }
    args.extend(extra.iter().cloned());
    Ok(args)
}

/// The words of `var` in an env file (none when it is not set).
fn env_file_words(path: &Path, text: &str, var: &str) -> Result<Vec<String>, SupervisorError> {
    let invalid = |message: String| SupervisorError::Invalid {
        path: path.to_owned(),
        message,
    };
    let vars = parse_env_file(text).map_err(invalid)?;
    match vars.iter().rev().find(|(k, _)| k == var) {
        Some((_, value)) => split_words(value).map_err(|e| invalid(format!("{var}: {e}"))),
        None => Ok(Vec::new()),
    }
}

/// Parses an env file as systemd's `EnvironmentFile=` does: `KEY=VALUE` lines, `#`/`;` comments,
/// optional `export `, values with double quotes (backslash escapes `"`, `\`, `` ` ``, `$` and a
/// newline), single quotes (literal) and unquoted backslash escapes; unquoted whitespace inside a
/// value is kept, trailing whitespace is not.
fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut vars = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line_no = 1;
    loop {
        // Start of a line: skip blanks.
        while matches!(chars.peek(), Some(' ' | '\t' | '\r')) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if first == '\n' {
            chars.next();
            line_no += 1;
            continue;
        }
        if first == '#' || first == ';' {
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            line_no += 1;
            continue;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == '\n' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let mut key = key.trim().to_owned();
        if let Some(rest) = key.strip_prefix("export ") {
            key = rest.trim().to_owned();
        }
        if chars.next() != Some('=') {
            return Err(format!("line {line_no}: expected KEY=VALUE"));
        }
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("line {line_no}: invalid variable name {key:?}"));
        }
        while matches!(chars.peek(), Some(' ' | '\t')) {
            chars.next();
        }
        let mut value = String::new();
        // Length of `value` that trailing-whitespace trimming may not cut (quoted text).
        let mut keep = 0;
        while let Some(c) = chars.next() {
            match c {
                '\n' => {
                    line_no += 1;
                    break;
                }
                '\\' => match chars.next() {
                    Some('\n') => line_no += 1,
                    Some(c) => {
                        value.push(c);
                        keep = value.len();
                    }
                    None => {}
                },
                '\'' => {
                    loop {
                        match chars.next() {
                            Some('\'') => break,
                            Some(c) => {
                                line_no += usize::from(c == '\n');
                                value.push(c);
                            }
                            None => return Err(format!("line {line_no}: unterminated '")),
                        }
                    }
                    keep = value.len();
                }
                '"' => {
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some('\n') => line_no += 1,
                                Some(c @ ('"' | '\\' | '`' | '$')) => value.push(c),
                                Some(c) => {
                                    value.push('\\');
                                    value.push(c);
                                }
                                None => return Err(format!("line {line_no}: unterminated \"")),
                            },
                            Some(c) => {
                                line_no += usize::from(c == '\n');
                                value.push(c);
                            }
                            None => return Err(format!("line {line_no}: unterminated \"")),
                        }
                    }
                    keep = value.len();
                }
                c => value.push(c),
            }
        }
        let trimmed = value[keep..].trim_end_matches([' ', '\t', '\r']).len();
        value.truncate(keep + trimmed);
        vars.push((key, value));
    }
    Ok(vars)
}

/// Splits a value into words as systemd splits an unquoted `$VAR` in `ExecStart=`: at
/// whitespace, with double quotes, single quotes and backslash escapes.
fn split_words(value: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = value.chars();
    let mut word: Option<String> = None;
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(String::new);
                if let Some(c) = chars.next() {
                    w.push(c);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated ' in arguments".to_owned()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => w.push(c),
                            None => return Err("unterminated \" in arguments".to_owned()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("unterminated \" in arguments".to_owned()),
                    }
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// kubelet's healthz URL from its KubeletConfiguration (`healthzBindAddress`, default
/// 127.0.0.1; `healthzPort`, default 10248, 0 = off → `None`). An unspecified bind address
/// (`0.0.0.0`, `::`) is probed on loopback.
pub fn healthz_url(paths: &Paths) -> Result<Option<String>, SupervisorError> {
    let path = paths.host(KUBELET_CONFIG);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SupervisorError::NotJoined { path })
        }
        Err(source) => return Err(SupervisorError::Read { path, source }),
    };
    let invalid = |message: String| SupervisorError::Invalid {
        path: path.clone(),
        message,
    };
    let doc: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let port = match doc.get("healthzPort") {
        None | Some(serde_norway::Value::Null) => 10248,
        Some(v) => v
            .as_u64()
            .filter(|&p| p <= 65535)
            .ok_or_else(|| invalid(format!("healthzPort is not a port number: {v:?}")))?,
    };
    if port == 0 {
        return Ok(None);
    }
    let address = match doc.get("healthzBindAddress") {
        None | Some(serde_norway::Value::Null) => "127.0.0.1".to_owned(),
        Some(v) => v
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(format!("healthzBindAddress is not an address: {v:?}")))?
            .to_owned(),
    };
    let host = match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        Ok(std::net::IpAddr::V6(ip)) if ip.is_unspecified() => "[::1]".to_owned(),
        Ok(std::net::IpAddr::V4(ip)) => ip.to_string(),
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        Err(_) => address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    };
    Ok(Some(format!("http://{host}:{port}/healthz")))
}

// ---------------------------------------------------------------------------------------------
// Other kubelets
// ---------------------------------------------------------------------------------------------

/// The pid of a running process named `kubelet` that is neither us nor `own_child` (zombies do
/// not count; the lowest pid, so repeated scans name the same process).
pub fn other_kubelet_running(host: &dyn Host, own_child: Option<u32>) -> Option<u32> {
    let me = std::process::id();
    host.pids()
        .into_iter()
        .filter(|pid| *pid != me && Some(*pid) != own_child)
        // Processes come and go while we scan: those gone meanwhile are skipped.
        .filter(|pid| {
            host.process(*pid)
                .is_some_and(|p| p.name == "kubelet" && p.is_live())
        })
        .min()
}

// ---------------------------------------------------------------------------------------------
// Spawning, output and exit
// ---------------------------------------------------------------------------------------------

/// Kubelet's recent output, shared by the reader threads of one run.
type Lines = Arc<Mutex<VecDeque<String>>>;

/// A started kubelet.
struct Spawned {
    pid: u32,
    /// The exit status, from the waiter thread.
    exit: oneshot::Receiver<io::Result<ExitStatus>>,
    lines: Lines,
}

struct SpawnRequest {
    program: PathBuf,
    args: Vec<String>,
    reply: oneshot::Sender<io::Result<Spawned>>,
}

/// The long-lived thread that forks kubelet (see the module docs for why one thread).
struct Spawner {
    requests: std_mpsc::Sender<SpawnRequest>,
}

impl Spawner {
    fn start(host: Arc<dyn Host>) -> Result<Spawner, SupervisorError> {
        let (requests, rx) = std_mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("kubelet-spawner".into())
            .spawn(move || {
                // Ends when the supervisor drops its sender; any kubelet still running then
                // gets SIGKILL from PR_SET_PDEATHSIG.
                while let Ok(req) = rx.recv() {
                    let _ = req
                        .reply
                        .send(spawn_kubelet(&host, &req.program, &req.args));
                }
            })
            .map_err(SupervisorError::Thread)?;
        Ok(Spawner { requests })
    }

    async fn spawn(&self, program: &Path, args: &[String]) -> io::Result<Spawned> {
        let (reply, rx) = oneshot::channel();
        let req = SpawnRequest {
            program: program.to_owned(),
            args: args.to_vec(),
            reply,
        };
        let gone = || io::Error::other("the kubelet spawner thread is gone");
        self.requests.send(req).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

/// Forks kubelet on the calling (spawner) thread, then starts its reader and waiter threads.
fn spawn_kubelet(host: &Arc<dyn Host>, program: &Path, args: &[String]) -> io::Result<Spawned> {
    let spec = ChildSpec {
        program: program.to_owned(),
        args: args.to_vec(),
        env_remove: variables_kept_from_kubelet(),
    };
    let child = host.spawn(&spec)?;
    let pid = child.id();
    watch_child(host, child).inspect(|_| tracing::debug!(pid, "kubelet forked"))
}

/// What kubelet must not inherit: systemd's notification variables (they describe our unit,
/// and kubelet speaks the protocol too) and every `KAAS_JOIN_*` variable (the bootstrap token
/// among them: kubelet, and the credential providers and exec plugins it starts, never see it).
fn variables_kept_from_kubelet() -> Vec<String> {
    let mut names: Vec<String> = crate::node::notify::VARIABLES
        .iter()
        .map(|v| (*v).to_owned())
        .collect();
    names.extend(
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("KAAS_JOIN_")),
    );
    names
}

/// Starts the reader threads and the waiter thread of a kubelet just forked. If a thread cannot
/// be started, kubelet is killed: it must not run unwatched.
fn watch_child(host: &Arc<dyn Host>, mut child: Child) -> io::Result<Spawned> {
    let pid = child.id();
    let lines: Lines = Arc::new(Mutex::new(VecDeque::with_capacity(LAST_LINES)));
    let (done_tx, done_rx) = std_mpsc::channel::<()>();
    let mut readers = 0;
    let mut started = Ok(());
    if let Some(out) = child.stdout.take() {
        started = start_reader(out, "stdout", &lines, done_tx.clone());
        readers += 1;
    }
    if let Some(err) = child.stderr.take().filter(|_| started.is_ok()) {
        started = start_reader(err, "stderr", &lines, done_tx.clone());
        readers += 1;
    }
    drop(done_tx);
    if let Err(e) = started {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let (exit_tx, exit) = oneshot::channel();
    let waiter = std::thread::Builder::new()
        .name("kubelet-waiter".into())
        .spawn(move || {
            let status = loop {
                match child.wait() {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            // Let the readers drain what the pipes still hold, within a bound.
            let deadline = std::time::Instant::now() + DRAIN_WAIT;
            for _ in 0..readers {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if done_rx.recv_timeout(left).is_err() {
                    break;
                }
            }
            let _ = exit_tx.send(status);
        });
    if let Err(e) = waiter {
        // The Child went down with the closure, unreaped: its pid is still ours to signal.
        signal_group(host.as_ref(), pid, Signal::SIGKILL);
        return Err(e);
    }
    Ok(Spawned { pid, exit, lines })
}

fn start_reader(
    stream: impl Read + Send + 'static,
    name: &'static str,
    lines: &Lines,
    done: std_mpsc::Sender<()>,
) -> io::Result<()> {
    let lines = lines.clone();
    std::thread::Builder::new()
        .name(format!("kubelet-{name}"))
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            // Ends at end of file (kubelet and everything holding the pipe exited) or an error.
            while let Ok(Some(truncated)) = read_capped_line(&mut reader, &mut buf, MAX_LINE) {
                let mut line = String::from_utf8_lossy(&buf).into_owned();
                if truncated {
                    line.push_str(" [line cut]");
                }
                tracing::info!(target: "kubelet", stream = name, "{line}");
                let mut ring = lines.lock().unwrap_or_else(|e| e.into_inner());
                if ring.len() == LAST_LINES {
                    ring.pop_front();
                }
                ring.push_back(line);
            }
            let _ = done.send(());
        })?;
    Ok(())
}

/// Reads one line into `out` (without its end of line), keeping at most `cap` bytes and
/// discarding the rest of the line. `Ok(None)` at end of input; `Ok(Some(cut))` otherwise.
fn read_capped_line<R: BufRead>(
    reader: &mut R,
    out: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Option<bool>> {
    out.clear();
    let mut any = false;
    let mut cut = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any.then_some(cut));
        }
        any = true;
        let (chunk, used, end) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (
                available[..i]
                    .strip_suffix(b"\r")
                    .unwrap_or(&available[..i]),
                i + 1,
                true,
            ),
            None => (available, available.len(), false),
        };
        let room = cap.saturating_sub(out.len());
        cut |= chunk.len() > room;
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        if end {
            if out.last() == Some(&b'\r') {
                out.pop();
            }
            return Ok(Some(cut));
        }
    }
}

/// Sends `signal` to kubelet's process group (its pgid is its pid). A group already gone is fine.
fn signal_group(host: &dyn Host, pid: u32, signal: Signal) {
    if let Err(e) = host.signal(pid, true, signal) {
        tracing::debug!(pid, %signal, error = %e, "cannot signal kubelet's process group");
    }
}

/// Kills kubelet's group when a run is abandoned without seeing its exit (the supervise future
/// dropped): kubelet must not outlive its supervision.
struct KillOnDrop {
    host: Arc<dyn Host>,
    pid: u32,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.host.as_ref(), self.pid, Signal::SIGKILL);
        }
    }
}

/// Aborts the probe task with the run it belongs to.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// "exited with code 1", "killed by SIGKILL".
fn describe(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with code {code}")
    } else if let Some(sig) = status.signal() {
        match Signal::try_from(sig) {
            Ok(s) => format!("killed by {}", s.as_str()),
            Err(_) => format!("killed by signal {sig}"),
        }
    } else {
        format!("ended ({status})")
    }
}

// ---------------------------------------------------------------------------------------------
// Healthz
// ---------------------------------------------------------------------------------------------

/// `http://host:port/path` → ("host:port", "/path").
fn split_http_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return None;
    }
    let authority = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:80")
    } else {
        authority.to_owned()
    };
    Some((authority, path.to_owned()))
}

/// One `GET` over HTTP/1.0: `Ok` on a 200 status line.
async fn probe_once(authority: &str, path: &str) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: kaas-join\r\nAccept: */*\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send to {authority}: {e}"))?;
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("cannot read from {authority}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(format!(
            "{authority} closed the connection without an answer"
        ));
    }
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/") => Ok(()),
        (Some(v), Some(_)) if v.starts_with("HTTP/") => Err(format!("healthz answered {line:?}")),
        _ => Err(format!(
            "healthz answered something that is not HTTP: {line:?}"
        )),
    }
}

/// The first healthz probes come sooner than `healthz_interval`: 250 ms after the start, then
/// doubling up to the interval, so a kubelet that binds its port within a second is `Running`
/// (and systemd hears READY=1) within a second, not at the next 10 s tick.
const FIRST_PROBE_DELAY: Duration = Duration::from_millis(250);

/// Probes (the first at once) and sends each result; ends when the receiver is gone. Until the
/// first success the delay grows from [`FIRST_PROBE_DELAY`] to `interval`; after it, every
/// `interval`.
async fn probe_loop(
    url: String,
    interval: Duration,
    timeout: Duration,
    results: mpsc::Sender<Result<(), String>>,
) {
    let target = split_http_url(&url);
    let interval = interval.max(Duration::from_millis(1));
    let mut delay = FIRST_PROBE_DELAY.min(interval);
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::time::sleep_until(next).await;
        let result = match &target {
            None => Err(format!("unsupported healthz URL {url:?} (only http://)")),
            Some((authority, path)) => tokio::time::timeout(timeout, probe_once(authority, path))
                .await
                .unwrap_or_else(|_| Err(format!("no answer from {url} within {timeout:?}"))),
        };
        if result.is_ok() {
            delay = interval;
        }
        // From the probe's start, as `interval` ticks did; never sooner than now.
        next = (next + delay).max(tokio::time::Instant::now());
        delay = (delay * 2).min(interval);
        if results.send(result).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The supervisor
// ---------------------------------------------------------------------------------------------

/// How a wait ended.
enum Wake {
    Elapsed,
    /// Restart asked: go now.
    Now,
    Stop,
}

/// How one kubelet run ended.
enum RunEnd {
    /// Exited or killed as hung: back off, then start again.
    Exited { ran_for: Duration },
    /// Stopped for a requested restart: start again now.
    Restart,
    /// Stopped for good.
    Stopped,
}

struct Supervisor {
    cfg: SupervisorConfig,
    state: watch::Sender<KubeletState>,
    spawner: Spawner,
    backoff: Backoff,
    /// When the recent restarts happened (within `crashloop_window`).
    restarts: VecDeque<Instant>,
}

/// Runs kubelet until [`Control::Stop`] or the control channel closes (see the module docs).
/// Returns once kubelet has stopped; errors only when the spawner thread cannot be started.
pub async fn supervise(
    cfg: SupervisorConfig,
    state: watch::Sender<KubeletState>,
    mut control: mpsc::Receiver<Control>,
) -> Result<(), SupervisorError> {
    let spawner = Spawner::start(cfg.host.clone())?;
    let backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max).with_jitter(0.1);
    let mut sup = Supervisor {
        cfg,
        state,
        spawner,
        backoff,
        restarts: VecDeque::new(),
    };
    sup.run(&mut control).await;
    Ok(())
}

impl Supervisor {
    /// Publishes a change, notifying receivers only when something actually changed.
    fn publish(&self, f: impl FnOnce(&mut KubeletState)) {
        self.state.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            *s != before
        });
    }

    fn stopped(&self) {
        self.publish(|s| {
            s.phase = KubeletPhase::Stopped;
            s.pid = None;
        });
        tracing::info!("kubelet supervisor stopped");
    }

    async fn wait(&self, delay: Duration, control: &mut mpsc::Receiver<Control>) -> Wake {
        tokio::select! {
            _ = tokio::time::sleep(delay) => Wake::Elapsed,
            msg = control.recv() => match msg {
                Some(Control::Restart) => Wake::Now,
                Some(Control::Stop) | None => Wake::Stop,
            },
        }
    }

    /// Why kubelet cannot be started now: (phase, problem).
    async fn blocker(&self) -> Option<(KubeletPhase, String)> {
        if let Some(problem) = binary_problem(&self.cfg.kubelet) {
            return Some((KubeletPhase::CannotStart, problem));
        }
        if self.cfg.check_other_kubelet {
            let host = self.cfg.host.clone();
            let other =
                tokio::task::spawn_blocking(move || other_kubelet_running(host.as_ref(), None))
                    .await
                    .ok()
                    .flatten();
            if let Some(pid) = other {
                return Some((
                    KubeletPhase::Conflict,
                    format!(
                        "another kubelet (pid {pid}) is already running, probably \
                         kubelet.service: stop and disable it (systemctl disable --now kubelet) \
                         so that kaas-join runs the only kubelet"
                    ),
                ));
            }
        }
        None
    }

    async fn run(&mut self, control: &mut mpsc::Receiver<Control>) {
        loop {
            let blocked = match self.blocker().await {
                Some(b) => Some(b),
                None => match self.spawner.spawn(&self.cfg.kubelet, &self.cfg.args).await {
                    Ok(child) => {
                        match self.run_child(child, control).await {
                            RunEnd::Stopped => return,
                            RunEnd::Restart => {
                                self.backoff.reset();
                                continue;
                            }
                            RunEnd::Exited { ran_for } => {
                                if ran_for >= self.cfg.stable_after {
                                    self.backoff.reset();
                                }
                            }
                        }
                        None
                    }
                    Err(e) => Some((
                        KubeletPhase::CannotStart,
                        format!("cannot start kubelet {}: {e}", self.cfg.kubelet.display()),
                    )),
                },
            };
            let delay = match blocked {
                Some((phase, problem)) => {
                    if self.state.borrow().problem.as_deref() != Some(problem.as_str()) {
                        tracing::warn!(kubelet = %self.cfg.kubelet.display(), "{problem}");
                    }
                    self.publish(|s| {
                        s.phase = phase;
                        s.problem = Some(problem);
                        s.pid = None;
                    });
                    self.backoff.next_delay()
                }
                None => self.after_exit(),
            };
            tracing::debug!(?delay, "waiting before starting kubelet");
            match self.wait(delay, control).await {
                Wake::Elapsed => {}
                Wake::Now => self.backoff.reset(),
                Wake::Stop => {
                    self.stopped();
                    return;
                }
            }
        }
    }

    /// Counts the restart, picks BackingOff or CrashLooping, and returns the wait.
    fn after_exit(&mut self) -> Duration {
        let now = Instant::now();
        self.restarts.push_back(now);
        while let Some(&t) = self.restarts.front() {
            if now.duration_since(t) > self.cfg.crashloop_window {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        let looping = self.cfg.crashloop_restarts > 0
            && self.restarts.len() >= self.cfg.crashloop_restarts as usize;
        let delay = if looping {
            self.backoff.capped()
        } else {
            self.backoff.next_delay()
        };
        self.publish(|s| {
            s.phase = if looping {
                KubeletPhase::CrashLooping
            } else {
                KubeletPhase::BackingOff
            };
            s.pid = None;
        });
        if looping {
            tracing::warn!(
                restarts = self.restarts.len(),
                window = ?self.cfg.crashloop_window,
                ?delay,
                "kubelet is crash-looping; retrying at the backoff cap"
            );
        } else {
            tracing::info!(?delay, "restarting kubelet after the backoff");
        }
        delay
    }

    /// Records how kubelet ended.
    fn record_exit(
        &self,
        status: Option<io::Result<ExitStatus>>,
        why: Option<String>,
        lines: &Lines,
        restart: bool,
        unexpected: bool,
    ) {
        let (code, signal, base) = match status {
            Some(Ok(st)) => (st.code(), st.signal(), describe(&st)),
            Some(Err(e)) => (None, None, format!("exit status unknown ({e})")),
            None => (
                None,
                None,
                "did not exit after SIGKILL; no longer watched".to_owned(),
            ),
        };
        let description = match why {
            Some(why) => why.replace("{status}", &base),
            None => base,
        };
        let last_lines: Vec<String> = lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        if unexpected {
            tracing::warn!(code, signal, "kubelet {description}");
        } else {
            tracing::info!(code, signal, "kubelet {description}");
        }
        self.publish(|s| {
            s.pid = None;
            if restart {
                s.restarts += 1;
            }
            s.last_exit = Some(ExitInfo {
                code,
                signal,
                description,
                at: SystemTime::now(),
                last_lines,
            });
        });
    }

    /// SIGTERM to the group, SIGKILL after the grace period; returns the status (None when it
    /// did not even die of SIGKILL) and whether SIGKILL was needed.
    async fn terminate(
        &self,
        pid: u32,
        exit: &mut oneshot::Receiver<io::Result<ExitStatus>>,
    ) -> (Option<io::Result<ExitStatus>>, bool) {
        signal_group(self.cfg.host.as_ref(), pid, Signal::SIGTERM);
        if let Ok(status) = tokio::time::timeout(self.cfg.grace, &mut *exit).await {
            return (status.ok(), false);
        }
        tracing::warn!(
            pid,
            grace = ?self.cfg.grace,
            "kubelet did not stop after SIGTERM; sending SIGKILL"
        );
        (kill_and_wait(self.cfg.host.as_ref(), pid, exit).await, true)
    }

    async fn run_child(&mut self, child: Spawned, control: &mut mpsc::Receiver<Control>) -> RunEnd {
        let Spawned {
            pid,
            mut exit,
            lines,
        } = child;
        let mut guard = KillOnDrop {
            host: self.cfg.host.clone(),
            pid,
            armed: true,
        };
        let started = Instant::now();
        let probing = self.cfg.healthz_url.is_some();
        tracing::info!(pid, kubelet = %self.cfg.kubelet.display(), "kubelet started");
        self.publish(|s| {
            s.phase = if probing {
                KubeletPhase::Starting
            } else {
                KubeletPhase::Running
            };
            s.pid = Some(pid);
            s.started_at = Some(SystemTime::now());
            s.healthz = Healthz::default();
            s.problem = None;
        });
        let (probe_tx, mut probe_rx) = mpsc::channel(1);
        let _probe = self.cfg.healthz_url.clone().map(|url| {
            AbortOnDrop(tokio::spawn(probe_loop(
                url,
                self.cfg.healthz_interval,
                self.cfg.healthz_timeout,
                probe_tx,
            )))
        });
        let end = loop {
            tokio::select! {
                status = &mut exit => {
                    let status = status
                        .unwrap_or_else(|_| Err(io::Error::other("the waiter thread is gone")));
                    self.record_exit(Some(status), None, &lines, true, true);
                    break RunEnd::Exited { ran_for: started.elapsed() };
                }
                msg = control.recv() => {
                    let restart = msg == Some(Control::Restart);
                    tracing::info!(pid, restart, "stopping kubelet (SIGTERM)");
                    let (status, killed) = self.terminate(pid, &mut exit).await;
                    let why = match (restart, killed) {
                        (true, false) => "{status} (restart requested)".to_owned(),
                        (false, false) => "{status} (stopped by kaas-join)".to_owned(),
                        (_, true) => {
                            let grace = self.cfg.grace;
                            format!("{{status}} (did not stop within {grace:?} of SIGTERM)")
                        }
                    };
                    self.record_exit(status, Some(why), &lines, restart, killed);
                    if restart {
                        break RunEnd::Restart;
                    }
                    guard.armed = false;
                    self.stopped();
                    break RunEnd::Stopped;
                }
                Some(result) = probe_rx.recv() => {
                    if let Some(failures) = self.probed(result) {
                        tracing::warn!(
                            pid,
                            failures,
                            "kubelet's healthz failed {failures} times in a row; killing it as hung"
                        );
                        let status = kill_and_wait(self.cfg.host.as_ref(), pid, &mut exit).await;
                        let why = format!("killed: healthz failed {failures} times (hung)");
                        self.record_exit(status, Some(why), &lines, true, true);
                        break RunEnd::Exited { ran_for: started.elapsed() };
                    }
                }
            }
        };
        guard.armed = false;
        end
    }

    /// Applies a probe result; `Some(failures)` when kubelet is to be killed as hung.
    fn probed(&self, result: Result<(), String>) -> Option<u32> {
        let threshold = self.cfg.liveness_failures;
        let mut kill = None;
        self.state.send_if_modified(|s| {
            let before = s.clone();
            match &result {
                Ok(()) => {
                    if s.phase == KubeletPhase::Starting {
                        tracing::info!(pid = s.pid, "kubelet is healthy (healthz ok)");
                        s.phase = KubeletPhase::Running;
                    } else if s.healthz.ok == Some(false) {
                        tracing::info!(pid = s.pid, "kubelet's healthz is ok again");
                    }
                    s.healthz = Healthz {
                        ok: Some(true),
                        consecutive_failures: 0,
                        last_error: None,
                    };
                }
                Err(e) => {
                    tracing::debug!(error = %e, "kubelet healthz failed");
                    s.healthz.ok = Some(false);
                    s.healthz.consecutive_failures =
                        s.healthz.consecutive_failures.saturating_add(1);
                    s.healthz.last_error = Some(e.clone());
                    if s.phase == KubeletPhase::Running
                        && threshold > 0
                        && s.healthz.consecutive_failures >= threshold
                    {
                        kill = Some(s.healthz.consecutive_failures);
                    }
                }
            }
            *s != before
        });
        kill
    }
}

/// SIGKILL to the group and the exit status (None when it did not come within [`KILL_WAIT`]).
async fn kill_and_wait(
    host: &dyn Host,
    pid: u32,
    exit: &mut oneshot::Receiver<io::Result<ExitStatus>>,
) -> Option<io::Result<ExitStatus>> {
    signal_group(host, pid, Signal::SIGKILL);
    match tokio::time::timeout(KILL_WAIT, exit).await {
        Ok(status) => status.ok(),
        Err(_) => {
            tracing::error!(pid, "kubelet did not exit {KILL_WAIT:?} after SIGKILL");
            None
        }
    }
}

/// Why `path` cannot be run, with the fix.
fn binary_problem(path: &Path) -> Option<String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(format!(
            "kubelet binary {shown} not found (install the kubelet package, or pass --kubelet PATH)"
        )),
        Err(e) => Some(format!("kubelet binary {shown} cannot be read: {e}")),
        Ok(m) if !m.is_file() => Some(format!(
            "kubelet binary {shown} is not a regular file (pass --kubelet PATH)"
        )),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Some(format!(
            "kubelet binary {shown} is not executable (chmod +x {shown})"
        )),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FakeHost;
    use std::io::Cursor;

    #[test]
    fn env_file_values() {
        let text = "# kubeadm\nKUBELET_KUBEADM_ARGS=\"--a=b --node-labels='x=1,y=2' --c=\\\"d e\\\"\"\n\
                    ; other\nexport OTHER='lit $x \\n'\nUNQUOTED=--v=2   --max-pods=50   \nCONT=a\\\nb\n";
        let vars = parse_env_file(text).unwrap();
        assert_eq!(
            vars,
            vec![
                (
                    "KUBELET_KUBEADM_ARGS".to_owned(),
                    "--a=b --node-labels='x=1,y=2' --c=\"d e\"".to_owned()
                ),
                ("OTHER".to_owned(), "lit $x \\n".to_owned()),
                ("UNQUOTED".to_owned(), "--v=2   --max-pods=50".to_owned()),
                ("CONT".to_owned(), "ab".to_owned()),
            ]
        );
        assert_eq!(
            split_words(&vars[0].1).unwrap(),
            vec!["--a=b", "--node-labels=x=1,y=2", "--c=d e"]
        );
        assert_eq!(
            split_words(&vars[2].1).unwrap(),
            vec!["--v=2", "--max-pods=50"]
        );
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("''").unwrap(), vec![""]);
        assert_eq!(split_words("a\\ b c").unwrap(), vec!["a b", "c"]);
        assert!(split_words("'open").is_err());
        assert!(parse_env_file("A=\"open\n").is_err());
        assert!(parse_env_file("no equals sign\n").is_err());
        assert!(parse_env_file("BAD-NAME=1\n").is_err());
    }

    #[test]
    fn healthz_urls() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        assert!(matches!(
            healthz_url(&paths).unwrap_err(),
            SupervisorError::NotJoined { .. }
        ));
        std::fs::create_dir_all(paths.host(crate::host::paths::KUBELET_DIR)).unwrap();
        let cases = [
            (
                "kind: KubeletConfiguration\n",
                Some("http://127.0.0.1:10248/healthz"),
            ),
            ("healthzPort: 0\n", None),
            (
                "healthzBindAddress: 0.0.0.0\n",
                Some("http://127.0.0.1:10248/healthz"),
            ),
            (
                "healthzBindAddress: '::'\n",
                Some("http://[::1]:10248/healthz"),
            ),
            (
                "healthzBindAddress: fd00::5\nhealthzPort: 9999\n",
                Some("http://[fd00::5]:9999/healthz"),
            ),
        ];
        for (yaml, want) in cases {
            std::fs::write(paths.host(KUBELET_CONFIG), yaml).unwrap();
            assert_eq!(healthz_url(&paths).unwrap().as_deref(), want, "{yaml}");
        }
        std::fs::write(paths.host(KUBELET_CONFIG), "healthzPort: nope\n").unwrap();
        let err = healthz_url(&paths).unwrap_err().to_string();
        assert!(err.contains("healthzPort"), "{err}");
    }

    #[test]
    fn url_splitting() {
        assert_eq!(
            split_http_url("http://127.0.0.1:10248/healthz"),
            Some(("127.0.0.1:10248".into(), "/healthz".into()))
        );
        assert_eq!(
            split_http_url("http://[::1]:10248/healthz"),
            Some(("[::1]:10248".into(), "/healthz".into()))
        );
        assert_eq!(
            split_http_url("http://[::1]"),
            Some(("[::1]:80".into(), "/".into()))
        );
        assert_eq!(split_http_url("https://x/healthz"), None);
    }

    #[test]
    fn capped_lines() {
        let mut r = Cursor::new(b"short\r\nxxxxxxxxxxxx\nlast".to_vec());
        let mut buf = Vec::new();
        assert_eq!(read_capped_line(&mut r, &mut buf, 5).unwrap(), Some(false));
        assert_eq!(buf, b"short");
        assert_eq!(read_capped_line(&mut r, &mut buf, 5).unwrap(), Some(true));
        assert_eq!(buf, b"xxxxx");
        assert_eq!(read_capped_line(&mut r, &mut buf, 5).unwrap(), Some(false));
        assert_eq!(buf, b"last");
        assert_eq!(read_capped_line(&mut r, &mut buf, 5).unwrap(), None);
    }

    #[test]
    fn other_kubelets_are_found_in_the_process_table() {
        let host = FakeHost::new();
        host.add_process(10, "containerd", &["containerd"]);
        host.add_process(11, "kubelet", &["kubelet"]);
        host.end_process(11);
        assert_eq!(other_kubelet_running(&host, None), None);
        host.add_process(40, "kubelet", &["kubelet"]);
        host.add_process(30, "kubelet", &["kubelet"]);
        assert_eq!(other_kubelet_running(&host, None), Some(30));
        assert_eq!(other_kubelet_running(&host, Some(30)), Some(40));
        host.add_process(std::process::id(), "kubelet", &["kubelet"]);
        assert_eq!(other_kubelet_running(&host, Some(30)), Some(40));
    }

    #[test]
    fn binary_problems() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("kubelet");
        assert_eq!(
            binary_problem(&missing).unwrap(),
            format!(
                "kubelet binary {} not found (install the kubelet package, or pass --kubelet PATH)",
                missing.display()
            )
        );
        std::fs::write(&missing, b"").unwrap();
        let p = binary_problem(&missing).unwrap();
        let want = format!("is not executable (chmod +x {})", missing.display());
        assert!(p.ends_with(&want), "{p}");
        std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(binary_problem(&missing), None);
        assert!(binary_problem(dir.path())
            .unwrap()
            .contains("not a regular file"));
    }

    #[test]
    fn exit_descriptions() {
        assert_eq!(
            describe(&ExitStatus::from_raw(1 << 8)),
            "exited with code 1"
        );
        assert_eq!(describe(&ExitStatus::from_raw(9)), "killed by SIGKILL");
    }

    /// A kubelet that binds healthz a moment after it starts is seen as healthy within about a
    /// second (the first probes come 250 ms, 500 ms, 1 s... apart), not at the next 10 s tick;
    /// after that the interval holds.
    #[tokio::test]
    async fn first_probes_come_quickly_then_every_interval() {
        // A port that is free now and listened on 600 ms later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            // Bounded: the probes this test can see.
            for _ in 0..4 {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\n\r\nok").await;
            }
        });
        let (tx, mut rx) = mpsc::channel(8);
        let started = Instant::now();
        let probe = AbortOnDrop(tokio::spawn(probe_loop(
            format!("http://127.0.0.1:{port}/healthz"),
            Duration::from_secs(10),
            Duration::from_secs(2),
            tx,
        )));
        let mut failures = 0;
        let healthy_after = loop {
            let result = tokio::time::timeout(Duration::from_secs(15), rx.recv())
                .await
                .expect("a probe result within 15 s")
                .expect("the probe loop runs");
            match result {
                Ok(()) => break started.elapsed(),
                Err(_) => failures += 1,
            }
        };
        assert!(
            failures >= 1,
            "the first probe, at once, finds nothing listening"
        );
        // The old fixed 10 s tick would give 10 s here; the backoff schedule ~1.75 s at most.
        assert!(
            healthy_after < Duration::from_secs(5),
            "healthy only after {healthy_after:?}"
        );
        // Healthy: the next probe waits the full interval.
        assert!(
            tokio::time::timeout(Duration::from_secs(3), rx.recv())
                .await
                .is_err(),
            "after a success, probes come every interval"
        );
        drop(probe);
        server.abort();
    }
}
