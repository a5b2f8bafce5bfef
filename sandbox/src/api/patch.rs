//! PATCH bodies: which merge a media type asks for, and the merge itself (JSON merge patch,
//! and strategic merge for the Node fields kubelet patches). Used by Nodes and Events.

use serde_json::{json, Value};

use crate::status::Status;

/// Whether a PATCH's media type asks for a strategic merge (`true`) or a JSON merge patch
/// (`false`); anything else (JSON patch, apply) is 415, as the sandbox serves only merges.
pub(super) fn strategic(content_type: &str) -> Result<bool, Status> {
    match content_type {
        "application/strategic-merge-patch+json" => Ok(true),
        "application/merge-patch+json" => Ok(false),
        _ => Err(Status::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (sandbox: only merge patches; got {content_type:?})"),
            None,
        )),
    }
}

/// A PATCH body as JSON (400 if it is not).
pub(super) fn parse_patch(body: &[u8]) -> Result<Value, Status> {
    serde_json::from_slice(body)
        .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))
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
pub(super) fn merge(target: &mut Value, patch: &Value, strategic: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
