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
//!
//! Where each part is: `stop` (step 2, through [`Host`]), `plan` (step 4: which files are ours,
//! and removing them), `report` (what reset did, as text or JSON). This module checks whose node
//! it is, asks for confirmation, deletes the Node (step 3) and runs the steps in order.

mod plan;
mod report;
mod stop;
#[cfg(test)]
mod tests;

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::reset::ResetArgs;
use crate::host::paths::{Paths, KUBELET_DIR, KUBELET_KUBECONFIG};
use crate::host::{Host, LinuxHost};
use crate::k8s::admin::{self, Admin, AdminError};
use crate::model::exit_code::ExitCode;
use crate::node::join_state::{self as state, STATE_FILE};

pub use plan::is_kubelet_client_pair;
pub use report::{render_text, Kept, NodeOutcome, NodeResult, ResetReport};
pub use stop::{DAEMON_STOP_WAIT, KUBELET_STOP_WAIT, UNITS};

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
    let text = report::render(&report, args.output);
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

    let stopped = stop::stop_processes(paths, opts.host, opts.dry_run).await?;

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

    let plan = plan::plan(paths, &rec)?;
    let removed = plan.remove_files(paths, opts.dry_run)?;

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
