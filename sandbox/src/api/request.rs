//! What a resource request is about (the apiserver's RequestInfo: verb, group, resource,
//! namespace, name, field selector, body media type) and whether it gets to a handler at all
//! (the resources the sandbox models, then the authorizer).

use hyper::header::{HeaderMap, CONTENT_TYPE};
use hyper::Method;

use crate::authz::{self, Attrs, User};
use crate::status::{Res, Status};
use crate::Shared;

/// The value of query parameter `key` (the first one given).
pub(super) fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// What the request is about, like the apiserver's RequestInfo.
#[derive(Debug)]
pub(super) struct ResourceRequest {
    pub attrs: Attrs,
}

/// Parses `/api/v1/...` and `/apis/<group>/<version>/...`; `None` for non-resource paths.
pub(super) fn parse_resource(method: &Method, path: &str, watch: bool) -> Option<ResourceRequest> {
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

/// Applies a list's or watch's `fieldSelector` to `attrs`: `metadata.name=<name>` selects one
/// object (an unsupported selector is 400). On Secrets `type=<type>` is accepted instead and
/// returned (as `kubeadm token list` selects token Secrets).
pub(super) fn apply_field_selector(
    attrs: &mut Attrs,
    selector: &str,
) -> Result<Option<String>, Status> {
    if !matches!(attrs.verb.as_str(), "list" | "watch") {
        return Ok(None);
    }
    let by_type = selector
        .split_once('=')
        .filter(|(f, _)| attrs.resource == "secrets" && f.trim() == "type");
    if let Some((_, value)) = by_type {
        return Ok(Some(value.trim_start_matches('=').trim().to_string()));
    }
    attrs.selected_name = parse_field_selector(selector).map_err(Status::bad_request)?;
    Ok(None)
}

/// Whether the verb carries a body the handler reads.
pub(super) fn needs_body(attrs: &Attrs) -> bool {
    matches!(attrs.verb.as_str(), "create" | "patch" | "update")
}

/// The body's media type: `Content-Type` without its parameters, `application/json` if absent.
pub(super) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Lets the request through to its handler, or answers why not: resources the sandbox does not
/// model at all are "not found" for authenticated users (a real apiserver would authorize
/// first; with no RBAC rules that is usually a 403), and what the authorizer denies is 403 with
/// the apiserver's message.
pub(super) fn admit(shared: &Shared, user: &User, attrs: &Attrs) -> Result<(), Status> {
    let modelled = leak_free_resource(&attrs.resource) != "resources"
        && (attrs.group.is_empty() || !leak_free_group(&attrs.group).is_empty());
    if !modelled && !user.is_anonymous() {
        return Err(Status::path_not_found());
    }
    let decision = shared.authorize(user, attrs);
    if !decision.allowed {
        let res = Res {
            resource: leak_free_resource(&attrs.resource),
            group: leak_free_group(&attrs.group),
        };
        let why = authz::forbidden_message(user, attrs, &decision.deny_reason);
        return Err(Status::forbidden(res, Some(attrs.name.as_str()), &why));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
