//! Preflight checks: `kaas-join preflight`, and the same local checks at the start of `join` and
//! of `run`'s join, before any request or file write.
//!
//! Each check has a name (kubeadm's, where kubeadm has the check, so an existing
//! `--ignore-preflight-errors` list keeps working) and ends in one [`CheckResult`]: `pass`,
//! `warning`, `error`, `ignored` (an error the user chose to ignore: still shown, never hidden) or
//! `skipped` (cannot tell here, with why). Warnings and errors carry a one-line fix.
//!
//! Local checks read everything under `--root` ([`crate::host::paths::Paths`]): the kubelet binary, the
//! runtime socket and its configuration, `/etc/kubernetes/*`, and the kernel's `/proc` and `/sys`
//! files too, so a fake tree in a test stands for a machine (a kernel file absent under a root
//! other than `/` is `skipped`). Only the ports are checked on the live host, by binding them, and
//! the user id is this process's.
//!
//! With a server and a token, [`run`] also checks the provider's side before anything is
//! written: discovery ([`crate::k8s::discovery`]: the token's signature in cluster-info and the CA pin),
//! then two SelfSubjectAccessReviews made as the token ([`crate::k8s::bootstrap::may_create_csr`]):
//! may it create CertificateSigningRequests, and will its CSR be auto-approved (`create` on
//! `certificatesigningrequests/nodeclient`). The server's `/version` feeds the kubelet version
//! skew, the `Date` headers of these answers the clock skew.
//!
//! Where each part is: [`names`] (the check names), `report` (a check's result, the ignore list,
//! the report and its rendering), `machine` (user, kernel files, ports, foreign files),
//! `kubelet` (its binary and version), `runtime` (CRI socket, cgroup driver), `provider` (the
//! control plane's side). This module runs them: [`run`] (the subcommand), [`before_join`] (for
//! `join` and `run`) and [`local_checks`]. Every local check reaches the machine through
//! [`LocalInputs::host`] ([`crate::host::Host`]; tests give a `FakeHost`).

mod kubelet;
mod machine;
pub mod names;
mod provider;
mod report;
mod runtime;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use serde_norway::Value;

use crate::cli::preflight::PreflightArgs;
use crate::cli::JoinArgs;
use crate::cmd::error::Error;
use crate::config::{self, ConfigError, Environment, JoinConfig};
use crate::host::paths::{Paths, CA_CERT, KUBELET_KUBECONFIG};
use crate::host::{runtime as host_runtime, Host, LinuxHost};
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::exit_code::ExitCode;
use crate::node::join_state as state;

pub use kubelet::{KubeVersion, KubeletBinary, ServerVersion, KUBELET_SEARCH_PATHS};
pub use provider::provider_checks;
pub use report::{CheckResult, IgnoreList, PreflightReport, Status, Summary};

use kubelet::{kubelet_binary, kubelet_version};
use machine::{file_available, modules, ports, privileged_user, swap, sysctl};
use runtime::{cgroup_driver, cri};

/// `kaas-join preflight`'s discovery timeout when `--discovery-timeout` is not given: it asks
/// "is the token known now?", it does not wait for the control plane like a join.
pub const DISCOVERY_TIMEOUT: &str = "10s";

/// `join`'s arguments for the config loader; discovery asks "is the token known now?" and
/// does not wait for the control plane like a join: [`DISCOVERY_TIMEOUT`] by default.
fn join_args(args: &PreflightArgs) -> JoinArgs {
    let mut args = args.join.clone();
    args.discovery_timeout
        .get_or_insert_with(|| DISCOVERY_TIMEOUT.to_owned());
    args
}

/// The inputs of the local checks.
#[derive(Debug, Clone)]
pub struct LocalInputs {
    pub root: PathBuf,
    /// The CRI endpoint (given or detected), or why there is none.
    pub cri_socket: Result<String, String>,
    /// The driver kubelet will be given by the user (`None`: the runtime's).
    pub cgroup_driver: Option<CgroupDriver>,
    /// The user's KubeletConfiguration overrides (port, healthzPort, failSwapOn are read).
    pub kubelet_overrides: Option<Value>,
    pub kubelet: KubeletBinary,
    pub server_version: ServerVersion,
    /// The machine: user id, ports, `kubelet --version`, whether the root is its own.
    pub host: Arc<dyn Host>,
}

