//! Request and response bodies as the apiserver reads and writes them: the size limit, JSON
//! decoding with its error messages, compact or pretty (Go-indented) JSON, the headers every
//! response carries (`Audit-Id`, `Cache-Control`, `Date`), and the injected body faults
//! (invalid JSON, a connection reset mid-body; see [`crate::faults`]).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::Response;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::status::Status;
use crate::util;

/// Request bodies larger than this are refused (413).
pub(super) const MAX_BODY: usize = 1 << 20;

/// A response body: a whole JSON document, or a watch stream fed by a task.
pub(super) enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

pub(super) fn base_response(code: u16, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() =
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    if let Ok(audit) = HeaderValue::from_str(&util::uuid()) {
        headers.insert("Audit-Id", audit);
    }
    headers.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, private"),
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// kube-apiserver's answer when priority and fairness (or max-in-flight) refuses a request: Go's
/// `http.Error` text with `Retry-After: 1` (`tooManyRequests` in the apiserver's filters), not a
/// Status (fixture `429-apf-anonymous-get-cluster-info.txt` and its `.headers`).
pub(super) fn too_many_requests() -> Response<Body> {
    let mut resp = base_response(
        429,
        "text/plain; charset=utf-8",
        Body::Full(Some(Bytes::from_static(
            b"Too many requests, please try again later.\n",
        ))),
    );
    let headers = resp.headers_mut();
    headers.insert("Retry-After", HeaderValue::from_static("1"));
    headers.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// A JSON response; compact bodies end with a newline (Go's json.Encoder), pretty ones do not.
pub(super) fn json_response(code: u16, compact: String, pretty: bool) -> Response<Body> {
    let body = if pretty {
        indent_json(&compact)
    } else {
        compact + "\n"
    };
    base_response(
        code,
        "application/json",
        Body::Full(Some(Bytes::from(body))),
    )
}

pub(super) fn status_response(status: &Status, pretty: bool) -> Response<Body> {
    json_response(status.code, status.to_json(), pretty)
}

/// Re-indents compact JSON like Go's `json.Indent(.., "", "  ")`, keeping key order;
/// empty objects and arrays stay `{}` / `[]`.
pub(super) fn indent_json(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut pending_open = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    for c in compact.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if pending_open {
            pending_open = false;
            if c == '}' || c == ']' {
                depth -= 1;
                out.push(c);
                continue;
            }
            newline(&mut out, depth);
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                depth += 1;
                pending_open = true;
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// The apiserver pretty-prints for `curl`/`Wget` user agents and `?pretty=true`.
pub(super) fn wants_pretty(headers: &HeaderMap, query: &str) -> bool {
    let agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if agent.starts_with("curl") || agent.starts_with("Wget") {
        return true;
    }
    util::parse_query(query)
        .iter()
        .any(|(k, v)| k == "pretty" && (v == "true" || v == "1"))
}

/// The `Date` header (`Fri, 27 Nov 2026 06:08:10 GMT`, as real apiservers send it), shifted by
/// [`crate::SandboxConfig::clock_offset_seconds`]. Set here rather than left to hyper so that
/// the offset applies; hyper adds none of its own when the header is present.
pub(super) fn http_date(offset_seconds: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_seconds);
    t.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap_or_default()
}

pub(super) async fn read_body(body: Incoming) -> Result<Bytes, Status> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(Status::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {MAX_BODY}"),
            None,
        )),
        Err(e) => Err(Status::bad_request(format!(
            "error reading the request body: {e}"
        ))),
    }
}

pub(super) fn parse_json(body: &[u8], kind: &str) -> Result<Value, Status> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Status::bad_request(format!(
            "the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; json parse error: {e}"
        ))
    })?;
    if !value.is_object() {
        return Err(Status::bad_request(format!(
            "the object provided is unrecognized (must be of type {kind}): the body is not a JSON object"
        )));
    }
    if let Some(k) = value.get("kind").and_then(Value::as_str) {
        if !k.is_empty() && k != kind {
            return Err(Status::bad_request(format!(
                "the object provided is unrecognized (must be of type {kind}): {k}"
            )));
        }
    }
    Ok(value)
}

/// Applies `Faults::invalid_json` and `Faults::reset_mid_body` to a response.
pub(super) fn apply_body_faults(
    faults: &crate::faults::Decision,
    resp: Response<Body>,
) -> Response<Body> {
    let mut resp = if faults.invalid_json {
        base_response(
            200,
            "application/json",
            Body::Full(Some(Bytes::from_static(crate::faults::INVALID_JSON_BODY))),
        )
    } else {
        resp
    };
    if !faults.reset {
        return resp;
    }
    // A Content-Length longer than what is sent: hyper closes the connection when the body ends.
    let (tx, rx) = mpsc::channel(1);
    let declared = match std::mem::replace(resp.body_mut(), Body::Stream(rx)) {
        Body::Full(bytes) => {
            let bytes = bytes.unwrap_or_default();
            let _ = tx.try_send(bytes.slice(..bytes.len() / 2));
            bytes.len().max(1)
        }
        Body::Stream(mut events) => {
            tokio::spawn(async move {
                if let Some(first) = events.recv().await {
                    let _ = tx.send(first).await;
                }
            });
            MAX_BODY
        }
    };
    resp.headers_mut()
        .insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(declared));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indent_like_go() {
        let compact =
            r#"{"kind":"Status","metadata":{},"items":[],"a":[1,{"b":"x,y:{}"}],"code":404}"#;
        assert_eq!(
            indent_json(compact),
            "{\n  \"kind\": \"Status\",\n  \"metadata\": {},\n  \"items\": [],\n  \"a\": [\n    1,\n    {\n      \"b\": \"x,y:{}\"\n    }\n  ],\n  \"code\": 404\n}"
        );
    }
}
