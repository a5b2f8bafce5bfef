//! Roles, RoleBindings, ClusterRoles and ClusterRoleBindings, as an admin (`kaas-join cluster
//! prepare`) writes them: create, get, update (PUT) and delete, stored as sent (rules, roleRef,
//! subjects); roleRef cannot change. In [`crate::ControlPlaneStyle::Bare`] the authorizer
//! reads them back ([`crate::rbac`]).

use super::body::parse_json;
use super::objects::{
    check_resource_version, deleted_status, get_object, invalid, new_object_meta, object_fields,
    updated, Handled,
};
use super::ApiRequest;
use crate::status::{Res, Status};
use crate::store::{Generic, Kind, Obj};

pub(super) const GROUP: &str = "rbac.authorization.k8s.io";

/// Where an RBAC object of `kind` lives: Roles and RoleBindings in the request's namespace
/// (a path without one is 404), the cluster-wide kinds nowhere.
fn scope(kind: Kind, namespace: &str) -> Result<Option<&str>, Status> {
    match kind {
        Kind::Role | Kind::RoleBinding if namespace.is_empty() => Err(Status::path_not_found()),
        Kind::Role | Kind::RoleBinding => Ok(Some(namespace)),
        _ => Ok(None),
    }
}

/// Any request for an RBAC resource; other resources of the group are 404.
pub(super) fn handle(r: &ApiRequest) -> Handled {
    let Some(kind) = Kind::rbac(&r.attrs.resource) else {
        return Err(Status::path_not_found());
    };
    let res = Res::rbac(&r.attrs.resource);
    let ns = scope(kind, &r.attrs.namespace)?;
    let name = r.attrs.name.as_str();
    match r.attrs.verb.as_str() {
        "get" => get_object(r.shared, kind, res, ns, name),
        "create" => create(r, kind, res, ns),
        "update" => update(r, kind, res, ns),
        "delete" => {
            let obj = r
                .shared
                .store
                .delete(kind, ns, name)
                .ok_or_else(|| Status::not_found(res, name))?;
            Ok((200, deleted_status(res, &obj)))
        }
        _ => Err(Status::method_not_supported()),
    }
}

fn create(r: &ApiRequest, kind: Kind, res: Res, ns: Option<&str>) -> Handled {
    let value = parse_json(&r.body, kind.kind())?;
    let metadata = new_object_meta(&value, ns, kind.kind(), GROUP)?;
    let name = metadata.name.clone();
    let object = Generic {
        metadata,
        rest: object_fields(&value),
    };
    let created = r
        .shared
        .store
        .create(Obj::Rbac(kind, object))
        .map_err(|()| Status::already_exists(res, &name))?;
    Ok((201, created.json()))
}

fn update(r: &ApiRequest, kind: Kind, res: Res, ns: Option<&str>) -> Handled {
    let name = r.attrs.name.as_str();
    let value = parse_json(&r.body, kind.kind())?;
    let rest = object_fields(&value);
    let outcome = r.shared.store.update::<Status>(kind, ns, name, |obj| {
        let Obj::Rbac(_, stored) = obj else {
            return Ok(false);
        };
        check_resource_version(&value, &stored.metadata, res)?;
        if stored.rest.get("roleRef").is_some() && stored.rest.get("roleRef") != rest.get("roleRef")
        {
            return Err(Status::invalid(
                kind.kind(),
                GROUP,
                name,
                vec![invalid("roleRef", "...", "cannot change roleRef")],
            ));
        }
        let changed = stored.rest != rest;
        stored.rest = rest;
        Ok(changed)
    });
    Ok((200, updated(outcome, res, name)?.json()))
}
