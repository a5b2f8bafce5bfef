//! Who is asking (authentication results) and what they may do: the RBAC bindings kubeadm
//! creates, the Node authorizer's rules for `system:node:<name>`, written out as one table.
//!
//! The bindings kubeadm makes for its default node-token group
//! (`system:bootstrappers:kubeadm:default-node-token`): reading kubeadm-config and kubelet-config
//! (`kubeadm:nodes-kubeadm-config`, `kubeadm:kubelet-config`) and Nodes (`kubeadm:get-nodes`)
//! need that group, as on the real control plane (fixtures
//! `403-kubeadm-config-get-bootstrap-token-other-group.json`, `403-node-get-bootstrap-token-*`);
//! a chart binds no `kubeadm:get-nodes`. Simplification: a token in any other group is taken to
//! be bound to `system:node-bootstrapper` (it may create and read CSRs), and the `nodeclient`
//! binding (auto-approval) is per token (`TokenOptions::can_nodeclient`).

use crate::ControlPlaneStyle;

pub(crate) const BOOTSTRAPPERS: &str = "system:bootstrappers";
pub(crate) const KUBEADM_NODE_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
pub(crate) const NODES: &str = "system:nodes";
pub(crate) const AUTHENTICATED: &str = "system:authenticated";
/// The group the apiserver's privileged-group authorizer lets do anything (kubeadm's admin.conf).
pub(crate) const MASTERS: &str = "system:masters";

/// An authenticated (or anonymous) requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    /// An authenticated user: `system:authenticated` is appended, as the apiserver does.
    pub fn authenticated(name: String, mut groups: Vec<String>) -> User {
        groups.retain(|g| g != AUTHENTICATED);
        groups.push(AUTHENTICATED.into());
        User { name, groups }
    }

    pub fn is_anonymous(&self) -> bool {
        self.name == "system:anonymous"
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node name of a `system:node:<name>` user in group `system:nodes`.
    pub fn node_name(&self) -> Option<&str> {
        if !self.in_group(NODES) {
            return None;
        }
        self.name.strip_prefix("system:node:")
    }

    pub fn bootstrap_token_id(&self) -> Option<&str> {
        if !self.in_group(BOOTSTRAPPERS) {
            return None;
        }
        self.name.strip_prefix("system:bootstrap:")
    }

    /// How requests are recorded: `anonymous`, or the user name.
    pub fn record_name(&self) -> String {
        if self.is_anonymous() {
            "anonymous".into()
        } else {
            self.name.clone()
        }
    }
}

/// What is being done, like `authorizer.Attributes`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attrs {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// For list/watch: the `metadata.name` a field selector restricts to.
    pub selected_name: Option<String>,
    /// For non-resource requests: the path.
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Decision {
    pub allowed: bool,
    /// Why (RBAC's "allowed by ClusterRoleBinding ..."), for SelfSubjectAccessReviews.
    pub reason: String,
    /// Appended to a Forbidden message (`: <why>`), as the Node authorizer does.
    pub deny_reason: String,
}

impl Decision {
    pub(crate) fn allow(reason: impl Into<String>) -> Decision {
        Decision {
            allowed: true,
            reason: reason.into(),
            deny_reason: String::new(),
        }
    }

    pub(crate) fn deny(deny_reason: impl Into<String>) -> Decision {
        Decision {
            allowed: false,
            reason: String::new(),
            deny_reason: deny_reason.into(),
        }
    }
}

fn rbac(binding: &str, role: &str, group: &str) -> String {
    format!("RBAC: allowed by ClusterRoleBinding \"{binding}\" of ClusterRole \"{role}\" to Group \"{group}\"")
}

/// Non-resource paths anybody (even anonymous) may GET: `system:public-info-viewer`.
pub(crate) const PUBLIC_PATHS: &[&str] = &["/version", "/healthz", "/livez", "/readyz"];

/// The authorization decision. `nodeclient_group` is the requester's group bound to the
/// nodeclient ClusterRole, if any (from the bootstrap token's `can_nodeclient`).
pub(crate) fn authorize(
    user: &User,
    a: &Attrs,
    style: ControlPlaneStyle,
    nodeclient_group: Option<&str>,
) -> Decision {
    if user.in_group(MASTERS) {
        return Decision::allow("");
    }
    if let Some(path) = &a.path {
        return non_resource(user, path, &a.verb);
    }
    let who = Requester {
        node: user.node_name(),
        bootstrap: user.bootstrap_token_id().is_some(),
        kubeadm_token: user.bootstrap_token_id().is_some()
            && user.in_group(KUBEADM_NODE_TOKEN_GROUP),
    };
    let decision = match (a.group.as_str(), a.resource.as_str()) {
        ("", "configmaps") => configmaps(a, who, style),
        ("authorization.k8s.io", "selfsubjectaccessreviews" | "selfsubjectrulesreviews") => {
            self_reviews(user, a)
        }
        ("certificates.k8s.io", "certificatesigningrequests") => csrs(a, who, nodeclient_group),
        ("", "nodes") => nodes(a, who, style),
        ("", "events") => events(a, who),
        _ => None,
    };
    decision.unwrap_or_else(|| no_rule(a, who))
}

