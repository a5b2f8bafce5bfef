//! What runs alongside kubelet's supervision and is stopped with it: the kubelet version checks
//! ([`crate::node::version_check`], the `KubeletVersionSkew` condition) and the task that takes
//! kubelet upgrade requests ([`crate::node::kubelet_upgrade`]). Both share the kubelet state;
//! the upgrades also the control channel of whichever supervision runs now (it changes when
//! SIGHUP restarts kubelet with a new command line).

use tokio::sync::{mpsc, watch};

use crate::cmd::run::Daemon;
use crate::model::kubelet_process::KubeletState;
use crate::node::health::HealthConfig;
use crate::node::kubelet_upgrade::{UpgradeRequests, Upgrader};
use crate::node::supervisor::Control;
use crate::node::version_check::{VersionChecker, VersionChecks};

/// The version checks and the upgrades; dropping this stops both.
pub(super) struct Alongside {
    versions: VersionChecks,
    _upgrades: UpgradeRequests,
    /// The control channel of the supervision running now (`None`: none).
    control: watch::Sender<Option<mpsc::Sender<Control>>>,
}

impl Alongside {
    /// Starts both, reaching the API server as the reporter does (`health`).
    pub(super) fn start(
        daemon: &Daemon<'_>,
        health: &HealthConfig,
        state: &watch::Sender<KubeletState>,
    ) -> Alongside {
        let checker = VersionChecker {
            binary: daemon.args.kubelet.clone(),
            server: health.server.clone(),
            ca_pem: health.ca_pem.clone(),
            paths: daemon.paths.clone(),
            host: health.host.clone(),
            requests: health.requests.clone(),
        };
        let control = watch::channel(None).0;
        let upgrades = UpgradeRequests::spawn(Upgrader {
            kubelet: daemon.args.kubelet.clone(),
            paths: daemon.paths.clone(),
            checker: checker.clone(),
            timeout: daemon.upgrade_timeout,
            state: state.clone(),
            control: control.subscribe(),
        });
        let versions = VersionChecks::spawn(checker, daemon.version_check_interval, state.clone());
        Alongside {
            versions,
            _upgrades: upgrades,
            control,
        }
    }

    /// Checks kubelet's and kube-apiserver's versions again now.
    pub(super) fn recheck_versions(&self) {
        self.versions.recheck();
    }

    /// Tells the upgrades which supervision to restart (`None`: kubelet is not supervised).
    pub(super) fn share_control(&self, control: Option<&mpsc::Sender<Control>>) {
        self.control.send_replace(control.cloned());
    }
}
