//! `Status` bodies, shaped (field order included) like the recorded kube-apiserver errors.

use serde::Serialize;

/// The API resource an error is about: `nodes` (core group) or
/// `certificatesigningrequests.certificates.k8s.io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Res {
    pub resource: &'static str,
    pub group: &'static str,
}

impl Res {
    pub const NODES: Res = Res::core("nodes");
    pub const CONFIGMAPS: Res = Res::core("configmaps");
    pub const EVENTS: Res = Res::core("events");
    pub const CSRS: Res = Res {
        resource: "certificatesigningrequests",
        group: "certificates.k8s.io",
    };

    pub const SECRETS: Res = Res::core("secrets");

    /// An RBAC resource (`roles.rbac.authorization.k8s.io`, ...).
    pub fn rbac(resource: &str) -> Res {
        let resource = match resource {
            "roles" => "roles",
            "rolebindings" => "rolebindings",
            "clusterroles" => "clusterroles",
            _ => "clusterrolebindings",
        };
        Res {
            resource,
            group: "rbac.authorization.k8s.io",
        }
    }

    pub const fn core(resource: &'static str) -> Res {
        Res {
            resource,
            group: "",
        }
    }

    /// `schema.GroupResource.String()`: `resource` or `resource.group`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct EmptyMeta {}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Status {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub metadata: EmptyMeta,
    pub status: &'static str,
    pub message: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<Details>>,
    pub code: u16,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Details {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

impl Status {
    pub fn new(code: u16, reason: &str, message: String, details: Option<Details>) -> Status {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: EmptyMeta {},
            status: "Failure",
            message,
            reason: reason.to_string(),
            details: details.map(Box::new),
            code,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Status always serializes")
    }

    /// Exactly `fixtures/401-invalid-bearer-token.json`.
    pub fn unauthorized() -> Status {
        Status::new(401, "Unauthorized", "Unauthorized".into(), None)
    }

    fn res_details(res: Res, name: Option<&str>) -> Details {
        Details {
            name: name.map(str::to_string),
            group: (!res.group.is_empty()).then(|| res.group.to_string()),
            kind: Some(res.resource.to_string()),
            ..Details::default()
        }
    }

    /// `nodes "x" not found` (`fixtures/404-node-get-before-create.json`,
    /// `404-csr-get-nonexistent.json`).
    pub fn not_found(res: Res, name: &str) -> Status {
        Status::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", res.qualified()),
            Some(Self::res_details(res, Some(name))),
        )
    }

    /// `fixtures/409-node-create-already-exists.json`.
    pub fn already_exists(res: Res, name: &str) -> Status {
        Status::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", res.qualified()),
            Some(Self::res_details(res, Some(name))),
        )
    }

    /// A stale `resourceVersion` on update (`fixtures/409-lease-put-stale-resourceversion.json`).
    pub fn conflict(res: Res, name: &str) -> Status {
        Status::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                res.qualified()
            ),
            Some(Self::res_details(res, Some(name))),
        )
    }

    /// A verb the resource does not serve.
    pub fn method_not_supported() -> Status {
        Status::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            Some(Details::default()),
        )
    }

    /// `<res> ["<name>"] is forbidden: <why>`, as `apierrors.NewForbidden`.
    pub fn forbidden(res: Res, name: Option<&str>, why: &str) -> Status {
        let message = match name {
            Some(n) if !n.is_empty() => format!("{} \"{n}\" is forbidden: {why}", res.qualified()),
            _ => format!("{} is forbidden: {why}", res.qualified()),
        };
        Status::new(
            403,
            "Forbidden",
            message,
            Some(Self::res_details(res, name.filter(|n| !n.is_empty()))),
        )
    }

    /// A forbidden non-resource path (`forbidden: User "x" cannot get path "/foo"`).
    pub fn forbidden_path(user: &str, verb: &str, path: &str) -> Status {
        Status::new(
            403,
            "Forbidden",
            format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\""),
            Some(Details::default()),
        )
    }

    /// What the apiserver answers for a path it does not serve.
    pub fn path_not_found() -> Status {
        Status::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(Details::default()),
        )
    }

    /// 422 Invalid, `<Kind>[.group] "<name>" is invalid: <field errors>`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Status {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let errors: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = if errors.len() == 1 {
            errors[0].clone()
        } else {
            format!("[{}]", errors.join(", "))
        };
        Status::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {joined}"),
            Some(Details {
                name: Some(name.to_string()),
                group: (!group.is_empty()).then(|| group.to_string()),
                kind: Some(kind.to_string()),
                causes,
                retry_after_seconds: None,
            }),
        )
    }

    pub fn bad_request(message: String) -> Status {
        Status::new(400, "BadRequest", message, None)
    }

    /// The watch cache's answer to a resourceVersion older than its window.
    pub fn expired(requested: u64, oldest: u64) -> Status {
        Status::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
            None,
        )
    }

    /// A Status for an arbitrary injected HTTP status (faults).
    pub fn for_code(code: u16) -> Status {
        let (reason, message, retry): (&str, &str, Option<u32>) = match code {
            400 => ("BadRequest", "the server rejected our request for an unknown reason (injected fault)", None),
            401 => ("Unauthorized", "Unauthorized", None),
            403 => ("Forbidden", "forbidden (injected fault)", None),
            404 => ("NotFound", "the server could not find the requested resource", None),
            409 => ("Conflict", "the server reported a conflict (injected fault)", None),
            410 => ("Gone", "the resource has gone away (injected fault)", None),
            422 => ("Invalid", "the server rejected our request due to an error in our request (injected fault)", None),
            429 => ("TooManyRequests", "the server has received too many requests and has asked us to try again later (injected fault)", Some(1)),
            500 => ("InternalError", "an error on the server (\"injected fault\") has prevented the request from succeeding", None),
            503 => ("ServiceUnavailable", "the server is currently unable to handle the request (injected fault)", Some(1)),
            504 => ("Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request (injected fault)", Some(1)),
            _ => ("", "injected fault", None),
        };
        let details = retry.map(|s| Details {
            retry_after_seconds: Some(s),
            ..Details::default()
        });
        Status::new(code, reason, message.into(), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_is_byte_exact() {
        assert_eq!(
            Status::unauthorized().to_json(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
        );
    }

    #[test]
    fn csr_not_found_message() {
        let s = Status::not_found(Res::CSRS, "does-not-exist");
        assert_eq!(
            s.to_json(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"certificatesigningrequests.certificates.k8s.io \"does-not-exist\" not found","reason":"NotFound","details":{"name":"does-not-exist","group":"certificates.k8s.io","kind":"certificatesigningrequests"},"code":404}"#
        );
    }

    #[test]
    fn path_not_found_has_empty_details() {
        assert!(Status::path_not_found()
            .to_json()
            .contains(r#""details":{}"#));
    }
}
