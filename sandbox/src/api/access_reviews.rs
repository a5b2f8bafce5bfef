//! SelfSubjectAccessReviews: "may I ...?", answered by the same authorizer as the requests
//! themselves ([`crate::Shared::authorize`]), echoing the spec as the apiserver does.

use serde::Serialize;
use serde_json::Value;

use super::body::parse_json;
use super::objects::{required, Handled};
use super::ApiRequest;
use crate::authz::Attrs;
use crate::status::Status;

pub(super) const GROUP: &str = "authorization.k8s.io";

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

impl ResourceAttributes {
    fn read(v: &Value) -> ResourceAttributes {
        ResourceAttributes {
            namespace: text(&v["namespace"]),
            verb: text(&v["verb"]),
            group: text(&v["group"]),
            version: text(&v["version"]),
            resource: text(&v["resource"]),
            subresource: text(&v["subresource"]),
            name: text(&v["name"]),
        }
    }

    fn attrs(&self) -> Attrs {
        Attrs {
            verb: self.verb.clone(),
            group: self.group.clone(),
            resource: self.resource.clone(),
            subresource: self.subresource.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            selected_name: None,
            path: None,
        }
    }
}

impl NonResourceAttributes {
    fn read(v: &Value) -> NonResourceAttributes {
        NonResourceAttributes {
            path: text(&v["path"]),
            verb: text(&v["verb"]),
        }
    }

    fn attrs(&self) -> Attrs {
        Attrs {
            verb: self.verb.clone(),
            path: Some(self.path.clone()),
            ..Attrs::default()
        }
    }
}

/// A string field, `""` when absent or not a string.
fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// What is asked about, and the spec to echo; exactly one kind of attributes must be given.
fn review_spec(spec: &Value) -> Result<(Attrs, SsarSpec), Status> {
    if spec["resourceAttributes"].is_object() {
        let asked = ResourceAttributes::read(&spec["resourceAttributes"]);
        let attrs = asked.attrs();
        let echo = SsarSpec {
            resource_attributes: Some(asked),
            non_resource_attributes: None,
        };
        return Ok((attrs, echo));
    }
    if spec["nonResourceAttributes"].is_object() {
        let asked = NonResourceAttributes::read(&spec["nonResourceAttributes"]);
        let attrs = asked.attrs();
        let echo = SsarSpec {
            resource_attributes: None,
            non_resource_attributes: Some(asked),
        };
        return Ok((attrs, echo));
    }
    Err(Status::invalid(
        "SelfSubjectAccessReview",
        GROUP,
        "",
        vec![required(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )],
    ))
}

pub(super) fn create(r: &ApiRequest) -> Handled {
    let value = parse_json(&r.body, "SelfSubjectAccessReview")?;
    let (attrs, spec) = review_spec(&value["spec"])?;
    let decision = r.shared.authorize(r.user, &attrs);
    let review = Ssar {
        kind: "SelfSubjectAccessReview",
        api_version: "authorization.k8s.io/v1",
        metadata: SsarMeta {
            creation_timestamp: None,
        },
        spec,
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
