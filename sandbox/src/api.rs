//! The HTTPS server: TLS accept, authentication, fault injection, authorization, routing and
//! the handlers for the node-facing API (cluster-info, kubeadm ConfigMaps, Nodes, Events,
//! CertificateSigningRequests with list/watch, SelfSubjectAccessReviews).

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, DATE, USER_AGENT};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use crate::approver;
use crate::authz::{self, Attrs, User};
use crate::status::{Cause, Res, Status};
use crate::store::{
    ConfigMap, Csr, CsrSpec, CsrStatus, Event, Generic, Kind, Node, Obj, ObjectMeta, Secret,
    Selector,
};
use crate::{util, RequestRecord, Shared};

/// Request bodies larger than this are refused (413).
pub(crate) const MAX_BODY: usize = 1 << 20;
/// A watch without `timeoutSeconds` ends after this (the apiserver picks 30-60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /version`, as recorded (`fixtures/200-version-anonymous.json`).
const VERSION: &str = r#"{"major":"1","minor":"32","gitVersion":"v1.32.0","gitCommit":"cd13ec4ae44e35ce12aefbb05627be4474ff2b1f","gitTreeState":"clean","buildDate":"2026-11-27T05:54:22Z","goVersion":"go1.27.3","compiler":"gc","platform":"linux/amd64"}"#;

/// A response body: a whole JSON document, or a watch stream fed by a task.
pub(crate) enum Body {
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

/// Returned by the service to make hyper close the connection without answering.
#[derive(Debug)]
struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}

/// The TLS client certificate of a connection.
enum ClientCert {
    None,
    /// Signed by the cluster CA: this user.
    Valid(User),
    /// Presented but not ours: requests without another credential get 401.
    Invalid,
}

/// Accepts connections until `stop` flips; dropping the task closes them all.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    connections.spawn(connection(shared.clone(), acceptor.clone(), tcp));
                    while connections.try_join_next().is_some() {}
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    connections.abort_all();
}

async fn connection(shared: Arc<Shared>, acceptor: TlsAcceptor, tcp: TcpStream) {
    if shared.faults.take_tls_fail() {
        crate::faults::fail_tls_handshake(tcp).await;
        return;
    }
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let client = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        None => ClientCert::None,
        Some(der) => match shared.ca.client_identity(der.as_ref()) {
            Some((cn, orgs)) => ClientCert::Valid(User::authenticated(cn, orgs)),
            None => ClientCert::Invalid,
        },
    };
    let client = Arc::new(client);
    let date_header = !shared.config.omit_date_header;
    let service =
        hyper::service::service_fn(move |req| handle(shared.clone(), client.clone(), req));
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .auto_date_header(date_header)
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// Authentication as the apiserver's union authenticator does it: a CA-signed client
/// certificate wins, then a Bearer token (a bad one is 401), else anonymous (unless a foreign
/// client certificate was presented: 401). `None` means 401.
fn authenticate(shared: &Shared, client: &ClientCert, headers: &HeaderMap) -> Option<User> {
    if let ClientCert::Valid(user) = client {
        return Some(user.clone());
    }
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        });
    match bearer {
        Some(token) => shared.authenticate_token(&token),
        None if matches!(client, ClientCert::Invalid) => None,
        None => Some(User::anonymous()),
    }
}

async fn handle(
    shared: Arc<Shared>,
    client: Arc<ClientCert>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_string();
    let user = authenticate(&shared, &client, req.headers());
    let mut record = RequestRecord {
        method: req.method().to_string(),
        path: path.clone(),
        query: req.uri().query().unwrap_or("").to_string(),
        identity: user
            .as_ref()
            .map_or_else(|| "unauthenticated".to_string(), User::record_name),
        status: 0,
    };
    let query = req.uri().query().unwrap_or("");
    let faults = shared.faults.decide(req.method().as_str(), &path, query);
    if faults.drop {
        shared.record(record);
        return Err(DropConnection);
    }
    if !faults.delay.is_zero() {
        tokio::time::sleep(faults.delay).await;
    }
    let pretty = wants_pretty(req.headers(), req.uri().query().unwrap_or(""));
    let response = match (faults.fail, user) {
        (Some(code), _) => {
            let mut resp = status_response(&Status::for_code(code), pretty);
            if matches!(code, 429 | 503 | 504) {
                resp.headers_mut()
                    .insert("Retry-After", HeaderValue::from_static("1"));
            }
            resp
        }
        (None, None) => status_response(&Status::unauthorized(), pretty),
        (None, Some(user)) => route(&shared, &user, req, pretty).await,
    };
    let mut response = response;
    if !shared.config.omit_date_header {
        if let Ok(date) = HeaderValue::from_str(&http_date(shared.config.clock_offset_seconds)) {
            response.headers_mut().insert(DATE, date);
        }
    }
    let response = apply_body_faults(&faults, response);
    record.status = response.status().as_u16();
    tracing::debug!(method = %record.method, path = %record.path, identity = %record.identity, status = record.status, "request");
    shared.record(record);
    Ok(response)
}

/// The `Date` header (`Fri, 27 Nov 2026 06:08:10 GMT`, as real apiservers send it), shifted by
/// [`crate::SandboxConfig::clock_offset_seconds`]. Set here rather than left to hyper so that
/// the offset applies; hyper adds none of its own when the header is present.
fn http_date(offset_seconds: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_seconds);
    t.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap_or_default()
}

