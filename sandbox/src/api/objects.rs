//! What the resource handlers share: a GET by name, an update's 404, the metadata of a new
//! object read from a request body, optimistic concurrency (`resourceVersion`), the Status a
//! DELETE answers, and the field errors (`Cause`s) of a 422 Invalid.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::status::{Cause, Res, Status};
use crate::store::{Kind, Obj, ObjectMeta};
use crate::{util, Shared};

/// A handler's answer: the status code and the object's JSON, or an error Status.
pub(super) type Handled = Result<(u16, String), Status>;

/// A GET of one object by name.
pub(super) fn get_object(
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

/// The outcome of [`crate::store::Store::update`] as the apiserver answers it: 404 when the object
/// does not exist, else the handler's error or the object as stored.
pub(super) fn updated(
    outcome: Option<Result<Obj, Status>>,
    res: Res,
    name: &str,
) -> Result<Obj, Status> {
    outcome.unwrap_or_else(|| Err(Status::not_found(res, name)))
}

/// `metadata.name` of a new object, and that its namespace (if given) is the request's.
pub(super) fn new_object_meta(
    value: &Value,
    namespace: Option<&str>,
    kind: &str,
    group: &str,
) -> Result<ObjectMeta, Status> {
    let meta = &value["metadata"];
    if let Some(want) = namespace {
        check_namespace(meta, want)?;
    }
    let Some(name) = meta["name"].as_str().filter(|s| !s.is_empty()) else {
        return Err(Status::invalid(kind, group, "", vec![name_required()]));
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
pub(super) fn check_resource_version(
    value: &Value,
    stored: &ObjectMeta,
    res: Res,
) -> Result<(), Status> {
    match value["metadata"]["resourceVersion"].as_str() {
        Some(rv) if !rv.is_empty() && rv != stored.resource_version => {
            Err(Status::conflict(res, &stored.name))
        }
        _ => Ok(()),
    }
}

/// A namespace given in the object's metadata must be the request's (400 otherwise).
pub(super) fn check_namespace(meta: &Value, namespace: &str) -> Result<(), Status> {
    match meta["namespace"].as_str().filter(|s| !s.is_empty()) {
        Some(ns) if ns != namespace => Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// The name a create asks for: `metadata.name`, else `metadata.generateName` plus a random
/// suffix (as the apiserver generates it); `None` if neither is given.
pub(super) fn requested_name(meta: &Value) -> Option<String> {
    let given = meta["name"].as_str().filter(|s| !s.is_empty());
    let generate = meta["generateName"].as_str().filter(|s| !s.is_empty());
    match (given, generate) {
        (Some(n), _) => Some(n.to_string()),
        (None, Some(g)) => Some(format!("{g}{}", util::generate_name_suffix())),
        (None, None) => None,
    }
}

/// An object's own fields as sent: everything but `kind`, `apiVersion` and `metadata`.
pub(super) fn object_fields(value: &Value) -> Map<String, Value> {
    let mut rest = value.as_object().cloned().unwrap_or_default();
    for key in ["kind", "apiVersion", "metadata"] {
        rest.remove(key);
    }
    rest
}

/// What the apiserver answers a DELETE of an object without finalizers.
pub(super) fn deleted_status(res: Res, obj: &Obj) -> String {
    let mut details = json!({"name": obj.meta().name, "kind": res.resource, "uid": obj.meta().uid});
    // Named for resources of an API group, as the apiserver does
    // (fixture `200-clusterrolebinding-delete-admin.json`).
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": details,
    })
    .to_string()
}

/// A JSON object as a string map (labels, annotations, ConfigMap data); a non-string value
/// becomes its JSON text.
pub(super) fn string_map(v: &Value) -> Option<BTreeMap<String, String>> {
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

pub(super) fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

/// A create without `metadata.name` (nor `generateName`, where it is honoured).
pub(super) fn name_required() -> Cause {
    required("metadata.name", "name or generateName is required")
}

pub(super) fn required(field: &str, detail: &str) -> Cause {
    let message = if detail.is_empty() {
        "Required value".to_string()
    } else {
        format!("Required value: {detail}")
    };
    cause("FieldValueRequired", field, message)
}

pub(super) fn invalid(field: &str, value: &str, detail: &str) -> Cause {
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
pub(super) fn path_segment_name_error(name: &str) -> Option<&'static str> {
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
