//! Secrets, as an admin (`kaas-join token`, `kubeadm token`) writes and lists them. A
//! `bootstrap.kubernetes.io/token` Secret in kube-system is a bootstrap token: creating it makes
//! the token authenticate and sign cluster-info, deleting it ends both ([`crate::tokens`]).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use super::body::parse_json;
use super::objects::{deleted_status, get_object, new_object_meta, Handled};
use super::watch::list_json;
use super::ApiRequest;
use crate::status::{Res, Status};
use crate::store::{Kind, Obj, Secret, Selector};
use crate::tokens::{token_from_secret, TOKEN_NAMESPACE};

pub(super) fn get(r: &ApiRequest) -> Handled {
    let namespace = Some(r.attrs.namespace.as_str());
    get_object(
        r.shared,
        Kind::Secret,
        Res::SECRETS,
        namespace,
        &r.attrs.name,
    )
}

pub(super) fn create(r: &ApiRequest) -> Handled {
    let namespace = r.attrs.namespace.as_str();
    let value = parse_json(&r.body, "Secret")?;
    let metadata = new_object_meta(&value, Some(namespace), "Secret", "")?;
    let name = metadata.name.clone();
    let data = secret_data(&value)?;
    let type_ = value["type"]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or("Opaque")
        .to_string();
    let secret = Secret {
        metadata,
        data,
        type_,
    };
    let token = token_from_secret(&secret);
    let created = r
        .shared
        .store
        .create(Obj::Secret(secret))
        .map_err(|()| Status::already_exists(Res::SECRETS, &name))?;
    if let Some(token) = token.filter(|_| namespace == TOKEN_NAMESPACE) {
        r.shared.register_token(token);
    }
    Ok((201, created.json()))
}

/// `data` (which must be base64) with `stringData` merged in: stringData is write-only, encoded
/// into data as the apiserver does.
fn secret_data(value: &Value) -> Result<BTreeMap<String, String>, Status> {
    let mut data = BTreeMap::new();
    if let Some(map) = value["data"].as_object() {
        for (k, v) in map {
            let text = v.as_str().unwrap_or("");
            if STANDARD.decode(text).is_err() {
                return Err(Status::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k:?}]"
                )));
            }
            data.insert(k.clone(), text.to_string());
        }
    }
    if let Some(map) = value["stringData"].as_object() {
        for (k, v) in map {
            data.insert(
                k.clone(),
                STANDARD.encode(v.as_str().unwrap_or("").as_bytes()),
            );
        }
    }
    Ok(data)
}

/// A list in one namespace (all namespaces when the path has none), optionally only the
/// Secrets of the selected `type`.
pub(super) fn list(r: &ApiRequest) -> Handled {
    let namespace = r.attrs.namespace.as_str();
    let type_ = r.secret_type.as_deref();
    let (items, rv) = r.shared.store.list(&Selector {
        kind: Kind::Secret,
        namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
        name: None,
    });
    let selected = items.iter().filter(|o| match (o, type_) {
        (Obj::Secret(s), Some(t)) => s.type_ == t,
        _ => true,
    });
    Ok((200, list_json(Kind::Secret, rv, selected)))
}

pub(super) fn delete(r: &ApiRequest) -> Handled {
    let (namespace, name) = (r.attrs.namespace.as_str(), r.attrs.name.as_str());
    let obj = r
        .shared
        .store
        .delete(Kind::Secret, Some(namespace), name)
        .ok_or_else(|| Status::not_found(Res::SECRETS, name))?;
    if let Obj::Secret(secret) = &obj {
        if let Some(token) = token_from_secret(secret).filter(|_| namespace == TOKEN_NAMESPACE) {
            r.shared.unregister_token(&token.id);
        }
    }
    Ok((200, deleted_status(Res::SECRETS, &obj)))
}