/// The apiserver pretty-prints for `curl`/`Wget` user agents and `?pretty=true`.
fn wants_pretty(headers: &HeaderMap, query: &str) -> bool {
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

/// Re-indents compact JSON like Go's `json.Indent(.., "", "  ")`, keeping key order;
/// empty objects and arrays stay `{}` / `[]`.
pub(crate) fn indent_json(compact: &str) -> String {
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

fn base_response(code: u16, content_type: &'static str, body: Body) -> Response<Body> {
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

/// A JSON response; compact bodies end with a newline (Go's json.Encoder), pretty ones do not.
fn json_response(code: u16, compact: String, pretty: bool) -> Response<Body> {
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

fn status_response(status: &Status, pretty: bool) -> Response<Body> {
    json_response(status.code, status.to_json(), pretty)
}

/// What the request is about, like the apiserver's RequestInfo.
#[derive(Debug)]
struct ResourceRequest {
    attrs: Attrs,
}

/// Parses `/api/v1/...` and `/apis/<group>/<version>/...`; `None` for non-resource paths.
fn parse_resource(method: &Method, path: &str, watch: bool) -> Option<ResourceRequest> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    let (namespace, rest) = if rest[0] == "namespaces" && rest.len() >= 3 {
        (rest[1], &rest[2..])
    } else {
        ("", rest)
    };
    let name = rest.get(1).copied().unwrap_or("");
    let verb = match *method {
        Method::GET | Method::HEAD if !name.is_empty() => "get",
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_empty() => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    };
    Some(ResourceRequest {
        attrs: Attrs {
            verb: verb.into(),
            group: group.into(),
            resource: rest[0].into(),
            subresource: rest.get(2).copied().unwrap_or("").into(),
            namespace: namespace.into(),
            name: name.into(),
            selected_name: None,
            path: None,
        },
    })
}

/// `fieldSelector=metadata.name=<name>` (the only field label served here).
fn parse_field_selector(selector: &str) -> Result<Option<String>, String> {
    let selector = selector.trim();
    if selector.is_empty() {
        return Ok(None);
    }
    let (field, value) = selector
        .split_once("==")
        .or_else(|| selector.split_once('='))
        .ok_or_else(|| format!("invalid selector: '{selector}'; can't understand '{selector}'"))?;
    if field.trim() != "metadata.name" || value.contains(',') {
        return Err(format!("field label not supported: {}", field.trim()));
    }
    Ok(Some(value.trim().to_string()))
}

async fn route(
    shared: &Arc<Shared>,
    user: &User,
    req: Request<Incoming>,
    pretty: bool,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let params = util::parse_query(parts.uri.query().unwrap_or(""));
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let watch = matches!(param("watch"), Some("true" | "1"));
    let Some(ResourceRequest { mut attrs }) =
        parse_resource(&parts.method, parts.uri.path(), watch)
    else {
        return non_resource(shared, user, &parts.method, parts.uri.path(), pretty);
    };
    // Secrets can also be selected by `type=<type>` (as `kubeadm token list` does).
    let mut secret_type: Option<String> = None;
    if matches!(attrs.verb.as_str(), "list" | "watch") {
        let selector = param("fieldSelector").unwrap_or("");
        let by_type = selector
            .split_once('=')
            .filter(|(f, _)| attrs.resource == "secrets" && f.trim() == "type");
        if let Some((_, value)) = by_type {
            secret_type = Some(value.trim_start_matches('=').trim().to_string());
        } else {
            match parse_field_selector(selector) {
                Ok(name) => attrs.selected_name = name,
                Err(message) => return status_response(&Status::bad_request(message), pretty),
            }
        }
    }
    // Resources the sandbox does not model at all are "not found" for authenticated users
    // (a real apiserver would authorize first; with no RBAC rules that is usually a 403).
    let modelled = leak_free_resource(&attrs.resource) != "resources"
        && (attrs.group.is_empty() || !leak_free_group(&attrs.group).is_empty());
    if !modelled && !user.is_anonymous() {
        return status_response(&Status::path_not_found(), pretty);
    }
    let decision = shared.authorize(user, &attrs);
    if !decision.allowed {
        let res = Res {
            resource: leak_free_resource(&attrs.resource),
            group: leak_free_group(&attrs.group),
        };
        let why = authz::forbidden_message(user, &attrs, &decision.deny_reason);
        let status = Status::forbidden(res, Some(attrs.name.as_str()), &why);
        return status_response(&status, pretty);
    }
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let needs_body = matches!(attrs.verb.as_str(), "create" | "patch" | "update");
    let rbac_kind =
        Kind::rbac(&attrs.resource).filter(|_| attrs.group == "rbac.authorization.k8s.io");
    let body = if needs_body {
        match read_body(body).await {
            Ok(b) => b,
            Err(status) => return status_response(&status, pretty),
        }
    } else {
        Bytes::new()
    };
    let a = &attrs;
    let result = match (
        a.group.as_str(),
        a.resource.as_str(),
        a.subresource.as_str(),
        a.verb.as_str(),
    ) {
        ("", "configmaps", "", "get") => get_object(
            shared,
            Kind::ConfigMap,
            Res::CONFIGMAPS,
            Some(&a.namespace),
            &a.name,
        ),
        ("", "configmaps", "", "create") if !a.namespace.is_empty() => {
            create_configmap(shared, &a.namespace, &body)
        }
        ("", "configmaps", "", "update") if !a.namespace.is_empty() => {
            update_configmap(shared, &a.namespace, &a.name, &body)
        }
        ("", "secrets", "", "create") if !a.namespace.is_empty() => {
            create_secret(shared, &a.namespace, &body)
        }
        ("", "secrets", "", "get") => get_object(
            shared,
            Kind::Secret,
            Res::SECRETS,
            Some(&a.namespace),
            &a.name,
        ),
        ("", "secrets", "", "list") => {
            Ok(list_secrets(shared, &a.namespace, secret_type.as_deref()))
        }
        ("", "secrets", "", "delete") if !a.namespace.is_empty() => {
            delete_secret(shared, &a.namespace, &a.name)
        }
        ("rbac.authorization.k8s.io", _, "", verb) if rbac_kind.is_some() => {
            let kind = rbac_kind.unwrap_or(Kind::Role);
            rbac_object(
                shared,
                kind,
                &a.resource,
                &a.namespace,
                &a.name,
                verb,
                &body,
            )
        }
        ("", "nodes", "", "get") => get_object(shared, Kind::Node, Res::NODES, None, &a.name),
        ("", "nodes", "", "list" | "watch") => {
            return list_or_watch(
                shared,
                Kind::Node,
                None,
                a.selected_name.clone(),
                &params,
                pretty,
            )
        }
        ("", "nodes", "", "create") => create_node(shared, user, &body),
        ("", "nodes", "", "delete") => delete_node(shared, &a.name),
        ("", "nodes", "" | "status", "patch") => {
            patch_node(shared, user, &a.name, &a.subresource, &content_type, &body)
        }
        ("", "events", "", "create") if !a.namespace.is_empty() => {
            create_event(shared, &a.namespace, &body)
        }
        ("", "events", "", "patch") if !a.namespace.is_empty() => {
            patch_event(shared, &a.namespace, &a.name, &content_type, &body)
        }
        ("certificates.k8s.io", "certificatesigningrequests", "", "create") => {
            create_csr(shared, user, &body)
        }
        ("certificates.k8s.io", "certificatesigningrequests", "", "get") => {
            get_object(shared, Kind::Csr, Res::CSRS, None, &a.name)
        }
        ("certificates.k8s.io", "certificatesigningrequests", "", "list" | "watch") => {
            return list_or_watch(
                shared,
                Kind::Csr,
                None,
                a.selected_name.clone(),
                &params,
                pretty,
            )
        }
        ("authorization.k8s.io", "selfsubjectaccessreviews", "", "create") => {
            ssar(shared, user, &body)
        }
        _ => Err(Status::path_not_found()),
    };
    match result {
        Ok((code, json)) => json_response(code, json, pretty),
        Err(status) => status_response(&status, pretty),
    }
}

/// `Res` wants `&'static str`; the resources the sandbox knows map to constants, anything else
/// to a generic name (its message still names what was asked through `forbidden_message`).
fn leak_free_resource(resource: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "configmaps",
        "nodes",
        "events",
        "secrets",
        "pods",
        "services",
        "namespaces",
        "leases",
        "certificatesigningrequests",
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "serviceaccounts",
        "endpoints",
        "persistentvolumes",
        "persistentvolumeclaims",
        "csinodes",
        "csidrivers",
        "runtimeclasses",
        "clusterroles",
        "clusterrolebindings",
        "roles",
        "rolebindings",
    ];
    KNOWN
        .iter()
        .find(|k| **k == resource)
        .copied()
        .unwrap_or("resources")
}

fn leak_free_group(group: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "",
        "certificates.k8s.io",
        "authorization.k8s.io",
        "coordination.k8s.io",
        "storage.k8s.io",
        "node.k8s.io",
        "rbac.authorization.k8s.io",
        "apps",
        "events.k8s.io",
    ];
    KNOWN.iter().find(|k| **k == group).copied().unwrap_or("")
}

fn non_resource(
    shared: &Shared,
    user: &User,
    method: &Method,
    path: &str,
    pretty: bool,
) -> Response<Body> {
    let verb = if *method == Method::GET || *method == Method::HEAD {
        "get"
    } else {
        "post"
    };
    let attrs = Attrs {
        verb: verb.into(),
        path: Some(path.to_string()),
        ..Attrs::default()
    };
    if !authz::authorize(user, &attrs, shared.config.style, None).allowed {
        return status_response(&Status::forbidden_path(&user.name, verb, path), pretty);
    }
    match path {
        "/version" | "/version/" if verb == "get" => json_response(200, VERSION.to_string(), true),
        "/healthz" | "/livez" | "/readyz" if verb == "get" => base_response(
            200,
            "text/plain; charset=utf-8",
            Body::Full(Some(Bytes::from_static(b"ok"))),
        ),
        _ => status_response(&Status::path_not_found(), pretty),
    }
}

async fn read_body(body: Incoming) -> Result<Bytes, Status> {
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

fn parse_json(body: &[u8], kind: &str) -> Result<Value, Status> {
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

type Handled = Result<(u16, String), Status>;

fn get_object(
    shared: &Shared,
    kind: Kind,
    res: Res,
    namespace: Option<&str>,
    name: &str,
) -> Handled {
    match shared.store.get(kind, namespace, name) {
        Some(obj) => Ok((200, obj.json())),
        None => Err(Status::not_found(res, name)),
    }
}

// ---------------------------------------------------------------------------------------------
// fault injection on response bodies (see `faults.rs`)

/// Applies `Faults::invalid_json` and `Faults::reset_mid_body` to a response.
fn apply_body_faults(faults: &crate::faults::Decision, resp: Response<Body>) -> Response<Body> {
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

// ---------------------------------------------------------------------------------------------
// list and watch

fn list_kind(kind: Kind) -> String {
    format!("{}List", kind.kind())
}

fn list_or_watch(
    shared: &Arc<Shared>,
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    params: &[(String, String)],
    pretty: bool,
) -> Response<Body> {
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let selector = Selector {
        kind,
        namespace,
        name,
    };
    if !matches!(param("watch"), Some("true" | "1")) {
        let (items, rv) = shared.store.list(&selector);
        let items: Vec<String> = items.iter().map(Obj::item_json).collect();
        let body = format!(
            "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"}},\"items\":[{}]}}",
            list_kind(kind),
            kind.api_version(),
            items.join(",")
        );
        return json_response(200, body, pretty);
    }
    let from = match param("resourceVersion").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                let status = Status::bad_request(format!(
                    "resourceVersion: Invalid value: \"{v}\": must be a number"
                ));
                return status_response(&status, pretty);
            }
        },
    };
    let timeout = param("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let bookmarks = matches!(param("allowWatchBookmarks"), Some("true" | "1"));
    let (tx, rx) = mpsc::channel(64);
    let watch = WatchRequest {
        selector,
        from,
        timeout,
        bookmarks,
    };
    shared.spawn(run_watch(shared.clone(), watch, tx));
    base_response(200, "application/json", Body::Stream(rx))
}

