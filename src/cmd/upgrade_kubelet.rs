//! `kaas-join upgrade-kubelet --binary PATH`: checks the new binary (it says a version, so it
//! is kubelet; that version is within the skew policy against kube-apiserver's), hands the
//! upgrade to the running `kaas-join run` through a request file
//! ([`crate::node::kubelet_upgrade`]: `run` swaps the binary in, restarts kubelet and rolls
//! back by itself), and waits (at most `--wait`) for the outcome, printing each step. Exit
//! code 0 only when the new kubelet is healthy; [`UpgradeError::exit_code`] for the rest.
//! Pods are not evicted: draining is the operator's choice (`kubectl drain`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::upgrade_kubelet::UpgradeKubeletArgs;
use crate::cmd::error::Error;
use crate::config::ConfigError;
use crate::host::kubelet_version::kubelet_version;
use crate::host::paths::{Paths, CA_CERT, KUBELET_CLIENT_CURRENT};
use crate::host::LinuxHost;
use crate::k8s::client::{ApiClient, RequestCounter, Trust};
use crate::k8s::server_version::server_version;
use crate::model::exit_code::ExitCode;
use crate::model::kube_version::{skew_problem, KubeVersion, Skew};
use crate::model::kubelet_upgrade::{UpgradePhase, UpgradeRequest, UpgradeState};
use crate::node::join_state::{self as state, Phase};
use crate::node::kubelet_upgrade::{self as upgrade, file_of, REQUEST_EXT};
use crate::node::run_status;

/// How often the result file and the run-status file are looked at.
const POLL: Duration = Duration::from_millis(200);

/// Why the upgrade did not happen (each with its exit code).
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("this machine has not joined a cluster: nothing to upgrade")]
    NotJoined,
    /// No `kaas-join run` to hand the upgrade to (or it did not take it in time).
    #[error("{0}")]
    NoDaemon(String),
    /// The binary is not kubelet, or outside the skew policy: nothing was changed.
    #[error("refusing {binary}: {why}; nothing was changed")]
    Refused { binary: String, why: String },
    /// The new kubelet did not become healthy: `run` put the old one back (or could not).
    #[error("{0}")]
    NotUpgraded(String),
}

impl UpgradeError {
    /// The documented exit code.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            UpgradeError::NotJoined => ExitCode::NotJoined,
            UpgradeError::NoDaemon(_) => ExitCode::DaemonNotRunning,
            UpgradeError::Refused { .. } => ExitCode::UpgradeRefused,
            UpgradeError::NotUpgraded(_) => ExitCode::UpgradeRolledBack,
        }
    }
}

