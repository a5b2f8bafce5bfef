//! `kaas-join cluster prepare`: makes a control plane that `kubeadm init` did not set up
//! joinable, idempotently, with the objects and names kubeadm uses
//! (`phases/bootstraptoken/clusterinfo/clusterinfo.go`, `phases/bootstraptoken/node/tlsbootstrap.go`,
//! `phases/uploadconfig/uploadconfig.go`, `phases/kubelet/config.go`):
//!
//! | object | what |
//! |---|---|
//! | ConfigMap `kube-public/cluster-info` | `data.kubeconfig`: server and CA (other keys, the bootstrapsigner's `jws-kubeconfig-*`, are kept) |
//! | Role + RoleBinding `kube-public/kubeadm:bootstrap-signer-clusterinfo` | `get` on that ConfigMap for User `system:anonymous` |
//! | ClusterRoleBinding `kubeadm:kubelet-bootstrap` | `system:node-bootstrapper` to the token group (create CSRs) |
//! | ClusterRoleBinding `kubeadm:node-autoapprove-bootstrap` | `...:certificatesigningrequests:nodeclient` to the token group (auto-approval) |
//! | ClusterRoleBinding `kubeadm:node-autoapprove-certificate-rotation` | `...:selfnodeclient` to Group `system:nodes` (renewals) |
//! | ClusterRole + ClusterRoleBinding `kubeadm:get-nodes` | `get` Nodes for the token group (duplicate-name check) |
//! | Role + RoleBinding `kube-system/kubeadm:nodes-kubeadm-config` | `get` ConfigMap `kubeadm-config`, to the token group and `system:nodes`, only if that ConfigMap exists |
//! | Role + RoleBinding `kube-system/kubeadm:kubelet-config` | `get` ConfigMap `kubelet-config`, likewise |
//!
//! Each object is read; a missing one is created, a wrong one fixed (a Role's rules are
//! replaced, as kubeadm's `CreateOrUpdate` does; a binding's missing subjects are added, others
//! kept; a binding to another role is deleted and created again, since `roleRef` cannot change;
//! cluster-info's kubeconfig is rewritten and the bootstrapsigner re-signs it). One line per
//! object: `created`, `updated`, `ok` (or `skipped`). `--check` writes nothing, prints `missing`
//! and `wrong` and exits 23 when anything is.

use serde_json::{json, Value};

use crate::k8s::admin::{Admin, AdminError};
use crate::model::token::DEFAULT_GROUP;

const RBAC: &str = "rbac.authorization.k8s.io";
const NODES_GROUP: &str = "system:nodes";
const CLUSTER_INFO_ROLE: &str = "kubeadm:bootstrap-signer-clusterinfo";

/// What became of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok,
    Created,
    Updated,
    Missing,
    Wrong,
    Skipped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Created => "created",
            State::Updated => "updated",
            State::Missing => "missing",
            State::Wrong => "wrong",
            State::Skipped => "skipped",
        }
    }
}

/// One object to ensure.
#[derive(Debug, Clone)]
pub struct Desired {
    pub object: Value,
    /// Only if this ConfigMap (kube-system) exists.
    pub if_configmap: Option<&'static str>,
}

impl Desired {
    fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or("")
    }

    fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }

    fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or("")
    }

    /// `Kind namespace/name` or `Kind name`.
    pub fn label(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }

    fn collection(&self) -> String {
        let (prefix, plural) = match self.kind() {
            "ConfigMap" => ("/api/v1", "configmaps"),
            "Role" => ("/apis/rbac.authorization.k8s.io/v1", "roles"),
            "RoleBinding" => ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
            "ClusterRole" => ("/apis/rbac.authorization.k8s.io/v1", "clusterroles"),
            _ => ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings"),
        };
        match self.namespace() {
            Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}"),
            None => format!("{prefix}/{plural}"),
        }
    }

    fn path(&self) -> String {
        format!("{}/{}", self.collection(), self.name())
    }
}