/// What the rules below ask about the requester.
#[derive(Clone, Copy)]
struct Requester<'a> {
    /// `system:node:<name>` in `system:nodes`: the Node authorizer's subject.
    node: Option<&'a str>,
    /// A bootstrap token (`system:bootstrap:<id>` in `system:bootstrappers`).
    bootstrap: bool,
    /// A bootstrap token in kubeadm's node-token group, which kubeadm's bindings name.
    kubeadm_token: bool,
}

/// Non-resource paths: the public ones for anybody, the rest for any authenticated user.
fn non_resource(user: &User, path: &str, verb: &str) -> Decision {
    if PUBLIC_PATHS.contains(&path) && verb == "get" {
        return Decision::allow("");
    }
    if user.is_anonymous() {
        return Decision::deny("");
    }
    Decision::allow("")
}

/// Nobody's rule matched: denied, with the Node authorizer's reason for a node asking about a
/// namespaced object without naming it.
fn no_rule(a: &Attrs, who: Requester) -> Decision {
    if who.node.is_some() && a.name.is_empty() && !a.namespace.is_empty() {
        return Decision::deny("No Object name found");
    }
    Decision::deny("")
}

/// cluster-info for anybody (kubeadm's `bootstrap-signer-clusterinfo` Role); kubeadm-config and
/// kubelet-config for kubeadm's token group and nodes, in a kubeadm control plane only.
fn configmaps(a: &Attrs, who: Requester, style: ControlPlaneStyle) -> Option<Decision> {
    if !a.subresource.is_empty() || a.verb != "get" {
        return None;
    }
    Some(match (a.namespace.as_str(), a.name.as_str()) {
        ("kube-public", "cluster-info") => Decision::allow(
            "RBAC: allowed by RoleBinding \"kubeadm:bootstrap-signer-clusterinfo/kube-public\" of Role \"kubeadm:bootstrap-signer-clusterinfo\" to User \"system:anonymous\"",
        ),
        ("kube-system", "kubeadm-config" | "kubelet-config")
            if style == ControlPlaneStyle::Kubeadm && (who.kubeadm_token || who.node.is_some()) =>
        {
            Decision::allow("")
        }
        _ if who.node.is_some() && a.name.is_empty() => Decision::deny("No Object name found"),
        _ => Decision::deny(""),
    })
}

/// `system:basic-user`: any authenticated user may ask what it may do.
fn self_reviews(user: &User, a: &Attrs) -> Option<Decision> {
    (a.subresource.is_empty() && a.verb == "create" && !user.is_anonymous()).then(|| {
        Decision::allow(rbac(
            "system:basic-user",
            "system:basic-user",
            AUTHENTICATED,
        ))
    })
}

/// Bootstrap tokens and nodes create and read CSRs (`system:node-bootstrapper`); auto-approval
/// asks about the `nodeclient` (first client certificate) and `selfnodeclient` (renewal)
/// subresources.
fn csrs(a: &Attrs, who: Requester, nodeclient_group: Option<&str>) -> Option<Decision> {
    let verb = a.verb.as_str();
    match a.subresource.as_str() {
        "" if matches!(verb, "create" | "get" | "list" | "watch") => Some(if who.bootstrap {
            Decision::allow(rbac(
                "kubeadm:kubelet-bootstrap",
                "system:node-bootstrapper",
                KUBEADM_NODE_TOKEN_GROUP,
            ))
        } else if who.node.is_some() {
            Decision::allow("")
        } else {
            Decision::deny("")
        }),
        "nodeclient" if verb == "create" => {
            Some(match nodeclient_group.filter(|_| who.bootstrap) {
                Some(group) => Decision::allow(rbac(
                    "kubeadm:node-autoapprove-bootstrap",
                    "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                    group,
                )),
                None => Decision::deny(""),
            })
        }
        "selfnodeclient" if verb == "create" => Some(if who.node.is_some() {
            Decision::allow(rbac(
                "kubeadm:node-autoapprove-certificate-rotation",
                "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                NODES,
            ))
        } else {
            Decision::deny("")
        }),
        _ => None,
    }
}

