//! A small REST client for the real API server, as any identity (the admin's certificate, a
//! node's certificate, a bearer token, anonymous): what the kit and the tests use to set the
//! control plane up and to check what kaas-join did. Never the code under test.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::processes::{Processes, POLL};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long [`Api::apply`] retries an object the server is not ready for.
const APPLY_WAIT: Duration = Duration::from_secs(60);

/// One answer: status, headers, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    bearer: Option<String>,
}

impl std::fmt::Debug for Api {
    // The bearer token stays out of Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Api {
    pub fn new(base: &str, tls: rustls::ClientConfig) -> Api {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap();
        Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            bearer: None,
        }
    }

    /// The same client sending `Authorization: Bearer <token>`.
    pub fn with_bearer(&self, token: &str) -> Api {
        Api {
            bearer: Some(token.to_string()),
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path` with an optional body (`content_type` for it); transport errors are
    /// `Err` so that readiness waits can retry them.
    pub async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Answer, String> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = &self.bearer {
            req = req.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        self.try_send(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send(
            reqwest::Method::POST,
            path,
            Some(("application/json", bytes)),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send(
            reqwest::Method::PUT,
            path,
            Some(("application/json", bytes)),
        )
        .await
    }

    /// A PATCH with `content_type` (`application/merge-patch+json`, `...strategic-merge-patch+json`).
    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send(reqwest::Method::PATCH, path, Some((content_type, bytes)))
            .await
    }

    /// Creates `object` at `path`: 201 Created or 409 AlreadyExists is success; 404 (namespace
    /// not there yet), 429 and 5xx are retried for [`APPLY_WAIT`]; anything else fails.
    pub async fn apply(&self, path: &str, object: &Value) {
        let deadline = Instant::now() + APPLY_WAIT;
        loop {
            let a = self.post(path, object).await;
            match a.status {
                201 | 409 => return,
                404 | 429 | 500..=599 if Instant::now() < deadline => {
                    tokio::time::sleep(POLL).await
                }
                status => panic!(
                    "POST {path} {} answered {status}: {}",
                    object["metadata"]["name"], a.body
                ),
            }
        }
    }

    /// Waits until `GET path` answers 200 (bounded by [`Processes::wait_until`]).
    pub async fn wait_ready(&self, procs: &mut Processes, path: &str) {
        let what = format!("GET {}{path} answering 200", self.base);
        procs
            .wait_until(&what, || async {
                let a = self.try_send(reqwest::Method::GET, path, None).await?;
                if a.status == 200 {
                    Ok(())
                } else {
                    Err(format!("{} {}", a.status, a.body))
                }
            })
            .await;
    }
}

/// What a watch answered: its status and headers, the events (one JSON line each) and whether
/// the server ended the stream itself (rather than `limit` passing first).
#[derive(Debug, Clone)]
pub struct WatchAnswer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub lines: Vec<String>,
    pub ended_by_server: bool,
}

impl WatchAnswer {
    /// The `type` of each event.
    pub fn types(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("(not an event: {l})"))
            })
            .collect()
    }
}

impl Api {
    /// GETs the watch `path` and reads its events until the server ends it or `limit` passes.
    pub async fn watch(&self, path: &str, limit: Duration) -> WatchAnswer {
        // The client's own timeout would cut the stream: a client of its own without one.
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .timeout(limit + REQUEST_TIMEOUT);
        if let Some(token) = &self.bearer {
            req = req.bearer_auth(token);
        }
        let mut resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("watch {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut buf = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        let ended_by_server = loop {
            match tokio::time::timeout_at(deadline, resp.chunk()).await {
                Err(_) => break false,
                Ok(Ok(Some(bytes))) => buf.extend_from_slice(&bytes),
                Ok(Ok(None)) | Ok(Err(_)) => break true,
            }
        };
        let text = String::from_utf8_lossy(&buf);
        WatchAnswer {
            status,
            headers,
            lines: text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect(),
            ended_by_server,
        }
    }
}