impl LocalInputs {
    /// The inputs a join has, its kubelet binary being `kubelet`.
    pub fn of_join(cfg: &JoinConfig, kubelet: KubeletBinary) -> LocalInputs {
        LocalInputs {
            root: cfg.root.clone(),
            cri_socket: Ok(cfg.cri_socket.clone()),
            cgroup_driver: cfg.cgroup_driver,
            kubelet_overrides: cfg.kubelet_overrides.clone(),
            kubelet,
            server_version: ServerVersion::NotAsked,
            host: Arc::new(LinuxHost),
        }
    }
}

/// Whether this machine has finished a join (state says joined, kubelet.conf present): then a
/// re-run of `join` is a no-op and preflight is not run (unless `--force`).
pub fn already_joined(paths: &Paths) -> bool {
    matches!(state::load(paths), Ok(Some(s)) if s.phase == state::Phase::Joined)
        && paths.host(KUBELET_KUBECONFIG).exists()
}

/// The local checks before a join (`join`, and each join attempt of `run`): problems are logged
/// (errors at error level, warnings and ignored errors at warning level); an error nobody
/// ignored is [`Error::Preflight`]. Skipped on an already joined machine without `--force`,
/// which must stay a no-op. Makes no request and writes nothing.
pub async fn before_join(cfg: &JoinConfig, kubelet: KubeletBinary) -> Result<(), Error> {
    let paths = Paths::new(&cfg.root);
    if already_joined(&paths) && !cfg.force {
        return Ok(());
    }
    let checks = local_checks_async(LocalInputs::of_join(cfg, kubelet)).await;
    let report = PreflightReport::new(
        checks,
        &IgnoreList::new(&cfg.ignore_preflight_errors),
        Vec::new(),
    );
    for note in &report.notes {
        tracing::warn!("{note}");
    }
    for (status, line) in report.problems() {
        if status == Status::Error {
            tracing::error!("{line}");
        } else {
            tracing::warn!("{line}");
        }
    }
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Preflight {
            failed: report.failed,
        })
    }
}

