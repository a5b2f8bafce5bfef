//! The few Kubernetes API calls kaas-join makes, over rustls, with Status errors and size caps.
//!
//! One [`ApiClient`] per trust decision: [`Trust::Ca`] verifies the server against the cluster CA
//! (everything after discovery's first fetch); [`Trust::dangerous_any_server`] accepts any server
//! certificate and exists only for that first anonymous cluster-info fetch, whose content is then
//! proven by the JWS signature and the CA pin. Clients built from the same base share one
//! connection pool, so a join reuses its TLS connection where the server allows it.
//!
//! Every response body is read with a cap ([`MAX_BODY`]): a hostile or broken server cannot make us
//! allocate without bound. Errors carry the URL (never a credential) and sort into the classes the
//! join reports with distinct exit codes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::model::exit_code::ExitCode;
use crate::model::token::BootstrapToken;

/// Largest response body (or single watch event) we accept.
pub const MAX_BODY: usize = 4 << 20;
/// Time allowed for one ordinary request, connect included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const USER_AGENT: &str = concat!("kaas-join/", env!("CARGO_PKG_VERSION"));

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
}

impl ApiError {
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
            detail: "no answer before the deadline".into(),
        }
    }

    /// A server-suggested wait (429 / 5xx with `retryAfterSeconds`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Whom to trust as the API server.
#[derive(Clone)]
pub enum Trust {
    /// The cluster CA bundle (PEM).
    Ca(Vec<u8>),
    /// Any certificate at all. Only discovery's first fetch may use this; see [`dangerous`].
    DangerousAnyServer,
}

impl Trust {
    /// Named so that every use reads as what it is.
    pub fn dangerous_any_server() -> Trust {
        Trust::DangerousAnyServer
    }
}

/// Counts the HTTP requests sent (for the join report and the benchmark).
#[derive(Debug, Default)]
pub struct RequestCounter(AtomicU64);

impl RequestCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    bearer: Option<Arc<Zeroizing<String>>>,
    counter: Arc<RequestCounter>,
    /// The server's `Date` header of the last answer and our clock when it arrived.
    last_date: Arc<std::sync::Mutex<Option<ServerDate>>>,
}

