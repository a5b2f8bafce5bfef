//! Kubelet upgrades by `kaas-join run`: requests in a directory, the binary swap, the restart
//! and the rollback.
//!
//! # The request directory
//!
//! [`UPGRADE_DIR`] (under `--root`). A request is a file `<name>.json` holding
//! `{"binary": "/path/to/new/kubelet"}` ([`UpgradeRequest`]); `kaas-join upgrade-kubelet`
//! writes one, and so can cloud-init or a package (a drop-in: the same upgrade from the
//! machine's configuration, picked up once `run` supervises kubelet). Writers write it
//! atomically (a temporary name not ending in `.json`, then a rename). `run` looks every
//! [`POLL`]: it takes the oldest request by renaming it to `<name>.taken` (so a restart of
//! `run` never repeats it), publishes the upgrade's progress with the kubelet state, and writes
//! the outcome as `<name>.result` (JSON, [`UpgradeState`]) — what `upgrade-kubelet` waits for.
//! Between the swap and the outcome a marker `<name>.swapped` is there: when `run` was stopped
//! meanwhile, the next `run` puts the old binary back and restarts kubelet with it.
//!
//! # The procedure (`flow`)
//!
//! Checks first (nothing changes when one fails: `Refused`): kubelet is supervised; the new
//! binary says a version (`--version`: else it is not kubelet); kube-apiserver's version is
//! known and the new one is within the skew policy against it. Then `swap`: the new binary is
//! copied beside `run --kubelet` and renamed over it, the old one kept as
//! `<kubelet>.previous`; kubelet is restarted (the supervisor's `Restart`) and has
//! `--upgrade-timeout` (default 2 minutes) to pass its healthz (`Running` in a new process). If
//! it does not (or crash-loops sooner), the old binary is put back, kubelet restarted again and
//! given the same time. The Node stays the same object; pods are not evicted (draining is the
//! operator's choice: `kubectl drain` first).

mod flow;
pub mod swap;

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::host::files;
use crate::host::paths::Paths;
use crate::model::kubelet_upgrade::{UpgradeRequest, UpgradeState};

pub use flow::{serve_requests, upgrade_kubelet, Upgrader};

/// Where requests and results are (a node path, under `--root`).
pub const UPGRADE_DIR: &str = "/var/lib/kaas-join/kubelet-upgrade";
/// How often `run` looks for a request.
pub const POLL: Duration = Duration::from_secs(2);
/// A request file's extension.
pub const REQUEST_EXT: &str = "json";
/// A result file's extension.
pub const RESULT_EXT: &str = "result";
/// A taken request's extension.
pub const TAKEN_EXT: &str = "taken";
/// The marker of an upgrade swapped in and not yet confirmed (or rolled back).
pub const SWAPPED_EXT: &str = "swapped";

/// The request directory on this machine.
pub fn upgrade_dir(paths: &Paths) -> PathBuf {
    paths.host(UPGRADE_DIR)
}

/// `<dir>/<id>.<ext>`.
pub fn file_of(paths: &Paths, id: &str, ext: &str) -> PathBuf {
    upgrade_dir(paths).join(format!("{id}.{ext}"))
}

/// A request taken from the directory: its name and what it asks (or why it cannot be read).
#[derive(Debug)]
pub struct Taken {
    pub id: String,
    pub request: Result<UpgradeRequest, String>,
}

/// Takes the oldest waiting request (by name: `upgrade-kubelet` names them by time), renaming
/// it to `<id>.taken`. `None`: no request (or no directory).
pub fn take_request(paths: &Paths) -> io::Result<Option<Taken>> {
    let dir = upgrade_dir(paths);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut waiting: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .filter_map(|name| Some(name.strip_suffix(".json")?.to_owned()))
        .collect();
    waiting.sort();
    let Some(id) = waiting.into_iter().next() else {
        return Ok(None);
    };
    let path = file_of(paths, &id, REQUEST_EXT);
    let text = fs::read(&path);
    fs::rename(&path, file_of(paths, &id, TAKEN_EXT))?;
    let request = text
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|bytes| {
            serde_json::from_slice::<UpgradeRequest>(&bytes).map_err(|e| {
                format!(
                    "{} is not a request ({{\"binary\": \"/path/to/kubelet\"}}): {e}",
                    path.display()
                )
            })
        });
    Ok(Some(Taken { id, request }))
}

