//! Finds and verifies the cluster exactly as `kubeadm join` does (token discovery).
//!
//! 1. GET `kube-public/cluster-info` anonymously, not yet verifying TLS (we do not know the CA).
//! 2. Verify `data["jws-kubeconfig-<token-id>"]`, a detached JWS keyed by the token secret, over
//!    `data.kubeconfig`: only someone holding the token could have signed it.
//! 3. Check the CA pin: SHA-256 of the SubjectPublicKeyInfo of a CA certificate in the
//!    kubeconfig's bundle must equal one of the given `--discovery-token-ca-cert-hash` values.
//! 4. GET cluster-info again, now verifying TLS against that CA, and require the same kubeconfig:
//!    the server holds a key the CA vouches for.
//!
//! Failures that may heal (unreachable, 403/404 before the control plane published cluster-info,
//! the signature not added yet) are retried with [`crate::model::backoff`] until the discovery timeout;
//! failures that cannot heal (wrong token, wrong pin, not a Kubernetes API) stop at once. From here
//! on the join talks to the `server` named in cluster-info, as kubeadm does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::k8s::client::{ApiClient, ApiError, RequestCounter, Trust};
use crate::model::backoff::Backoff;
use crate::model::exit_code::ExitCode;
use crate::model::jws::{self, JwsError};
use crate::model::kubeconfig::{self, ClusterEndpoint};
use crate::model::pin::{self, CaPin};
use crate::model::token::BootstrapToken;

pub const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
/// Non-JSON answers in a row from one endpoint before it is judged "not a Kubernetes API".
const MAX_GARBLED: u32 = 3;

/// What discovery hands to the rest of the join.
#[derive(Debug)]
pub struct Discovered {
    /// The discovery endpoint that answered.
    pub endpoint: String,
    /// The API server named in cluster-info (kubelet's server from now on).
    pub server: String,
    /// The cluster CA bundle from cluster-info (PEM).
    pub ca_pem: Vec<u8>,
    /// The pin that matched; `None` with `--discovery-token-unsafe-skip-ca-verification`.
    pub matched_pin: Option<CaPin>,
    /// A client for `server`, verifying TLS against `ca_pem`, still anonymous.
    pub client: ApiClient,
    pub retries: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("discovery failed: {0}")]
    Unreachable(ApiError),
    #[error("discovery failed: {0}")]
    Tls(ApiError),
    #[error("{url} refuses to show cluster-info to anonymous clients ({code} {reason}); the control plane has not published kube-public/cluster-info or lacks the Role and RoleBinding that let system:anonymous read it (kubeadm init creates them; on other control planes run `kaas-join cluster prepare` with an admin kubeconfig)")]
    AnonymousDenied {
        url: String,
        code: u16,
        reason: String,
    },
    #[error("cluster-info at {url} has no signature for token id {token_id:?}: the token is unknown, expired, lacks usage-bootstrap-signing, or was created seconds ago (kube-controller-manager's bootstrapsigner adds it); check `kubeadm token list` on the control plane")]
    NoSignature { url: String, token_id: String },
    #[error("cluster-info at {url} is signed for token id {token_id:?}, but not with this token's secret: the token is wrong (compare its 16-character secret with `kubeadm token list`)")]
    SignatureMismatch { url: String, token_id: String },
    #[error("the cluster CA from {url} does not match any given --discovery-token-ca-cert-hash: the server has {found}, you gave {expected}; check the hash, or that this is the right cluster")]
    PinMismatch {
        url: String,
        found: String,
        expected: String,
    },
    #[error("cluster-info at {url} is not usable: {detail}")]
    Invalid { url: String, detail: String },
    #[error("{0}")]
    NotKubernetes(ApiError),
    #[error("{url} served a different cluster-info over verified TLS than over the first, unverified connection; something between this machine and the control plane is changing answers, refusing to go on")]
    Changed { url: String },
}