/// A server `Date` header with the local time it was received, for clock-skew checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDate {
    /// The header as sent, e.g. `Fri, 27 Nov 2026 06:08:04 GMT`.
    pub header: String,
    pub received_at: std::time::SystemTime,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ApiClient {
    /// A client for `base` (`https://host:port`), anonymous until [`ApiClient::with_bearer`].
    pub fn new(
        base: &str,
        trust: &Trust,
        counter: Arc<RequestCounter>,
    ) -> Result<ApiClient, ApiError> {
        ApiClient::build(base, tls_config(trust, None)?, counter)
    }

    /// A client that authenticates with a client certificate: `identity_pem` holds the
    /// certificate chain and its private key (kubelet's `kubelet-client-current.pem` format).
    pub fn with_client_certificate(
        base: &str,
        ca_pem: &[u8],
        identity_pem: &[u8],
        counter: Arc<RequestCounter>,
    ) -> Result<ApiClient, ApiError> {
        let tls = tls_config(&Trust::Ca(ca_pem.to_vec()), Some(identity_pem))?;
        ApiClient::build(base, tls, counter)
    }

    fn build(
        base: &str,
        tls: rustls::ClientConfig,
        counter: Arc<RequestCounter>,
    ) -> Result<ApiClient, ApiError> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(USER_AGENT)
            .no_proxy()
            .build()
            .map_err(|e| ApiError::TlsSetup(e.to_string()))?;
        Ok(ApiClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            bearer: None,
            counter,
            last_date: Arc::default(),
        })
    }

    /// The `Date` header of the last answer received, if the server sent one.
    pub fn last_server_date(&self) -> Option<ServerDate> {
        self.last_date.lock().ok().and_then(|d| d.clone())
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same connection pool and trust, authenticating as the bootstrap token.
    pub fn with_bearer(&self, token: &BootstrapToken) -> ApiClient {
        ApiClient {
            bearer: Some(Arc::new(token.bearer())),
            ..self.clone()
        }
    }

    /// The same connection pool and trust, authenticating with any bearer token (an admin
    /// kubeconfig's `token`).
    pub fn with_bearer_token(&self, token: &str) -> ApiClient {
        ApiClient {
            bearer: Some(Arc::new(Zeroizing::new(token.to_string()))),
            ..self.clone()
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(bearer) = &self.bearer {
            req = req.bearer_auth(bearer.as_str());
        }
        req
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        method: &str,
        path: &str,
    ) -> Result<reqwest::Response, ApiError> {
        let url = self.url(path);
        let started = Instant::now();
        self.counter.add();
        let result = req.send().await;
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(resp) => {
                tracing::debug!(method, url = %url, status = resp.status().as_u16(), ms, "api request");
                if let Some(date) = resp
                    .headers()
                    .get(reqwest::header::DATE)
                    .and_then(|d| d.to_str().ok())
                {
                    if let Ok(mut last) = self.last_date.lock() {
                        *last = Some(ServerDate {
                            header: date.to_string(),
                            received_at: std::time::SystemTime::now(),
                        });
                    }
                }
                Ok(resp)
            }
            Err(err) => {
                tracing::debug!(method, url = %url, ms, error = %err, "api request failed");
                Err(classify(&url, &err))
            }
        }
    }

    /// GET `path`, returning the body of a 2xx answer.
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ApiError> {
        let req = self
            .request(reqwest::Method::GET, path)
            .timeout(REQUEST_TIMEOUT);
        let resp = self.send(req, "GET", path).await?;
        self.body_of(resp, path).await
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let body = self.get_bytes(path).await?;
        decode(&self.url(path), &body)
    }

    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let req = self
            .request(reqwest::Method::POST, path)
            .timeout(REQUEST_TIMEOUT)
            .json(body);
        let resp = self.send(req, "POST", path).await?;
        let body = self.body_of(resp, path).await?;
        decode(&self.url(path), &body)
    }

    /// PUT `path` (an update carrying the object's `metadata.resourceVersion`).
    pub async fn put_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let req = self
            .request(reqwest::Method::PUT, path)
            .timeout(REQUEST_TIMEOUT)
            .json(body);
        let resp = self.send(req, "PUT", path).await?;
        let body = self.body_of(resp, path).await?;
        decode(&self.url(path), &body)
    }

    /// DELETE `path`; the answer's body (a Status or the object) is not needed.
    pub async fn delete(&self, path: &str) -> Result<(), ApiError> {
        let req = self
            .request(reqwest::Method::DELETE, path)
            .timeout(REQUEST_TIMEOUT);
        let resp = self.send(req, "DELETE", path).await?;
        self.body_of(resp, path).await.map(|_| ())
    }

    /// PATCH `path` with `content_type` (e.g. `application/strategic-merge-patch+json`).
    pub async fn patch_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Decode {
            url: self.url(path),
            detail: e.to_string(),
        })?;
        let req = self
            .request(reqwest::Method::PATCH, path)
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
        let resp = self.send(req, "PATCH", path).await?;
        let body = self.body_of(resp, path).await?;
        decode(&self.url(path), &body)
    }

    /// Starts a watch (`path` carries `watch=true` and its query); events are read with
    /// [`WatchStream::next_event`]. No overall timeout: the server ends the watch at the
    /// `timeoutSeconds` the caller asked for, and the caller bounds its own wait.
    pub async fn watch(&self, path: &str) -> Result<WatchStream, ApiError> {
        let req = self.request(reqwest::Method::GET, path);
        let resp = self.send(req, "WATCH", path).await?;
        let url = self.url(path);
        if !resp.status().is_success() {
            let code = resp.status().as_u16();
            let retry_after = retry_after_header(&resp);
            let body = read_capped(&url, resp).await?;
            return Err(status_error(&url, code, retry_after, &body));
        }
        Ok(WatchStream {
            url,
            resp,
            buf: Vec::new(),
        })
    }

    async fn body_of(&self, resp: reqwest::Response, path: &str) -> Result<Vec<u8>, ApiError> {
        let url = self.url(path);
        let code = resp.status().as_u16();
        let ok = resp.status().is_success();
        let retry_after = retry_after_header(&resp);
        let body = read_capped(&url, resp).await?;
        if ok {
            Ok(body)
        } else {
            Err(status_error(&url, code, retry_after, &body))
        }
    }
}

