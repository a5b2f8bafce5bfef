//! The run-status file, `/run/kaas-join/status.json`: what `kaas-join run` is doing, written on
//! every change; `kaas-join status` and `kaas-join reset` read it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::host::paths::Paths;
use crate::host::{files, Host};
use crate::model::kubelet_process::KubeletState;
use crate::node::health::ReportedStatus;
use crate::node::join_state as state;

/// Where `run` publishes what it is doing (tmpfs: it describes this boot only).
pub const RUN_STATUS_FILE: &str = "/run/kaas-join/status.json";

/// The run-status file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// The `kaas-join run` process (status checks it is still alive).
    pub pid: u32,
    pub updated_at: String,
    /// What it is doing, in words (also systemd's STATUS=).
    pub activity: String,
    /// False with `--no-kubelet`.
    pub supervising: bool,
    pub kubelet: KubeletState,
    pub reported: ReportedStatus,
    /// When this `run` ended (its last write); `None` while it runs. `status` trusts this over
    /// the pid, which it can only check on `/` (not under another `--root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exited_at: Option<String>,
}

/// Writes the run-status file on every change (atomically; a reader never sees half of it).
pub struct StatusFile {
    paths: Paths,
    current: RunStatus,
}

impl StatusFile {
    pub fn new(paths: &Paths, supervising: bool) -> StatusFile {
        StatusFile {
            paths: paths.clone(),
            current: RunStatus {
                pid: std::process::id(),
                supervising,
                ..RunStatus::default()
            },
        }
    }

    pub fn update(&mut self, change: impl FnOnce(&mut RunStatus)) {
        change(&mut self.current);
        self.current.updated_at = state::now_rfc3339();
        let path = self.paths.host(RUN_STATUS_FILE);
        let write = || -> Result<(), files::FsError> {
            files::ensure_dir(path.parent().expect("has a parent"), 0o755)?;
            let mut json = serde_json::to_vec_pretty(&self.current).expect("serializes");
            json.push(b'\n');
            files::write_atomic(&path, &json, 0o644)
        };
        // The status file is for the operator; failing to write it must not stop the node.
        if let Err(e) = write() {
            tracing::warn!("cannot write the run status: {e}");
        }
    }
}

pub fn read(paths: &Paths) -> Option<RunStatus> {
    let bytes = std::fs::read(paths.host(RUN_STATUS_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether the daemon that wrote `run` is still running: it did not write that it ended, and its
/// pid is a live `kaas-join run` for `root` (so a pid reused by another process, or one from
/// another machine's image under `--root`, does not count).
pub fn daemon_running(host: &dyn Host, run: &RunStatus, root: &Path) -> bool {
    run.exited_at.is_none()
        && host
            .process(run.pid)
            .is_some_and(|p| p.is_live() && is_our_daemon(&p.argv, root))
}

/// `kaas-join run` for `root` (its `--root`, `/` when not given).
pub fn is_our_daemon(argv: &[String], root: &Path) -> bool {
    let Some(program) = argv.first() else {
        return false;
    };
    if Path::new(program)
        .file_name()
        .is_none_or(|n| n != "kaas-join")
    {
        return false;
    }
    if argv
        .iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(String::as_str)
        != Some("run")
    {
        return false;
    }
    let mut daemon_root = None;
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        if a == "--root" {
            daemon_root = args.next().map(PathBuf::from);
        } else if let Some(v) = a.strip_prefix("--root=") {
            daemon_root = Some(PathBuf::from(v));
        }
    }
    same_path(&daemon_root.unwrap_or_else(|| PathBuf::from("/")), root)
}

fn same_path(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(a) == canon(b)
}