/// `kaas-join upgrade-kubelet` (see the module doc).
pub async fn run(args: UpgradeKubeletArgs) -> Result<ExitCode, Error> {
    let wait = crate::model::duration::parse_duration(&args.wait).map_err(|reason| {
        ConfigError::InvalidDuration {
            what: "--wait".into(),
            value: args.wait.clone(),
            reason,
        }
    })?;
    let paths = Paths::new(&args.root);
    let binary = args.binary.display().to_string();
    let refused = |why: String| UpgradeError::Refused {
        binary: binary.clone(),
        why,
    };
    let joined = state::load(&paths)?.filter(|s| s.phase == Phase::Joined);
    let joined = joined.ok_or(UpgradeError::NotJoined)?;
    let daemon = running_daemon(&paths)?;
    if !args.binary.is_absolute() {
        return Err(refused("the binary must be an absolute path".into()).into());
    }
    let new = blocking_version(&args.binary)
        .await
        .map_err(|why| refused(why.to_string()))?;
    let server = api_version(&paths, &joined.server)
        .await
        .map_err(|why| refused(format!("cannot check it against kube-apiserver: {why}")))?;
    if !Skew::of(&new, &server).is_supported() {
        return Err(refused(skew_problem(&new, &server).unwrap_or_default()).into());
    }
    let id = format!(
        "{:013}-upgrade-kubelet",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let request = UpgradeRequest {
        binary: args.binary.clone(),
    };
    let written = upgrade::write_request(&paths, &id, &request)?;
    println!(
        "kubelet {} (kube-apiserver {}): handed to kaas-join run (pid {}) as {}",
        new.text,
        server.text,
        daemon,
        written.display()
    );
    println!(
        "note: pods are not evicted; drain the node first (`kubectl drain`) if they must move"
    );
    let outcome = wait_for_outcome(&paths, &id, wait).await?;
    match outcome.phase {
        UpgradePhase::Upgraded => {
            println!("{}", outcome.message);
            Ok(ExitCode::Ok)
        }
        UpgradePhase::Refused => Err(UpgradeError::Refused {
            binary,
            why: outcome.message,
        }
        .into()),
        _ => Err(UpgradeError::NotUpgraded(outcome.message).into()),
    }
}

/// The pid of the running `kaas-join run` for this root, or why there is none.
fn running_daemon(paths: &Paths) -> Result<u32, UpgradeError> {
    let no_daemon = |why: &str| {
        UpgradeError::NoDaemon(format!(
            "no running kaas-join run to hand the upgrade to ({why}): start kaas-join.service \
             first; nothing was changed"
        ))
    };
    let run = run_status::read(paths).ok_or_else(|| no_daemon("no run-status file"))?;
    if !run_status::daemon_running(&LinuxHost, &run, paths.root()) {
        return Err(no_daemon("its run-status file says it is not running"));
    }
    if !run.supervising {
        return Err(no_daemon(
            "it does not supervise kubelet here: --no-kubelet",
        ));
    }
    Ok(run.pid)
}

async fn blocking_version(
    binary: &Path,
) -> Result<KubeVersion, crate::host::kubelet_version::KubeletVersionError> {
    let binary = binary.to_owned();
    tokio::task::spawn_blocking(move || kubelet_version(&LinuxHost, &binary))
        .await
        .unwrap_or_else(|e| {
            Err(crate::host::kubelet_version::KubeletVersionError::Failed {
                binary: String::new(),
                why: e.to_string(),
            })
        })
}

/// kube-apiserver's version, asked with the node's client certificate (anonymously when it is
/// not readable).
async fn api_version(paths: &Paths, server: &str) -> Result<KubeVersion, String> {
    let ca = std::fs::read(paths.host(CA_CERT))
        .map_err(|e| format!("cannot read {}: {e}", paths.host(CA_CERT).display()))?;
    let counter = Arc::new(RequestCounter::default());
    let client = match std::fs::read(paths.host(KUBELET_CLIENT_CURRENT)) {
        Ok(identity) => ApiClient::with_client_certificate(server, &ca, &identity, counter),
        Err(_) => ApiClient::new(server, &Trust::Ca(ca), counter),
    }
    .map_err(|e| e.to_string())?;
    server_version(&client).await
}

/// Waits for request `id`'s result, printing each step `run` publishes; bounded by `wait`.
async fn wait_for_outcome(
    paths: &Paths,
    id: &str,
    wait: Duration,
) -> Result<UpgradeState, UpgradeError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut shown: Option<UpgradePhase> = None;
    loop {
        if let Some(done) = upgrade::read_result(paths, id) {
            return Ok(done);
        }
        let step = run_status::read(paths)
            .and_then(|r| r.kubelet.upgrade)
            .filter(|u| u.id == id);
        if let Some(step) = step.filter(|s| Some(s.phase) != shown && !s.phase.is_final()) {
            println!("{:?}: {}", step.phase, step.message);
            shown = Some(step.phase);
        }
        if tokio::time::Instant::now() >= deadline {
            // Not taken: take it back, so that it does not run later unattended.
            let waiting = file_of(paths, id, REQUEST_EXT);
            let taken_back = std::fs::remove_file(&waiting).is_ok();
            return Err(UpgradeError::NoDaemon(if taken_back {
                format!(
                    "kaas-join run did not take the upgrade within {}s (the request is \
                     withdrawn; nothing was changed)",
                    wait.as_secs()
                )
            } else {
                format!(
                    "kaas-join run took the upgrade but gave no outcome within {}s: see \
                     `kaas-join status` and its log",
                    wait.as_secs()
                )
            }));
        }
        tokio::time::sleep(POLL).await;
    }
}