fn group(name: &str) -> Value {
    json!({"kind": "Group", "apiGroup": RBAC, "name": name})
}

fn get_configmap_role(namespace: &str, role: &str, configmap: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": role, "namespace": namespace},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": [configmap]}],
    })
}

fn role_binding(namespace: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": role, "namespace": namespace},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role},
        "subjects": subjects,
    })
}

fn cluster_role_binding(name: &str, cluster_role: &str, subject: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": cluster_role},
        "subjects": [subject],
    })
}

/// Everything `cluster prepare` ensures, in order, with kubeadm's names and rules.
/// `kubeconfig` is cluster-info's `data.kubeconfig`
/// ([`crate::model::kubeconfig::cluster_info_kubeconfig`]).
pub fn desired_objects(kubeconfig: &str) -> Vec<Desired> {
    let always = |object| Desired {
        object,
        if_configmap: None,
    };
    let token_group = || group(DEFAULT_GROUP);
    vec![
        always(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cluster-info", "namespace": "kube-public"},
            "data": {"kubeconfig": kubeconfig},
        })),
        always(get_configmap_role(
            "kube-public",
            CLUSTER_INFO_ROLE,
            "cluster-info",
        )),
        always(role_binding(
            "kube-public",
            CLUSTER_INFO_ROLE,
            vec![json!({"kind": "User", "apiGroup": RBAC, "name": "system:anonymous"})],
        )),
        always(cluster_role_binding(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            token_group(),
        )),
        always(cluster_role_binding(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            token_group(),
        )),
        always(cluster_role_binding(
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            group(NODES_GROUP),
        )),
        always(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "kubeadm:get-nodes"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
        })),
        always(cluster_role_binding(
            "kubeadm:get-nodes",
            "kubeadm:get-nodes",
            token_group(),
        )),
        Desired {
            object: get_configmap_role(
                "kube-system",
                "kubeadm:nodes-kubeadm-config",
                "kubeadm-config",
            ),
            if_configmap: Some("kubeadm-config"),
        },
        Desired {
            object: role_binding(
                "kube-system",
                "kubeadm:nodes-kubeadm-config",
                vec![token_group(), group(NODES_GROUP)],
            ),
            if_configmap: Some("kubeadm-config"),
        },
        Desired {
            object: get_configmap_role("kube-system", "kubeadm:kubelet-config", "kubelet-config"),
            if_configmap: Some("kubelet-config"),
        },
        Desired {
            object: role_binding(
                "kube-system",
                "kubeadm:kubelet-config",
                vec![token_group(), group(NODES_GROUP)],
            ),
            if_configmap: Some("kubelet-config"),
        },
    ]
}

