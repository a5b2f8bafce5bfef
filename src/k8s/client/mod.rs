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
//!
//! Here: the client, its trust and the request functions. `error` holds [`ApiError`] and how
//! answers are classified, `tls` the rustls configurations, `watch` the watch stream, `calls`
//! the name of each call for an [`ApiObserver`] (which a [`RequestCounter`] may carry). The
//! rest of [`crate::k8s`], `node::health` and `cmd::preflight` speak to the API server through
//! this module only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::model::token::BootstrapToken;

mod calls;
mod error;
mod tls;
mod watch;

pub use calls::{ApiCall, ApiObserver};
pub use error::{ApiError, Status, StatusDetails};
pub use watch::{WatchEvent, WatchStream};

use error::{classify, decode, retry_after_header, status_error};
use tls::tls_config;

/// Largest response body (or single watch event) we accept.
pub const MAX_BODY: usize = 4 << 20;
/// Time allowed for one ordinary request, connect included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const USER_AGENT: &str = concat!("kaas-join/", env!("CARGO_PKG_VERSION"));

/// Whom to trust as the API server.
#[derive(Clone)]
pub enum Trust {
    /// The cluster CA bundle (PEM).
    Ca(Vec<u8>),
    /// Any certificate at all. Only discovery's first fetch may use this; see `tls::dangerous`.
    DangerousAnyServer,
}

impl Trust {
    /// Named so that every use reads as what it is.
    pub fn dangerous_any_server() -> Trust {
        Trust::DangerousAnyServer
    }
}

/// Counts the HTTP requests sent (for the join report and the benchmark) and, when it has an
/// [`ApiObserver`], tells it how each was answered (`kaas-join run`'s metrics).
#[derive(Default)]
pub struct RequestCounter {
    sent: AtomicU64,
    observer: Option<Arc<dyn ApiObserver>>,
}

impl std::fmt::Debug for RequestCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCounter")
            .field("sent", &self.get())
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl RequestCounter {
    /// A counter that also reports every answer to `observer`.
    pub fn observed_by(observer: Arc<dyn ApiObserver>) -> RequestCounter {
        RequestCounter {
            sent: AtomicU64::new(0),
            observer: Some(observer),
        }
    }
    pub fn get(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    fn add(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
    fn answered(&self, method: &str, path: &str, code: Option<u16>) {
        if let Some(observer) = &self.observer {
            observer.answered(ApiCall::of(method, path), code);
        }
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
                self.counter
                    .answered(method, path, Some(resp.status().as_u16()));
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
                self.counter.answered(method, path, None);
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
        self.send_json(reqwest::Method::POST, path, body).await
    }

    /// PUT `path` (an update carrying the object's `metadata.resourceVersion`).
    pub async fn put_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    /// `method` `path` with a JSON body, decoding the JSON answer.
    async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let req = self
            .request(method.clone(), path)
            .timeout(REQUEST_TIMEOUT)
            .json(body);
        let resp = self.send(req, method.as_str(), path).await?;
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
            return Err(failure(&url, resp).await);
        }
        Ok(WatchStream::new(url, resp))
    }

    async fn body_of(&self, resp: reqwest::Response, path: &str) -> Result<Vec<u8>, ApiError> {
        let url = self.url(path);
        if resp.status().is_success() {
            read_capped(&url, resp).await
        } else {
            Err(failure(&url, resp).await)
        }
    }
}

/// The error a non-2xx answer stands for, from its (capped) body and `Retry-After`.
async fn failure(url: &str, resp: reqwest::Response) -> ApiError {
    let code = resp.status().as_u16();
    let retry_after = retry_after_header(&resp);
    match read_capped(url, resp).await {
        Ok(body) => status_error(url, code, retry_after, &body),
        Err(err) => err,
    }
}

/// The whole body, refused past [`MAX_BODY`] (announced or read).
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