struct WatchRequest {
    selector: Selector,
    from: Option<u64>,
    timeout: Duration,
    bookmarks: bool,
}

fn error_line(status: &Status) -> Bytes {
    Bytes::from(format!(
        "{{\"type\":\"ERROR\",\"object\":{}}}\n",
        status.to_json()
    ))
}

/// Feeds one watch stream: the backlog, then live changes, until the timeout, a cut, a lagging
/// receiver (410 Expired) or the client going away.
async fn run_watch(shared: Arc<Shared>, w: WatchRequest, tx: mpsc::Sender<Bytes>) {
    let current = shared.store.resource_version();
    if shared.faults.take_watch_expired() {
        let oldest = current.saturating_sub(1);
        let _ = tx
            .send(error_line(&Status::expired(
                w.from.unwrap_or(oldest),
                oldest,
            )))
            .await;
        return;
    }
    let mut sub = match shared.store.subscribe(&w.selector, w.from) {
        Ok(sub) => sub,
        Err((requested, oldest)) => {
            let _ = tx
                .send(error_line(&Status::expired(requested, oldest)))
                .await;
            return;
        }
    };
    let start = Instant::now();
    let mut cut = shared.faults.watch_cut();
    let deadline_for = |cut: Option<Duration>| match cut {
        Some(c) if c < w.timeout => (start + c, true),
        _ => (start + w.timeout, false),
    };
    let (mut deadline, mut is_cut) = deadline_for(*cut.borrow_and_update());
    let mut budget = shared.faults.watch_event_limit();
    if budget == Some(0) {
        return;
    }
    for change in sub.backlog.drain(..) {
        if tx.send(Bytes::from(change.watch_line())).await.is_err()
            || crate::faults::spend_watch_event(&mut budget)
        {
            return;
        }
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                if w.bookmarks && !is_cut {
                    let bookmark = format!(
                        "{{\"type\":\"BOOKMARK\",\"object\":{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{}\"}}}}}}\n",
                        w.selector.kind.kind(),
                        w.selector.kind.api_version(),
                        shared.store.resource_version()
                    );
                    let _ = tx.send(Bytes::from(bookmark)).await;
                }
                return;
            }
            changed = cut.changed() => {
                if changed.is_err() {
                    return;
                }
                (deadline, is_cut) = deadline_for(*cut.borrow_and_update());
            }
            received = sub.live.recv() => match received {
                Ok(change) => {
                    if change.rv > sub.floor
                        && change.matches(&w.selector)
                        && (tx.send(Bytes::from(change.watch_line())).await.is_err()
                            || crate::faults::spend_watch_event(&mut budget))
                    {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let now = shared.store.resource_version();
                    let _ = tx.send(error_line(&Status::expired(sub.floor, now))).await;
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = tx.closed() => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CertificateSigningRequests

const VALID_USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

fn required(field: &str, detail: &str) -> Cause {
    let message = if detail.is_empty() {
        "Required value".to_string()
    } else {
        format!("Required value: {detail}")
    };
    cause("FieldValueRequired", field, message)
}

fn invalid(field: &str, value: &str, detail: &str) -> Cause {
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {value}: {detail}"),
    )
}

/// CSR names are not validated beyond what every object name must be (upstream's
/// `ValidateCertificateRequestName` returns nil: "We don't care what you call your certificate
/// requests"), which is why kubelet can use base64url names such as `node-csr-Sr7I_wB5...`.
/// Every name must still be a valid path segment (`path.IsValidPathSegmentName`).
fn path_segment_name_error(name: &str) -> Option<&'static str> {
    if name == "." || name == ".." {
        Some("may not be '.' or '..'")
    } else if name.contains('/') {
        Some("may not contain '/'")
    } else if name.contains('%') {
        Some("may not contain '%'")
    } else {
        None
    }
}

/// Decodes the PEM CSR and checks its self-signature, like `validateCSR`.
fn parse_csr_request(pem: &[u8]) -> Result<Vec<u8>, String> {
    let start = pem
        .windows(11)
        .position(|w| w == b"-----BEGIN ")
        .ok_or("PEM block type must be CERTIFICATE REQUEST")?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem[start..])
        .map_err(|_| "PEM block type must be CERTIFICATE REQUEST".to_string())?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err("PEM block type must be CERTIFICATE REQUEST".into());
    }
    let (_, req) = X509CertificationRequest::from_der(&block.contents)
        .map_err(|e| format!("asn1: structure error: {e}"))?;
    req.verify_signature()
        .map_err(|_| "x509: signature verification failure".to_string())?;
    Ok(block.contents)
}

