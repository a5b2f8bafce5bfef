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

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_norway::Value;

use crate::cli::preflight::PreflightArgs;
use crate::cli::JoinArgs;
use crate::cmd::error::Error;
use crate::config::{self, ConfigError, Environment, JoinConfig};
use crate::host::paths::{Paths, CA_CERT, KUBELET_KUBECONFIG};
use crate::host::{runtime as host, Host, LinuxHost, PortState};
use crate::k8s::client::{ApiClient, ApiError, RequestCounter};
use crate::k8s::discovery::{self, DiscoveryError, DiscoveryRequest};
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::exit_code::ExitCode;
use crate::model::output::OutputFormat;
use crate::node::join_state as state;

/// Where kubelet is looked for (under `--root`) when no `--kubelet` is given: the packages'
/// place, then the usual places of a manual install.
pub const KUBELET_SEARCH_PATHS: &[&str] = &[
    "/usr/bin/kubelet",
    "/usr/local/bin/kubelet",
    "/opt/bin/kubelet",
];
/// `kubelet --version` must answer within this, or it is killed.
const KUBELET_VERSION_TIMEOUT: Duration = Duration::from_secs(5);
/// kubelet may be this many minor versions older than the API server (the skew policy since
/// Kubernetes 1.28), never newer.
const MAX_KUBELET_MINOR_SKEW: u64 = 3;
/// Clock skew above this is a warning (kaas-join run's ClockSkew condition uses the same).
const SKEW_WARNING: f64 = 30.0;
/// Clock skew above this is an error: kube-controller-manager's signer backdates certificates by
/// 5 minutes, so a clock further behind sees kubelet's new certificate as not yet valid.
const SKEW_ERROR: f64 = 300.0;
/// `kaas-join preflight`'s discovery timeout when `--discovery-timeout` is not given: it asks
/// "is the token known now?", it does not wait for the control plane like a join.
pub const DISCOVERY_TIMEOUT: &str = "10s";
/// Binding a busy port is tried this often before it counts as in use: another preflight (a
/// parallel test, a second kaas-join) may hold it for a moment while it checks it too.
const PORT_ATTEMPTS: u32 = 3;
const PORT_RETRY: Duration = Duration::from_millis(25);
/// kubelet's default `port` and `healthzPort`.
const KUBELET_PORT: u16 = 10250;
const KUBELET_HEALTHZ_PORT: u16 = 10248;

/// Check names. kubeadm's where kubeadm has the check (`cmd/kubeadm/app/preflight/checks.go`).
pub mod names {
    pub const IS_PRIVILEGED_USER: &str = "IsPrivilegedUser";
    /// kubeadm's `InPathCheck` naming (`FileExisting-<executable>`).
    pub const KUBELET_BINARY: &str = "FileExisting-kubelet";
    pub const KUBELET_VERSION: &str = "KubeletVersion";
    pub const CRI: &str = "CRI";
    pub const CGROUP_DRIVER: &str = "CgroupDriver";
    pub const SWAP: &str = "Swap";
    pub const IP_FORWARD: &str = "FileContent--proc-sys-net-ipv4-ip_forward";
    pub const BRIDGE_NF: &str = "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables";
    /// kubeadm's kernel and OS verification; here the kernel modules kubelet's networking needs.
    pub const SYSTEM_VERIFICATION: &str = "SystemVerification";
    pub const KUBELET_CONF: &str = "FileAvailable--etc-kubernetes-kubelet.conf";
    pub const BOOTSTRAP_KUBELET_CONF: &str = "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf";
    pub const CA_CRT: &str = "FileAvailable--etc-kubernetes-pki-ca.crt";
    pub const CLOCK_SKEW: &str = "ClockSkew";
    /// The token's signature in cluster-info and the CA pin (discovery).
    pub const CLUSTER_INFO: &str = "ClusterInfo";
    /// The token may create CertificateSigningRequests.
    pub const CSR_CREATE: &str = "CSRCreate";
    /// The token's node client CSR will be auto-approved.
    pub const CSR_AUTO_APPROVE: &str = "CSRAutoApprove";

    /// Every name, for the unknown-name warning (the ports as kubelet's defaults).
    pub const ALL: &[&str] = &[
        IS_PRIVILEGED_USER,
        KUBELET_BINARY,
        KUBELET_VERSION,
        CRI,
        CGROUP_DRIVER,
        SWAP,
        IP_FORWARD,
        BRIDGE_NF,
        SYSTEM_VERIFICATION,
        "Port-10250",
        "Port-10248",
        KUBELET_CONF,
        BOOTSTRAP_KUBELET_CONF,
        CA_CRT,
        CLOCK_SKEW,
        CLUSTER_INFO,
        CSR_CREATE,
        CSR_AUTO_APPROVE,
    ];
}

/// kubeadm's ClusterRoleBindings for bootstrap tokens (`kaas-join cluster prepare` makes them).
const BOOTSTRAP_BINDING: &str = "kubeadm:kubelet-bootstrap";
const BOOTSTRAP_ROLE: &str = "system:node-bootstrapper";
const AUTOAPPROVE_BINDING: &str = "kubeadm:node-autoapprove-bootstrap";
const TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

/// `join`'s arguments for the config loader; discovery asks "is the token known now?" and
/// does not wait for the control plane like a join: [`DISCOVERY_TIMEOUT`] by default.
fn join_args(args: &PreflightArgs) -> JoinArgs {
    let mut args = args.join.clone();
    args.discovery_timeout
        .get_or_insert_with(|| DISCOVERY_TIMEOUT.to_owned());
    args
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warning,
    Error,
    /// An error the user ignored (`--ignore-preflight-errors`).
    Ignored,
    /// Could not be checked here; the message says why.
    Skipped,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warning => "warning",
            Status::Error => "error",
            Status::Ignored => "ignored",
            Status::Skipped => "skipped",
        }
    }
}

/// One check's result: what was found, and for a warning or an error the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl CheckResult {
    fn new(name: &str, status: Status, message: String, fix: Option<String>) -> CheckResult {
        CheckResult {
            name: name.to_owned(),
            status,
            message,
            fix,
        }
    }
    fn pass(name: &str, message: impl Into<String>) -> CheckResult {
        CheckResult::new(name, Status::Pass, message.into(), None)
    }
    fn skipped(name: &str, message: impl Into<String>) -> CheckResult {
        CheckResult::new(name, Status::Skipped, message.into(), None)
    }
    fn warning(name: &str, message: impl Into<String>, fix: impl Into<String>) -> CheckResult {
        CheckResult::new(name, Status::Warning, message.into(), Some(fix.into()))
    }
    fn error(name: &str, message: impl Into<String>, fix: impl Into<String>) -> CheckResult {
        CheckResult::new(name, Status::Error, message.into(), Some(fix.into()))
    }
}

/// The checks the user ignores: already normalized by [`config::ignore_list`].
#[derive(Debug, Clone, Default)]
pub struct IgnoreList {
    names: BTreeSet<String>,
}

impl IgnoreList {
    pub fn new(normalized: &[String]) -> IgnoreList {
        IgnoreList {
            names: normalized.iter().map(|n| n.to_lowercase()).collect(),
        }
    }

    /// Whether errors of check `name` are ignored (case-insensitive; `all` ignores every one).
    pub fn ignores(&self, name: &str) -> bool {
        self.names.contains("all") || self.names.contains(&name.to_lowercase())
    }

    /// The names that match no check in `known` (kubeadm accepts these silently; we warn).
    pub fn unknown<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        self.names
            .iter()
            .filter(|n| *n != "all" && !known.iter().any(|k| k.eq_ignore_ascii_case(n)))
            .map(String::as_str)
            .collect()
    }
}

/// Counts of each status, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warning: usize,
    pub error: usize,
    pub ignored: usize,
    pub skipped: usize,
}