impl DiscoveryError {
    /// The documented exit code: each way discovery fails has its own.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            DiscoveryError::Unreachable(_) => ExitCode::Unreachable,
            DiscoveryError::Tls(_) => ExitCode::Tls,
            DiscoveryError::AnonymousDenied { .. } => ExitCode::AnonymousDenied,
            DiscoveryError::NoSignature { .. } => ExitCode::NoSignature,
            DiscoveryError::SignatureMismatch { .. } => ExitCode::SignatureMismatch,
            DiscoveryError::PinMismatch { .. } => ExitCode::PinMismatch,
            DiscoveryError::Invalid { .. }
            | DiscoveryError::NotKubernetes(_)
            | DiscoveryError::Changed { .. } => ExitCode::NotKubernetes,
        }
    }
}

impl DiscoveryError {
    fn may_heal(&self) -> bool {
        // A verified fetch that fails TLS, a wrong token or pin, or a server that is not a
        // Kubernetes API will not heal by waiting.
        matches!(
            self,
            DiscoveryError::Unreachable(_)
                | DiscoveryError::AnonymousDenied { .. }
                | DiscoveryError::NoSignature { .. }
        )
    }
}

#[derive(Debug, serde::Deserialize)]
struct ConfigMap {
    #[serde(default)]
    data: BTreeMap<String, String>,
}

/// Inputs of discovery, borrowed from the join configuration.
pub struct DiscoveryRequest<'a> {
    pub endpoints: &'a [String],
    pub token: &'a BootstrapToken,
    pub pins: &'a [CaPin],
    pub unsafe_skip_ca_verification: bool,
    pub timeout: Duration,
    pub counter: Arc<RequestCounter>,
}

impl<'a> DiscoveryRequest<'a> {
    /// What `cfg` says to discover with (servers, token, pins, timeout).
    pub fn of(cfg: &'a crate::config::JoinConfig, counter: Arc<RequestCounter>) -> Self {
        DiscoveryRequest {
            endpoints: &cfg.servers,
            token: &cfg.token,
            pins: &cfg.ca_pins,
            unsafe_skip_ca_verification: cfg.unsafe_skip_ca_verification,
            timeout: cfg.discovery_timeout,
            counter,
        }
    }
}

