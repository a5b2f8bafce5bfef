//! The errors of an API call and how they are classified.
//!
//! [`ApiError`] is what every request of [`super::ApiClient`] fails with: the transport
//! ([`classify`] sorts reqwest's error into unreachable or TLS), a Kubernetes [`Status`] body or
//! what answered in its place ([`status_error`]), an oversized or undecodable body. Each error
//! says whether it is worth retrying and which exit code ends a command with it; the URL it
//! carries never holds a credential.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::model::exit_code::ExitCode;

use super::{MAX_BODY, REQUEST_TIMEOUT};

/// Why an API call failed; one line with the URL and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "cannot reach {url}: {detail}; check the address, the port and that nothing blocks it"
    )]
    Unreachable { url: String, detail: String },
    #[error("TLS with {url} failed: {detail}")]
    Tls { url: String, detail: String },
    #[error("{url}: {reason} ({code}): {message}")]
    Status {
        url: String,
        code: u16,
        reason: String,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("{url} does not answer like a Kubernetes API server (HTTP {code}: {detail}); is this the control plane's address and port?")]
    NotKubernetes {
        url: String,
        code: u16,
        detail: String,
    },
    #[error("{url} sent more than {MAX_BODY} bytes; refusing to read it")]
    TooLarge { url: String },
    #[error("cannot decode the answer of {url}: {detail}")]
    Decode { url: String, detail: String },
    #[error("cannot set up TLS: {0}")]
    TlsSetup(String),
}

/// The detail of [`ApiError::deadline_passed`].
const DEADLINE_PASSED: &str = "no answer before the deadline";

impl ApiError {
    /// The documented exit code when this error ends a command.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ApiError::Unreachable { .. } => ExitCode::Unreachable,
            _ if self.is_server_failure() => ExitCode::Unreachable,
            ApiError::Tls { .. } | ApiError::TlsSetup(_) => ExitCode::Tls,
            ApiError::Status { code: 401, .. } => ExitCode::TokenRejected,
            ApiError::Status { .. }
            | ApiError::NotKubernetes { .. }
            | ApiError::TooLarge { .. }
            | ApiError::Decode { .. } => ExitCode::NotKubernetes,
        }
    }

    /// The HTTP status of a Status error.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            ApiError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Worth retrying: the network, the server's load, a garbled answer, or a state that may
    /// change (403 while RBAC is being set up, 404 while cluster-info is not published yet).
    pub fn is_transient(&self) -> bool {
        match self {
            // A body that is not JSON at all is what a proxy's cut or error page looks like.
            ApiError::Unreachable { .. }
            | ApiError::Tls { .. }
            | ApiError::NotKubernetes { .. } => true,
            ApiError::Status { code, .. } => matches!(code, 403 | 404 | 409 | 429 | 500..=599),
            _ => false,
        }
    }

    /// The server answered but keeps failing (5xx, 429): for exit codes, the same class as
    /// unreachable.
    pub fn is_server_failure(&self) -> bool {
        matches!(self, ApiError::Status { code, .. } if *code == 429 || *code >= 500)
    }

    /// The error to report when `deadline` passed while waiting for `url`.
    pub fn deadline_passed(url: &str) -> ApiError {
        ApiError::Unreachable {
            url: url.into(),
            detail: DEADLINE_PASSED.into(),
        }
    }

    /// Whether this is [`ApiError::deadline_passed`]: our own deadline, not the server's answer.
    pub fn is_deadline_passed(&self) -> bool {
        matches!(self, ApiError::Unreachable { detail, .. } if detail == DEADLINE_PASSED)
    }

    /// A server-suggested wait (429 / 5xx with `retryAfterSeconds`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A Kubernetes `Status` body (the shape of every recorded error response).
#[derive(Debug, serde::Deserialize)]
pub struct Status {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub details: Option<StatusDetails>,
}

#[derive(Debug, serde::Deserialize)]
pub struct StatusDetails {
    #[serde(rename = "retryAfterSeconds", default)]
    pub retry_after_seconds: Option<u64>,
}

impl Status {
    /// `retry_after_header`: the response's `Retry-After`, used when the body has no
    /// `retryAfterSeconds` (kube-apiserver sends both; a proxy only the header).
    pub fn into_error(
        self,
        url: &str,
        http_code: u16,
        retry_after_header: Option<Duration>,
    ) -> ApiError {
        ApiError::Status {
            url: url.into(),
            code: if self.code != 0 { self.code } else { http_code },
            reason: if self.reason.is_empty() {
                "Unknown".into()
            } else {
                self.reason
            },
            message: self.message,
            retry_after: self
                .details
                .and_then(|d| d.retry_after_seconds)
                .map(Duration::from_secs)
                .or(retry_after_header),
        }
    }
}