/// A rule with its lists as sorted sets (missing = empty), for comparison.
fn rule_key(rule: &Value) -> Vec<Vec<String>> {
    [
        "apiGroups",
        "resources",
        "verbs",
        "resourceNames",
        "nonResourceURLs",
    ]
    .iter()
    .map(|k| {
        let mut v: Vec<String> = rule[*k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    })
    .collect()
}

fn subject_key(s: &Value) -> (String, String) {
    (
        s["kind"].as_str().unwrap_or("").to_string(),
        s["name"].as_str().unwrap_or("").to_string(),
    )
}

/// What is wrong with `existing` compared with `desired`; `None` when it is right.
pub fn difference(desired: &Desired, existing: &Value) -> Option<String> {
    match desired.kind() {
        "ConfigMap" => {
            let want = desired.object["data"]["kubeconfig"].as_str().unwrap_or("");
            let Some(have) = existing["data"]["kubeconfig"].as_str() else {
                return Some("it has no data.kubeconfig".into());
            };
            let endpoint = |text: &str| {
                crate::model::kubeconfig::parse(text)
                    .ok()
                    .and_then(|k| crate::model::kubeconfig::cluster_endpoint(&k).ok())
            };
            let (Some(w), Some(h)) = (endpoint(want), endpoint(have)) else {
                return Some("its data.kubeconfig is not a usable kubeconfig".into());
            };
            if w.server != h.server {
                return Some(format!("server is {}, want {}", h.server, w.server));
            }
            let certs =
                |pem: &[u8]| crate::model::pin::certificates_from_pem(pem).unwrap_or_default();
            if certs(&w.ca_pem) != certs(&h.ca_pem) {
                return Some("its CA is not the admin kubeconfig's".into());
            }
            None
        }
        "Role" | "ClusterRole" => {
            let have: Vec<_> = existing["rules"]
                .as_array()
                .map(|r| r.iter().map(rule_key).collect())
                .unwrap_or_default();
            let missing = desired.object["rules"]
                .as_array()
                .is_some_and(|r| r.iter().any(|rule| !have.contains(&rule_key(rule))));
            missing.then(|| "its rules do not grant what kubeadm's do".into())
        }
        _ => {
            let want_ref = &desired.object["roleRef"];
            let have_ref = &existing["roleRef"];
            if want_ref["kind"] != have_ref["kind"] || want_ref["name"] != have_ref["name"] {
                return Some(format!(
                    "it binds {} {}, want {} {}",
                    have_ref["kind"].as_str().unwrap_or("?"),
                    have_ref["name"].as_str().unwrap_or("?"),
                    want_ref["kind"].as_str().unwrap_or(""),
                    want_ref["name"].as_str().unwrap_or("")
                ));
            }
            let have: Vec<_> = existing["subjects"]
                .as_array()
                .map(|s| s.iter().map(subject_key).collect())
                .unwrap_or_default();
            let missing: Vec<String> = desired.object["subjects"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .map(subject_key)
                        .filter(|k| !have.contains(k))
                        .map(|(kind, name)| format!("{kind} {name}"))
                        .collect()
                })
                .unwrap_or_default();
            (!missing.is_empty()).then(|| format!("subjects lack {}", missing.join(", ")))
        }
    }
}

/// The object to PUT to fix `existing`: the desired content over it (cluster-info keeps its
/// other keys; a binding keeps its other subjects), with its resourceVersion.
fn fixed(desired: &Desired, existing: &Value) -> Value {
    let mut obj = existing.clone();
    match desired.kind() {
        "ConfigMap" => {
            if !obj["data"].is_object() {
                obj["data"] = json!({});
            }
            obj["data"]["kubeconfig"] = desired.object["data"]["kubeconfig"].clone();
        }
        "Role" | "ClusterRole" => obj["rules"] = desired.object["rules"].clone(),
        _ => {
            let mut subjects = existing["subjects"].as_array().cloned().unwrap_or_default();
            let have: Vec<_> = subjects.iter().map(subject_key).collect();
            for s in desired.object["subjects"].as_array().into_iter().flatten() {
                if !have.contains(&subject_key(s)) {
                    subjects.push(s.clone());
                }
            }
            obj["subjects"] = Value::Array(subjects);
        }
    }
    obj
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub state: State,
    pub object: String,
    pub detail: Option<String>,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<8} {}", self.state.as_str(), self.object)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

async fn get(admin: &Admin, path: &str, action: &str) -> Result<Option<Value>, AdminError> {
    match admin.client.get_json::<Value>(path).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.status_code() == Some(404) => Ok(None),
        Err(e) => Err(admin.api_error(e, action)),
    }
}