async fn read_capped(url: &str, mut resp: reqwest::Response) -> Result<Vec<u8>, ApiError> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ApiError::TooLarge { url: url.into() });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| classify(url, &e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::TooLarge { url: url.into() });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn decode<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, ApiError> {
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

/// A `Retry-After` in seconds (the form kube-apiserver and proxies use; an HTTP date is
/// ignored), at most an hour.
fn retry_after_header(resp: &reqwest::Response) -> Option<Duration> {
    let value = resp.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(3600)))
}

fn status_error(url: &str, code: u16, retry_after: Option<Duration>, body: &[u8]) -> ApiError {
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

/// Sorts a transport error into unreachable / TLS / timeout, walking its source chain for the
/// rustls error that reqwest wraps.
fn classify(url: &str, err: &reqwest::Error) -> ApiError {
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

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        last = e.to_string();
        source = e.source();
    }
    last
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

fn tls_config(
    trust: &Trust,
    identity_pem: Option<&[u8]>,
) -> Result<rustls::ClientConfig, ApiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ApiError::TlsSetup(e.to_string()))?;
    let config = match trust {
        Trust::Ca(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for der in crate::model::pin::certificates_from_pem(pem)
                .map_err(|e| ApiError::TlsSetup(e.to_string()))?
            {
                roots
                    .add(rustls::pki_types::CertificateDer::from(der))
                    .map_err(|e| {
                        ApiError::TlsSetup(format!("the cluster CA is not usable: {e}"))
                    })?;
            }
            let builder = builder.with_root_certificates(roots);
            match identity_pem {
                None => builder.with_no_client_auth(),
                Some(pem) => {
                    let (certs, key) = client_identity(pem)?;
                    builder.with_client_auth_cert(certs, key).map_err(|e| {
                        ApiError::TlsSetup(format!("the client certificate is not usable: {e}"))
                    })?
                }
            }
        }
        Trust::DangerousAnyServer => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(dangerous::AnyServer(provider)))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Certificates and the private key from one PEM (kubelet's cert+key file).
fn client_identity(
    pem: &[u8],
) -> Result<
    (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    ApiError,
> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::TlsSetup(format!("bad client certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ApiError::TlsSetup(
            "no client certificate in the PEM".into(),
        ));
    }
    // The key's own parse error could quote key bytes; say only that it is unusable.
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
        ApiError::TlsSetup("no usable private key in the client certificate PEM".into())
    })?;
    Ok((certs, key))
}

/// The one place that skips server certificate verification.
///
/// kubeadm fetches cluster-info anonymously before it knows the CA; so do we. The answer is
/// trusted only after its JWS signature (keyed by the bootstrap token secret) and the CA pin are
/// checked, and the second fetch verifies TLS against the pinned CA. The handshake signature is
/// still checked, so the peer at least holds the key of the certificate it showed.
mod dangerous {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::DigitallySignedStruct;
    use std::sync::Arc;

    #[derive(Debug)]
    pub struct AnyServer(pub Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

/// One event of a watch stream (`{"type": ..., "object": ...}`).
#[derive(Debug, serde::Deserialize)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub object: serde_json::Value,
}

/// A watch response read as newline-delimited JSON events.
pub struct WatchStream {
    url: String,
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl WatchStream {
    /// The next event; `Ok(None)` when the server ended the stream.
    pub async fn next_event(&mut self) -> Result<Option<WatchEvent>, ApiError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line)
                    .map(Some)
                    .map_err(|e| ApiError::Decode {
                        url: self.url.clone(),
                        detail: format!("bad watch event: {e}"),
                    });
            }
            match self
                .resp
                .chunk()
                .await
                .map_err(|e| classify(&self.url, &e))?
            {
                Some(chunk) => {
                    if self.buf.len() + chunk.len() > MAX_BODY {
                        return Err(ApiError::TooLarge {
                            url: self.url.clone(),
                        });
                    }
                    self.buf.extend_from_slice(&chunk);
                }
                None if self.buf.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                // A final event without its newline.
                None => {
                    let line = std::mem::take(&mut self.buf);
                    return serde_json::from_slice(&line)
                        .map(Some)
                        .map_err(|e| ApiError::Decode {
                            url: self.url.clone(),
                            detail: format!("bad watch event: {e}"),
                        });
                }
            }
        }
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