/// The error for a non-2xx answer: its Status body when it has one, else what the code says
/// about who answered.
pub(super) fn status_error(
    url: &str,
    code: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> ApiError {
    match serde_json::from_slice::<Status>(body) {
        Ok(status) if status.kind == "Status" => status.into_error(url, code, retry_after),
        // A load balancer or proxy in front of the API server (its pods restarting, overload):
        // the same class as kube-apiserver's own 429/5xx, retried and honouring Retry-After,
        // not "this is not a Kubernetes API".
        _ if code == 429 || code >= 500 => ApiError::Status {
            url: url.into(),
            code,
            reason: reqwest::StatusCode::from_u16(code)
                .ok()
                .and_then(|c| c.canonical_reason())
                .unwrap_or("Unknown")
                .replace(' ', ""),
            message: format!(
                "answered by something in front of the API server, not a Kubernetes Status ({})",
                snippet(body)
            ),
            retry_after,
        },
        _ => ApiError::NotKubernetes {
            url: url.into(),
            code,
            detail: format!("no Kubernetes Status in the body ({})", snippet(body)),
        },
    }
}

/// A `Retry-After` in seconds (the form kube-apiserver and proxies use; an HTTP date is
/// ignored), at most an hour.
pub(super) fn retry_after_header(resp: &reqwest::Response) -> Option<Duration> {
    let value = resp.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(3600)))
}

/// A 2xx body as `T`; a body that is not JSON at all is "not Kubernetes", JSON of the wrong
/// shape a decode error.
pub(super) fn decode<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if serde_json::from_slice::<serde_json::Value>(body).is_err() {
            ApiError::NotKubernetes {
                url: url.into(),
                code: 200,
                detail: format!("the body is not JSON ({})", snippet(body)),
            }
        } else {
            ApiError::Decode {
                url: url.into(),
                detail: e.to_string(),
            }
        }
    })
}

/// Sorts a transport error into unreachable / TLS / timeout, walking its source chain for the
/// rustls error that reqwest wraps.
pub(super) fn classify(url: &str, err: &reqwest::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return ApiError::Tls {
                url: url.into(),
                detail: describe_tls(tls),
            };
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return ApiError::Tls {
                    url: url.into(),
                    detail: describe_tls(tls),
                };
            }
        }
        source = e.source();
    }
    let detail = if err.is_timeout() {
        format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())
    } else {
        root_cause(err)
    };
    ApiError::Unreachable {
        url: url.into(),
        detail,
    }
}

fn describe_tls(err: &rustls::Error) -> String {
    use rustls::CertificateError;
    match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the server's certificate is not signed by the cluster CA".into()
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
        | rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "the server's certificate is not valid for this address (its SANs do not name it)"
                .into()
        }
        rustls::Error::InvalidCertificate(CertificateError::Expired)
        | rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "the server's certificate has expired (or this machine's clock is wrong)".into()
        }
        rustls::Error::InvalidMessage(_) => "the server does not speak TLS on this port".into(),
        other => other.to_string(),
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        last = e.to_string();
        source = e.source();
    }
    last
}

/// The start of a body, printable, for error messages.
fn snippet(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(&body[..body.len().min(60)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().is_empty() {
        "empty".into()
    } else {
        format!("starts with {:?}", text.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::fixture;

    #[test]
    fn recorded_status_bodies_become_status_errors() {
        let body = fixture("403-anonymous-get-cluster-info-before-rbac.json");
        let err = status_error("https://x", 403, None, &body);
        match &err {
            ApiError::Status {
                code,
                reason,
                message,
                ..
            } => {
                assert_eq!(*code, 403);
                assert_eq!(reason, "Forbidden");
                assert!(message.contains("system:anonymous"));
            }
            other => panic!("{other:?}"),
        }
        assert!(err.is_transient());
        let err = status_error(
            "https://x",
            401,
            None,
            &fixture("401-invalid-bearer-token.json"),
        );
        assert_eq!(err.status_code(), Some(401));
        assert!(!err.is_transient());
    }

    #[test]
    fn html_is_not_kubernetes() {
        let err = status_error("https://x", 404, None, b"<html><body>nginx</body></html>");
        assert!(
            matches!(err, ApiError::NotKubernetes { code: 404, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("<html>"));
        let err = decode::<serde_json::Value>("https://x", b"<html>").unwrap_err();
        assert!(matches!(err, ApiError::NotKubernetes { .. }));
    }

    /// A proxy's 429/503 page (no Status body, only a Retry-After header) is the server
    /// failing, retried after the header's wait; kube-apiserver's body value wins over it.
    #[test]
    fn proxy_overload_pages_honour_retry_after_header() {
        let page = b"<html><body>503 Service Temporarily Unavailable</body></html>";
        let err = status_error("https://x", 503, Some(Duration::from_secs(7)), page);
        assert_eq!(err.status_code(), Some(503));
        assert!(err.is_transient() && err.is_server_failure(), "{err:?}");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        assert!(err.to_string().contains("ServiceUnavailable"), "{err}");
        let err = status_error("https://x", 429, None, b"slow down");
        assert_eq!(err.retry_after(), None);
        assert!(err.to_string().contains("TooManyRequests"), "{err}");
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"TooManyRequests","code":429,"details":{"retryAfterSeconds":2}}"#;
        let err = status_error("https://x", 429, Some(Duration::from_secs(9)), body);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"ServiceUnavailable","code":503}"#;
        let err = status_error("https://x", 503, Some(Duration::from_secs(9)), body);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(9)));
    }
}
