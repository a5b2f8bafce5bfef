//! Which API call a request is ([`ApiCall`]), for whoever watches the requests
//! ([`ApiObserver`]; `kaas-join run`'s metrics count them by call and answer).
//!
//! A call is named `<resource>[_<subresource>]_<verb>`, e.g. `node_get`, `node_status_patch`,
//! `event_create`, `certificatesigningrequest_watch`, `version_get`: the resource in the
//! singular, the verb as Kubernetes names it (`get`, `list`, `watch`, `create`, `update`,
//! `patch`, `delete`). Object and namespace names never appear, and what is not a resource this
//! crate uses is `other`: the set of names is fixed, whatever a path holds.

use std::fmt;

/// Told how each API request was answered. Set on a [`super::RequestCounter`]
/// ([`super::RequestCounter::observed_by`]); every client built with that counter reports to it.
pub trait ApiObserver: Send + Sync {
    /// `code`: the HTTP status of the answer; `None` when none came (unreachable, TLS, timeout).
    fn answered(&self, call: ApiCall, code: Option<u16>);
}

/// One kind of API call (see the module doc); `Display` gives its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiCall {
    resource: &'static str,
    status: bool,
    verb: &'static str,
}

/// The resources this crate calls, plural (as in paths) → singular (as in call names).
const RESOURCES: &[(&str, &str)] = &[
    ("nodes", "node"),
    ("events", "event"),
    ("leases", "lease"),
    ("configmaps", "configmap"),
    ("secrets", "secret"),
    ("namespaces", "namespace"),
    ("certificatesigningrequests", "certificatesigningrequest"),
    ("selfsubjectaccessreviews", "selfsubjectaccessreview"),
    ("roles", "role"),
    ("rolebindings", "rolebinding"),
    ("clusterroles", "clusterrole"),
    ("clusterrolebindings", "clusterrolebinding"),
];

impl ApiCall {
    /// Anything that is not a call on a known resource.
    pub const OTHER: ApiCall = ApiCall {
        resource: "other",
        status: false,
        verb: "",
    };

    /// The call `method` `path` is. `method` is the HTTP method, or `WATCH` for a watch
    /// ([`super::ApiClient::watch`]).
    pub fn of(method: &str, path: &str) -> ApiCall {
        let path = path.split(['?', '#']).next().unwrap_or("");
        if path == "/version" {
            return match method {
                "GET" => ApiCall {
                    resource: "version",
                    status: false,
                    verb: "get",
                },
                _ => ApiCall::OTHER,
            };
        }
        let Some((resource, named, status)) = resource_of(path) else {
            return ApiCall::OTHER;
        };
        let verb = match (method, named) {
            ("WATCH", _) => "watch",
            ("GET", true) => "get",
            ("GET", false) => "list",
            ("POST", false) => "create",
            ("PUT", true) => "update",
            ("PATCH", true) => "patch",
            ("DELETE", true) => "delete",
            _ => return ApiCall::OTHER,
        };
        ApiCall {
            resource,
            status,
            verb,
        }
    }
}

impl fmt::Display for ApiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == ApiCall::OTHER {
            return f.write_str("other");
        }
        let status = if self.status { "_status" } else { "" };
        write!(f, "{}{status}_{}", self.resource, self.verb)
    }
}

/// `(singular resource, whether an object is named, whether it is its status)` of a resource
/// path: `/api/v1[/namespaces/<ns>]/<resource>[/<name>[/status]]`, or the same under
/// `/apis/<group>/<version>`.
fn resource_of(path: &str) -> Option<(&'static str, bool, bool)> {
    let mut parts = path.trim_start_matches('/').split('/');
    let prefix = match parts.next()? {
        "api" => 1,
        "apis" => 2,
        _ => return None,
    };
    let mut rest: Vec<&str> = parts.skip(prefix).collect();
    if rest.iter().any(|p| p.is_empty()) {
        return None;
    }
    // A namespaced path; `/api/v1/namespaces` and `/api/v1/namespaces/<ns>` are namespaces.
    if rest.len() > 2 && rest[0] == "namespaces" {
        rest.drain(..2);
    }
    let (&plural, rest) = rest.split_first()?;
    let resource = RESOURCES.iter().find(|(p, _)| *p == plural)?.1;
    match rest {
        [] => Some((resource, false, false)),
        [_] => Some((resource, true, false)),
        [_, "status"] => Some((resource, true, true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(method: &str, path: &str) -> String {
        ApiCall::of(method, path).to_string()
    }

    #[test]
    fn the_calls_of_join_and_run_have_their_names() {
        let cases = [
            ("GET", "/api/v1/nodes/worker-1", "node_get"),
            ("PATCH", "/api/v1/nodes/worker-1/status", "node_status_patch"),
            ("POST", "/api/v1/namespaces/default/events", "event_create"),
            (
                "PATCH",
                "/api/v1/namespaces/default/events/worker-1.17f0a1b2c3d4e5f6",
                "event_patch",
            ),
            (
                "GET",
                "/api/v1/namespaces/kube-public/configmaps/cluster-info",
                "configmap_get",
            ),
            (
                "POST",
                "/apis/certificates.k8s.io/v1/certificatesigningrequests",
                "certificatesigningrequest_create",
            ),
            (
                "WATCH",
                "/apis/certificates.k8s.io/v1/certificatesigningrequests?fieldSelector=metadata.name%3Dcsr-x&watch=true",
                "certificatesigningrequest_watch",
            ),
            (
                "GET",
                "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-x",
                "certificatesigningrequest_get",
            ),
            (
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                "selfsubjectaccessreview_create",
            ),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/worker-1",
                "lease_update",
            ),
            ("GET", "/api/v1/nodes?limit=1", "node_list"),
            ("DELETE", "/api/v1/nodes/worker-1", "node_delete"),
            ("GET", "/api/v1/namespaces/kube-system", "namespace_get"),
            ("GET", "/version", "version_get"),
        ];
        for (method, path, want) in cases {
            assert_eq!(name(method, path), want, "{method} {path}");
        }
    }

    /// Whatever the path, the name is one of a fixed set: no object name leaks into it.
    #[test]
    fn anything_else_is_other() {
        for (method, path) in [
            ("GET", "/api/v1/pods/x"),
            ("GET", "/healthz"),
            ("GET", "/api/v1/nodes/worker-1/proxy/metrics"),
            ("POST", "/api/v1/nodes/worker-1"),
            ("PUT", "/api/v1/nodes"),
            ("OPTIONS", "/api/v1/nodes/x"),
            ("GET", "/apis/x"),
            ("GET", "/api/v1/nodes//status"),
            ("GET", ""),
            ("POST", "/version"),
        ] {
            assert_eq!(name(method, path), "other", "{method} {path}");
        }
    }
}
