//! Nodes: a node creates and patches its own Node (NodeRestriction admission), an admin reads,
//! lists and deletes them; [`new_node`] is also how [`crate::Sandbox::add_node`] makes one.

use serde_json::{json, Map, Value};

use super::body::parse_json;
use super::objects::{deleted_status, get_object, name_required, string_map, updated, Handled};
use super::patch::{self, merge};
use super::ApiRequest;
use crate::status::{Res, Status};
use crate::store::{Kind, Node, Obj, ObjectMeta};

pub(super) fn get(r: &ApiRequest) -> Handled {
    get_object(r.shared, Kind::Node, Res::NODES, None, &r.attrs.name)
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

/// The NodeRestriction admission plugin's answer to a node writing another node's object.
fn node_restriction(me: &str, name: &str) -> Status {
    Status::forbidden(
        Res::NODES,
        Some(name),
        &format!("node \"{me}\" is not allowed to modify node \"{name}\""),
    )
}

pub(super) fn create(r: &ApiRequest) -> Handled {
    let value = parse_json(&r.body, "Node")?;
    let name = value["metadata"]["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        return Err(Status::invalid("Node", "", "", vec![name_required()]));
    }
    let me = r.user.node_name().unwrap_or("");
    if me != name {
        return Err(node_restriction(me, &name));
    }
    let node = new_node(&name, &value);
    let created = r
        .shared
        .store
        .create(Obj::Node(node))
        .map_err(|()| Status::already_exists(Res::NODES, &name))?;
    Ok((201, created.json()))
}

/// A node's PATCH of its Node or `nodes/<name>/status` (strategic or JSON merge).
pub(super) fn patch(r: &ApiRequest) -> Handled {
    let name = r.attrs.name.as_str();
    let subresource = r.attrs.subresource.as_str();
    if r.shared.store.get(Kind::Node, None, name).is_none() {
        return Err(Status::not_found(Res::NODES, name));
    }
    let me = r.user.node_name().unwrap_or("");
    if me != name {
        return Err(node_restriction(me, name));
    }
    let strategic = patch::strategic(&r.content_type)?;
    let patch = patch::parse_patch(&r.body)?;
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
    let outcome = r
        .shared
        .store
        .update::<Status>(Kind::Node, None, name, |obj| {
            let Obj::Node(node) = obj else {
                return Ok(false);
            };
            let before =
                serde_json::to_value(&*node).map_err(|e| Status::bad_request(e.to_string()))?;
            apply_patch(node, &patch, subresource, strategic);
            let after =
                serde_json::to_value(&*node).map_err(|e| Status::bad_request(e.to_string()))?;
            Ok(before != after)
        });
    Ok((200, updated(outcome, Res::NODES, name)?.json()))
}

/// Merges a patch into the part of `node` the request addresses: `status` for the status
/// subresource, else labels, annotations and `spec` (the rest of the patch is ignored).
fn apply_patch(node: &mut Node, patch: &Value, subresource: &str, strategic: bool) {
    if subresource == "status" {
        if let Some(status) = patch.get("status") {
            merge(&mut node.status, status, strategic);
        }
        return;
    }
    let mut meta = json!({
        "labels": node.metadata.labels.clone().unwrap_or_default(),
        "annotations": node.metadata.annotations.clone().unwrap_or_default(),
    });
    if let Some(m) = patch.get("metadata") {
        merge(
            &mut meta,
            &json!({"labels": m.get("labels").cloned().unwrap_or(json!({})), "annotations": m.get("annotations").cloned().unwrap_or(json!({}))}),
            strategic,
        );
    }
    node.metadata.labels = string_map(&meta["labels"]).filter(|m| !m.is_empty());
    node.metadata.annotations = string_map(&meta["annotations"]).filter(|m| !m.is_empty());
    if let Some(spec) = patch.get("spec") {
        merge(&mut node.spec, spec, strategic);
    }
}

/// An admin's `kubectl delete node` (the Node authorizer gives nodes no delete: 403 before here).
pub(super) fn delete(r: &ApiRequest) -> Handled {
    let name = r.attrs.name.as_str();
    let obj = r
        .shared
        .store
        .delete(Kind::Node, None, name)
        .ok_or_else(|| Status::not_found(Res::NODES, name))?;
    Ok((200, deleted_status(Res::NODES, &obj)))
}