/// Every check's result, with the ignore list applied.
#[derive(Debug, Clone, Serialize)]
pub struct PreflightReport {
    pub checks: Vec<CheckResult>,
    pub summary: Summary,
    /// The checks whose errors were not ignored (the exit code is 24 when there is one).
    pub failed: Vec<String>,
    /// Remarks about the run itself (unknown names in the ignore list, what was not checked).
    pub notes: Vec<String>,
}

impl PreflightReport {
    /// Applies `ignore` (errors become `ignored`) and warns about names no check has.
    pub fn new(
        mut checks: Vec<CheckResult>,
        ignore: &IgnoreList,
        mut notes: Vec<String>,
    ) -> PreflightReport {
        for c in &mut checks {
            if c.status == Status::Error && ignore.ignores(&c.name) {
                c.status = Status::Ignored;
            }
        }
        let mut known: Vec<&str> = names::ALL.to_vec();
        known.extend(checks.iter().map(|c| c.name.as_str()));
        let unknown = ignore.unknown(&known);
        if !unknown.is_empty() {
            let mut list: Vec<&str> = names::ALL.to_vec();
            for c in &checks {
                if !list.contains(&c.name.as_str()) {
                    list.push(&c.name);
                }
            }
            notes.insert(
                0,
                format!(
                    "--ignore-preflight-errors names no check kaas-join has: {} (ignored; the \
                     checks are: {})",
                    unknown.join(", "),
                    list.join(", ")
                ),
            );
        }
        let mut summary = Summary::default();
        for c in &checks {
            *match c.status {
                Status::Pass => &mut summary.pass,
                Status::Warning => &mut summary.warning,
                Status::Error => &mut summary.error,
                Status::Ignored => &mut summary.ignored,
                Status::Skipped => &mut summary.skipped,
            } += 1;
        }
        let failed = checks
            .iter()
            .filter(|c| c.status == Status::Error)
            .map(|c| c.name.clone())
            .collect();
        PreflightReport {
            checks,
            summary,
            failed,
            notes,
        }
    }

    /// 0, or [`ExitCode::Preflight`] when an error was not ignored.
    pub fn exit_code(&self) -> ExitCode {
        if self.failed.is_empty() {
            ExitCode::Ok
        } else {
            ExitCode::Preflight
        }
    }

    /// The report for stdout: a table (text) or one JSON object.
    pub fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Json => {
                let mut s = serde_json::to_string_pretty(self).expect("the report serializes");
                s.push('\n');
                s
            }
            OutputFormat::Text => {
                let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
                let mut out = String::new();
                for c in &self.checks {
                    out.push_str(&format!(
                        "[{:<7}] {:<width$}  {}\n",
                        c.status.label(),
                        c.name,
                        c.message
                    ));
                    if let Some(fix) = c.fix.as_ref().filter(|_| c.status != Status::Pass) {
                        out.push_str(&format!("{:9} {:<width$}  fix: {fix}\n", "", ""));
                    }
                }
                for n in &self.notes {
                    out.push_str(&format!("note: {n}\n"));
                }
                let s = &self.summary;
                out.push_str(&format!(
                    "preflight: {} passed, {} warning{}, {} error{}{}, {} ignored, {} skipped\n",
                    s.pass,
                    s.warning,
                    plural(s.warning),
                    s.error,
                    plural(s.error),
                    if self.failed.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", self.failed.join(", "))
                    },
                    s.ignored,
                    s.skipped
                ));
                out
            }
        }
    }

    /// One line per warning, error and ignored error, for the log of a join.
    pub fn problems(&self) -> Vec<(Status, String)> {
        self.checks
            .iter()
            .filter(|c| matches!(c.status, Status::Warning | Status::Error | Status::Ignored))
            .map(|c| {
                let fix = c
                    .fix
                    .as_ref()
                    .map(|f| format!("; fix: {f}"))
                    .unwrap_or_default();
                (
                    c.status,
                    format!(
                        "preflight [{} {}]: {}{fix}",
                        c.status.label().to_uppercase(),
                        c.name,
                        c.message
                    ),
                )
            })
            .collect()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A Kubernetes version, as `kubelet --version` and `/version` give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVersion {
    pub major: u64,
    pub minor: u64,
    /// As written, e.g. `v1.31.2`.
    pub text: String,
}

impl KubeVersion {
    /// The first word shaped like `v1.31.2` (suffixes such as `-eks-1` kept in `text`).
    pub fn find(s: &str) -> Option<KubeVersion> {
        s.split_whitespace().find_map(|w| {
            let w = w.trim_matches(|c: char| c == '"' || c == ',');
            let rest = w.strip_prefix('v')?;
            let mut parts = rest.split(|c: char| !c.is_ascii_digit());
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            Some(KubeVersion {
                major,
                minor,
                text: w.to_owned(),
            })
        })
    }
}

/// What is known of the control plane's version when the local checks run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVersion {
    /// No server given: the skew is not checked.
    NotAsked,
    Known(KubeVersion),
    /// Asked, but no usable answer (why).
    Unknown(String),
}

