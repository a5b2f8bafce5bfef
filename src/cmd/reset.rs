//! `kaas-join reset`: undoes a join made by kaas-join, as `kubeadm reset` undoes kubeadm's.
//!
//! 1. **whose node**: only a machine with our state file (`/var/lib/kaas-join/state.json`, any
//!    phase, even damaged) is reset. Without it: "nothing to reset", or, when a
//!    `kubelet.conf` is there, "not joined by kaas-join" (`kubeadm reset` is the tool for that);
//!    both exit [`ExitCode::NotJoined`] and touch nothing.
//! 2. **stop**: on `/` under systemd, `systemctl stop` of the active units among
//!    `kaas-join.service` (it has `Restart=always`: killing its pid alone would be undone),
//!    `kaas-join-oneshot.service` (it stays "active (exited)", which would keep a later
//!    `systemctl start kubelet` from joining again) and `kubelet.service`. Then, under any
//!    `--root`, the `kaas-join run` named by the run-status file, if its pid is alive and its
//!    command line is `kaas-join run` for this root: SIGTERM, and up to [`DAEMON_STOP_WAIT`] for
//!    it to stop kubelet (30 s grace) and exit; then the kubelet pid it last published, if that
//!    process still runs with kubeadm's kubelet command line (SIGTERM to its group,
//!    SIGKILL after [`KUBELET_STOP_WAIT`]). A process not identified as ours is never signalled.
//! 3. **Node** (only with `--kubeconfig`, an admin's: a node's own identity may not delete
//!    Nodes): `DELETE /api/v1/nodes/<name>`, after kubelet stopped (a running kubelet would
//!    register it again) and before any file is removed, so a refused delete (exit 22) leaves
//!    every file in place and the message says so: fix the kubeconfig and run reset again.
//! 4. **files**: only what kaas-join wrote and kubelet rotated from it, in the reverse of the
//!    join's order, `state.json` last (a reset killed half-way is still recognised as ours and a
//!    re-run finishes it). Directories stay. A file on the list that is not ours is kept, and
//!    the report says why: `kubelet.conf` whose server is not the one in `state.json`, `ca.crt`
//!    without the CA whose pin `state.json` records.
//!
//! `--dry-run` reports what would be stopped, removed and deleted, and changes nothing.

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::cli::reset::ResetArgs;
use crate::host::paths::Paths;
use crate::host::paths::{
    CA_CERT, KUBELET_CLIENT_CURRENT, KUBELET_CONFIG, KUBELET_DIR, KUBELET_FLAGS_ENV,
    KUBELET_KUBECONFIG, KUBELET_PKI_DIR, STATE_DIR,
};
use crate::host::{Host, LinuxHost, Signal};
use crate::k8s::admin::{self, Admin, AdminError};
use crate::model::exit_code::ExitCode;
use crate::model::output::OutputFormat;
use crate::model::pin::CaPin;
use crate::node::join_state::{self as state, NODE_KEY, STATE_FILE};
use crate::node::run_status::{self, RUN_STATUS_FILE};

/// How long `kaas-join run` may take to stop after SIGTERM: its supervisor gives kubelet 30 s,
/// then writes the stop on the Node (5 s at most).
pub const DAEMON_STOP_WAIT: Duration = Duration::from_secs(40);
/// How long an orphaned kubelet gets after SIGTERM before SIGKILL (the supervisor's grace).
pub const KUBELET_STOP_WAIT: Duration = Duration::from_secs(30);
/// After SIGKILL: a process in uninterruptible sleep dies when its I/O ends.
const KILL_WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);
/// The systemd units stopped on `/`, in this order (see the module docs).
pub const UNITS: [&str; 3] = [
    "kaas-join.service",
    "kaas-join-oneshot.service",
    "kubelet.service",
];
/// The user's own files: never removed.
const USER_CONFIG_DIR: &str = "/etc/kaas-join";
/// kubelet's self-signed serving certificate: kubelet made it, not kaas-join.
const KUBELET_SERVING: [&str; 2] = [
    "/var/lib/kubelet/pki/kubelet.crt",
    "/var/lib/kubelet/pki/kubelet.key",
];
/// The temporary link kubelet's certificate store makes while rotating.
const KUBELET_CLIENT_UPDATED: &str = "/var/lib/kubelet/pki/kubelet-client-updated.pem";

