//! The run-status file, `/run/kaas-join/status.json`: what `kaas-join run` is doing, written on
//! every change (by a thread of its own: the writes fsync); `kaas-join status` and
//! `kaas-join reset` read it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::host::paths::Paths;
use crate::host::{files, Host};
use crate::model::identity::IdentityLoss;
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
    /// The node's identity is lost: kubelet is stopped until the node joins again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_lost: Option<LostIdentity>,
}

/// What `run` says while the node's identity is lost ([`crate::model::identity`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LostIdentity {
    pub loss: IdentityLoss,
    /// When `run` noticed (RFC 3339).
    pub noticed_at: String,
    /// How to fix it: the command that mints a token and where to put it.
    pub advice: String,
    /// What is wrong with the token tried last, if one was (expired, unknown, not readable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_problem: Option<String>,
}

/// Writes the run-status file on every change, off the async worker: [`StatusFile::update`]
/// only hands the new status to a writer thread, which writes it atomically with fsync (a
/// reader never sees half of it). Writes land in order; when they come faster than the disk
/// takes them, the thread skips to the newest. [`StatusFile::close`] waits for the last one.
pub struct StatusFile {
    current: RunStatus,
    writer: Writer,
}

enum Writer {
    /// The writer thread: what it is fed, and its end (after the last write).
    Thread {
        queue: mpsc::Sender<RunStatus>,
        finished: oneshot::Receiver<()>,
    },
    /// No thread could be started: write in place, blocking, rather than not at all.
    Inline(PathBuf),
}

impl StatusFile {
    pub fn new(paths: &Paths, supervising: bool) -> StatusFile {
        let path = paths.host(RUN_STATUS_FILE);
        let writer = match spawn_writer(path.clone()) {
            Ok((queue, finished)) => Writer::Thread { queue, finished },
            Err(e) => {
                tracing::warn!("cannot start the run-status writer thread ({e}); writing in place");
                Writer::Inline(path)
            }
        };
        StatusFile {
            current: RunStatus {
                pid: std::process::id(),
                supervising,
                ..RunStatus::default()
            },
            writer,
        }
    }

    /// Changes the status and has it written (without waiting for the write).
    pub fn update(&mut self, change: impl FnOnce(&mut RunStatus)) {
        change(&mut self.current);
        self.current.updated_at = state::now_rfc3339();
        match &self.writer {
            Writer::Thread { queue, .. } => {
                // Fails only when the thread is gone (it panicked); nothing more to write then.
                let _ = queue.send(self.current.clone());
            }
            Writer::Inline(path) => write_status(path, &self.current),
        }
    }

    /// Waits until everything handed to [`StatusFile::update`] is written.
    pub async fn close(self) {
        if let Writer::Thread { queue, finished } = self.writer {
            drop(queue);
            // An error only says the thread ended without signalling (it panicked): nothing to
            // wait for then.
            let _ = finished.await;
        }
    }
}

/// The writer thread: writes what `update` sends, in order, skipping to the newest when several
/// queued up; ends (and says so on the returned channel) when the sender is dropped.
fn spawn_writer(path: PathBuf) -> io::Result<(mpsc::Sender<RunStatus>, oneshot::Receiver<()>)> {
    let (queue, statuses) = mpsc::channel::<RunStatus>();
    let (finished_tx, finished) = oneshot::channel();
    std::thread::Builder::new()
        .name("run-status".into())
        .spawn(move || {
            while let Ok(mut latest) = statuses.recv() {
                while let Ok(newer) = statuses.try_recv() {
                    latest = newer;
                }
                write_status(&path, &latest);
            }
            let _ = finished_tx.send(());
        })?;
    Ok((queue, finished))
}

/// Writes `status` to `path` atomically (blocking: temporary file, fsync, rename).
fn write_status(path: &Path, status: &RunStatus) {
    let write = || -> Result<(), files::FsError> {
        files::ensure_dir(path.parent().expect("has a parent"), 0o755)?;
        let mut json = serde_json::to_vec_pretty(status).expect("serializes");
        json.push(b'\n');
        files::write_atomic(path, &json, 0o644)
    };
    // The status file is for the operator; failing to write it must not stop the node.
    if let Err(e) = write() {
        tracing::warn!("cannot write the run status: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_land_in_order_and_close_waits_for_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let mut file = StatusFile::new(&paths, true);
        for i in 0..200 {
            file.update(|s| s.activity = format!("step {i}"));
        }
        file.update(|s| {
            s.activity = "stopped".into();
            s.exited_at = Some("2027-01-15T08:00:00Z".into());
        });
        file.close().await;
        let written = read(&paths).expect("written");
        assert_eq!(written.activity, "stopped");
        assert_eq!(written.exited_at.as_deref(), Some("2027-01-15T08:00:00Z"));
        assert!(written.supervising);
        assert_eq!(written.pid, std::process::id());
    }

    #[tokio::test]
    async fn a_status_file_that_cannot_be_written_does_not_stop_run() {
        let dir = tempfile::tempdir().unwrap();
        // `run` is a file: the directory cannot be made.
        std::fs::write(dir.path().join("run"), b"").unwrap();
        let paths = Paths::new(dir.path());
        let mut file = StatusFile::new(&paths, false);
        file.update(|s| s.activity = "waiting".into());
        file.close().await;
        assert!(read(&paths).is_none());
    }
}
