//! `run`'s kubelet version check: the kubelet binary's version (`kubelet --version` through
//! [`Host::run`], on the blocking pool) and kube-apiserver's (`GET /version` with the node's
//! client certificate, anonymously when it is unreadable), published as the kubelet state's
//! [`VersionCheck`]; the health reporter turns it into the `KubeletVersionSkew` condition and
//! its events ([`crate::model::node_conditions`]), `kaas-join status` shows it.
//!
//! When ([`run_checks`]): at once, every `interval` (default 10 minutes: the control plane is
//! upgraded under the node), whenever the binary at `run --kubelet` changes (its inode, size or
//! mtime, looked at every [`BINARY_POLL`]: a package or `kaas-join upgrade-kubelet` replaced
//! it), and whenever `run` asks ([`Notify`]: SIGHUP, the API server answering again after
//! failures — kube-apiserver restarts when it is upgraded).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};

use crate::host::kubelet_version::kubelet_version;
use crate::host::paths::{Paths, KUBELET_CLIENT_CURRENT};
use crate::host::Host;
use crate::k8s::client::{ApiClient, RequestCounter, Trust};
use crate::k8s::server_version::server_version;
use crate::model::kube_version::{skew_problem, VersionAnswer, VersionCheck};
use crate::model::kubelet_process::KubeletState;

/// How often the binary's identity (inode, size, mtime) is looked at.
pub const BINARY_POLL: Duration = Duration::from_secs(5);

/// What a check needs: the binary, the API server and how to reach it.
#[derive(Clone)]
pub struct VersionChecker {
    /// `run --kubelet`.
    pub binary: PathBuf,
    /// `https://host:port`.
    pub server: String,
    /// The cluster CA, PEM.
    pub ca_pem: Vec<u8>,
    /// Where the node's client certificate is.
    pub paths: Paths,
    pub host: Arc<dyn Host>,
    /// Counts the `/version` requests (`run`'s metrics).
    pub requests: Arc<RequestCounter>,
}

impl VersionChecker {
    /// `binary --version`, on the blocking pool.
    pub async fn kubelet(&self, binary: &Path) -> VersionAnswer {
        let (host, binary) = (self.host.clone(), binary.to_owned());
        match tokio::task::spawn_blocking(move || kubelet_version(host.as_ref(), &binary)).await {
            Ok(Ok(version)) => VersionAnswer::Known(version),
            Ok(Err(e)) => VersionAnswer::Unknown(e.to_string()),
            Err(e) => VersionAnswer::Unknown(format!("the version check failed: {e}")),
        }
    }

    /// kube-apiserver's version.
    pub async fn server(&self) -> VersionAnswer {
        let client = self.client().await;
        match client {
            Ok(client) => match server_version(&client).await {
                Ok(version) => VersionAnswer::Known(version),
                Err(why) => VersionAnswer::Unknown(why),
            },
            Err(why) => VersionAnswer::Unknown(why),
        }
    }

    /// Both versions, now.
    pub async fn check(&self) -> VersionCheck {
        let (kubelet, server) = tokio::join!(self.kubelet(&self.binary), self.server());
        VersionCheck {
            binary: self.binary.display().to_string(),
            kubelet,
            server,
            checked_at: Some(self.host.now()),
        }
    }

    /// The node's own client (its certificate read on the blocking pool), else anonymous.
    async fn client(&self) -> Result<ApiClient, String> {
        let cert = self.paths.host(KUBELET_CLIENT_CURRENT);
        let identity = tokio::task::spawn_blocking(move || std::fs::read(cert).ok())
            .await
            .ok()
            .flatten();
        let counter = self.requests.clone();
        let built = match identity {
            Some(pem) => {
                ApiClient::with_client_certificate(&self.server, &self.ca_pem, &pem, counter)
            }
            None => ApiClient::new(&self.server, &Trust::Ca(self.ca_pem.clone()), counter),
        };
        built.map_err(|e| format!("no API client: {e}"))
    }
}

/// What tells that a binary was replaced: (device, inode, size, mtime); `None` when missing.
fn fingerprint(binary: &Path) -> Option<(u64, u64, u64, Option<SystemTime>)> {
    let m = std::fs::metadata(binary).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.modified().ok()))
}

async fn fingerprint_of(binary: &Path) -> Option<(u64, u64, u64, Option<SystemTime>)> {
    let binary = binary.to_owned();
    tokio::task::spawn_blocking(move || fingerprint(&binary))
        .await
        .ok()
        .flatten()
}

/// Checks at once, then on every occasion of the module doc, publishing each check on `kubelet`
/// (a change of the answers notifies; a check with the same answers only updates its time).
/// Runs until aborted.
pub async fn run_checks(
    checker: VersionChecker,
    interval: Duration,
    kubelet: watch::Sender<KubeletState>,
    recheck: Arc<Notify>,
) {
    let mut seen = fingerprint_of(&checker.binary).await;
    let mut poll = tokio::time::interval(BINARY_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        publish(&kubelet, checker.check().await);
        let next = tokio::time::sleep(interval);
        tokio::pin!(next);
        loop {
            tokio::select! {
                _ = &mut next => break,
                _ = recheck.notified() => break,
                _ = poll.tick() => {
                    let now = fingerprint_of(&checker.binary).await;
                    if now != seen {
                        seen = now;
                        tracing::info!(binary = %checker.binary.display(), "the kubelet binary changed: checking its version");
                        break;
                    }
                }
            }
        }
    }
}

/// Publishes `check`; logs when its answers changed.
pub fn publish(kubelet: &watch::Sender<KubeletState>, check: VersionCheck) {
    kubelet.send_if_modified(|s| {
        let changed = s
            .version
            .as_ref()
            .is_none_or(|before| !before.same_answers(&check));
        if changed {
            log_check(&check);
        }
        s.version = Some(check);
        changed
    });
}

fn log_check(check: &VersionCheck) {
    match (&check.kubelet, &check.server) {
        (VersionAnswer::Known(k), VersionAnswer::Known(s)) => match skew_problem(k, s) {
            Some(problem) => tracing::warn!("{problem}"),
            None => tracing::info!(
                "kubelet {} and kube-apiserver {}: within the version skew policy",
                k.text,
                s.text
            ),
        },
        (VersionAnswer::Unknown(why), _) | (_, VersionAnswer::Unknown(why)) => {
            tracing::warn!("cannot check kubelet's version skew: {why}")
        }
        _ => {}
    }
}

/// [`run_checks`] running as a task, aborted when this is dropped.
pub struct VersionChecks {
    task: tokio::task::JoinHandle<()>,
    recheck: Arc<Notify>,
}

impl VersionChecks {
    /// Starts [`run_checks`], publishing on `kubelet`.
    pub fn spawn(
        checker: VersionChecker,
        interval: Duration,
        kubelet: watch::Sender<KubeletState>,
    ) -> VersionChecks {
        use tracing::Instrument as _;
        let recheck = Arc::new(Notify::new());
        let task =
            tokio::spawn(run_checks(checker, interval, kubelet, recheck.clone()).in_current_span());
        VersionChecks { task, recheck }
    }

    /// Checks again now (or as soon as the check under way is done).
    pub fn recheck(&self) {
        self.recheck.notify_one();
    }
}

impl Drop for VersionChecks {
    fn drop(&mut self) {
        self.task.abort();
    }
}