/// Why a reset did not happen or did not finish; one line each, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(
        "nothing to reset: this node has not joined (no {STATE_FILE}): it was reset already, or \
         joined with another --root"
    )]
    NothingToReset,
    #[error(
        "this node was not joined by kaas-join (no {STATE_FILE}); `kubeadm reset` undoes a \
         kubeadm join"
    )]
    NotOurs,
    #[error(
        "refusing to reset without confirmation: standard input is not a terminal; add --force \
         (see what would be removed with --dry-run)"
    )]
    NeedsForce,
    #[error("reset not confirmed: nothing was changed")]
    Aborted,
    #[error("{0}")]
    Kubeconfig(AdminError),
    #[error(
        "{what} did not stop within {} s; nothing was removed: stop it (`kill -KILL {pid}`) and \
         run `kaas-join reset` again",
        waited.as_secs()
    )]
    StillRunning {
        what: String,
        pid: u32,
        waited: Duration,
    },
    #[error(
        "`systemctl stop {units}` failed ({detail}); nothing was removed: stop them yourself \
         and run `kaas-join reset` again"
    )]
    Systemctl { units: String, detail: String },
    #[error(
        "cannot delete Node {node}: {source}. kubelet is stopped but no file was removed: run \
         `kaas-join reset` again with a kubeconfig that may delete Nodes, or without \
         --kubeconfig and `kubectl delete node {node}` later"
    )]
    DeleteNode { node: String, source: AdminError },
    #[error(
        "--kubeconfig was given but the node's name is unknown ({STATE_FILE} is damaged): run \
         `kaas-join reset` without --kubeconfig and `kubectl delete node NAME` yourself"
    )]
    NodeNameUnknown,
    #[error(
        "cannot remove {}: {source}; {removed} file(s) removed before it and {STATE_FILE} kept: \
         fix it (permissions, read-only file system) and run `kaas-join reset` again",
        path.display()
    )]
    Remove {
        path: PathBuf,
        source: io::Error,
        removed: usize,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

impl ResetError {
    /// The documented exit code (README, "`kaas-join reset`").
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ResetError::NothingToReset | ResetError::NotOurs => ExitCode::NotJoined,
            ResetError::NeedsForce | ResetError::Aborted | ResetError::NodeNameUnknown => {
                ExitCode::Usage
            }
            ResetError::Kubeconfig(e) | ResetError::DeleteNode { source: e, .. } => e.exit_code(),
            ResetError::StillRunning { .. } | ResetError::Systemctl { .. } => ExitCode::Internal,
            ResetError::Remove { .. } | ResetError::Read { .. } => ExitCode::Filesystem,
        }
    }
}

/// What reset did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResetReport {
    pub dry_run: bool,
    pub node_name: Option<String>,
    /// Processes and units stopped, in order.
    pub stopped: Vec<String>,
    /// Node paths removed, in order.
    pub removed: Vec<String>,
    /// Files left in place on purpose, with the reason.
    pub kept: Vec<Kept>,
    pub node: NodeResult,
    /// What reset leaves alone in general (directories, the rest of /var/lib/kubelet).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Kept {
    pub path: String,
    pub reason: String,
}

/// What happened to the Node object.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NodeOutcome {
    /// No `--kubeconfig`: the Node stays.
    NotRequested,
    WouldDelete,
    Deleted,
    /// 404: someone deleted it already.
    AlreadyGone,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeResult {
    pub outcome: NodeOutcome,
    pub message: String,
}

/// What the library needs to reset: the validated arguments.
#[derive(Debug)]
pub struct ResetOptions<'a> {
    pub paths: Paths,
    /// Connected admin client (from `--kubeconfig`), to delete the Node.
    pub admin: Option<&'a Admin>,
    pub dry_run: bool,
    /// The machine: its processes and systemd.
    pub host: &'a dyn Host,
}

/// `kaas-join reset`: checks, confirmation, the reset, the report on stdout. Exit code 0.
pub async fn run(args: ResetArgs) -> Result<ExitCode, ResetError> {
    let paths = Paths::new(&args.root);
    check_ours(&paths)?;
    // A bad kubeconfig fails here, before anything is stopped.
    let admin = match &args.kubeconfig {
        Some(path) => Some(admin::connect(Some(path)).map_err(ResetError::Kubeconfig)?),
        None => None,
    };
    if !args.dry_run && !args.force {
        if !io::stdin().is_terminal() {
            return Err(ResetError::NeedsForce);
        }
        let preview = reset(&ResetOptions {
            paths: paths.clone(),
            admin: admin.as_ref(),
            dry_run: true,
            host: &LinuxHost,
        })
        .await?;
        eprint!("{}", render_text(&preview));
        eprint!("[reset] Are you sure you want to proceed? [y/N]: ");
        let _ = io::stderr().flush();
        let mut answer = String::new();
        let _ = io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err(ResetError::Aborted);
        }
    }
    let report = reset(&ResetOptions {
        paths,
        admin: admin.as_ref(),
        dry_run: args.dry_run,
        host: &LinuxHost,
    })
    .await?;
    let text = match args.output {
        OutputFormat::Json => serde_json::to_string_pretty(&report).expect("serializes") + "\n",
        OutputFormat::Text => render_text(&report),
    };
    let _ = io::stdout().lock().write_all(text.as_bytes());
    Ok(ExitCode::Ok)
}

