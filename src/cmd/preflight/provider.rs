//! The provider's side, asked as the token before anything is written: discovery
//! ([`crate::k8s::discovery`]: the token's signature in cluster-info and the CA pin), two
//! SelfSubjectAccessReviews ([`crate::k8s::bootstrap::may_create_csr`]: may it create CSRs,
//! will its CSR be auto-approved), the clock skew from the answers' `Date` headers, and the
//! server's `/version` for the kubelet version skew ([`super::kubelet`]).

use std::sync::Arc;

use super::kubelet::ServerVersion;
use super::names;
use super::report::CheckResult;
use crate::config::JoinConfig;
use crate::k8s::client::{ApiClient, ApiError, RequestCounter};
use crate::k8s::discovery::{self, DiscoveryError, DiscoveryRequest};
use crate::k8s::server_version::server_version;

/// kubeadm's ClusterRoleBindings for bootstrap tokens (`kaas-join cluster prepare` makes them).
const BOOTSTRAP_BINDING: &str = "kubeadm:kubelet-bootstrap";
const BOOTSTRAP_ROLE: &str = "system:node-bootstrapper";
const AUTOAPPROVE_BINDING: &str = "kubeadm:node-autoapprove-bootstrap";
const TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// Clock skew above this is a warning (kaas-join run's ClockSkew condition uses the same).
const SKEW_WARNING: f64 = 30.0;
/// Clock skew above this is an error: kube-controller-manager's signer backdates certificates by
/// 5 minutes, so a clock further behind sees kubelet's new certificate as not yet valid.
const SKEW_ERROR: f64 = 300.0;

/// The note of a run without a server: what was not checked, and how to check it.
pub(super) const NO_SERVER_NOTE: &str = "no --server (or join ticket) given: only this machine \
     was checked; give the server, the token and the CA pin to check the control plane's side too";

/// The provider's checks when no server was given: each skipped, and no server version.
pub(super) fn not_checked_without_server() -> (Vec<CheckResult>, ServerVersion) {
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
    let server_version = match server_version(&found.client).await {
        Ok(version) => ServerVersion::Known(version),
        Err(why) => ServerVersion::Unknown(why),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::preflight::Status;

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
}
