//! ConfigMaps: anybody reads cluster-info, bootstrap tokens and nodes read kubeadm-config and
//! kubelet-config, an admin (`kaas-join cluster prepare`) creates and updates them. A write to
//! cluster-info is re-signed at once by the bootstrapsigner ([`Shared::resign_cluster_info`]).

use super::body::parse_json;
use super::objects::{
    check_resource_version, get_object, new_object_meta, string_map, updated, Handled,
};
use super::ApiRequest;
use crate::status::{Res, Status};
use crate::store::{ConfigMap, Kind, Obj};
use crate::Shared;

fn is_cluster_info(namespace: &str, name: &str) -> bool {
    namespace == "kube-public" && name == "cluster-info"
}

pub(super) fn get(r: &ApiRequest) -> Handled {
    let namespace = Some(r.attrs.namespace.as_str());
    get_object(
        r.shared,
        Kind::ConfigMap,
        Res::CONFIGMAPS,
        namespace,
        &r.attrs.name,
    )
}

pub(super) fn create(r: &ApiRequest) -> Handled {
    let namespace = r.attrs.namespace.as_str();
    let value = parse_json(&r.body, "ConfigMap")?;
    let metadata = new_object_meta(&value, Some(namespace), "ConfigMap", "")?;
    let name = metadata.name.clone();
    let data = string_map(&value["data"]).unwrap_or_default();
    let created = r
        .shared
        .store
        .create(Obj::ConfigMap(ConfigMap { metadata, data }))
        .map_err(|()| Status::already_exists(Res::CONFIGMAPS, &name))?;
    Ok((201, signed(r.shared, namespace, &name, created).json()))
}

/// A PUT: data, labels and annotations replaced (with a `resourceVersion` check).
pub(super) fn update(r: &ApiRequest) -> Handled {
    let (namespace, name) = (r.attrs.namespace.as_str(), r.attrs.name.as_str());
    let value = parse_json(&r.body, "ConfigMap")?;
    if value["metadata"]["name"].as_str() != Some(name) {
        return Err(Status::bad_request(
            "the name of the object does not match the name on the URL".into(),
        ));
    }
    let data = string_map(&value["data"]).unwrap_or_default();
    let labels = string_map(&value["metadata"]["labels"]);
    let annotations = string_map(&value["metadata"]["annotations"]);
    let outcome = r
        .shared
        .store
        .update::<Status>(Kind::ConfigMap, Some(namespace), name, |obj| {
            let Obj::ConfigMap(cm) = obj else {
                return Ok(false);
            };
            check_resource_version(&value, &cm.metadata, Res::CONFIGMAPS)?;
            let changed = cm.data != data
                || cm.metadata.labels != labels
                || cm.metadata.annotations != annotations;
            cm.data = data;
            cm.metadata.labels = labels;
            cm.metadata.annotations = annotations;
            Ok(changed)
        });
    let written = updated(outcome, Res::CONFIGMAPS, name)?;
    Ok((200, signed(r.shared, namespace, name, written).json()))
}

/// The ConfigMap as the answer to a write shows it: cluster-info with the bootstrapsigner's
/// signatures (for every signing token) added to the new content, any other one as written.
fn signed(shared: &Shared, namespace: &str, name: &str, written: Obj) -> Obj {
    if !is_cluster_info(namespace, name) {
        return written;
    }
    shared.resign_cluster_info();
    shared
        .store
        .get(Kind::ConfigMap, Some(namespace), name)
        .unwrap_or(written)
}
