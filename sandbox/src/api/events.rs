//! Events: kubelet creates them in its node's namespace and its event correlator patches a
//! repeated one (count, lastTimestamp, message).

use serde_json::{json, Value};

use super::body::parse_json;
use super::objects::{
    check_namespace, invalid, name_required, object_fields, requested_name, string_map, updated,
    Handled,
};
use super::patch::{self, merge};
use super::ApiRequest;
use crate::status::{Res, Status};
use crate::store::{Event, Kind, Obj, ObjectMeta};

pub(super) fn create(r: &ApiRequest) -> Handled {
    let namespace = r.attrs.namespace.as_str();
    let value = parse_json(&r.body, "Event")?;
    let meta = &value["metadata"];
    check_namespace(meta, namespace)?;
    let Some(name) = requested_name(meta) else {
        return Err(Status::invalid("Event", "", "", vec![name_required()]));
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
    let mut rest = object_fields(&value);
    // Defaults of a core/v1 Event (fixture `201-event-create-default-ns-as-node-v1.33.json`).
    rest.entry("eventTime").or_insert(Value::Null);
    rest.entry("reportingComponent").or_insert(json!(""));
    rest.entry("reportingInstance").or_insert(json!(""));
    let mut metadata = ObjectMeta::new(&name, Some(namespace));
    metadata.labels = string_map(&meta["labels"]);
    metadata.annotations = string_map(&meta["annotations"]);
    let created = r
        .shared
        .store
        .create(Obj::Event(Event { metadata, rest }))
        .map_err(|()| Status::already_exists(Res::EVENTS, &name))?;
    Ok((201, created.json()))
}

/// `PATCH /api/v1/namespaces/<ns>/events/<name>`, as kubelet's event correlator sends it to
/// aggregate a repeated event (`{"count": n, "lastTimestamp": ..., "message": ...}`,
/// `application/strategic-merge-patch+json`; recorded in `kubelet-real-trace/events-patch-*`).
/// Events have no merge-keyed lists, so strategic and JSON merge patches act alike here.
pub(super) fn patch(r: &ApiRequest) -> Handled {
    let name = r.attrs.name.as_str();
    patch::strategic(&r.content_type)?;
    let patch = patch::parse_patch(&r.body)?;
    let Value::Object(fields) = &patch else {
        return Err(Status::bad_request(
            "error decoding patch: the patch is not a JSON object".into(),
        ));
    };
    let namespace = Some(r.attrs.namespace.as_str());
    let outcome = r
        .shared
        .store
        .update::<Status>(Kind::Event, namespace, name, |obj| {
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
    Ok((200, updated(outcome, Res::EVENTS, name)?.json()))
}