/// The Node authorizer: a node reads and writes its own Node (and its status) only; kubeadm's
/// token group may read Nodes by name (`kubeadm:get-nodes`, for its pre-join check for an
/// existing node), on a kubeadm control plane only.
fn nodes(a: &Attrs, who: Requester, style: ControlPlaneStyle) -> Option<Decision> {
    let verb = a.verb.as_str();
    match a.subresource.as_str() {
        "" if verb == "get" => Some(match who.node {
            Some(me) if me == a.name => Decision::allow(""),
            Some(me) => Decision::deny(format!(
                "node '{me}' cannot read '{}', only its own Node object",
                a.name
            )),
            None if who.kubeadm_token && style == ControlPlaneStyle::Kubeadm => Decision::allow(""),
            None => Decision::deny(""),
        }),
        "" if matches!(verb, "list" | "watch") => Some(match who.node {
            Some(me) if a.selected_name.as_deref() == Some(me) => Decision::allow(""),
            Some(me) => Decision::deny(format!(
                "node '{me}' cannot read all nodes, only its own Node object"
            )),
            None => Decision::deny(""),
        }),
        "" | "status" if matches!(verb, "create" | "patch" | "update") => Some(node_only(who)),
        _ => None,
    }
}

/// Nodes write Events (kubelet's event recorder).
fn events(a: &Attrs, who: Requester) -> Option<Decision> {
    (a.subresource.is_empty() && matches!(a.verb.as_str(), "create" | "patch" | "update"))
        .then(|| node_only(who))
}

fn node_only(who: Requester) -> Decision {
    if who.node.is_some() {
        Decision::allow("")
    } else {
        Decision::deny("")
    }
}

/// `User "<u>" cannot <verb> resource "<res>" in API group "<g>" ...` (the apiserver's
/// `forbiddenMessage`), without the `<resource> "<name>" is forbidden: ` prefix.
pub(crate) fn forbidden_message(user: &User, a: &Attrs, deny_reason: &str) -> String {
    let mut resource = a.resource.clone();
    if !a.subresource.is_empty() {
        resource = format!("{resource}/{}", a.subresource);
    }
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    let mut msg = format!(
        "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        user.name, a.verb, a.group
    );
    if !deny_reason.is_empty() {
        msg.push_str(": ");
        msg.push_str(deny_reason);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_user() -> User {
        User::authenticated(
            "system:bootstrap:abcdef".into(),
            vec![BOOTSTRAPPERS.into(), KUBEADM_NODE_TOKEN_GROUP.into()],
        )
    }

    #[test]
    fn anonymous_list_nodes_message() {
        let a = Attrs {
            verb: "list".into(),
            resource: "nodes".into(),
            ..Attrs::default()
        };
        let user = User::anonymous();
        let d = authorize(&user, &a, ControlPlaneStyle::Kubeadm, None);
        assert!(!d.allowed);
        assert_eq!(
            forbidden_message(&user, &a, &d.deny_reason),
            "User \"system:anonymous\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
    }

    #[test]
    fn kubeadm_config_depends_on_style() {
        let a = Attrs {
            verb: "get".into(),
            resource: "configmaps".into(),
            namespace: "kube-system".into(),
            name: "kubeadm-config".into(),
            ..Attrs::default()
        };
        assert!(authorize(&token_user(), &a, ControlPlaneStyle::Kubeadm, None).allowed);
        assert!(!authorize(&token_user(), &a, ControlPlaneStyle::Chart, None).allowed);
        assert!(!authorize(&User::anonymous(), &a, ControlPlaneStyle::Kubeadm, None).allowed);
        assert!(!authorize(&other_group_token(), &a, ControlPlaneStyle::Kubeadm, None).allowed);
    }

    /// A token outside kubeadm's group (only `system:node-bootstrapper` bound to it).
    fn other_group_token() -> User {
        User::authenticated(
            "system:bootstrap:ghijkl".into(),
            vec![BOOTSTRAPPERS.into(), "system:bootstrappers:other".into()],
        )
    }

    #[test]
    fn only_kubeadms_token_group_reads_nodes_and_only_on_kubeadm() {
        let a = Attrs {
            verb: "get".into(),
            resource: "nodes".into(),
            name: "n".into(),
            ..Attrs::default()
        };
        assert!(authorize(&token_user(), &a, ControlPlaneStyle::Kubeadm, None).allowed);
        assert!(!authorize(&token_user(), &a, ControlPlaneStyle::Chart, None).allowed);
        assert!(!authorize(&other_group_token(), &a, ControlPlaneStyle::Kubeadm, None).allowed);
    }

    #[test]
    fn nodeclient_reason() {
        let a = Attrs {
            verb: "create".into(),
            group: "certificates.k8s.io".into(),
            resource: "certificatesigningrequests".into(),
            subresource: "nodeclient".into(),
            ..Attrs::default()
        };
        let d = authorize(
            &token_user(),
            &a,
            ControlPlaneStyle::Kubeadm,
            Some(KUBEADM_NODE_TOKEN_GROUP),
        );
        assert!(d.allowed);
        assert_eq!(d.reason, "RBAC: allowed by ClusterRoleBinding \"kubeadm:node-autoapprove-bootstrap\" of ClusterRole \"system:certificates.k8s.io:certificatesigningrequests:nodeclient\" to Group \"system:bootstrappers:kubeadm:default-node-token\"");
        assert!(!authorize(&token_user(), &a, ControlPlaneStyle::Kubeadm, None).allowed);
    }
}
