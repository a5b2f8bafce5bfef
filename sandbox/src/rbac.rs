//! The RBAC authorizer over the stored Roles, ClusterRoles and their bindings, used in
//! [`crate::ControlPlaneStyle::Bare`]: there nothing is granted until someone (`kaas-join
//! cluster prepare`) creates the bindings, as on a control plane not set up by kubeadm.
//!
//! Besides the stored objects, the built-in ClusterRoles every apiserver reconciles at start
//! are known (`system:node-bootstrapper`, the `nodeclient`/`selfnodeclient` approval roles,
//! `system:basic-user`), with the one built-in binding that matters here
//! (`system:basic-user` to `system:authenticated`). Rules match as upstream's
//! `rbac/validation.RuleAllows`: apiGroups, resources (`resource/subresource`), verbs, with `*`,
//! and resourceNames only for requests that name an object.

use serde_json::{json, Value};

use crate::authz::{Attrs, Decision, User};
use crate::store::{Kind, Obj, Selector, Store};

/// The built-in ClusterRoles: name and rules.
fn builtin_cluster_role(name: &str) -> Option<Value> {
    let rules = match name {
        "system:node-bootstrapper" => json!([{
            "apiGroups": ["certificates.k8s.io"],
            "resources": ["certificatesigningrequests"],
            "verbs": ["create", "get", "list", "watch"],
        }]),
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient" => json!([{
            "apiGroups": ["certificates.k8s.io"],
            "resources": ["certificatesigningrequests/nodeclient"],
            "verbs": ["create"],
        }]),
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient" => json!([{
            "apiGroups": ["certificates.k8s.io"],
            "resources": ["certificatesigningrequests/selfnodeclient"],
            "verbs": ["create"],
        }]),
        "system:basic-user" => json!([{
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            "verbs": ["create"],
        }]),
        _ => return None,
    };
    Some(rules)
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn rule_allows(rule: &Value, a: &Attrs) -> bool {
    let has = |list: &[&str], want: &str| list.iter().any(|x| *x == "*" || *x == want);
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let names = strings(&rule["resourceNames"]);
    has(&strings(&rule["apiGroups"]), &a.group)
        && has(&strings(&rule["resources"]), &resource)
        && has(&strings(&rule["verbs"]), &a.verb)
        && (names.is_empty() || (!a.name.is_empty() && names.contains(&a.name.as_str())))
}

/// The subject of `binding` that `user` is, as `Kind "name"` for the reason text.
fn matching_subject(binding: &Value, user: &User) -> Option<String> {
    binding["subjects"].as_array()?.iter().find_map(|s| {
        let name = s["name"].as_str()?;
        let hit = match s["kind"].as_str()? {
            "User" => user.name == name,
            "Group" => user.in_group(name),
            _ => false,
        };
        hit.then(|| format!("{} \"{name}\"", s["kind"].as_str().unwrap_or("")))
    })
}

fn rest(obj: &Obj) -> Value {
    obj.value()
}

fn role_rules(store: &Store, kind: Kind, namespace: Option<&str>, name: &str) -> Option<Value> {
    match store.get(kind, namespace, name) {
        Some(obj) => Some(rest(&obj)["rules"].clone()),
        None if kind == Kind::ClusterRole => builtin_cluster_role(name),
        None => None,
    }
}

fn any_rule(rules: &Value, a: &Attrs) -> bool {
    rules
        .as_array()
        .is_some_and(|r| r.iter().any(|rule| rule_allows(rule, a)))
}

/// The RBAC decision from the stored objects (and the built-ins).
pub(crate) fn authorize(store: &Store, user: &User, a: &Attrs) -> Decision {
    // Built-in: system:basic-user to system:authenticated.
    if let Some(rules) = builtin_cluster_role("system:basic-user") {
        if user.in_group(crate::authz::AUTHENTICATED) && any_rule(&rules, a) {
            return Decision::allow(
                "RBAC: allowed by ClusterRoleBinding \"system:basic-user\" of ClusterRole \"system:basic-user\" to Group \"system:authenticated\"",
            );
        }
    }
    let all = |kind| {
        store
            .list(&Selector {
                kind,
                namespace: None,
                name: None,
            })
            .0
    };
    for binding in all(Kind::ClusterRoleBinding) {
        let b = rest(&binding);
        let Some(subject) = matching_subject(&b, user) else {
            continue;
        };
        let role = b["roleRef"]["name"].as_str().unwrap_or("");
        if b["roleRef"]["kind"] != "ClusterRole" {
            continue;
        }
        if role_rules(store, Kind::ClusterRole, None, role).is_some_and(|r| any_rule(&r, a)) {
            return Decision::allow(format!(
                "RBAC: allowed by ClusterRoleBinding \"{}\" of ClusterRole \"{role}\" to {subject}",
                binding.meta().name
            ));
        }
    }
    if !a.namespace.is_empty() {
        for binding in all(Kind::RoleBinding) {
            if binding.meta().namespace.as_deref() != Some(a.namespace.as_str()) {
                continue;
            }
            let b = rest(&binding);
            let Some(subject) = matching_subject(&b, user) else {
                continue;
            };
            let role = b["roleRef"]["name"].as_str().unwrap_or("");
            let (kind, ns) = match b["roleRef"]["kind"].as_str() {
                Some("Role") => (Kind::Role, Some(a.namespace.as_str())),
                Some("ClusterRole") => (Kind::ClusterRole, None),
                _ => continue,
            };
            if role_rules(store, kind, ns, role).is_some_and(|r| any_rule(&r, a)) {
                return Decision::allow(format!(
                    "RBAC: allowed by RoleBinding \"{}/{}\" of {} \"{role}\" to {subject}",
                    binding.meta().name,
                    a.namespace,
                    kind.kind()
                ));
            }
        }
    }
    Decision::deny("")
}

/// The group (or user) through which `user` may create `certificatesigningrequests/nodeclient`.
pub(crate) fn nodeclient_subject(store: &Store, user: &User) -> Option<String> {
    let a = Attrs {
        verb: "create".into(),
        group: "certificates.k8s.io".into(),
        resource: "certificatesigningrequests".into(),
        subresource: "nodeclient".into(),
        ..Attrs::default()
    };
    let d = authorize(store, user, &a);
    if !d.allowed {
        return None;
    }
    // "... to Group \"<name>\"": the name, for the reason the authz table prints.
    let name = d
        .reason
        .rsplit_once(" \"")
        .map(|(_, n)| n.trim_end_matches('"'));
    Some(name.unwrap_or(crate::authz::BOOTSTRAPPERS).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_only_match_named_requests() {
        let rule = json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["cluster-info"]});
        let mut a = Attrs {
            verb: "get".into(),
            resource: "configmaps".into(),
            namespace: "kube-public".into(),
            name: "cluster-info".into(),
            ..Attrs::default()
        };
        assert!(rule_allows(&rule, &a));
        a.name = "other".into();
        assert!(!rule_allows(&rule, &a));
        a.name = String::new();
        a.verb = "list".into();
        assert!(!rule_allows(&rule, &a));
    }
}