/// Refuses a machine that kaas-join did not join (nothing changed, exit 20).
pub fn check_ours(paths: &Paths) -> Result<(), ResetError> {
    let exists = |p: &str| paths.host(p).symlink_metadata().is_ok();
    if exists(STATE_FILE) {
        Ok(())
    } else if exists(KUBELET_KUBECONFIG) {
        Err(ResetError::NotOurs)
    } else {
        Err(ResetError::NothingToReset)
    }
}

/// What `state.json` recorded, as far as it is readable: a damaged file still marks the node
/// as ours, but then nothing can be checked against it.
#[derive(Debug, Default)]
struct Recorded {
    node_name: Option<String>,
    server: Option<String>,
    ca_pin: Option<String>,
}

fn recorded(paths: &Paths) -> Recorded {
    match state::load(paths) {
        Ok(Some(s)) => Recorded {
            node_name: Some(s.node_name),
            server: Some(s.server),
            ca_pin: s.ca_pin,
        },
        Ok(None) | Err(_) => Recorded::default(),
    }
}

/// Stops, deletes the Node, removes the files; with `dry_run`, only says what it would do.
pub async fn reset(opts: &ResetOptions<'_>) -> Result<ResetReport, ResetError> {
    let paths = &opts.paths;
    check_ours(paths)?;
    let rec = recorded(paths);
    if opts.admin.is_some() && rec.node_name.is_none() {
        return Err(ResetError::NodeNameUnknown);
    }

    let stopped = stop_processes(paths, opts.host, opts.dry_run).await?;

    let node = match (opts.admin, &rec.node_name) {
        (Some(admin), Some(name)) if opts.dry_run => NodeResult {
            outcome: NodeOutcome::WouldDelete,
            message: format!("would delete Node {name} (as {})", admin.user),
        },
        (Some(admin), Some(name)) => delete_node(admin, name).await?,
        _ => NodeResult {
            outcome: NodeOutcome::NotRequested,
            message: match &rec.node_name {
                Some(name) => format!(
                    "Node {name} not deleted (no --kubeconfig; the node's own identity may not \
                     delete Nodes): `kubectl delete node {name}`"
                ),
                None => "Node not deleted (no --kubeconfig)".to_string(),
            },
        },
    };

    let plan = plan(paths, &rec)?;
    let mut removed = Vec::new();
    for node_path in &plan.remove {
        // The entry itself: a link is removed, not what it points to.
        let host = paths.entry(node_path);
        if opts.dry_run {
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

    Ok(ResetReport {
        dry_run: opts.dry_run,
        node_name: rec.node_name,
        stopped,
        removed,
        kept: plan.kept,
        node,
        notes: vec![
            "directories are left in place (kaas-join removes files only)".into(),
            format!(
                "everything else in {} (pods, plugins, volumes) is kubelet's: kept",
                KUBELET_DIR
            ),
        ],
    })
}

async fn delete_node(admin: &Admin, name: &str) -> Result<NodeResult, ResetError> {
    match admin.client.delete(&format!("/api/v1/nodes/{name}")).await {
        Ok(()) => Ok(NodeResult {
            outcome: NodeOutcome::Deleted,
            message: format!("Node {name} deleted"),
        }),
        Err(e) if e.status_code() == Some(404) => Ok(NodeResult {
            outcome: NodeOutcome::AlreadyGone,
            message: format!("Node {name} was already gone"),
        }),
        Err(e) => Err(ResetError::DeleteNode {
            node: name.to_string(),
            source: admin.api_error(e, &format!("delete Node {name}")),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Which files
// ---------------------------------------------------------------------------------------------

/// The files to remove (node paths, in order; those that do not exist are skipped when
/// removing) and those kept on purpose.
#[derive(Debug, Default)]
struct Plan {
    remove: Vec<String>,
    kept: Vec<Kept>,
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
    paths.host(node_path).symlink_metadata().is_ok()
}

fn plan(paths: &Paths, rec: &Recorded) -> Result<Plan, ResetError> {
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

// ---------------------------------------------------------------------------------------------
// Stopping
// ---------------------------------------------------------------------------------------------

/// kubelet with the command line kubeadm's drop-in (and our supervisor) gives it.
fn is_kubelet_of_this_node(argv: &[String]) -> bool {
    let has = |flag: String| argv.contains(&flag);
    has(format!("--kubeconfig={KUBELET_KUBECONFIG}")) && has(format!("--config={KUBELET_CONFIG}"))
}

/// Waits (bounded) until `pid` is gone; whether it is.
async fn wait_gone(host: &dyn Host, pid: u32, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if !host.process(pid).is_some_and(|p| p.is_live()) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

fn send(host: &dyn Host, pid: u32, group: bool, signal: Signal) {
    if let Err(e) = host.signal(pid, group, signal) {
        tracing::debug!(pid, %signal, error = %e, "signal not delivered");
    }
}

/// Stops what runs this node (see the module docs): the systemd units on this machine's own
/// root, then the daemon named in the run-status file and the kubelet it ran, if they are ours.
async fn stop_processes(
    paths: &Paths,
    host: &dyn Host,
    dry_run: bool,
) -> Result<Vec<String>, ResetError> {
    let mut stopped = Vec::new();

    // Units are this machine's: under a staging root they are not the root's to stop.
    if host.is_machine_root(paths.root()) && host.systemd_running() {
        let active: Vec<&str> = UNITS.into_iter().filter(|u| unit_active(host, u)).collect();
        if !active.is_empty() && !dry_run {
            systemctl_stop(host, &active)?;
        }
        stopped.extend(active.iter().map(|u| format!("{u} (systemd)")));
    }

    let run = run_status::read(paths);
    if let Some(run) = run
        .as_ref()
        .filter(|r| run_status::daemon_running(host, r, paths.root()))
    {
        let what = format!("kaas-join run (pid {})", run.pid);
        if !dry_run {
            tracing::info!(pid = run.pid, "stopping kaas-join run");
            send(host, run.pid, false, Signal::SIGTERM);
            if !wait_gone(host, run.pid, DAEMON_STOP_WAIT).await {
                return Err(ResetError::StillRunning {
                    what,
                    pid: run.pid,
                    waited: DAEMON_STOP_WAIT,
                });
            }
        }
        stopped.push(what);
    }

    // The kubelet it supervised, should it have outlived it (it dies with kaas-join, so this
    // is a last resort): the pid it published, if that is still kubelet for this node.
    if let Some(pid) = run.as_ref().and_then(|r| r.kubelet.pid) {
        let kubelet = host
            .process(pid)
            .filter(|p| p.is_live() && is_kubelet_of_this_node(&p.argv));
        if let Some(p) = kubelet {
            let what = format!("kubelet (pid {pid})");
            if !dry_run {
                let group = p.process_group == pid;
                tracing::info!(pid, "stopping kubelet");
                send(host, pid, group, Signal::SIGTERM);
                if !wait_gone(host, pid, KUBELET_STOP_WAIT).await {
                    send(host, pid, group, Signal::SIGKILL);
                    if !wait_gone(host, pid, KILL_WAIT).await {
                        return Err(ResetError::StillRunning {
                            what,
                            pid,
                            waited: KUBELET_STOP_WAIT + KILL_WAIT,
                        });
                    }
                }
            }
            stopped.push(what);
        }
    }
    Ok(stopped)
}

/// Whether systemd has `unit` loaded and running (or starting, or stopping).
fn unit_active(host: &dyn Host, unit: &str) -> bool {
    match host.systemctl(&[
        "show",
        "--property=LoadState",
        "--property=ActiveState",
        unit,
    ]) {
        Ok(out) if out.success() => {
            let (load, active) = parse_show(&out.stdout);
            load == "loaded" && is_running_state(&active)
        }
        _ => false,
    }
}

fn is_running_state(active: &str) -> bool {
    matches!(
        active,
        "active" | "activating" | "reloading" | "deactivating"
    )
}

/// `LoadState` and `ActiveState` from `systemctl show` output (`Key=Value` lines).
fn parse_show(text: &str) -> (String, String) {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    (get("LoadState"), get("ActiveState"))
}

fn systemctl_stop(host: &dyn Host, units: &[&str]) -> Result<(), ResetError> {
    let fail = |detail: String| ResetError::Systemctl {
        units: units.join(" "),
        detail,
    };
    let mut args = vec!["stop"];
    args.extend_from_slice(units);
    // A blocking call (it waits for the units to stop), but reset has nothing else to do
    // meanwhile: no other task shares this runtime.
    let out = host.systemctl(&args).map_err(|e| fail(e.to_string()))?;
    if out.success() {
        Ok(())
    } else {
        let code = out
            .code
            .map_or("a signal".to_owned(), |c| format!("exit code {c}"));
        Err(fail(format!(
            "{code}: {}",
            out.stderr.lines().next().unwrap_or("").trim()
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

pub fn render_text(r: &ResetReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}node {}",
        if r.dry_run {
            "dry run, nothing changed: reset of "
        } else {
            "reset "
        },
        r.node_name.as_deref().unwrap_or("(name unknown)")
    );
    let (stopped, removed) = if r.dry_run {
        ("would stop", "would remove")
    } else {
        ("stopped", "removed")
    };
    if r.stopped.is_empty() {
        let _ = writeln!(
            out,
            "{stopped:<12} nothing (no kaas-join run or kubelet of this node was running)"
        );
    }
    for s in &r.stopped {
        let _ = writeln!(out, "{stopped:<12} {s}");
    }
    for p in &r.removed {
        let _ = writeln!(out, "{removed:<12} {p}");
    }
    for k in &r.kept {
        let _ = writeln!(out, "{:<12} {}: {}", "kept", k.path, k.reason);
    }
    for n in &r.notes {
        let _ = writeln!(out, "{:<12} {n}", "note");
    }
    let _ = writeln!(out, "{:<12} {}", "node", r.node.message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{CommandOutput, FakeHost};
    use crate::node::join_state::{Phase, State};
    use crate::node::run_status::RunStatus;

    const SERVER: &str = "https://127.0.0.1:6443";

    fn ca_pem() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let pin = CaPin::of_certificate_der(cert.der()).unwrap().to_string();
        (cert.pem(), pin)
    }

    fn write(paths: &Paths, node_path: &str, content: &str) {
        let p = paths.host(node_path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// A root as `join` leaves it, kubelet having rotated once, plus what is not ours.
    fn joined_root(phase: Phase) -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let (ca, pin) = ca_pem();
        state::save(
            &paths,
            &State {
                version: 1,
                phase,
                node_name: "n1".into(),
                server: SERVER.into(),
                ca_pin: Some(pin),
                csr_name: Some("node-csr-x".into()),
                certificate_not_after: None,
                updated_at: state::now_rfc3339(),
            },
        )
        .unwrap();
        let conf = crate::model::kubeconfig::kubelet_kubeconfig(
            SERVER,
            ca.as_bytes(),
            KUBELET_CLIENT_CURRENT,
        );
        write(&paths, KUBELET_KUBECONFIG, &conf.to_yaml());
        write(&paths, CA_CERT, &ca);
        write(&paths, KUBELET_CONFIG, "kind: KubeletConfiguration\n");
        write(&paths, KUBELET_FLAGS_ENV, "KUBELET_KUBEADM_ARGS=\"\"\n");
        let pki = KUBELET_PKI_DIR;
        write(
            &paths,
            &format!("{pki}/kubelet-client-2026-01-02-03-04-05.pem"),
            "ours",
        );
        // kubelet's rotation: a new pair and an absolute link to it.
        write(
            &paths,
            &format!("{pki}/kubelet-client-2026-03-01-00-00-00.pem"),
            "rotated",
        );
        std::os::unix::fs::symlink(
            "/var/lib/kubelet/pki/kubelet-client-2026-03-01-00-00-00.pem",
            paths.host(KUBELET_CLIENT_CURRENT),
        )
        .unwrap();
        write(
            &paths,
            &format!("{pki}/.kubelet-client-current.pem.77.0.tmp"),
            "",
        );
        write(&paths, NODE_KEY, "key");
        write(&paths, RUN_STATUS_FILE, "{}");
        // Not ours.
        write(&paths, &format!("{pki}/kubelet.crt"), "serving");
        write(&paths, &format!("{pki}/kubelet.key"), "serving key");
        write(
            &paths,
            &format!("{pki}/kubelet-client-backup.pem"),
            "someone's",
        );
        write(
            &paths,
            &format!("{pki}/kubelet-server-2026-01-02-03-04-05.pem"),
            "server",
        );
        write(&paths, "/var/lib/kubelet/pods/x/volume", "pod data");
        write(
            &paths,
            "/etc/kubernetes/manifests/static.yaml",
            "static pod",
        );
        write(&paths, "/etc/kaas-join/config.yaml", "servers: []\n");
        write(&paths, "/etc/kaas-join/token", "secret");
        write(
            &paths,
            "/etc/kubernetes/.kubelet.conf.tmp",
            "not our temp name",
        );
        (dir, paths)
    }

    /// A machine with nothing running on it.
    static IDLE: std::sync::LazyLock<FakeHost> = std::sync::LazyLock::new(FakeHost::new);

    fn opts(paths: &Paths, dry_run: bool) -> ResetOptions<'static> {
        opts_on(paths, dry_run, &*IDLE)
    }

    fn opts_on<'a>(paths: &Paths, dry_run: bool, host: &'a dyn Host) -> ResetOptions<'a> {
        ResetOptions {
            paths: paths.clone(),
            admin: None,
            dry_run,
            host,
        }
    }

    fn all_files(root: &Path) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    walk(&p, root, out);
                } else {
                    out.push(format!("/{}", p.strip_prefix(root).unwrap().display()));
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out.sort();
        out
    }

    fn dirs(root: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = [
            "etc/kubernetes/pki",
            "var/lib/kubelet/pki",
            "var/lib/kaas-join",
            "run/kaas-join",
        ]
        .iter()
        .map(|d| root.join(d))
        .collect();
        v.sort();
        v
    }

    const FOREIGN: [&str; 9] = [
        "/etc/kaas-join/config.yaml",
        "/etc/kaas-join/token",
        "/etc/kubernetes/.kubelet.conf.tmp",
        "/etc/kubernetes/manifests/static.yaml",
        "/var/lib/kubelet/pki/kubelet-client-backup.pem",
        "/var/lib/kubelet/pki/kubelet-server-2026-01-02-03-04-05.pem",
        "/var/lib/kubelet/pki/kubelet.crt",
        "/var/lib/kubelet/pki/kubelet.key",
        "/var/lib/kubelet/pods/x/volume",
    ];

    #[tokio::test]
    async fn removes_ours_and_rotated_keeps_everything_else() {
        let (dir, paths) = joined_root(Phase::Joined);
        let report = reset(&opts(&paths, false)).await.unwrap();
        assert_eq!(
            report.removed,
            vec![
                "/etc/kubernetes/kubelet.conf",
                "/var/lib/kubelet/kubeadm-flags.env",
                "/var/lib/kubelet/config.yaml",
                "/etc/kubernetes/pki/ca.crt",
                "/var/lib/kubelet/pki/kubelet-client-current.pem",
                "/var/lib/kubelet/pki/kubelet-client-2026-01-02-03-04-05.pem",
                "/var/lib/kubelet/pki/kubelet-client-2026-03-01-00-00-00.pem",
                "/var/lib/kubelet/pki/.kubelet-client-current.pem.77.0.tmp",
                "/var/lib/kaas-join/node-key.pem",
                "/run/kaas-join/status.json",
                "/var/lib/kaas-join/state.json",
            ]
        );
        assert_eq!(all_files(dir.path()), FOREIGN);
        for d in dirs(dir.path()) {
            assert!(d.is_dir(), "directory {} was removed", d.display());
        }
        let kept: Vec<&str> = report.kept.iter().map(|k| k.path.as_str()).collect();
        assert_eq!(
            kept,
            [
                "/var/lib/kubelet/pki/kubelet.crt",
                "/var/lib/kubelet/pki/kubelet.key",
                "/etc/kaas-join/"
            ]
        );
        assert_eq!(report.node.outcome, NodeOutcome::NotRequested);
        assert!(report.stopped.is_empty(), "{:?}", report.stopped);
        let text = render_text(&report);
        assert!(
            text.contains("removed      /etc/kubernetes/kubelet.conf\n"),
            "{text}"
        );
        assert!(text.contains("kubectl delete node n1"), "{text}");
        assert!(!text.contains("secret"), "{text}");

        // Once done, there is nothing to reset, and reset says so.
        let err = reset(&opts(&paths, false)).await.unwrap_err();
        assert!(matches!(err, ResetError::NothingToReset), "{err}");
        assert_eq!(err.exit_code(), ExitCode::NotJoined);
    }

    #[tokio::test]
    async fn dry_run_changes_nothing() {
        let (dir, paths) = joined_root(Phase::Joined);
        let before = all_files(dir.path());
        let report = reset(&opts(&paths, true)).await.unwrap();
        assert!(report.dry_run);
        assert_eq!(report.removed.len(), 11, "{:?}", report.removed);
        assert_eq!(all_files(dir.path()), before);
        assert!(render_text(&report).contains("would remove /var/lib/kaas-join/state.json"));
    }

    #[tokio::test]
    async fn foreign_kubeconfig_and_ca_are_kept() {
        let (dir, paths) = joined_root(Phase::Joined);
        let (other_ca, _) = ca_pem();
        write(&paths, CA_CERT, &other_ca);
        let conf = crate::model::kubeconfig::kubelet_kubeconfig(
            "https://10.9.9.9:6443",
            other_ca.as_bytes(),
            KUBELET_CLIENT_CURRENT,
        );
        write(&paths, KUBELET_KUBECONFIG, &conf.to_yaml());
        let report = reset(&opts(&paths, false)).await.unwrap();
        let kept: Vec<&str> = report.kept.iter().map(|k| k.path.as_str()).collect();
        assert!(kept.contains(&CA_CERT), "{kept:?}");
        assert!(kept.contains(&KUBELET_KUBECONFIG), "{kept:?}");
        let files = all_files(dir.path());
        assert!(files.contains(&CA_CERT.to_string()));
        assert!(files.contains(&KUBELET_KUBECONFIG.to_string()));
        assert!(!files.contains(&STATE_FILE.to_string()));
        let why = &report
            .kept
            .iter()
            .find(|k| k.path == CA_CERT)
            .unwrap()
            .reason;
        assert!(why.contains("pin sha256:"), "{why}");
    }

    #[tokio::test]
    async fn half_done_join_is_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        write(&paths, NODE_KEY, "key");
        std::fs::write(paths.host(STATE_FILE), "{\"damaged").unwrap();
        write(&paths, "/var/lib/kaas-join/.state.json.12.3.tmp", "{");
        let report = reset(&opts(&paths, false)).await.unwrap();
        assert_eq!(
            report.removed,
            [
                "/var/lib/kaas-join/.state.json.12.3.tmp",
                "/var/lib/kaas-join/node-key.pem",
                "/var/lib/kaas-join/state.json"
            ]
        );
        assert_eq!(report.node_name, None);
        assert!(all_files(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn not_ours_or_nothing_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let err = reset(&opts(&paths, false)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "nothing to reset: this node has not joined (no /var/lib/kaas-join/state.json): it \
             was reset already, or joined with another --root"
        );
        // kubeadm's join: kubelet.conf without our state.
        write(&paths, KUBELET_KUBECONFIG, "kubeadm's");
        write(&paths, CA_CERT, "kubeadm's");
        write(
            &paths,
            "/var/lib/kubelet/pki/kubelet-client-current.pem",
            "x",
        );
        let before = all_files(dir.path());
        let err = reset(&opts(&paths, false)).await.unwrap_err();
        assert!(matches!(err, ResetError::NotOurs));
        assert_eq!(err.exit_code(), ExitCode::NotJoined);
        assert!(err.to_string().contains("`kubeadm reset`"), "{err}");
        assert_eq!(all_files(dir.path()), before);
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_removed_stops_with_its_name_and_keeps_the_state() {
        let (_dir, paths) = joined_root(Phase::Joined);
        // A directory where kubelet's config file should be: not removable as a file.
        std::fs::remove_file(paths.host(KUBELET_CONFIG)).unwrap();
        std::fs::create_dir(paths.host(KUBELET_CONFIG)).unwrap();
        let err = reset(&opts(&paths, false)).await.unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Filesystem);
        let msg = err.to_string();
        assert!(msg.contains("config.yaml"), "{msg}");
        assert!(msg.contains("2 file(s) removed before it"), "{msg}");
        assert!(paths.host(STATE_FILE).exists());
        // Fixed, a re-run finishes the job.
        std::fs::remove_dir(paths.host(KUBELET_CONFIG)).unwrap();
        let report = reset(&opts(&paths, false)).await.unwrap();
        assert_eq!(report.removed.first().map(String::as_str), Some(CA_CERT));
        assert!(!paths.host(STATE_FILE).exists());
    }

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

    #[test]
    fn daemon_and_kubelet_are_identified_by_their_command_lines() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        assert!(run_status::is_our_daemon(
            &v(&format!("/usr/bin/kaas-join -v run --root {root}")),
            dir.path()
        ));
        assert!(run_status::is_our_daemon(
            &v(&format!("kaas-join run --root={root}")),
            dir.path()
        ));
        assert!(run_status::is_our_daemon(
            &v("/usr/bin/kaas-join run --config /etc/kaas-join/config.yaml"),
            Path::new("/")
        ));
        assert!(!run_status::is_our_daemon(
            &v("/usr/bin/kaas-join run"),
            dir.path()
        ));
        assert!(!run_status::is_our_daemon(
            &v(&format!("kaas-join status --root {root}")),
            dir.path()
        ));
        assert!(!run_status::is_our_daemon(
            &v(&format!("/bin/sleep run --root {root}")),
            dir.path()
        ));
        assert!(is_kubelet_of_this_node(&v(
            "/usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
             --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml"
        )));
        assert!(!is_kubelet_of_this_node(&v(
            "/usr/bin/kubelet --config=/other.yaml"
        )));
        assert_eq!(
            parse_show("LoadState=loaded\nActiveState=active\n"),
            ("loaded".to_string(), "active".to_string())
        );
        assert_eq!(
            parse_show("ActiveState=inactive\nLoadState=not-found\n").0,
            "not-found"
        );
        assert!(!is_running_state("inactive") && is_running_state("activating"));
    }

    /// A run-status file naming daemon `pid` and kubelet `kubelet`.
    fn write_run_status(paths: &Paths, pid: u32, kubelet: u32) {
        let run = RunStatus {
            pid,
            kubelet: crate::model::kubelet_process::KubeletState {
                pid: Some(kubelet),
                ..Default::default()
            },
            ..RunStatus::default()
        };
        write(
            paths,
            RUN_STATUS_FILE,
            &serde_json::to_string(&run).unwrap(),
        );
    }

    const KUBELET_ARGV: [&str; 3] = [
        "/usr/bin/kubelet",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--config=/var/lib/kubelet/config.yaml",
    ];

    #[tokio::test]
    async fn a_live_process_that_is_not_ours_is_not_signalled() {
        let (_dir, paths) = joined_root(Phase::Joined);
        let host = FakeHost::new();
        host.add_process(50, "sshd", &["/usr/sbin/sshd", "-D"]);
        host.add_process(51, "bash", &["bash"]);
        write_run_status(&paths, 50, 51);
        let report = reset(&opts_on(&paths, false, &host)).await.unwrap();
        assert!(report.stopped.is_empty(), "{:?}", report.stopped);
        assert!(host.signals().is_empty(), "{:?}", host.signals());
    }

    #[tokio::test]
    async fn the_daemon_and_its_kubelet_are_stopped_with_sigterm() {
        let (dir, paths) = joined_root(Phase::Joined);
        let host = FakeHost::new();
        let root = dir.path().display().to_string();
        host.add_process(
            60,
            "kaas-join",
            &["/usr/bin/kaas-join", "run", "--root", &root],
        );
        host.add_process(61, "kubelet", &KUBELET_ARGV);
        write_run_status(&paths, 60, 61);
        let report = reset(&opts_on(&paths, false, &host)).await.unwrap();
        assert_eq!(
            report.stopped,
            ["kaas-join run (pid 60)", "kubelet (pid 61)"]
        );
        // kubelet is its own process group leader (the fake's default): the group is signalled.
        assert_eq!(
            host.signals(),
            [(60, false, Signal::SIGTERM), (61, true, Signal::SIGTERM)]
        );
        assert!(host.systemctl_calls().is_empty(), "not this machine's root");
    }

    #[tokio::test(start_paused = true)]
    async fn a_kubelet_that_ignores_sigterm_gets_sigkill_then_reset_says_it_still_runs() {
        let (_dir, paths) = joined_root(Phase::Joined);
        let host = FakeHost::new();
        host.add_process(71, "kubelet", &KUBELET_ARGV);
        host.stubborn(71);
        write_run_status(&paths, 70, 71);
        let err = reset(&opts_on(&paths, false, &host)).await.unwrap_err();
        assert!(
            matches!(err, ResetError::StillRunning { pid: 71, .. }),
            "{err}"
        );
        assert_eq!(err.exit_code(), ExitCode::Internal);
        assert_eq!(
            host.signals(),
            [(71, true, Signal::SIGTERM), (71, true, Signal::SIGKILL)]
        );
        assert!(paths.host(STATE_FILE).exists(), "nothing removed");
    }

    fn show(active: &str) -> CommandOutput {
        CommandOutput {
            code: Some(0),
            stdout: format!("LoadState=loaded\nActiveState={active}\n"),
            stderr: String::new(),
        }
    }

    /// A machine whose root is `paths`' root, run by systemd, with kaas-join.service active.
    fn systemd_machine(paths: &Paths) -> FakeHost {
        let host = FakeHost::new()
            .with_machine_root(paths.root())
            .with_systemd();
        for unit in UNITS {
            let args = [
                "show",
                "--property=LoadState",
                "--property=ActiveState",
                unit,
            ];
            let state = if unit == "kaas-join.service" {
                "active"
            } else {
                "inactive"
            };
            host.answer_systemctl(&args, show(state));
        }
        host
    }

    #[tokio::test]
    async fn on_this_machine_under_systemd_the_active_units_are_stopped() {
        let (_dir, paths) = joined_root(Phase::Joined);
        let host = systemd_machine(&paths);
        let report = reset(&opts_on(&paths, false, &host)).await.unwrap();
        assert_eq!(report.stopped, ["kaas-join.service (systemd)"]);
        let calls = host.systemctl_calls();
        assert_eq!(calls.last().unwrap(), &["stop", "kaas-join.service"]);
        assert!(!paths.host(STATE_FILE).exists());
    }

    #[tokio::test]
    async fn a_failed_systemctl_stop_removes_nothing() {
        let (_dir, paths) = joined_root(Phase::Joined);
        let host = systemd_machine(&paths);
        host.answer_systemctl(
            &["stop", "kaas-join.service"],
            CommandOutput {
                code: Some(1),
                stdout: String::new(),
                stderr: "Failed to stop kaas-join.service: Access denied\n".into(),
            },
        );
        let err = reset(&opts_on(&paths, false, &host)).await.unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Internal);
        assert!(err.to_string().contains("Access denied"), "{err}");
        assert!(paths.host(STATE_FILE).exists() && paths.host(KUBELET_KUBECONFIG).exists());
    }

    #[tokio::test]
    async fn a_dry_run_asks_systemd_but_stops_nothing() {
        let (_dir, paths) = joined_root(Phase::Joined);
        let host = systemd_machine(&paths);
        let report = reset(&opts_on(&paths, true, &host)).await.unwrap();
        assert_eq!(report.stopped, ["kaas-join.service (systemd)"]);
        assert!(host.systemctl_calls().iter().all(|c| c[0] == "show"));
    }

    #[tokio::test]
    async fn without_systemd_no_unit_is_asked_about() {
        let (_dir, paths) = joined_root(Phase::Joined);
        let host = FakeHost::new().with_machine_root(paths.root());
        reset(&opts_on(&paths, true, &host)).await.unwrap();
        assert!(host.systemctl_calls().is_empty());
    }
}