fn create_csr(shared: &Arc<Shared>, user: &User, body: &[u8]) -> Handled {
    let value = parse_json(body, "CertificateSigningRequest")?;
    let meta = &value["metadata"];
    let given = meta["name"].as_str().filter(|s| !s.is_empty());
    let generate = meta["generateName"].as_str().filter(|s| !s.is_empty());
    let name = match (given, generate) {
        (Some(n), _) => n.to_string(),
        (None, Some(g)) => format!("{g}{}", util::generate_name_suffix()),
        (None, None) => String::new(),
    };
    let spec = &value["spec"];
    let request_b64 = spec["request"].as_str().unwrap_or("");
    let request_pem = STANDARD.decode(request_b64).map_err(|e| {
        Status::bad_request(format!(
            "CertificateSigningRequest in version \"v1\" cannot be handled as a CertificateSigningRequest: {e}"
        ))
    })?;
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if let Some(detail) = path_segment_name_error(&name) {
        causes.push(invalid("metadata.name", &format!("{name:?}"), detail));
    }
    let request_der = match parse_csr_request(&request_pem) {
        Ok(der) => Some(der),
        Err(detail) => {
            let shown = if request_pem.is_empty() {
                "[]byte(nil)".to_string()
            } else {
                format!("[]byte{{...{} bytes}}", request_pem.len())
            };
            causes.push(invalid("spec.request", &shown, &detail));
            None
        }
    };
    let signer = spec["signerName"].as_str().unwrap_or("");
    if signer.is_empty() {
        causes.push(required("spec.signerName", ""));
    } else if !signer.contains('/') || signer.starts_with('/') || signer.ends_with('/') {
        causes.push(invalid(
            "spec.signerName",
            &format!("{signer:?}"),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    let usages: Vec<String> = spec["usages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| u.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    if usages.is_empty() {
        causes.push(required("spec.usages", "usages must be provided"));
    }
    for (i, usage) in usages.iter().enumerate() {
        let field = format!("spec.usages[{i}]");
        if !VALID_USAGES.contains(&usage.as_str()) {
            let supported: Vec<String> = VALID_USAGES.iter().map(|u| format!("{u:?}")).collect();
            causes.push(cause(
                "FieldValueNotSupported",
                &field,
                format!(
                    "Unsupported value: {usage:?}: supported values: {}",
                    supported.join(", ")
                ),
            ));
        } else if usages[..i].contains(usage) {
            causes.push(cause(
                "FieldValueDuplicate",
                &field,
                format!("Duplicate value: {usage:?}"),
            ));
        }
    }
    let expiration_seconds = spec["expirationSeconds"].as_i64();
    if let Some(s) = expiration_seconds {
        if s < 600 {
            causes.push(invalid(
                "spec.expirationSeconds",
                &s.to_string(),
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    let Some(request_der) = request_der.filter(|_| causes.is_empty()) else {
        return Err(Status::invalid(
            "CertificateSigningRequest",
            "certificates.k8s.io",
            &name,
            causes,
        ));
    };
    let mut metadata = ObjectMeta::new(&name, None);
    metadata.generate_name = generate.filter(|_| given.is_none()).map(str::to_string);
    let csr = Csr {
        metadata,
        spec: CsrSpec {
            request: STANDARD.encode(&request_pem),
            signer_name: signer.to_string(),
            expiration_seconds,
            usages,
            username: user.name.clone(),
            uid: None,
            groups: user.groups.clone(),
        },
        status: CsrStatus::default(),
        request_der,
    };
    let created = shared
        .store
        .create(Obj::Csr(csr))
        .map_err(|()| Status::already_exists(Res::CSRS, &name))?;
    shared.spawn(approver::process(shared.clone(), name));
    Ok((201, created.json()))
}

// ---------------------------------------------------------------------------------------------
// Nodes and Events

fn string_map(v: &Value) -> Option<std::collections::BTreeMap<String, String>> {
    let map = v.as_object()?;
    Some(
        map.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect(),
    )
}

/// A Node as the apiserver stores a create request: admission adds the not-ready taint, and the
/// status gets Go's zero values for `daemonEndpoints` and `nodeInfo`
/// (`fixtures/201-node-create-as-node.json`).
pub(crate) fn new_node(name: &str, body: &Value) -> Node {
    let mut metadata = ObjectMeta::new(name, None);
    metadata.labels = string_map(&body["metadata"]["labels"]);
    metadata.annotations = string_map(&body["metadata"]["annotations"]);
    let mut spec = body
        .get("spec")
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    let taint = json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"});
    match spec.get_mut("taints").and_then(Value::as_array_mut) {
        Some(taints) => {
            if !taints.iter().any(|t| t["key"] == taint["key"]) {
                taints.push(taint);
            }
        }
        None => spec["taints"] = json!([taint]),
    }
    let mut status = body
        .get("status")
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    if status.get("daemonEndpoints").is_none() {
        status["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": 0}});
    }
    let info = status["nodeInfo"].as_object().cloned().unwrap_or_default();
    let mut filled = Map::new();
    for field in [
        "machineID",
        "systemUUID",
        "bootID",
        "kernelVersion",
        "osImage",
        "containerRuntimeVersion",
        "kubeletVersion",
        "kubeProxyVersion",
        "operatingSystem",
        "architecture",
    ] {
        filled.insert(
            field.into(),
            info.get(field).cloned().unwrap_or_else(|| json!("")),
        );
    }
    status["nodeInfo"] = Value::Object(filled);
    Node {
        metadata,
        spec,
        status,
    }
}

fn node_restriction(me: &str, name: &str) -> Status {
    Status::forbidden(
        Res::NODES,
        Some(name),
        &format!("node \"{me}\" is not allowed to modify node \"{name}\""),
    )
}

fn create_node(shared: &Shared, user: &User, body: &[u8]) -> Handled {
    let value = parse_json(body, "Node")?;
    let name = value["metadata"]["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        return Err(Status::invalid(
            "Node",
            "",
            "",
            vec![required(
                "metadata.name",
                "name or generateName is required",
            )],
        ));
    }
    let me = user.node_name().unwrap_or("");
    if me != name {
        return Err(node_restriction(me, &name));
    }
    let node = new_node(&name, &value);
    let created = shared
        .store
        .create(Obj::Node(node))
        .map_err(|()| Status::already_exists(Res::NODES, &name))?;
    Ok((201, created.json()))
}

/// Strategic-merge list keys for the Node fields the sandbox serves.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" | "addresses" => Some("type"),
        "taints" => Some("key"),
        _ => None,
    }
}

/// Merges a patch into `target`: JSON merge patch (RFC 7386), plus, when `strategic`, lists
/// with a merge key (`conditions`, `addresses` by `type`; `taints` by `key`) merged by key and
/// `$patch: delete` items removed. Other `$` directives are ignored.
pub(crate) fn merge(target: &mut Value, patch: &Value, strategic: bool) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            target.remove(key);
            continue;
        }
        match (strategic, merge_key(key), value) {
            (true, Some(mk), Value::Array(items)) => {
                let list = target.entry(key.clone()).or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                let Value::Array(list) = list else { continue };
                for item in items {
                    let Some(k) = item.get(mk) else {
                        list.push(item.clone());
                        continue;
                    };
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match list.iter().position(|e| e.get(mk) == Some(k)) {
                        Some(i) if delete => {
                            list.remove(i);
                        }
                        Some(i) => merge(&mut list[i], item, true),
                        None if delete => {}
                        None => {
                            let mut fresh = json!({});
                            merge(&mut fresh, item, true);
                            list.push(fresh);
                        }
                    }
                }
            }
            (_, _, Value::Object(_)) => merge(
                target.entry(key.clone()).or_insert(Value::Null),
                value,
                strategic,
            ),
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

fn patch_node(
    shared: &Shared,
    user: &User,
    name: &str,
    subresource: &str,
    content_type: &str,
    body: &[u8],
) -> Handled {
    if shared.store.get(Kind::Node, None, name).is_none() {
        return Err(Status::not_found(Res::NODES, name));
    }
    let me = user.node_name().unwrap_or("");
    if me != name {
        return Err(node_restriction(me, name));
    }
    let strategic = match content_type {
        "application/strategic-merge-patch+json" => true,
        "application/merge-patch+json" => false,
        _ => {
            return Err(Status::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (sandbox: only merge patches; got {content_type:?})"),
                None,
            ))
        }
    };
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))?;
    if subresource.is_empty() {
        if let Some(labels) = patch["metadata"]["labels"].as_object() {
            if let Some(label) = labels
                .keys()
                .find(|k| k.starts_with("node-restriction.kubernetes.io/"))
            {
                return Err(Status::forbidden(
                    Res::NODES,
                    Some(name),
                    &format!("is not allowed to modify labels: {label}"),
                ));
            }
        }
    }
    let updated = shared.store.update::<Status>(Kind::Node, None, name, |obj| {
        let Obj::Node(node) = obj else { return Ok(false) };
        let before = serde_json::to_value(&*node).map_err(|e| Status::bad_request(e.to_string()))?;
        if subresource == "status" {
            if let Some(status) = patch.get("status") {
                merge(&mut node.status, status, strategic);
            }
        } else {
            let mut meta = json!({
                "labels": node.metadata.labels.clone().unwrap_or_default(),
                "annotations": node.metadata.annotations.clone().unwrap_or_default(),
            });
            if let Some(m) = patch.get("metadata") {
                merge(&mut meta, &json!({"labels": m.get("labels").cloned().unwrap_or(json!({})), "annotations": m.get("annotations").cloned().unwrap_or(json!({}))}), strategic);
            }
            node.metadata.labels = string_map(&meta["labels"]).filter(|m| !m.is_empty());
            node.metadata.annotations = string_map(&meta["annotations"]).filter(|m| !m.is_empty());
            if let Some(spec) = patch.get("spec") {
                merge(&mut node.spec, spec, strategic);
            }
        }
        let after = serde_json::to_value(&*node).map_err(|e| Status::bad_request(e.to_string()))?;
        Ok(before != after)
    });
    match updated {
        None => Err(Status::not_found(Res::NODES, name)),
        Some(Err(status)) => Err(status),
        Some(Ok(obj)) => Ok((200, obj.json())),
    }
}

