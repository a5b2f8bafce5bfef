//! The HTTPS server: TLS accept, authentication, fault injection, authorization and routing of
//! the node-facing API to its handlers, one module per resource.
//!
//! A request goes [`serve`] → `connection` (TLS, client certificate) → `handle` (authentication,
//! injected faults from [`crate::faults`], the request record, the `Date` header) → `route`
//! (what is asked, [`request::admit`], the body) → `dispatch` (the endpoint table) → a handler.
//! Handlers answer a JSON object or a [`Status`] ([`objects::Handled`]); lists and watches
//! ([`watch`]) answer a whole response. [`body`] shapes responses as the apiserver does.
//!
//! Touches the rest of the crate through [`Shared`]: the store, the authorizer
//! ([`Shared::authorize`]), the token registry (Secrets), the bootstrapsigner (cluster-info) and
//! the approver (new CSRs).

mod access_reviews;
mod body;
mod configmaps;
mod csr;
mod events;
mod nodes;
mod non_resource;
mod objects;
mod patch;
mod rbac;
mod request;
mod secrets;
mod watch;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, DATE};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::authz::{Attrs, User};
use crate::status::Status;
use crate::store::Kind;
use crate::{util, RequestRecord, Shared};
use body::{
    apply_body_faults, http_date, json_response, read_body, status_response, too_many_requests,
    wants_pretty, Body,
};

pub(crate) use nodes::new_node;
use request::ResourceRequest;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    mut stop: tokio::sync::watch::Receiver<bool>,
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
        // As kube-apiserver's priority and fairness (and max-in-flight) filter refuses:
        // plain text, not a Status (fixture `429-apf-anonymous-get-cluster-info.txt`).
        (Some(429), _) => too_many_requests(),
        (Some(code), _) => {
            let mut resp = status_response(&Status::for_code(code), pretty);
            if matches!(code, 503 | 504) {
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

/// One resource request that passed authentication and authorization, as its handler sees it.
struct ApiRequest<'a> {
    shared: &'a Arc<Shared>,
    user: &'a User,
    attrs: Attrs,
    /// The query parameters, in order.
    params: Vec<(String, String)>,
    /// The body's media type (`Content-Type` without parameters; `application/json` if absent).
    content_type: String,
    /// The body of a create, update or patch; empty for other verbs.
    body: Bytes,
    /// A Secret list's `fieldSelector=type=<type>` (as `kubeadm token list` sends it).
    secret_type: Option<String>,
    pretty: bool,
}

/// What is asked, whether it may be, and its body; then the handler's answer.
async fn route(
    shared: &Arc<Shared>,
    user: &User,
    req: Request<Incoming>,
    pretty: bool,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let params = util::parse_query(parts.uri.query().unwrap_or(""));
    let watch = matches!(request::param(&params, "watch"), Some("true" | "1"));
    let Some(ResourceRequest { mut attrs }) =
        request::parse_resource(&parts.method, parts.uri.path(), watch)
    else {
        return non_resource::serve(shared, user, &parts.method, parts.uri.path(), pretty);
    };
    let selector = request::param(&params, "fieldSelector").unwrap_or("");
    let secret_type = match request::apply_field_selector(&mut attrs, selector) {
        Ok(secret_type) => secret_type,
        Err(status) => return status_response(&status, pretty),
    };
    if let Err(status) = request::admit(shared, user, &attrs) {
        return status_response(&status, pretty);
    }
    let body = if request::needs_body(&attrs) {
        match read_body(body).await {
            Ok(b) => b,
            Err(status) => return status_response(&status, pretty),
        }
    } else {
        Bytes::new()
    };
    let request = ApiRequest {
        shared,
        user,
        content_type: request::media_type(&parts.headers),
        attrs,
        params,
        body,
        secret_type,
        pretty,
    };
    dispatch(&request)
}

/// The resource endpoints the sandbox serves, by (group, resource, subresource, verb); anything
/// else is 404.
fn dispatch(r: &ApiRequest) -> Response<Body> {
    let a = &r.attrs;
    let namespaced = !a.namespace.is_empty();
    let endpoint = (
        a.group.as_str(),
        a.resource.as_str(),
        a.subresource.as_str(),
        a.verb.as_str(),
    );
    let result = match endpoint {
        ("", "configmaps", "", "get") => configmaps::get(r),
        ("", "configmaps", "", "create") if namespaced => configmaps::create(r),
        ("", "configmaps", "", "update") if namespaced => configmaps::update(r),
        ("", "secrets", "", "create") if namespaced => secrets::create(r),
        ("", "secrets", "", "get") => secrets::get(r),
        ("", "secrets", "", "list") => secrets::list(r),
        ("", "secrets", "", "delete") if namespaced => secrets::delete(r),
        (rbac::GROUP, _, "", _) => rbac::handle(r),
        ("", "nodes", "", "get") => nodes::get(r),
        ("", "nodes", "", "list" | "watch") => return watch::list_or_watch(r, Kind::Node),
        ("", "nodes", "", "create") => nodes::create(r),
        ("", "nodes", "", "delete") => nodes::delete(r),
        ("", "nodes", "" | "status", "patch") => nodes::patch(r),
        ("", "events", "", "create") if namespaced => events::create(r),
        ("", "events", "", "patch") if namespaced => events::patch(r),
        (csr::GROUP, csr::RESOURCE, "", "create") => csr::create(r),
        (csr::GROUP, csr::RESOURCE, "", "get") => csr::get(r),
        (csr::GROUP, csr::RESOURCE, "", "list" | "watch") => {
            return watch::list_or_watch(r, Kind::Csr)
        }
        (access_reviews::GROUP, "selfsubjectaccessreviews", "", "create") => {
            access_reviews::create(r)
        }
        _ => Err(Status::path_not_found()),
    };
    match result {
        Ok((code, json)) => json_response(code, json, r.pretty),
        Err(status) => status_response(&status, r.pretty),
    }
}
