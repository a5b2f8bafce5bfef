//! What the supervisor knows about kubelet, published on a `tokio::sync::watch` channel: the
//! health reporter turns it into node conditions and events, `run` into systemd STATUS= lines and
//! the run-status file that `kaas-join status` reads. Plain data, no behaviour.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::model::kube_version::VersionCheck;
use crate::model::kubelet_upgrade::UpgradeState;

/// Where kubelet stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KubeletPhase {
    /// Not started yet (joining, or waiting for configuration).
    #[default]
    NotStarted,
    /// Started, healthz not answered yet.
    Starting,
    /// Running and answering healthz.
    Running,
    /// Exited (or killed as hung); waiting out the backoff before the next start.
    BackingOff,
    /// Restarted too often in a short time: still retried, at the backoff cap.
    CrashLooping,
    /// The binary is missing or not executable: retried, reported, never spinning.
    CannotStart,
    /// Another kubelet already runs on this machine: kaas-join does not start a second one.
    Conflict,
    /// kaas-join is shutting down and stopped kubelet.
    Stopped,
}

impl KubeletPhase {
    /// Every phase, in the order of a kubelet's life.
    pub const ALL: [KubeletPhase; 8] = [
        KubeletPhase::NotStarted,
        KubeletPhase::Starting,
        KubeletPhase::Running,
        KubeletPhase::BackingOff,
        KubeletPhase::CrashLooping,
        KubeletPhase::CannotStart,
        KubeletPhase::Conflict,
        KubeletPhase::Stopped,
    ];
}

/// How kubelet last ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitInfo {
    /// Exit code, when it exited by itself.
    pub code: Option<i32>,
    /// Signal number, when it was killed.
    pub signal: Option<i32>,
    /// Why, in words: "exited with code 1", "killed by SIGKILL (hung: healthz failed 3 times)".
    pub description: String,
    #[serde(with = "unix_seconds")]
    pub at: SystemTime,
    /// The last lines kubelet printed before it ended (bounded).
    pub last_lines: Vec<String>,
}

/// The latest kubelet health check (`GET http://<healthzBindAddress>:<healthzPort>/healthz`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Healthz {
    /// `None` until the first check.
    pub ok: Option<bool>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
}

/// Everything the supervisor publishes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletState {
    pub phase: KubeletPhase,
    pub pid: Option<u32>,
    #[serde(with = "opt_unix_seconds", default)]
    pub started_at: Option<SystemTime>,
    /// Restarts since kaas-join started.
    pub restarts: u32,
    pub last_exit: Option<ExitInfo>,
    pub healthz: Healthz,
    /// Why kubelet cannot run (missing binary, another kubelet running), with the fix.
    pub problem: Option<String>,
    /// kubelet's version against kube-apiserver's, as `run` checked them last (`None`: not
    /// checked by anyone, e.g. a reporter without `run`). Set by `run`, not by the supervisor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionCheck>,
    /// The last kubelet upgrade `run` did or does (`None`: none since it started). Set by
    /// `run`, not by the supervisor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeState>,
}

pub(crate) mod unix_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(UNIX_EPOCH + Duration::from_secs(u64::deserialize(d)?))
    }
}

pub(crate) mod opt_unix_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(|s| UNIX_EPOCH + Duration::from_secs(s)))
    }
}