/// Runs discovery against each endpoint in turn, retrying what may heal until the timeout.
pub async fn discover(req: &DiscoveryRequest<'_>) -> Result<Discovered, DiscoveryError> {
    // One deadline for the backoff and the attempts: two clocks read apart let one more attempt
    // start in the gap, which could only time out.
    let deadline = Instant::now() + req.timeout;
    let mut backoff = Backoff::discovery(deadline);
    let insecure: Vec<ApiClient> = req
        .endpoints
        .iter()
        .map(|e| ApiClient::new(e, &Trust::dangerous_any_server(), req.counter.clone()))
        .collect::<Result<_, _>>()
        .map_err(DiscoveryError::Unreachable)?;
    let mut last_reported = String::new();
    // Garbled answers in a row, per endpoint: a proxy's hiccup heals, a web server that is not
    // the API server does not, so give up on it after a few.
    let mut garbled = vec![0u32; insecure.len()];
    // The last real answer: an attempt cut by the deadline says less than the 403 before it.
    let mut last: Option<DiscoveryError> = None;
    loop {
        for (i, client) in insecure.iter().enumerate() {
            // A stalled answer must not outlive the discovery timeout.
            let result = match tokio::time::timeout_at(deadline, attempt(client, req)).await {
                Ok(result) => result,
                Err(_) => {
                    let cut = DiscoveryError::Unreachable(ApiError::deadline_passed(&format!(
                        "{}{CLUSTER_INFO_PATH}",
                        client.base()
                    )));
                    return Err(timed_out(req, &backoff, last.unwrap_or(cut)));
                }
            };
            if matches!(result, Err(DiscoveryError::NotKubernetes(_))) {
                garbled[i] += 1;
            } else {
                garbled[i] = 0;
            }
            match result {
                Ok(mut found) => {
                    found.retries = backoff.retries();
                    return Ok(found);
                }
                Err(err) if err.may_heal() || (garbled[i] > 0 && garbled[i] < MAX_GARBLED) => {
                    // Say each new kind of failure once, loudly; repeats go to debug.
                    let text = err.to_string();
                    if text != last_reported {
                        tracing::warn!(endpoint = client.base(), "{text}; retrying");
                        last_reported = text;
                    } else {
                        tracing::debug!(endpoint = client.base(), "{text}; retrying");
                    }
                    last = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        // The last wait is cut to the deadline: an attempt started then could only time out
        // and would hide the real cause (403, no signature) behind "no answer before the
        // deadline".
        if !backoff.wait().await || Instant::now() >= deadline {
            let err = last.expect("at least one endpoint was tried");
            return Err(timed_out(req, &backoff, err));
        }
    }
}

fn timed_out(req: &DiscoveryRequest<'_>, backoff: &Backoff, err: DiscoveryError) -> DiscoveryError {
    tracing::error!(
        timeout_s = req.timeout.as_secs(),
        retries = backoff.retries(),
        "discovery timed out"
    );
    err
}

/// One discovery against one endpoint: the steps of the module doc, in order.
async fn attempt(
    insecure: &ApiClient,
    req: &DiscoveryRequest<'_>,
) -> Result<Discovered, DiscoveryError> {
    let url = format!("{}{}", insecure.base(), CLUSTER_INFO_PATH);
    let first = fetch_cluster_info(insecure, &url, true).await?;
    let kubeconfig_text = signed_kubeconfig(&first, req.token, &url)?;
    let (cluster, certs) = published_cluster(kubeconfig_text, &url)?;
    let server_client = |base: &str| verified_client(base, &cluster.ca_pem, req, &url);

    if req.unsafe_skip_ca_verification {
        // kubeadm skips the second fetch too: without a pin it would prove nothing.
        return Ok(Discovered {
            endpoint: insecure.base().to_string(),
            client: server_client(&cluster.server)?,
            server: cluster.server,
            ca_pem: cluster.ca_pem,
            matched_pin: None,
            retries: 0,
        });
    }

    let matched = matching_pin(&certs, req.pins, &url)?;

    // The second fetch, verified against the pinned CA, from the same endpoint.
    let verified = server_client(insecure.base())?;
    let second = fetch_cluster_info(&verified, &url, false).await?;
    if second.data.get("kubeconfig") != Some(kubeconfig_text) {
        return Err(DiscoveryError::Changed { url });
    }

    // Talk to cluster-info's server from now on; share the pool when it is the same address.
    let client = if verified.base() == cluster.server.trim_end_matches('/') {
        verified
    } else {
        server_client(&cluster.server)?
    };
    Ok(Discovered {
        endpoint: insecure.base().to_string(),
        server: cluster.server,
        ca_pem: cluster.ca_pem,
        matched_pin: Some(matched),
        client,
        retries: 0,
    })
}

fn invalid(url: &str, detail: impl Into<String>) -> DiscoveryError {
    DiscoveryError::Invalid {
        url: url.to_string(),
        detail: detail.into(),
    }
}

/// cluster-info's kubeconfig, once its `jws-kubeconfig-<token id>` signature is checked against
/// the token.
fn signed_kubeconfig<'a>(
    cluster_info: &'a ConfigMap,
    token: &BootstrapToken,
    url: &str,
) -> Result<&'a String, DiscoveryError> {
    let kubeconfig_text = cluster_info
        .data
        .get("kubeconfig")
        .ok_or_else(|| invalid(url, "the ConfigMap has no data.kubeconfig"))?;
    let token_id = token.id().to_string();
    let signature = cluster_info
        .data
        .get(&format!("jws-kubeconfig-{token_id}"))
        .ok_or_else(|| DiscoveryError::NoSignature {
            url: url.to_string(),
            token_id: token_id.clone(),
        })?;
    jws::verify_detached(kubeconfig_text.as_bytes(), signature, token).map_err(|e| match e {
        JwsError::Mismatch => DiscoveryError::SignatureMismatch {
            url: url.to_string(),
            token_id: token_id.clone(),
        },
        other => invalid(url, format!("jws-kubeconfig-{token_id}: {other}")),
    })?;
    Ok(kubeconfig_text)
}

/// The one cluster of the signed kubeconfig (server and CA bundle) and the DER certificates of
/// its CA bundle.
fn published_cluster(
    kubeconfig_text: &str,
    url: &str,
) -> Result<(ClusterEndpoint, Vec<Vec<u8>>), DiscoveryError> {
    let parsed = kubeconfig::parse(kubeconfig_text).map_err(|e| invalid(url, e.to_string()))?;
    if parsed.clusters.len() != 1 {
        return Err(invalid(
            url,
            format!(
                "its kubeconfig holds {} clusters, kubeadm requires exactly one",
                parsed.clusters.len()
            ),
        ));
    }
    let cluster = kubeconfig::cluster_endpoint(&parsed).map_err(|e| invalid(url, e.to_string()))?;
    let certs = pin::certificates_from_pem(&cluster.ca_pem)
        .map_err(|e| invalid(url, format!("certificate-authority-data: {e}")))?;
    Ok((cluster, certs))
}

/// The pin among `pins` that one of the CA certificates has; else the pins found and expected.
fn matching_pin(certs: &[Vec<u8>], pins: &[CaPin], url: &str) -> Result<CaPin, DiscoveryError> {
    pin::first_match(certs, pins)
        .map_err(|e| invalid(url, e.to_string()))?
        .ok_or_else(|| {
            let found: Vec<String> = certs
                .iter()
                .filter_map(|der| CaPin::of_certificate_der(der).ok())
                .map(|p| p.to_string())
                .collect();
            DiscoveryError::PinMismatch {
                url: url.to_string(),
                found: found.join(", "),
                expected: pins
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })
}

/// An anonymous client for `base` that verifies the server against the cluster CA.
fn verified_client(
    base: &str,
    ca_pem: &[u8],
    req: &DiscoveryRequest<'_>,
    url: &str,
) -> Result<ApiClient, DiscoveryError> {
    ApiClient::new(base, &Trust::Ca(ca_pem.to_vec()), req.counter.clone())
        .map_err(|e| invalid(url, e.to_string()))
}

/// GETs cluster-info with `client`, sorting failures into discovery's classes (`unverified`: the
/// first fetch, where a TLS failure means the port does not speak TLS like an API server).
async fn fetch_cluster_info(
    client: &ApiClient,
    url: &str,
    unverified: bool,
) -> Result<ConfigMap, DiscoveryError> {
    client
        .get_json::<ConfigMap>(CLUSTER_INFO_PATH)
        .await
        .map_err(|err| match err {
            ApiError::Status {
                code, ref reason, ..
            } if matches!(code, 401 | 403 | 404) => DiscoveryError::AnonymousDenied {
                url: url.to_string(),
                code,
                reason: reason.clone(),
            },
            ApiError::Status { code, .. } if code >= 500 || code == 429 => {
                DiscoveryError::Unreachable(err)
            }
            ApiError::Unreachable { .. } => DiscoveryError::Unreachable(err),
            ApiError::Tls { .. } if unverified => DiscoveryError::NotKubernetes(err),
            ApiError::Tls { .. } => DiscoveryError::Tls(err),
            ApiError::Decode { ref detail, .. } => DiscoveryError::Invalid {
                url: url.to_string(),
                detail: detail.clone(),
            },
            other => DiscoveryError::NotKubernetes(other),
        })
}