/// Writes the outcome of request `state.id` (atomically: a reader sees all of it or nothing).
pub fn write_result(paths: &Paths, state: &UpgradeState) -> Result<(), files::FsError> {
    let body = serde_json::to_vec_pretty(state).unwrap_or_default();
    files::write_atomic(&file_of(paths, &state.id, RESULT_EXT), &body, 0o644)
}

/// The outcome of request `id`, once written.
pub fn read_result(paths: &Paths, id: &str) -> Option<UpgradeState> {
    let bytes = fs::read(file_of(paths, id, RESULT_EXT)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes request `id` (atomically; the directory is made when missing).
pub fn write_request(
    paths: &Paths,
    id: &str,
    request: &UpgradeRequest,
) -> Result<PathBuf, files::FsError> {
    files::ensure_dir(&upgrade_dir(paths), 0o755)?;
    let path = file_of(paths, id, REQUEST_EXT);
    let body = serde_json::to_vec_pretty(request).unwrap_or_default();
    files::write_atomic(&path, &body, 0o644)?;
    Ok(path)
}

/// [`serve_requests`] as a task, aborted when this is dropped (with `run`'s supervising loop).
pub struct UpgradeRequests(tokio::task::JoinHandle<()>);

impl UpgradeRequests {
    pub fn spawn(upgrader: Upgrader) -> UpgradeRequests {
        use tracing::Instrument as _;
        UpgradeRequests(tokio::spawn(serve_requests(upgrader).in_current_span()))
    }
}

impl Drop for UpgradeRequests {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kubelet_upgrade::UpgradePhase;

    #[test]
    fn requests_are_taken_oldest_first_once_and_answered_by_a_result() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        assert!(take_request(&paths).unwrap().is_none(), "no directory yet");
        let request = |b: &str| UpgradeRequest { binary: b.into() };
        write_request(&paths, "0002-b", &request("/opt/b")).unwrap();
        write_request(&paths, "0001-a", &request("/opt/a")).unwrap();
        // A drop-in that is not a request, and a writer's temporary file.
        std::fs::write(file_of(&paths, "0003-c", REQUEST_EXT), "{\"binary\": 1}").unwrap();
        std::fs::write(upgrade_dir(&paths).join(".0004-d.json.tmp"), "{}").unwrap();

        let first = take_request(&paths).unwrap().unwrap();
        assert_eq!(first.id, "0001-a");
        assert_eq!(first.request.unwrap(), request("/opt/a"));
        assert!(file_of(&paths, "0001-a", TAKEN_EXT).exists());
        assert!(!file_of(&paths, "0001-a", REQUEST_EXT).exists());
        assert_eq!(take_request(&paths).unwrap().unwrap().id, "0002-b");
        let bad = take_request(&paths).unwrap().unwrap();
        assert_eq!(bad.id, "0003-c");
        assert!(bad.request.unwrap_err().contains("is not a request"));
        assert!(take_request(&paths).unwrap().is_none(), "taken only once");

        assert!(read_result(&paths, "0001-a").is_none());
        let done = UpgradeState {
            id: "0001-a".into(),
            binary: "/opt/a".into(),
            from: Some("v1.32.0".into()),
            to: Some("v1.32.1".into()),
            phase: UpgradePhase::Upgraded,
            message: "upgraded".into(),
            at: "2027-01-15T08:00:00Z".into(),
        };
        write_result(&paths, &done).unwrap();
        assert_eq!(read_result(&paths, "0001-a"), Some(done));
        assert!(
            take_request(&paths).unwrap().is_none(),
            "a result is no request"
        );
    }
}