/// Which kubelet binary to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletBinary {
    /// The first of [`KUBELET_SEARCH_PATHS`] under the root.
    Search,
    /// A path on this machine, as given (`--kubelet`; not under the root).
    Given(PathBuf),
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
    let cri_socket = match &local.cri_socket {
        Some(s) => Ok(s.clone()),
        None => host::detect_cri_socket(&paths).map_err(|e| e.to_string()),
    };
    // The provider-side checks need what a join needs to discover the cluster. They do not use
    // the CRI socket: when none was found (a finding of the CRI check, not bad input), any
    // well-known one lets the loader go on.
    let mut full_args = join_args.clone();
    if full_args.cri_socket.is_none() {
        full_args.cri_socket = Some(
            cri_socket
                .clone()
                .unwrap_or_else(|_| host::KNOWN_CRI_ENDPOINTS[0].1.to_owned()),
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
    let mut notes = Vec::new();
    let (provider, server_version) = match &cfg {
        Some(cfg) => provider_checks(cfg).await,
        None => {
            notes.push(
                "no --server (or join ticket) given: only this machine was checked; give the \
                 server, the token and the CA pin to check the control plane's side too"
                    .to_owned(),
            );
            let why = "needs --server and a bootstrap token";
            (
                vec![
                    CheckResult::skipped(names::CLUSTER_INFO, why),
                    CheckResult::skipped(names::CSR_CREATE, why),
                    CheckResult::skipped(names::CSR_AUTO_APPROVE, why),
                    CheckResult::skipped(names::CLOCK_SKEW, why),
                ],
                ServerVersion::NotAsked,
            )
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

// ---------------------------------------------------------------------------------------------
// Provider side

/// ClusterInfo, CSRCreate, CSRAutoApprove and ClockSkew, and the server's version for the
/// kubelet version skew. Writes nothing; creates nothing.
pub async fn provider_checks(cfg: &JoinConfig) -> (Vec<CheckResult>, ServerVersion) {
    let counter = Arc::new(RequestCounter::default());
    let found = discovery::discover(&DiscoveryRequest::of(cfg, counter)).await;
    let found = match found {
        Ok(found) => found,
        Err(err) => {
            let why = format!("needs a verified connection (see {})", names::CLUSTER_INFO);
            return (
                vec![
                    cluster_info_error(&err),
                    CheckResult::skipped(names::CSR_CREATE, why.clone()),
                    CheckResult::skipped(names::CSR_AUTO_APPROVE, why.clone()),
                    CheckResult::skipped(names::CLOCK_SKEW, why.clone()),
                ],
                ServerVersion::Unknown(why),
            );
        }
    };
    let cluster_info = match &found.matched_pin {
        Some(pin) => CheckResult::pass(
            names::CLUSTER_INFO,
            format!(
                "cluster-info at {} is signed for token id {} with this token's secret (the \
                 token is known), CA pin {pin} matched; API server {}",
                found.endpoint,
                cfg.token.id(),
                found.server
            ),
        ),
        None => CheckResult::warning(
            names::CLUSTER_INFO,
            format!(
                "cluster-info at {} is signed for token id {} with this token's secret, but the \
                 CA was NOT verified (--discovery-token-unsafe-skip-ca-verification)",
                found.endpoint,
                cfg.token.id()
            ),
            "pass --discovery-token-ca-cert-hash sha256:<hash> (kaas-join token create \
             --print-join-command prints it)",
        ),
    };

    // Anonymous, over TLS verified against the cluster CA.
    let server_version = match found.client.get_json::<serde_json::Value>("/version").await {
        Ok(v) => match v["gitVersion"].as_str().and_then(KubeVersion::find) {
            Some(version) => ServerVersion::Known(version),
            None => ServerVersion::Unknown("/version has no usable gitVersion".into()),
        },
        Err(e) => ServerVersion::Unknown(format!("GET /version failed: {e}")),
    };

    let client = found.client.with_bearer(&cfg.token);
    let (create, autoapprove) = csr_checks(&client).await;
    let clock = clock_skew_check(&client);
    (
        vec![cluster_info, create, autoapprove, clock],
        server_version,
    )
}

fn cluster_info_error(err: &DiscoveryError) -> CheckResult {
    let fix = match err {
        DiscoveryError::NoSignature { .. } => {
            "create a token on the control plane (`kaas-join token create` or `kubeadm token \
             create`) and use it, or wait a few seconds after creating it (the bootstrapsigner \
             adds the signature); `kubeadm token list` shows the valid ones"
        }
        DiscoveryError::SignatureMismatch { .. } => {
            "the token's secret is wrong: copy the whole token again (`kaas-join token list` shows \
             its id)"
        }
        DiscoveryError::PinMismatch { .. } => {
            "check --discovery-token-ca-cert-hash against `kaas-join token create \
             --print-join-command` (or that this is the right cluster)"
        }
        DiscoveryError::AnonymousDenied { .. } => {
            "publish cluster-info: run `kaas-join cluster prepare` with an admin kubeconfig"
        }
        DiscoveryError::Unreachable(_) => {
            "check the address and port, the network path and firewalls to the API server"
        }
        DiscoveryError::Tls(_) => "check that the address is the cluster's API server",
        _ => "check that --server names the cluster's Kubernetes API server",
    };
    CheckResult::error(names::CLUSTER_INFO, err.to_string(), fix)
}

/// CSRCreate and CSRAutoApprove: two SelfSubjectAccessReviews made as the token.
async fn csr_checks(client: &ApiClient) -> (CheckResult, CheckResult) {
    let rejected = |name: &str, e: &ApiError| {
        CheckResult::error(
            name,
            format!(
                "the API server rejected the token ({e}): it expired or was deleted (cluster-info \
                 keeps a signature until the token cleaner removes it)"
            ),
            "create a new token on the control plane (`kaas-join token create` or `kubeadm \
             token create`) and use it",
        )
    };
    let create = match crate::k8s::bootstrap::may_create_csr(client, "").await {
        Ok(a) if a.allowed => CheckResult::pass(
            names::CSR_CREATE,
            format!(
                "the token may create CertificateSigningRequests{}",
                reason_suffix(&a.reason)
            ),
        ),
        Ok(_) => CheckResult::error(
            names::CSR_CREATE,
            format!(
                "the token may NOT create CertificateSigningRequests, so no join can get a \
                 certificate with it: ClusterRoleBinding {BOOTSTRAP_BINDING} (ClusterRole \
                 {BOOTSTRAP_ROLE} for group {TOKEN_GROUP}, or the token's own group) is missing"
            ),
            format!(
                "on the control plane run `kaas-join cluster prepare` (it creates \
                 {BOOTSTRAP_BINDING}), or `kubectl create clusterrolebinding {BOOTSTRAP_BINDING} \
                 --clusterrole={BOOTSTRAP_ROLE} --group={TOKEN_GROUP}`"
            ),
        ),
        Err(e) if e.status_code() == Some(401) => {
            let skipped = CheckResult::skipped(
                names::CSR_AUTO_APPROVE,
                format!("the token was rejected (see {})", names::CSR_CREATE),
            );
            return (rejected(names::CSR_CREATE, &e), skipped);
        }
        Err(e) => CheckResult::skipped(names::CSR_CREATE, format!("could not ask: {e}")),
    };
    let autoapprove = match crate::k8s::bootstrap::may_create_csr(client, "nodeclient").await {
        Ok(a) if a.allowed => CheckResult::pass(
            names::CSR_AUTO_APPROVE,
            format!(
                "the token may create certificatesigningrequests/nodeclient, so its node client \
                 CSR will be auto-approved{}",
                reason_suffix(&a.reason)
            ),
        ),
        Ok(_) => CheckResult::error(
            names::CSR_AUTO_APPROVE,
            format!(
                "the token may NOT create certificatesigningrequests/nodeclient, so its CSR will \
                 not be auto-approved and the join waits until someone approves it by hand: \
                 ClusterRoleBinding {AUTOAPPROVE_BINDING} (ClusterRole {} for group \
                 {TOKEN_GROUP}, or the token's own group) is missing",
                crate::k8s::bootstrap::NODECLIENT_ROLE
            ),
            format!(
                "on the control plane run `kaas-join cluster prepare` (it creates \
                 {AUTOAPPROVE_BINDING}), or approve each CSR by hand: kubectl certificate approve \
                 <csr>"
            ),
        ),
        Err(e) if e.status_code() == Some(401) => rejected(names::CSR_AUTO_APPROVE, &e),
        Err(e) => CheckResult::skipped(names::CSR_AUTO_APPROVE, format!("could not ask: {e}")),
    };
    (create, autoapprove)
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

/// ClockSkew from the `Date` header of the last answer `client` received.
fn clock_skew_check(client: &ApiClient) -> CheckResult {
    let Some(date) = client.last_server_date() else {
        return CheckResult::skipped(names::CLOCK_SKEW, "the API server sent no Date header");
    };
    let Some(server) = crate::node::health::parse_http_date(&date.header) else {
        return CheckResult::skipped(
            names::CLOCK_SKEW,
            format!(
                "the API server's Date header {:?} is not a date",
                date.header
            ),
        );
    };
    skew_result(crate::node::health::clock_skew(server, date.received_at))
}

/// The verdict on a clock `skew` seconds behind the server (negative: ahead).
fn skew_result(skew: f64) -> CheckResult {
    let how = if skew >= 0.0 { "behind" } else { "ahead of" };
    let message = format!(
        "this machine's clock is {:.0}s {how} the API server's",
        skew.abs()
    );
    let fix = "synchronize the clock (chrony or systemd-timesyncd: `timedatectl set-ntp true`)";
    if skew.abs() > SKEW_ERROR {
        CheckResult::error(
            names::CLOCK_SKEW,
            format!(
                "{message}: more than {}s, so kubelet's new certificate (backdated 5 minutes by \
                 the signer) may not be valid yet, and TLS fails",
                SKEW_ERROR as u64
            ),
            fix,
        )
    } else if skew.abs() > SKEW_WARNING {
        CheckResult::warning(
            names::CLOCK_SKEW,
            format!("{message}: more than {}s", SKEW_WARNING as u64),
            fix,
        )
    } else {
        CheckResult::pass(names::CLOCK_SKEW, message)
    }
}

// ---------------------------------------------------------------------------------------------
// Local checks

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

/// Error: writing kubelet's files on `/`, and running kubelet, need root (as kubeadm).
fn privileged_user(paths: &Paths, host: &dyn Host) -> CheckResult {
    if !host.is_machine_root(paths.root()) {
        return CheckResult::pass(
            names::IS_PRIVILEGED_USER,
            format!(
                "--root {}: writing into a staging directory needs no root",
                paths.root().display()
            ),
        );
    }
    match host.effective_uid() {
        Some(0) => CheckResult::pass(names::IS_PRIVILEGED_USER, "running as root"),
        Some(uid) => CheckResult::error(
            names::IS_PRIVILEGED_USER,
            format!("not running as root (uid {uid}): kubelet's files under / need root"),
            "run it as root (sudo), or use --root DIR to prepare a staging directory",
        ),
        None => CheckResult::skipped(
            names::IS_PRIVILEGED_USER,
            "cannot read this process's user id",
        ),
    }
}

/// Error when missing: `run` cannot start kubelet, and a joined node without one never becomes
/// Ready. Returns the path to run for the version check.
fn kubelet_binary(
    paths: &Paths,
    on_machine: bool,
    which: &KubeletBinary,
) -> (CheckResult, Option<PathBuf>) {
    let candidates: Vec<(PathBuf, String)> = match which {
        KubeletBinary::Given(p) => vec![(p.clone(), p.display().to_string())],
        KubeletBinary::Search => KUBELET_SEARCH_PATHS
            .iter()
            .map(|p| (paths.host(p), (*p).to_owned()))
            .collect(),
    };
    for (path, shown) in &candidates {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
                let at = if on_machine || matches!(which, KubeletBinary::Given(_)) {
                    String::new()
                } else {
                    format!(" under {}", paths.root().display())
                };
                return (
                    CheckResult::pass(names::KUBELET_BINARY, format!("kubelet at {shown}{at}")),
                    Some(path.clone()),
                );
            }
            Ok(_) => {
                return (
                    CheckResult::error(
                        names::KUBELET_BINARY,
                        format!("{shown} is not an executable file"),
                        format!("reinstall kubelet, or `chmod 755 {shown}`"),
                    ),
                    None,
                )
            }
            Err(_) => continue,
        }
    }
    let looked: Vec<&str> = candidates.iter().map(|(_, s)| s.as_str()).collect();
    let under = if on_machine {
        String::new()
    } else {
        format!(" under {}", paths.root().display())
    };
    (
        CheckResult::error(
            names::KUBELET_BINARY,
            format!("no kubelet binary at {}{under}", looked.join(", ")),
            "install kubelet (the package of the cluster's minor version, or the binary from \
             dl.k8s.io), or pass --kubelet PATH",
        ),
        None,
    )
}

/// Error when kubelet is newer than the API server or more than 3 minor versions older: the
/// supported skew; an unsupported kubelet may fail in ways that are hard to trace.
fn kubelet_version(host: &dyn Host, kubelet: Option<&Path>, server: &ServerVersion) -> CheckResult {
    let Some(kubelet) = kubelet else {
        return CheckResult::skipped(
            names::KUBELET_VERSION,
            format!("no kubelet binary (see {})", names::KUBELET_BINARY),
        );
    };
    let version = match run_version(host, kubelet) {
        Ok(out) => match KubeVersion::find(&out) {
            Some(v) => v,
            None => {
                return CheckResult::error(
                    names::KUBELET_VERSION,
                    format!(
                        "`{} --version` printed no version ({:?})",
                        kubelet.display(),
                        out.trim()
                    ),
                    "check that the binary is kubelet",
                )
            }
        },
        Err(e) => {
            return CheckResult::error(
                names::KUBELET_VERSION,
                format!("`{} --version` failed: {e}", kubelet.display()),
                "check that the binary is a working kubelet for this machine's architecture",
            )
        }
    };
    match server {
        ServerVersion::NotAsked => CheckResult::pass(
            names::KUBELET_VERSION,
            format!(
                "kubelet {}; its skew against the control plane is not checked without a server \
                 (`kaas-join preflight --server ...` checks it)",
                version.text
            ),
        ),
        ServerVersion::Unknown(why) => CheckResult::pass(
            names::KUBELET_VERSION,
            format!(
                "kubelet {}; the control plane's version is unknown ({why}), skew not checked",
                version.text
            ),
        ),
        ServerVersion::Known(api) => {
            let fix = format!(
                "install kubelet {}.{} (or up to {} minor versions older)",
                api.major, api.minor, MAX_KUBELET_MINOR_SKEW
            );
            if (version.major, version.minor) > (api.major, api.minor) {
                CheckResult::error(
                    names::KUBELET_VERSION,
                    format!(
                        "kubelet {} is newer than the control plane {}: not a supported skew",
                        version.text, api.text
                    ),
                    fix,
                )
            } else if version.major != api.major
                || api.minor - version.minor > MAX_KUBELET_MINOR_SKEW
            {
                CheckResult::error(
                    names::KUBELET_VERSION,
                    format!(
                        "kubelet {} is more than {MAX_KUBELET_MINOR_SKEW} minor versions older \
                         than the control plane {}: not a supported skew",
                        version.text, api.text
                    ),
                    fix,
                )
            } else {
                CheckResult::pass(
                    names::KUBELET_VERSION,
                    format!(
                        "kubelet {}, control plane {}: within the supported skew (kubelet at \
                         most {MAX_KUBELET_MINOR_SKEW} minor versions older, never newer)",
                        version.text, api.text
                    ),
                )
            }
        }
    }
}

/// `kubelet --version`'s standard output; killed after [`KUBELET_VERSION_TIMEOUT`].
fn run_version(host: &dyn Host, kubelet: &Path) -> io::Result<String> {
    let out = host.run(kubelet, &["--version"], KUBELET_VERSION_TIMEOUT)?;
    match out.code {
        Some(0) => Ok(out.stdout),
        Some(code) => Err(io::Error::other(format!("it exited with code {code}"))),
        None => Err(io::Error::other("a signal ended it")),
    }
}

/// Error when the runtime's socket does not accept a connection: kubelet cannot run a pod
/// without it (kubeadm: error). The `bool` says whether the socket answered.
fn cri(paths: &Paths, endpoint: &Result<String, String>) -> (CheckResult, bool) {
    let endpoint = match endpoint {
        Ok(e) => e,
        Err(why) => {
            return (
                CheckResult::error(
                    names::CRI,
                    why.clone(),
                    "install and start containerd or CRI-O, or pass --cri-socket",
                ),
                false,
            )
        }
    };
    let Some(path) = endpoint
        .strip_prefix("unix://")
        .filter(|p| p.starts_with('/'))
    else {
        return (
            CheckResult::skipped(
                names::CRI,
                format!("only unix socket endpoints can be checked, not {endpoint}"),
            ),
            false,
        );
    };
    let runtime = host::runtime_of_endpoint(endpoint)
        .map(|r| format!(" ({})", r.name()))
        .unwrap_or_default();
    let host_path = paths.host(path);
    let fix = "start the container runtime (e.g. `systemctl enable --now containerd`), or pass \
               --cri-socket with the endpoint it listens on";
    match std::os::unix::net::UnixStream::connect(&host_path) {
        Ok(_) => (
            CheckResult::pass(
                names::CRI,
                format!("the container runtime{runtime} accepts connections at {endpoint}"),
            ),
            true,
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (
            CheckResult::error(
                names::CRI,
                format!(
                    "no socket at {}: the container runtime{runtime} is not running or not \
                     installed",
                    host_path.display()
                ),
                fix,
            ),
            false,
        ),
        Err(e) => (
            CheckResult::error(
                names::CRI,
                format!(
                    "cannot connect to the container runtime{runtime} at {}: {e}",
                    host_path.display()
                ),
                fix,
            ),
            false,
        ),
    }
}

/// Error when the driver kubelet will be given differs from the runtime's: kubelet then fails
/// to start pods ("misconfiguration: kubelet cgroup driver ... is different from docker cgroup
/// driver"), the classic first-day failure. Compared only while the runtime runs (its socket
/// answers): otherwise its configuration's defaults say nothing about a runtime that is not
/// there (the CRI check already fails).
fn cgroup_driver(
    paths: &Paths,
    endpoint: &Result<String, String>,
    socket_up: bool,
    given: Option<CgroupDriver>,
) -> CheckResult {
    let Ok(endpoint) = endpoint else {
        return CheckResult::skipped(
            names::CGROUP_DRIVER,
            format!("no container runtime endpoint (see {})", names::CRI),
        );
    };
    if !socket_up {
        return CheckResult::skipped(
            names::CGROUP_DRIVER,
            format!(
                "the container runtime does not answer at {endpoint} (see {}), so its cgroup \
                 driver cannot be told",
                names::CRI
            ),
        );
    }
    match (host::detect_cgroup_driver(paths, endpoint), given) {
        (Ok((runtime, how)), Some(kubelet)) if runtime == kubelet => CheckResult::pass(
            names::CGROUP_DRIVER,
            format!(
                "kubelet and the container runtime both use {} ({how})",
                kubelet.as_str()
            ),
        ),
        (Ok((runtime, how)), Some(kubelet)) => CheckResult::error(
            names::CGROUP_DRIVER,
            format!(
                "kubelet is given cgroup driver {} (--cgroup-driver or cgroupDriver) but the \
                 container runtime uses {} ({how}): kubelet would fail to start pods",
                kubelet.as_str(),
                runtime.as_str()
            ),
            format!(
                "pass --cgroup-driver {} (or change the runtime's configuration to {} and \
                 restart it)",
                runtime.as_str(),
                kubelet.as_str()
            ),
        ),
        (Ok((runtime, how)), None) => CheckResult::pass(
            names::CGROUP_DRIVER,
            format!(
                "kubelet will use {}, as the container runtime ({how})",
                runtime.as_str()
            ),
        ),
        (Err(e), Some(kubelet)) => CheckResult::skipped(
            names::CGROUP_DRIVER,
            format!(
                "kubelet is given {}; the runtime's driver cannot be read to compare ({e})",
                kubelet.as_str()
            ),
        ),
        (Err(e), None) => CheckResult::warning(
            names::CGROUP_DRIVER,
            format!(
                "cannot tell which cgroup driver the container runtime uses ({e}); the join \
                 will give kubelet systemd (kubeadm's default)"
            ),
            "pass --cgroup-driver systemd or cgroupfs, matching the runtime's configuration",
        ),
    }
}

/// A kernel file under the root, or why it cannot be judged.
enum KernelFile {
    Text(String),
    /// Absent on this machine (`/`): meaningful (a module not loaded, no swap support).
    Absent,
    /// Absent under another root (a staging directory has no /proc): cannot tell.
    NotHere(String),
    Unreadable(String),
}

fn read_kernel_file(paths: &Paths, on_machine: bool, node_path: &str) -> KernelFile {
    let path = paths.host(node_path);
    match std::fs::read_to_string(&path) {
        Ok(text) => KernelFile::Text(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound && on_machine => KernelFile::Absent,
        Err(e) if e.kind() == io::ErrorKind::NotFound => KernelFile::NotHere(format!(
            "{node_path} is not present under --root {}: cannot tell",
            paths.root().display()
        )),
        Err(e) => KernelFile::Unreadable(format!("cannot read {}: {e}", path.display())),
    }
}

/// Warning, as kubeadm: kubelet refuses to start with swap on only when `failSwapOn` is true
/// (its default), and a cluster may run kubelets with swap on purpose.
fn swap(paths: &Paths, on_machine: bool, overrides: Option<&Value>) -> CheckResult {
    let text = match read_kernel_file(paths, on_machine, "/proc/swaps") {
        KernelFile::Text(t) => t,
        // kubeadm: no /proc/swaps, "no reasons to warn".
        KernelFile::Absent => return CheckResult::pass(names::SWAP, "no /proc/swaps: no swap"),
        KernelFile::NotHere(why) | KernelFile::Unreadable(why) => {
            return CheckResult::skipped(names::SWAP, why)
        }
    };
    let devices: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if devices.is_empty() {
        return CheckResult::pass(names::SWAP, "swap is off");
    }
    let fail_swap_on = overrides
        .and_then(|o| o.get("failSwapOn"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if !fail_swap_on {
        return CheckResult::pass(
            names::SWAP,
            format!(
                "swap is on ({}) and kubelet is set to failSwapOn: false",
                devices.join(", ")
            ),
        );
    }
    CheckResult::warning(
        names::SWAP,
        format!(
            "swap is on ({}): kubelet refuses to start with swap unless failSwapOn is false",
            devices.join(", ")
        ),
        "turn swap off (`swapoff -a`, and remove it from /etc/fstab), or set failSwapOn: false \
         (and memorySwap) in the kubelet settings of the config file",
    )
}

/// A sysctl that must be 1. `error`: ip_forward (kubeadm: error; pod traffic cannot leave the
/// node without it); bridge-nf-call-iptables is a warning (kube-proxy's Service rules miss
/// bridged pod traffic without it, but some CNI plugins do not need it).
fn sysctl(
    paths: &Paths,
    on_machine: bool,
    name: &str,
    node_path: &str,
    key: &str,
    error: bool,
) -> CheckResult {
    let fix = format!(
        "`sysctl -w {key}=1`, and keep it with `echo {key}=1 > /etc/sysctl.d/99-kubernetes.conf`{}",
        if key.starts_with("net.bridge") {
            " (needs the br_netfilter module: `modprobe br_netfilter`)"
        } else {
            ""
        }
    );
    let found = |message: String| {
        if error {
            CheckResult::error(name, message, fix.clone())
        } else {
            CheckResult::warning(name, message, fix.clone())
        }
    };
    match read_kernel_file(paths, on_machine, node_path) {
        KernelFile::Text(t) if t.trim() == "1" => CheckResult::pass(name, format!("{key} = 1")),
        KernelFile::Text(t) => found(format!("{key} = {}, not 1", t.trim())),
        KernelFile::Absent => found(format!(
            "{node_path} does not exist (is the module that provides {key} loaded?)"
        )),
        KernelFile::NotHere(why) | KernelFile::Unreadable(why) => CheckResult::skipped(name, why),
    }
}

/// Warning when `overlay` or `br_netfilter` is not loaded: containerd's default snapshotter and
/// bridged pod networking need them, but some setups use neither, and a module may be loaded
/// on demand.
fn modules(paths: &Paths, on_machine: bool) -> CheckResult {
    const WANTED: [&str; 2] = ["overlay", "br_netfilter"];
    let proc_modules = read_kernel_file(paths, on_machine, "/proc/modules");
    let sys_module = paths.host("/sys/module");
    let listed = |m: &str| match &proc_modules {
        KernelFile::Text(t) => t.lines().any(|l| l.split_whitespace().next() == Some(m)),
        _ => false,
    };
    // Modules built into the kernel are in /sys/module but not in /proc/modules.
    let built_in = |m: &str| sys_module.join(m).is_dir();
    if !matches!(proc_modules, KernelFile::Text(_)) && !sys_module.is_dir() {
        let why = match proc_modules {
            KernelFile::NotHere(why) | KernelFile::Unreadable(why) => why,
            _ => "neither /proc/modules nor /sys/module can be read".to_owned(),
        };
        return CheckResult::skipped(names::SYSTEM_VERIFICATION, why);
    }
    let missing: Vec<&str> = WANTED
        .iter()
        .copied()
        .filter(|m| !listed(m) && !built_in(m))
        .collect();
    if missing.is_empty() {
        CheckResult::pass(
            names::SYSTEM_VERIFICATION,
            "kernel modules overlay and br_netfilter are loaded",
        )
    } else {
        CheckResult::warning(
            names::SYSTEM_VERIFICATION,
            format!(
                "kernel module{} {} not loaded",
                plural(missing.len()),
                missing.join(", ")
            ),
            format!(
                "`modprobe {}`, and keep {} with `printf '%s\\n' {} > \
                 /etc/modules-load.d/k8s.conf`",
                missing.join(" "),
                if missing.len() == 1 { "it" } else { "them" },
                missing.join(" ")
            ),
        )
    }
}

/// The kubelet ports, from the user's overrides (`port`/`address`, `healthzPort`/
/// `healthzBindAddress`) or kubelet's defaults. Error when one is in use: kubelet exits at
/// start when it cannot bind them (kubeadm: error).
fn ports(host: &dyn Host, overrides: Option<&Value>) -> Vec<CheckResult> {
    let get = |key: &str| overrides.and_then(|o| o.get(key));
    let port = |key: &str, default: u16| {
        get(key)
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(default)
    };
    let addr = |key: &str, default: IpAddr| {
        get(key)
            .and_then(Value::as_str)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let mut out = vec![port_check(
        host,
        port("port", KUBELET_PORT),
        addr("address", IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        "kubelet's API (port)",
    )];
    let healthz = port("healthzPort", KUBELET_HEALTHZ_PORT);
    if healthz == 0 {
        out.push(CheckResult::skipped(
            "Port-0",
            "kubelet's healthz endpoint is disabled (healthzPort: 0)",
        ));
    } else {
        out.push(port_check(
            host,
            healthz,
            addr("healthzBindAddress", IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "kubelet's healthz (healthzPort)",
        ));
    }
    out
}

fn port_check(host: &dyn Host, port: u16, ip: IpAddr, what: &str) -> CheckResult {
    let name = format!("Port-{port}");
    // A port in use may be one a test (or anything else) holds for a moment: look again.
    let mut state = host.port(ip, port);
    for _ in 1..PORT_ATTEMPTS {
        if state != PortState::InUse {
            break;
        }
        std::thread::sleep(PORT_RETRY);
        state = host.port(ip, port);
    }
    match state {
        PortState::Free => CheckResult::pass(&name, format!("{what}: {ip}:{port} is free")),
        PortState::InUse => CheckResult::error(
            &name,
            format!("{what}: port {port} is in use (another kubelet?)"),
            format!(
                "stop what listens on it (`ss -ltnp 'sport = :{port}'` shows it), or \
                 give kubelet another port in the config file's kubelet settings"
            ),
        ),
        PortState::Unusable(e) => CheckResult::error(
            &name,
            format!("{what}: cannot bind {ip}:{port}: {e}"),
            "run as root, or check the address in the kubelet settings",
        ),
    }
}

/// Error when a file kubelet reads exists and kaas-join did not write it (no state file): this
/// machine was joined by something else (kubeadm join, another cluster), and overwriting its
/// identity would take it from there (kubeadm: error). Files from our own earlier or half-done
/// join pass: a re-run resumes them.
fn file_available(paths: &Paths, name: &str, node_path: &str, ours: bool) -> CheckResult {
    let path = paths.host(node_path);
    if std::fs::symlink_metadata(&path).is_err() {
        return CheckResult::pass(name, format!("{node_path} does not exist yet"));
    }
    if ours {
        return CheckResult::pass(
            name,
            format!(
                "{node_path} exists from an earlier kaas-join join of this machine ({}): the \
                 join resumes or says already joined",
                state::STATE_FILE
            ),
        );
    }
    CheckResult::error(
        name,
        format!(
            "{node_path} already exists and kaas-join did not write it (no {}): this machine \
             was joined by something else (kubeadm join? another cluster?)",
            state::STATE_FILE
        ),
        "if this machine may leave that cluster, `kubeadm reset` it (or move the file aside); \
         otherwise do not join it again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FakeHost;
    use std::os::unix::net::UnixListener;

    /// A fake machine: a temporary root with /proc files, a kubelet script and a runtime socket,
    /// and a fake host answering for the user id, the ports and `kubelet --version`.
    struct FakeRoot {
        dir: tempfile::TempDir,
        _runtime: Option<UnixListener>,
        host: Arc<FakeHost>,
    }

    const CONTAINERD: &str = "unix:///run/containerd/containerd.sock";

    impl FakeRoot {
        fn new() -> FakeRoot {
            FakeRoot {
                dir: tempfile::tempdir().unwrap(),
                _runtime: None,
                host: Arc::new(FakeHost::new()),
            }
        }

        /// A healthy node: no swap, sysctls 1, modules loaded, kubelet v1.31.2, containerd
        /// listening with SystemdCgroup = true.
        fn healthy() -> FakeRoot {
            let mut r = FakeRoot::new();
            r.write(
                "/proc/swaps",
                "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
            );
            r.write("/proc/sys/net/ipv4/ip_forward", "1\n");
            r.write("/proc/sys/net/bridge/bridge-nf-call-iptables", "1\n");
            r.write(
                "/proc/modules",
                "overlay 151552 0 - Live 0x0\nbr_netfilter 32768 0 - Live 0x0\n",
            );
            r.kubelet("/usr/bin/kubelet", "Kubernetes v1.31.2", 0);
            r.write(
                "/etc/containerd/config.toml",
                "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n",
            );
            r.listen();
            r
        }

        fn path(&self, node_path: &str) -> PathBuf {
            Paths::new(self.dir.path()).host(node_path)
        }

        fn write(&self, node_path: &str, text: &str) {
            let p = self.path(node_path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }

        /// An executable kubelet at `node_path` whose `--version` prints `stdout` and exits
        /// with `code`.
        fn kubelet(&self, node_path: &str, stdout: &str, code: i32) {
            self.write(
                node_path,
                &format!("#!/bin/sh\necho '{stdout}'\nexit {code}\n"),
            );
            std::fs::set_permissions(self.path(node_path), std::fs::Permissions::from_mode(0o755))
                .unwrap();
            let out = crate::host::CommandOutput {
                code: Some(code),
                stdout: format!("{stdout}\n"),
                stderr: String::new(),
            };
            self.host.answer_run(&self.path(node_path), Ok(out));
        }

        fn listen(&mut self) {
            let p = self.path("/run/containerd/containerd.sock");
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            self._runtime = Some(UnixListener::bind(p).unwrap());
        }

        fn inputs(&self) -> LocalInputs {
            LocalInputs {
                root: self.dir.path().to_owned(),
                cri_socket: Ok(CONTAINERD.into()),
                cgroup_driver: Some(CgroupDriver::Systemd),
                // Ports nobody uses in these tests: each test its own.
                kubelet_overrides: None,
                kubelet: KubeletBinary::Search,
                server_version: ServerVersion::NotAsked,
                host: self.host.clone(),
            }
        }

        fn run(&self, inputs: &LocalInputs) -> Vec<CheckResult> {
            local_checks(inputs)
        }
    }

    fn find<'a>(checks: &'a [CheckResult], name: &str) -> &'a CheckResult {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name} in {checks:#?}"))
    }

    fn status(checks: &[CheckResult], name: &str) -> Status {
        find(checks, name).status
    }

    #[test]
    fn a_healthy_fake_machine_passes_every_local_check() {
        let r = FakeRoot::healthy();
        let checks = r.run(&r.inputs());
        for c in &checks {
            assert_eq!(c.status, Status::Pass, "{c:#?}");
        }
        assert!(find(&checks, names::KUBELET_VERSION)
            .message
            .contains("v1.31.2"));
        assert!(find(&checks, names::IS_PRIVILEGED_USER)
            .message
            .contains("staging directory needs no root"));
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        for n in [
            names::IS_PRIVILEGED_USER,
            names::KUBELET_BINARY,
            names::CRI,
            names::CGROUP_DRIVER,
            names::SWAP,
            names::IP_FORWARD,
            names::BRIDGE_NF,
            names::SYSTEM_VERIFICATION,
            names::KUBELET_CONF,
            names::BOOTSTRAP_KUBELET_CONF,
            names::CA_CRT,
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
    }

    #[test]
    fn kernel_checks_warn_and_fail() {
        let r = FakeRoot::healthy();
        r.write(
            "/proc/swaps",
            "Filename Type Size Used Priority\n/swap.img file 1048572 0 -2\n",
        );
        r.write("/proc/sys/net/ipv4/ip_forward", "0\n");
        r.write("/proc/sys/net/bridge/bridge-nf-call-iptables", "0\n");
        r.write("/proc/modules", "overlay 151552 0 - Live 0x0\n");
        let checks = r.run(&r.inputs());
        let swap = find(&checks, names::SWAP);
        assert_eq!(swap.status, Status::Warning, "{swap:?}");
        assert!(
            swap.message.contains("/swap.img") && swap.fix.as_ref().unwrap().contains("swapoff")
        );
        let fwd = find(&checks, names::IP_FORWARD);
        assert_eq!(fwd.status, Status::Error, "{fwd:?}");
        assert!(fwd.fix.as_ref().unwrap().contains("net.ipv4.ip_forward=1"));
        assert_eq!(status(&checks, names::BRIDGE_NF), Status::Warning);
        let m = find(&checks, names::SYSTEM_VERIFICATION);
        assert_eq!(m.status, Status::Warning, "{m:?}");
        assert!(m.message.contains("br_netfilter") && !m.message.contains("overlay"));
        // A module built into the kernel shows in /sys/module only.
        std::fs::create_dir_all(r.path("/sys/module/br_netfilter")).unwrap();
        assert_eq!(
            status(&r.run(&r.inputs()), names::SYSTEM_VERIFICATION),
            Status::Pass
        );
        // Swap with failSwapOn: false is what the user wants.
        let mut inputs = r.inputs();
        inputs.kubelet_overrides = Some(serde_norway::from_str("{failSwapOn: false}").unwrap());
        assert_eq!(status(&r.run(&inputs), names::SWAP), Status::Pass);
    }

    #[test]
    fn kernel_files_missing_under_a_staging_root_are_skipped() {
        let r = FakeRoot::new();
        let checks = r.run(&r.inputs());
        for n in [
            names::SWAP,
            names::IP_FORWARD,
            names::BRIDGE_NF,
            names::SYSTEM_VERIFICATION,
        ] {
            let c = find(&checks, n);
            assert_eq!(c.status, Status::Skipped, "{c:?}");
            assert!(c.message.contains("cannot tell"), "{c:?}");
        }
    }

    #[test]
    fn kubelet_missing_broken_and_versions() {
        let r = FakeRoot::new();
        let checks = r.run(&r.inputs());
        let c = find(&checks, names::KUBELET_BINARY);
        assert_eq!(c.status, Status::Error, "{c:?}");
        assert!(c
            .message
            .contains("/usr/bin/kubelet, /usr/local/bin/kubelet, /opt/bin/kubelet"));
        assert_eq!(status(&checks, names::KUBELET_VERSION), Status::Skipped);

        // Found in the second place; a given path is taken as is.
        r.kubelet("/usr/local/bin/kubelet", "Kubernetes v1.30.1", 0);
        assert_eq!(
            status(&r.run(&r.inputs()), names::KUBELET_BINARY),
            Status::Pass
        );
        let mut inputs = r.inputs();
        inputs.kubelet = KubeletBinary::Given(r.path("/usr/local/bin/kubelet"));
        let v = r.run(&inputs);
        assert_eq!(status(&v, names::KUBELET_BINARY), Status::Pass);
        assert!(find(&v, names::KUBELET_VERSION)
            .message
            .contains("not checked"));

        let skew = |server: &str| {
            let mut inputs = r.inputs();
            inputs.server_version = ServerVersion::Known(KubeVersion::find(server).unwrap());
            find(&r.run(&inputs), names::KUBELET_VERSION).clone()
        };
        assert_eq!(skew("v1.30.0").status, Status::Pass);
        assert_eq!(
            skew("v1.33.4").status,
            Status::Pass,
            "3 minors older is fine"
        );
        let old = skew("v1.34.0");
        assert_eq!(old.status, Status::Error, "{old:?}");
        assert!(old.message.contains("more than 3 minor"), "{old:?}");
        let newer = skew("v1.29.9");
        assert_eq!(newer.status, Status::Error);
        assert!(
            newer.message.contains("newer than the control plane"),
            "{newer:?}"
        );

        // Not executable; prints nothing; hangs past the timeout would take 5 s: not tested.
        r.write("/usr/bin/kubelet", "not a program");
        assert_eq!(
            status(&r.run(&r.inputs()), names::KUBELET_BINARY),
            Status::Error
        );
        r.kubelet("/usr/bin/kubelet", "hello", 0);
        let c = find(&r.run(&r.inputs()), names::KUBELET_VERSION).clone();
        assert_eq!(c.status, Status::Error, "{c:?}");
        r.kubelet("/usr/bin/kubelet", "", 3);
        let c = find(&r.run(&r.inputs()), names::KUBELET_VERSION).clone();
        assert!(c.message.contains("failed"), "{c:?}");
    }

    #[test]
    fn cri_socket_and_cgroup_driver() {
        let mut r = FakeRoot::new();
        let checks = r.run(&r.inputs());
        let c = find(&checks, names::CRI);
        assert_eq!(c.status, Status::Error);
        assert!(c.message.contains("no socket at"), "{c:?}");
        assert_eq!(status(&checks, names::CGROUP_DRIVER), Status::Skipped);

        let mut inputs = r.inputs();
        inputs.cri_socket = Err("no container runtime socket found".into());
        let checks = r.run(&inputs);
        assert_eq!(status(&checks, names::CRI), Status::Error);
        assert_eq!(status(&checks, names::CGROUP_DRIVER), Status::Skipped);

        // Listening, no containerd config: containerd's default is cgroupfs.
        r.listen();
        let checks = r.run(&r.inputs());
        assert_eq!(status(&checks, names::CRI), Status::Pass);
        let c = find(&checks, names::CGROUP_DRIVER);
        assert_eq!(c.status, Status::Error, "{c:?}");
        assert!(
            c.fix.as_ref().unwrap().contains("--cgroup-driver cgroupfs"),
            "{c:?}"
        );
        let mut inputs = r.inputs();
        inputs.cgroup_driver = None;
        assert_eq!(status(&r.run(&inputs), names::CGROUP_DRIVER), Status::Pass);
        inputs.cgroup_driver = Some(CgroupDriver::Cgroupfs);
        assert_eq!(status(&r.run(&inputs), names::CGROUP_DRIVER), Status::Pass);

        // An endpoint of an unknown runtime: the driver cannot be read.
        let other = r.path("/run/other.sock");
        let _l = UnixListener::bind(&other).unwrap();
        inputs.cri_socket = Ok("unix:///run/other.sock".into());
        inputs.cgroup_driver = None;
        let checks = r.run(&inputs);
        assert_eq!(status(&checks, names::CRI), Status::Pass);
        assert_eq!(status(&checks, names::CGROUP_DRIVER), Status::Warning);
        inputs.cgroup_driver = Some(CgroupDriver::Systemd);
        assert_eq!(
            status(&r.run(&inputs), names::CGROUP_DRIVER),
            Status::Skipped
        );
    }

    #[test]
    fn foreign_files_fail_ours_pass() {
        let r = FakeRoot::new();
        r.write(
            "/etc/kubernetes/kubelet.conf",
            "apiVersion: v1\nkind: Config\n",
        );
        r.write("/etc/kubernetes/pki/ca.crt", "pem");
        let checks = r.run(&r.inputs());
        for n in [names::KUBELET_CONF, names::CA_CRT] {
            let c = find(&checks, n);
            assert_eq!(c.status, Status::Error, "{c:?}");
            assert!(c.message.contains("kaas-join did not write it"), "{c:?}");
        }
        assert_eq!(status(&checks, names::BOOTSTRAP_KUBELET_CONF), Status::Pass);
        // With our state file they are from our own (earlier or half-done) join.
        r.write(state::STATE_FILE, "{}");
        let checks = r.run(&r.inputs());
        assert_eq!(status(&checks, names::KUBELET_CONF), Status::Pass);
        assert_eq!(status(&checks, names::CA_CRT), Status::Pass);
        // bootstrap-kubelet.conf is never ours.
        r.write("/etc/kubernetes/bootstrap-kubelet.conf", "x");
        assert_eq!(
            status(&r.run(&r.inputs()), names::BOOTSTRAP_KUBELET_CONF),
            Status::Error
        );
    }

    #[test]
    fn busy_ports_fail_with_the_overridden_port_in_the_name() {
        let host = FakeHost::new();
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        host.set_port(loopback, 20250, PortState::InUse);
        let overrides: Value =
            serde_norway::from_str("{port: 20250, address: 127.0.0.1, healthzPort: 0}").unwrap();
        let checks = ports(&host, Some(&overrides));
        let c = &checks[0];
        assert_eq!(c.name, "Port-20250");
        assert_eq!(c.status, Status::Error, "{c:?}");
        assert!(c.message.contains("in use"), "{c:?}");
        assert_eq!(checks[1].status, Status::Skipped);
        host.set_port(loopback, 20250, PortState::Free);
        assert_eq!(ports(&host, Some(&overrides))[0].status, Status::Pass);
        host.set_port(
            loopback,
            20250,
            PortState::Unusable("permission denied".into()),
        );
        let c = ports(&host, Some(&overrides))[0].clone();
        assert!(c.message.contains("permission denied"), "{c:?}");
    }

    #[test]
    fn the_real_machine_binds_its_ports() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(LinuxHost.port(loopback, port), PortState::InUse);
        drop(busy);
        assert_eq!(LinuxHost.port(loopback, port), PortState::Free);
    }

    #[test]
    fn root_is_required_only_on_the_machine_itself() {
        let r = FakeRoot::healthy();
        let on_machine = FakeHost::new()
            .with_machine_root(r.dir.path())
            .with_uid(Some(1000));
        let c = privileged_user(&Paths::new(r.dir.path()), &on_machine);
        assert_eq!(c.status, Status::Error, "{c:?}");
        assert!(c.message.contains("uid 1000"), "{c:?}");
        let root = FakeHost::new().with_machine_root(r.dir.path());
        assert_eq!(
            privileged_user(&Paths::new(r.dir.path()), &root).status,
            Status::Pass
        );
        let staging = FakeHost::new().with_uid(Some(1000));
        assert_eq!(
            privileged_user(&Paths::new(r.dir.path()), &staging).status,
            Status::Pass
        );
    }

    #[test]
    fn clock_skew_thresholds() {
        assert_eq!(skew_result(2.0).status, Status::Pass);
        assert_eq!(skew_result(-45.0).status, Status::Warning);
        let e = skew_result(400.0);
        assert_eq!(e.status, Status::Error);
        assert!(
            e.message.contains("behind") && e.message.contains("400s"),
            "{e:?}"
        );
    }

    #[test]
    fn ignore_list_parsing_and_report() {
        let list = config::ignore_list(
            &["CRI, swap".into(), "Port-10250".into()],
            &["cri".into(), "NoSuchCheck".into()],
        )
        .unwrap();
        assert_eq!(list, ["cri", "swap", "port-10250", "nosuchcheck"]);
        assert!(config::ignore_list(&["all,CRI".into()], &[]).is_err());
        assert_eq!(config::ignore_list(&["ALL".into()], &[]).unwrap(), ["all"]);

        let ignore = IgnoreList::new(&list);
        assert!(ignore.ignores("CRI") && ignore.ignores("Swap") && !ignore.ignores("ClockSkew"));
        let checks = vec![
            CheckResult::error(names::CRI, "no socket", "start it"),
            CheckResult::warning(names::SWAP, "swap on", "swapoff -a"),
            CheckResult::error(names::IP_FORWARD, "0", "sysctl"),
            CheckResult::pass(names::CLOCK_SKEW, "ok"),
            CheckResult::skipped(names::CLUSTER_INFO, "no server"),
        ];
        let report = PreflightReport::new(checks, &ignore, vec![]);
        assert_eq!(report.checks[0].status, Status::Ignored, "still shown");
        assert_eq!(report.checks[1].status, Status::Warning, "warnings stay");
        assert_eq!(report.failed, [names::IP_FORWARD]);
        assert_eq!(report.exit_code(), ExitCode::Preflight);
        assert!(
            report.notes[0].contains("nosuchcheck"),
            "{:?}",
            report.notes
        );
        assert!(
            report.notes[0].contains("CSRAutoApprove"),
            "{:?}",
            report.notes
        );
        let text = report.render(OutputFormat::Text);
        assert!(text.contains("[ignored] CRI"), "{text}");
        assert!(text.contains("fix: sysctl"), "{text}");
        assert!(
            text.contains("1 error (FileContent--proc-sys-net-ipv4-ip_forward)"),
            "{text}"
        );
        let problems = report.problems();
        assert_eq!(problems.len(), 3);
        assert!(problems[0]
            .1
            .starts_with("preflight [IGNORED CRI]: no socket; fix: start it"));

        let all = PreflightReport::new(
            vec![CheckResult::error(names::CRI, "x", "y")],
            &IgnoreList::new(&["all".into()]),
            vec![],
        );
        assert_eq!(all.exit_code(), ExitCode::Ok);
        assert!(all.notes.is_empty());
    }

    #[test]
    fn json_shape() {
        let report = PreflightReport::new(
            vec![
                CheckResult::pass(names::SWAP, "swap is off"),
                CheckResult::error(names::CRI, "no socket", "start it"),
            ],
            &IgnoreList::default(),
            vec!["a note".into()],
        );
        let v: serde_json::Value =
            serde_json::from_str(&report.render(OutputFormat::Json)).unwrap();
        assert_eq!(v["checks"][0]["name"], "Swap");
        assert_eq!(v["checks"][0]["status"], "pass");
        assert!(v["checks"][0].get("fix").is_none());
        assert_eq!(v["checks"][1]["status"], "error");
        assert_eq!(v["checks"][1]["fix"], "start it");
        assert_eq!(v["summary"]["error"], 1);
        assert_eq!(v["summary"]["pass"], 1);
        assert_eq!(v["failed"], serde_json::json!(["CRI"]));
        assert_eq!(v["notes"], serde_json::json!(["a note"]));
    }

    #[test]
    fn versions_parse() {
        let v = KubeVersion::find("Kubernetes v1.31.2\n").unwrap();
        assert_eq!((v.major, v.minor, v.text.as_str()), (1, 31, "v1.31.2"));
        let v = KubeVersion::find("v1.30.4-eks-a737599").unwrap();
        assert_eq!((v.major, v.minor), (1, 30));
        assert!(KubeVersion::find("Kubernetes vX").is_none());
        assert!(KubeVersion::find("").is_none());
    }

    #[test]
    fn debug_hides_the_token() {
        let args = PreflightArgs {
            join: JoinArgs {
                token: Some("abcdef.0123456789abcdef".into()),
                ticket: Some("kj1.secret.x".into()),
                ..JoinArgs::default()
            },
            kubelet: None,
        };
        let dbg = format!("{args:?}");
        assert!(
            !dbg.contains("0123456789abcdef") && !dbg.contains("kj1"),
            "{dbg}"
        );
    }
}