fn create_event(shared: &Shared, namespace: &str, body: &[u8]) -> Handled {
    let value = parse_json(body, "Event")?;
    let meta = &value["metadata"];
    if let Some(ns) = meta["namespace"].as_str().filter(|s| !s.is_empty()) {
        if ns != namespace {
            return Err(Status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
    }
    let name = match (
        meta["name"].as_str().filter(|s| !s.is_empty()),
        meta["generateName"].as_str(),
    ) {
        (Some(n), _) => n.to_string(),
        (None, Some(g)) if !g.is_empty() => format!("{g}{}", util::generate_name_suffix()),
        _ => {
            return Err(Status::invalid(
                "Event",
                "",
                "",
                vec![required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ))
        }
    };
    let involved_ns = value["involvedObject"]["namespace"].as_str().unwrap_or("");
    let mismatch = if involved_ns.is_empty() {
        namespace != "default"
    } else {
        namespace != involved_ns
    };
    if mismatch {
        return Err(Status::invalid(
            "Event",
            "",
            &name,
            vec![invalid(
                "involvedObject.namespace",
                &format!("{involved_ns:?}"),
                "does not match event.namespace",
            )],
        ));
    }
    let mut rest = value.as_object().cloned().unwrap_or_default();
    for key in ["kind", "apiVersion", "metadata"] {
        rest.remove(key);
    }
    rest.entry("eventTime").or_insert(Value::Null);
    let mut metadata = ObjectMeta::new(&name, Some(namespace));
    metadata.labels = string_map(&meta["labels"]);
    metadata.annotations = string_map(&meta["annotations"]);
    let created = shared
        .store
        .create(Obj::Event(Event { metadata, rest }))
        .map_err(|()| Status::already_exists(Res::EVENTS, &name))?;
    Ok((201, created.json()))
}

/// `PATCH /api/v1/namespaces/<ns>/events/<name>`, as kubelet's event correlator sends it to
/// aggregate a repeated event (`{"count": n, "lastTimestamp": ..., "message": ...}`,
/// `application/strategic-merge-patch+json`; recorded in `kubelet-real-trace/events-patch-*`).
/// Events have no merge-keyed lists, so strategic and JSON merge patches act alike here.
fn patch_event(
    shared: &Shared,
    namespace: &str,
    name: &str,
    content_type: &str,
    body: &[u8],
) -> Handled {
    if !matches!(
        content_type,
        "application/strategic-merge-patch+json" | "application/merge-patch+json"
    ) {
        return Err(Status::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (sandbox: only merge patches; got {content_type:?})"),
            None,
        ));
    }
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))?;
    let Value::Object(fields) = &patch else {
        return Err(Status::bad_request(
            "error decoding patch: the patch is not a JSON object".into(),
        ));
    };
    let updated = shared
        .store
        .update::<Status>(Kind::Event, Some(namespace), name, |obj| {
            let Obj::Event(event) = obj else {
                return Ok(false);
            };
            let mut rest = Value::Object(event.rest.clone());
            for (key, value) in fields {
                // metadata (name, namespace, uid) is not the correlator's to change.
                if matches!(key.as_str(), "metadata" | "kind" | "apiVersion") {
                    continue;
                }
                merge(&mut rest, &json!({ key.clone(): value.clone() }), true);
            }
            let Value::Object(rest) = rest else {
                return Ok(false);
            };
            let changed = rest != event.rest;
            event.rest = rest;
            Ok(changed)
        });
    match updated {
        None => Err(Status::not_found(Res::EVENTS, name)),
        Some(Err(status)) => Err(status),
        Some(Ok(obj)) => Ok((200, obj.json())),
    }
}

