//! The phase state file, `/var/lib/kaas-join/state.json` (0600): what this machine has done so
//! far, so a re-run resumes instead of starting over, and `status` can say where it stands.
//!
//! It is written atomically at each phase change. It never holds a secret: the node key lives
//! beside it in its own 0600 file ([`NODE_KEY`]) only until the certificate arrives.

use serde::{Deserialize, Serialize};

use crate::host::files::{self, FsError};
use crate::host::paths::{Paths, STATE_DIR};
use crate::model::exit_code::ExitCode;
use crate::model::identity::IdentityLoss;

pub const STATE_FILE: &str = "/var/lib/kaas-join/state.json";
/// The node key between its creation and the certificate's arrival (then it moves into kubelet's
/// certificate file and this one is removed).
pub const NODE_KEY: &str = "/var/lib/kaas-join/node-key.pem";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Key made, CSR created or about to be; files not written yet.
    Bootstrapping,
    /// Every file written; kubelet can start.
    Joined,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub version: u32,
    pub phase: Phase,
    pub node_name: String,
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<String>,
    /// A re-identification in progress (the node joins again as itself because its identity is
    /// lost). The rest of the state still describes the join kubelet's files are from, until
    /// the new files are written; the new key waits in [`NODE_KEY`] meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoin: Option<Rejoin>,
    /// A `join --force` under way, to this server (perhaps another cluster). As for `rejoin`,
    /// the rest of the state still describes the join kubelet's files are from until the new
    /// files are written: a forced join that fails (never approved, say) leaves the working
    /// join as it was, and `status` and `reset` still know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacing: Option<Replacement>,
    pub updated_at: String,
}

/// A forced join under way on a joined machine: where to, and its CSR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replacement {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pin: Option<String>,
    pub csr_name: String,
    pub started_at: String,
}

/// A re-identification in progress: its CSR (named after the new key) and why it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejoin {
    pub csr_name: String,
    pub reason: IdentityLoss,
    pub started_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("the state file {path} is damaged ({detail}); move it aside and run `kaas-join join --force`")]
    Damaged { path: String, detail: String },
}

impl StateError {
    /// The documented exit code: always Filesystem (the state file could not be read or written).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::Filesystem
    }
}

/// The state, or `None` on a machine that never started a join.
pub fn load(paths: &Paths) -> Result<Option<State>, StateError> {
    let path = paths.host(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StateError::Damaged {
                path: path.display().to_string(),
                detail: e.to_string(),
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Damaged {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
}

pub fn save(paths: &Paths, state: &State) -> Result<(), StateError> {
    files::ensure_dir(&paths.host(STATE_DIR), 0o700)?;
    let mut json = serde_json::to_vec_pretty(state).expect("state serializes");
    json.push(b'\n');
    files::write_atomic(&paths.host(STATE_FILE), &json, 0o600)?;
    Ok(())
}

/// Now, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_damage() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        assert_eq!(load(&paths).unwrap(), None);
        let state = State {
            version: 1,
            phase: Phase::Joined,
            node_name: "n1".into(),
            server: "https://127.0.0.1:6443".into(),
            ca_pin: Some("sha256:00".into()),
            csr_name: None,
            certificate_not_after: None,
            rejoin: None,
            replacing: None,
            updated_at: now_rfc3339(),
        };
        save(&paths, &state).unwrap();
        assert_eq!(load(&paths).unwrap(), Some(state));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(paths.host(STATE_FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(paths.host(STATE_FILE), b"{not json").unwrap();
        assert!(matches!(load(&paths), Err(StateError::Damaged { .. })));
    }
}
