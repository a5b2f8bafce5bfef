//! Non-resource paths: `/version` and the health endpoints, which anybody may GET
//! (`system:public-info-viewer`); every other path is 404 (403 for anonymous requests).

use bytes::Bytes;
use hyper::{Method, Response};

use super::body::{base_response, json_response, status_response, Body};
use crate::authz::{self, Attrs, User};
use crate::status::Status;
use crate::Shared;

/// `GET /version`, as recorded (`fixtures/200-version-anonymous.json`).
const VERSION: &str = r#"{"major":"1","minor":"32","gitVersion":"v1.32.0","gitCommit":"cd13ec4ae44e35ce12aefbb05627be4474ff2b1f","gitTreeState":"clean","buildDate":"2026-11-27T05:54:22Z","goVersion":"go1.27.3","compiler":"gc","platform":"linux/amd64"}"#;

/// Answers a path outside `/api` and `/apis` (`/version`, `/healthz`, ...), or 403/404.
pub(super) fn serve(
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