/// Ensures (or with `check`, only inspects) every object; the report lines in order.
pub async fn ensure(
    admin: &Admin,
    desired: &[Desired],
    check: bool,
    mut progress: impl FnMut(&Line),
) -> Result<Vec<Line>, AdminError> {
    let mut lines = Vec::new();
    let mut present: Vec<(&str, bool)> = Vec::new();
    for d in desired {
        let label = d.label();
        let mut push = |state, detail: Option<String>| {
            let line = Line {
                state,
                object: label.clone(),
                detail,
            };
            progress(&line);
            lines.push(line);
        };
        if let Some(cm) = d.if_configmap {
            let exists = match present.iter().find(|(n, _)| *n == cm) {
                Some((_, e)) => *e,
                None => {
                    let path = format!("/api/v1/namespaces/kube-system/configmaps/{cm}");
                    let e = get(admin, &path, "get ConfigMaps in kube-system")
                        .await?
                        .is_some();
                    present.push((cm, e));
                    e
                }
            };
            if !exists {
                push(
                    State::Skipped,
                    Some(format!("ConfigMap kube-system/{cm} does not exist")),
                );
                continue;
            }
        }
        let kind = d.kind().to_string();
        let plural = format!("{}s", kind.to_lowercase());
        let scope = d
            .namespace()
            .map(|ns| format!(" in {ns}"))
            .unwrap_or_default();
        let existing = get(admin, &d.path(), &format!("get {plural}{scope}")).await?;
        match existing {
            None if check => push(State::Missing, None),
            None => {
                admin
                    .client
                    .post_json::<_, Value>(&d.collection(), &d.object)
                    .await
                    .map_err(|e| admin.api_error(e, &format!("create {plural}{scope}")))?;
                push(State::Created, None);
            }
            Some(existing) => match difference(d, &existing) {
                None => push(State::Ok, None),
                Some(why) if check => push(State::Wrong, Some(why)),
                Some(why) => {
                    let role_ref_changed = existing.get("roleRef").is_some()
                        && (existing["roleRef"]["name"] != d.object["roleRef"]["name"]
                            || existing["roleRef"]["kind"] != d.object["roleRef"]["kind"]);
                    if role_ref_changed {
                        // roleRef is immutable: delete and create again.
                        admin
                            .client
                            .delete(&d.path())
                            .await
                            .map_err(|e| admin.api_error(e, &format!("delete {plural}{scope}")))?;
                        admin
                            .client
                            .post_json::<_, Value>(&d.collection(), &d.object)
                            .await
                            .map_err(|e| admin.api_error(e, &format!("create {plural}{scope}")))?;
                    } else {
                        admin
                            .client
                            .put_json::<_, Value>(&d.path(), &fixed(d, &existing))
                            .await
                            .map_err(|e| admin.api_error(e, &format!("update {plural}{scope}")))?;
                    }
                    push(State::Updated, Some(why));
                }
            },
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_kubeadms() {
        let objs = desired_objects("KC");
        let labels: Vec<String> = objs.iter().map(Desired::label).collect();
        assert_eq!(labels[0], "ConfigMap kube-public/cluster-info");
        assert!(labels.contains(&"ClusterRoleBinding kubeadm:node-autoapprove-bootstrap".into()));
        assert_eq!(
            objs[2].path(),
            "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-public/rolebindings/kubeadm:bootstrap-signer-clusterinfo"
        );
        assert_eq!(objs.iter().filter(|d| d.if_configmap.is_some()).count(), 4);
    }

    #[test]
    fn differences() {
        let objs = desired_objects("KC");
        let crb = &objs[4];
        assert_eq!(difference(crb, &crb.object), None);
        let mut other = crb.object.clone();
        other["subjects"] = json!([group("someone-else")]);
        let why = difference(crb, &other).unwrap();
        assert!(why.contains(DEFAULT_GROUP), "{why}");
        let fixed = fixed(crb, &other);
        assert_eq!(fixed["subjects"].as_array().unwrap().len(), 2);
        let role = &objs[1];
        let mut wider = role.object.clone();
        wider["rules"] = json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"]}, {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]);
        assert_eq!(difference(role, &wider), None);
        wider["rules"] = json!([]);
        assert!(difference(role, &wider).is_some());
    }
}