// ---------------------------------------------------------------------------------------------
// ConfigMaps, Secrets and RBAC objects written by an admin (`kaas-join token`, `cluster prepare`)

/// `metadata.name` of a new object, and that its namespace (if given) is the request's.
fn new_object_meta(
    value: &Value,
    namespace: Option<&str>,
    kind: &str,
    group: &str,
) -> Result<ObjectMeta, Status> {
    let meta = &value["metadata"];
    if let (Some(ns), Some(want)) = (
        meta["namespace"].as_str().filter(|s| !s.is_empty()),
        namespace,
    ) {
        if ns != want {
            return Err(Status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
    }
    let Some(name) = meta["name"].as_str().filter(|s| !s.is_empty()) else {
        return Err(Status::invalid(
            kind,
            group,
            "",
            vec![required(
                "metadata.name",
                "name or generateName is required",
            )],
        ));
    };
    if let Some(detail) = path_segment_name_error(name) {
        return Err(Status::invalid(
            kind,
            group,
            name,
            vec![invalid("metadata.name", &format!("{name:?}"), detail)],
        ));
    }
    let mut metadata = ObjectMeta::new(name, namespace);
    metadata.labels = string_map(&meta["labels"]);
    metadata.annotations = string_map(&meta["annotations"]);
    Ok(metadata)
}

/// An update's `metadata.resourceVersion`, when given, must be the stored one (409 Conflict,
/// shaped as `409-lease-put-stale-resourceversion.json`).
fn check_resource_version(value: &Value, stored: &ObjectMeta, res: Res) -> Result<(), Status> {
    match value["metadata"]["resourceVersion"].as_str() {
        Some(rv) if !rv.is_empty() && rv != stored.resource_version => {
            Err(Status::conflict(res, &stored.name))
        }
        _ => Ok(()),
    }
}

fn is_cluster_info(namespace: &str, name: &str) -> bool {
    namespace == "kube-public" && name == "cluster-info"
}

fn create_configmap(shared: &Arc<Shared>, namespace: &str, body: &[u8]) -> Handled {
    let value = parse_json(body, "ConfigMap")?;
    let metadata = new_object_meta(&value, Some(namespace), "ConfigMap", "")?;
    let name = metadata.name.clone();
    let data = string_map(&value["data"]).unwrap_or_default();
    let created = shared
        .store
        .create(Obj::ConfigMap(ConfigMap { metadata, data }))
        .map_err(|()| Status::already_exists(Res::CONFIGMAPS, &name))?;
    if is_cluster_info(namespace, &name) {
        // The bootstrapsigner signs the new cluster-info for every signing token.
        shared.resign_cluster_info();
        if let Some(obj) = shared.store.get(Kind::ConfigMap, Some(namespace), &name) {
            return Ok((201, obj.json()));
        }
    }
    Ok((201, created.json()))
}

fn update_configmap(shared: &Arc<Shared>, namespace: &str, name: &str, body: &[u8]) -> Handled {
    let value = parse_json(body, "ConfigMap")?;
    if value["metadata"]["name"].as_str() != Some(name) {
        return Err(Status::bad_request(
            "the name of the object does not match the name on the URL".into(),
        ));
    }
    let data = string_map(&value["data"]).unwrap_or_default();
    let labels = string_map(&value["metadata"]["labels"]);
    let annotations = string_map(&value["metadata"]["annotations"]);
    let updated = shared
        .store
        .update::<Status>(Kind::ConfigMap, Some(namespace), name, |obj| {
            let Obj::ConfigMap(cm) = obj else {
                return Ok(false);
            };
            check_resource_version(&value, &cm.metadata, Res::CONFIGMAPS)?;
            let changed = cm.data != data
                || cm.metadata.labels != labels
                || cm.metadata.annotations != annotations;
            cm.data = data;
            cm.metadata.labels = labels;
            cm.metadata.annotations = annotations;
            Ok(changed)
        });
    match updated {
        None => Err(Status::not_found(Res::CONFIGMAPS, name)),
        Some(Err(status)) => Err(status),
        Some(Ok(obj)) => {
            if is_cluster_info(namespace, name) {
                shared.resign_cluster_info();
                if let Some(obj) = shared.store.get(Kind::ConfigMap, Some(namespace), name) {
                    return Ok((200, obj.json()));
                }
            }
            Ok((200, obj.json()))
        }
    }
}

fn create_secret(shared: &Arc<Shared>, namespace: &str, body: &[u8]) -> Handled {
    let value = parse_json(body, "Secret")?;
    let metadata = new_object_meta(&value, Some(namespace), "Secret", "")?;
    let name = metadata.name.clone();
    let mut data = std::collections::BTreeMap::new();
    if let Some(map) = value["data"].as_object() {
        for (k, v) in map {
            let text = v.as_str().unwrap_or("");
            if STANDARD.decode(text).is_err() {
                return Err(Status::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k:?}]"
                )));
            }
            data.insert(k.clone(), text.to_string());
        }
    }
    // stringData is write-only: merged into data, as the apiserver does.
    if let Some(map) = value["stringData"].as_object() {
        for (k, v) in map {
            data.insert(
                k.clone(),
                STANDARD.encode(v.as_str().unwrap_or("").as_bytes()),
            );
        }
    }
    let type_ = value["type"]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or("Opaque")
        .to_string();
    let secret = Secret {
        metadata,
        data,
        type_,
    };
    let token = crate::token_from_secret(&secret);
    let created = shared
        .store
        .create(Obj::Secret(secret))
        .map_err(|()| Status::already_exists(Res::SECRETS, &name))?;
    if let Some(token) = token.filter(|_| namespace == "kube-system") {
        shared.register_token(token);
    }
    Ok((201, created.json()))
}