/// `kaas-join preflight`: prints the report, returns the exit code (0, or 24 on errors).
pub async fn run(args: PreflightArgs) -> Result<ExitCode, Error> {
    let join_args = join_args(&args);
    let (local, mut warnings) = config::load_local(&join_args)?;
    let paths = Paths::new(&local.root);
    // As a join finds it (containerd's default under an image's --root), so the report is
    // about the socket a join would give kubelet.
    let on_machine = LinuxHost.is_machine_root(paths.root());
    let cri_socket = match &local.cri_socket {
        Some(s) => Ok(s.clone()),
        None => match host_runtime::cri_socket_for_join(&paths, on_machine) {
            Ok((socket, warning)) => {
                warnings.extend(warning.map(config::Warning));
                Ok(socket)
            }
            Err(e) => Err(e.to_string()),
        },
    };
    // The provider-side checks need what a join needs to discover the cluster. They do not use
    // the CRI socket: when none was found (a finding of the CRI check, not bad input), any
    // well-known one lets the loader go on.
    let mut full_args = join_args.clone();
    if full_args.cri_socket.is_none() {
        full_args.cri_socket = Some(
            cri_socket
                .clone()
                .unwrap_or_else(|_| host_runtime::KNOWN_CRI_ENDPOINTS[0].1.to_owned()),
        );
    }
    let cfg = match config::load(&full_args, Environment::from_process()) {
        Ok((cfg, more)) => {
            for w in more {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            Some(cfg)
        }
        // No server anywhere: this machine only.
        Err(ConfigError::NoServer) => None,
        Err(e) => return Err(e.into()),
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    // The configuration's warnings (an override weakening a secure default, a token on the
    // command line) are findings too: in the report, not only on stderr.
    let mut notes: Vec<String> = warnings.iter().map(|w| w.0.clone()).collect();
    let (provider, server_version) = match &cfg {
        Some(cfg) => provider_checks(cfg).await,
        None => {
            notes.push(provider::NO_SERVER_NOTE.to_owned());
            provider::not_checked_without_server()
        }
    };
    let inputs = LocalInputs {
        root: local.root.clone(),
        cri_socket,
        cgroup_driver: local.cgroup_driver,
        kubelet_overrides: local.kubelet_overrides.clone(),
        kubelet: args
            .kubelet
            .clone()
            .map_or(KubeletBinary::Search, KubeletBinary::Given),
        server_version,
        host: Arc::new(LinuxHost),
    };
    let mut checks = local_checks_async(inputs).await;
    checks.extend(provider);
    let report = PreflightReport::new(
        checks,
        &IgnoreList::new(&local.ignore_preflight_errors),
        notes,
    );
    if let Some(unknown) = report.notes.first().filter(|n| n.starts_with("--ignore")) {
        tracing::warn!("{unknown}");
    }
    let mut stdout = io::stdout().lock();
    // A closed stdout (e.g. `| head`) does not change the verdict.
    let _ = io::Write::write_all(&mut stdout, report.render(args.join.output).as_bytes());
    Ok(report.exit_code())
}

/// [`local_checks`] off the async threads (it runs `kubelet --version` and sleeps between port
/// attempts).
pub async fn local_checks_async(inputs: LocalInputs) -> Vec<CheckResult> {
    match tokio::task::spawn_blocking(move || local_checks(&inputs)).await {
        Ok(checks) => checks,
        Err(e) => vec![CheckResult::error(
            "Preflight",
            format!("the local checks failed to run: {e}"),
            "report this as a bug",
        )],
    }
}

/// Every local check, in order. Reads only; binds the kubelet ports for a moment.
pub fn local_checks(inputs: &LocalInputs) -> Vec<CheckResult> {
    let paths = Paths::new(&inputs.root);
    let host = inputs.host.as_ref();
    let on_machine = host.is_machine_root(paths.root());
    let mut out = vec![privileged_user(&paths, host)];
    let (binary, kubelet) = kubelet_binary(&paths, on_machine, &inputs.kubelet);
    out.push(binary);
    out.push(kubelet_version(
        host,
        kubelet.as_deref(),
        &inputs.server_version,
    ));
    let (cri, socket_up) = cri(&paths, &inputs.cri_socket);
    out.push(cri);
    out.push(cgroup_driver(
        host,
        &paths,
        &inputs.cri_socket,
        socket_up,
        inputs.cgroup_driver,
    ));
    out.push(swap(&paths, on_machine, inputs.kubelet_overrides.as_ref()));
    out.push(sysctl(
        &paths,
        on_machine,
        names::IP_FORWARD,
        "/proc/sys/net/ipv4/ip_forward",
        "net.ipv4.ip_forward",
        true,
    ));
    out.push(sysctl(
        &paths,
        on_machine,
        names::BRIDGE_NF,
        "/proc/sys/net/bridge/bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-iptables",
        false,
    ));
    out.push(modules(&paths, on_machine));
    out.extend(ports(host, inputs.kubelet_overrides.as_ref()));
    let ours = paths.host(state::STATE_FILE).exists();
    out.push(file_available(
        &paths,
        names::KUBELET_CONF,
        KUBELET_KUBECONFIG,
        ours,
    ));
    out.push(file_available(
        &paths,
        names::BOOTSTRAP_KUBELET_CONF,
        "/etc/kubernetes/bootstrap-kubelet.conf",
        // kaas-join never writes it: whoever did is bootstrapping kubelet some other way.
        false,
    ));
    out.push(file_available(&paths, names::CA_CRT, CA_CERT, ours));
    out
}