fn list_secrets(shared: &Shared, namespace: &str, type_: Option<&str>) -> (u16, String) {
    let (items, rv) = shared.store.list(&Selector {
        kind: Kind::Secret,
        namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
        name: None,
    });
    let items: Vec<String> = items
        .iter()
        .filter(|o| match (o, type_) {
            (Obj::Secret(s), Some(t)) => s.type_ == t,
            _ => true,
        })
        .map(Obj::item_json)
        .collect();
    (200, format!(
        "{{\"kind\":\"SecretList\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"{rv}\"}},\"items\":[{}]}}",
        items.join(",")
    ))
}

/// What the apiserver answers a DELETE of a core object without finalizers.
fn deleted_status(res: Res, obj: &Obj) -> String {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": obj.meta().name, "kind": res.resource, "uid": obj.meta().uid},
    })
    .to_string()
}

fn delete_secret(shared: &Arc<Shared>, namespace: &str, name: &str) -> Handled {
    let obj = shared
        .store
        .delete(Kind::Secret, Some(namespace), name)
        .ok_or_else(|| Status::not_found(Res::SECRETS, name))?;
    if let Obj::Secret(secret) = &obj {
        if let Some(token) = crate::token_from_secret(secret).filter(|_| namespace == "kube-system")
        {
            shared.unregister_token(&token.id);
        }
    }
    Ok((200, deleted_status(Res::SECRETS, &obj)))
}

/// An admin's `kubectl delete node` (the Node authorizer gives nodes no delete: 403 before here).
fn delete_node(shared: &Arc<Shared>, name: &str) -> Handled {
    let obj = shared
        .store
        .delete(Kind::Node, None, name)
        .ok_or_else(|| Status::not_found(Res::NODES, name))?;
    Ok((200, deleted_status(Res::NODES, &obj)))
}

/// create / get / update (PUT) / delete of Roles, RoleBindings, ClusterRoles and
/// ClusterRoleBindings. Stored as sent (rules, roleRef, subjects); roleRef cannot change.
fn rbac_object(
    shared: &Shared,
    kind: Kind,
    resource: &str,
    namespace: &str,
    name: &str,
    verb: &str,
    body: &[u8],
) -> Handled {
    let res = Res::rbac(resource);
    let namespaced = matches!(kind, Kind::Role | Kind::RoleBinding);
    let ns = if namespaced {
        if namespace.is_empty() {
            return Err(Status::path_not_found());
        }
        Some(namespace)
    } else {
        None
    };
    let rest_of = |value: &Value| {
        let mut rest = value.as_object().cloned().unwrap_or_default();
        for key in ["kind", "apiVersion", "metadata"] {
            rest.remove(key);
        }
        rest
    };
    match verb {
        "get" => get_object(shared, kind, res, ns, name),
        "create" => {
            let value = parse_json(body, kind.kind())?;
            let metadata = new_object_meta(&value, ns, kind.kind(), "rbac.authorization.k8s.io")?;
            let name = metadata.name.clone();
            let created = shared
                .store
                .create(Obj::Rbac(
                    kind,
                    Generic {
                        metadata,
                        rest: rest_of(&value),
                    },
                ))
                .map_err(|()| Status::already_exists(res, &name))?;
            Ok((201, created.json()))
        }
        "update" => {
            let value = parse_json(body, kind.kind())?;
            let rest = rest_of(&value);
            let updated = shared.store.update::<Status>(kind, ns, name, |obj| {
                let Obj::Rbac(_, stored) = obj else {
                    return Ok(false);
                };
                check_resource_version(&value, &stored.metadata, res)?;
                if stored.rest.get("roleRef").is_some()
                    && stored.rest.get("roleRef") != rest.get("roleRef")
                {
                    return Err(Status::invalid(
                        kind.kind(),
                        "rbac.authorization.k8s.io",
                        name,
                        vec![invalid("roleRef", "...", "cannot change roleRef")],
                    ));
                }
                let changed = stored.rest != rest;
                stored.rest = rest;
                Ok(changed)
            });
            match updated {
                None => Err(Status::not_found(res, name)),
                Some(Err(status)) => Err(status),
                Some(Ok(obj)) => Ok((200, obj.json())),
            }
        }
        "delete" => {
            let obj = shared
                .store
                .delete(kind, ns, name)
                .ok_or_else(|| Status::not_found(res, name))?;
            Ok((200, deleted_status(res, &obj)))
        }
        _ => Err(Status::method_not_supported()),
    }
}

// ---------------------------------------------------------------------------------------------
// SelfSubjectAccessReview

#[derive(Serialize, Default)]
struct ResourceAttributes {
    #[serde(skip_serializing_if = "String::is_empty")]
    namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    verb: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    subresource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
}

#[derive(Serialize)]
struct NonResourceAttributes {
    path: String,
    verb: String,
}

#[derive(Serialize)]
struct SsarSpec {
    #[serde(rename = "resourceAttributes", skip_serializing_if = "Option::is_none")]
    resource_attributes: Option<ResourceAttributes>,
    #[serde(
        rename = "nonResourceAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    non_resource_attributes: Option<NonResourceAttributes>,
}

#[derive(Serialize)]
struct SsarMeta {
    #[serde(rename = "creationTimestamp")]
    creation_timestamp: Option<String>,
}

#[derive(Serialize)]
struct SsarStatus {
    allowed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
}

#[derive(Serialize)]
struct Ssar {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: SsarMeta,
    spec: SsarSpec,
    status: SsarStatus,
}

fn ssar(shared: &Shared, user: &User, body: &[u8]) -> Handled {
    let value = parse_json(body, "SelfSubjectAccessReview")?;
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let spec = &value["spec"];
    let (attrs, spec_out) = if let Some(ra) = spec["resourceAttributes"]
        .as_object()
        .map(|_| &spec["resourceAttributes"])
    {
        let out = ResourceAttributes {
            namespace: s(&ra["namespace"]),
            verb: s(&ra["verb"]),
            group: s(&ra["group"]),
            version: s(&ra["version"]),
            resource: s(&ra["resource"]),
            subresource: s(&ra["subresource"]),
            name: s(&ra["name"]),
        };
        let attrs = Attrs {
            verb: out.verb.clone(),
            group: out.group.clone(),
            resource: out.resource.clone(),
            subresource: out.subresource.clone(),
            namespace: out.namespace.clone(),
            name: out.name.clone(),
            selected_name: None,
            path: None,
        };
        (
            attrs,
            SsarSpec {
                resource_attributes: Some(out),
                non_resource_attributes: None,
            },
        )
    } else if let Some(nra) = spec["nonResourceAttributes"]
        .as_object()
        .map(|_| &spec["nonResourceAttributes"])
    {
        let out = NonResourceAttributes {
            path: s(&nra["path"]),
            verb: s(&nra["verb"]),
        };
        let attrs = Attrs {
            verb: out.verb.clone(),
            path: Some(out.path.clone()),
            ..Attrs::default()
        };
        (
            attrs,
            SsarSpec {
                resource_attributes: None,
                non_resource_attributes: Some(out),
            },
        )
    } else {
        return Err(Status::invalid(
            "SelfSubjectAccessReview",
            "authorization.k8s.io",
            "",
            vec![required(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        ));
    };
    let decision = shared.authorize(user, &attrs);
    let review = Ssar {
        kind: "SelfSubjectAccessReview",
        api_version: "authorization.k8s.io/v1",
        metadata: SsarMeta {
            creation_timestamp: None,
        },
        spec: spec_out,
        status: SsarStatus {
            allowed: decision.allowed,
            reason: if decision.allowed {
                decision.reason
            } else {
                String::new()
            },
        },
    };
    let json = serde_json::to_string(&review).map_err(|e| Status::bad_request(e.to_string()))?;
    Ok((201, json))
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

    #[test]
    fn strategic_merge_by_type() {
        let mut status = json!({"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "Custom", "status": "True", "reason": "A"}
        ], "capacity": {"cpu": "1"}});
        let patch = json!({"conditions": [
            {"type": "Custom", "status": "False", "reason": "B"},
            {"type": "New", "status": "True"}
        ], "capacity": {"memory": "1Gi"}});
        merge(&mut status, &patch, true);
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(status["conditions"][1]["reason"], "B");
        assert_eq!(status["conditions"][2]["type"], "New");
        assert_eq!(status["capacity"], json!({"cpu": "1", "memory": "1Gi"}));
        merge(
            &mut status,
            &json!({"conditions": [{"type": "New"}]}),
            false,
        );
        assert_eq!(status["conditions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn resource_parsing() {
        let r = parse_resource(
            &Method::GET,
            "/api/v1/namespaces/kube-public/configmaps/cluster-info",
            false,
        )
        .unwrap();
        assert_eq!(
            (
                r.attrs.verb.as_str(),
                r.attrs.namespace.as_str(),
                r.attrs.name.as_str()
            ),
            ("get", "kube-public", "cluster-info")
        );
        let r = parse_resource(
            &Method::GET,
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            true,
        )
        .unwrap();
        assert_eq!(
            (r.attrs.verb.as_str(), r.attrs.group.as_str()),
            ("watch", "certificates.k8s.io")
        );
        let r = parse_resource(&Method::PATCH, "/api/v1/nodes/n1/status", false).unwrap();
        assert_eq!(
            (r.attrs.verb.as_str(), r.attrs.subresource.as_str()),
            ("patch", "status")
        );
        assert!(parse_resource(&Method::GET, "/version", false).is_none());
        assert_eq!(
            parse_field_selector("metadata.name=x").unwrap().as_deref(),
            Some("x")
        );
        assert!(parse_field_selector("spec.signerName=x").is_err());
    }
}
