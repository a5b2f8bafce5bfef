//! Who is asking (authentication results) and what they may do: the RBAC bindings kubeadm
//! creates, the Node authorizer's rules for `system:node:<name>`, written out as one table.
//!
//! Simplification: the bindings kubeadm makes for its default node-token group
//! (`system:bootstrappers:kubeadm:default-node-token`) are granted here to every bootstrap token
//! (group `system:bootstrappers`), so `TokenOptions::groups` does not take permissions away;
//! only the `nodeclient` binding (auto-approval) is per token (`TokenOptions::can_nodeclient`).

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
        if PUBLIC_PATHS.contains(&path.as_str()) && a.verb == "get" {
            return Decision::allow("");
        }
        if user.is_anonymous() {
            return Decision::deny("");
        }
        return Decision::allow("");
    }
    let node = user.node_name();
    let bootstrap = user.bootstrap_token_id().is_some();
    let verb = a.verb.as_str();
    match (
        a.group.as_str(),
        a.resource.as_str(),
        a.subresource.as_str(),
    ) {
        ("", "configmaps", "") if verb == "get" => {
            match (a.namespace.as_str(), a.name.as_str()) {
                ("kube-public", "cluster-info") => Decision::allow(
                    "RBAC: allowed by RoleBinding \"kubeadm:bootstrap-signer-clusterinfo/kube-public\" of Role \"kubeadm:bootstrap-signer-clusterinfo\" to User \"system:anonymous\"",
                ),
                ("kube-system", "kubeadm-config" | "kubelet-config")
                    if style == ControlPlaneStyle::Kubeadm && (bootstrap || node.is_some()) =>
                {
                    Decision::allow("")
                }
                _ if node.is_some() && a.name.is_empty() => Decision::deny("No Object name found"),
                _ => Decision::deny(""),
            }
        }
        ("authorization.k8s.io", "selfsubjectaccessreviews" | "selfsubjectrulesreviews", "")
            if verb == "create" && !user.is_anonymous() =>
        {
            Decision::allow(rbac("system:basic-user", "system:basic-user", AUTHENTICATED))
        }
        ("certificates.k8s.io", "certificatesigningrequests", "")
            if matches!(verb, "create" | "get" | "list" | "watch") =>
        {
            if bootstrap {
                Decision::allow(rbac(
                    "kubeadm:kubelet-bootstrap",
                    "system:node-bootstrapper",
                    KUBEADM_NODE_TOKEN_GROUP,
                ))
            } else if node.is_some() {
                Decision::allow("")
            } else {
                Decision::deny("")
            }
        }
        ("certificates.k8s.io", "certificatesigningrequests", "nodeclient") if verb == "create" => {
            match nodeclient_group.filter(|_| bootstrap) {
                Some(group) => Decision::allow(rbac(
                    "kubeadm:node-autoapprove-bootstrap",
                    "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                    group,
                )),
                None => Decision::deny(""),
            }
        }
        ("certificates.k8s.io", "certificatesigningrequests", "selfnodeclient")
            if verb == "create" =>
        {
            if node.is_some() {
                Decision::allow(rbac(
                    "kubeadm:node-autoapprove-certificate-rotation",
                    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                    NODES,
                ))
            } else {
                Decision::deny("")
            }
        }
        ("", "nodes", "") if verb == "get" => match node {
            Some(me) if me == a.name => Decision::allow(""),
            Some(me) => Decision::deny(format!(
                "node '{me}' cannot read '{}', only its own Node object",
                a.name
            )),
            None if bootstrap => Decision::allow(""),
            None => Decision::deny(""),
        },
        ("", "nodes", "") if matches!(verb, "list" | "watch") => match node {
            Some(me) if a.selected_name.as_deref() == Some(me) => Decision::allow(""),
            Some(me) => Decision::deny(format!(
                "node '{me}' cannot read all nodes, only its own Node object"
            )),
            None => Decision::deny(""),
        },
        ("", "nodes", "" | "status") if matches!(verb, "create" | "patch" | "update") => {
            if node.is_some() {
                Decision::allow("")
            } else {
                Decision::deny("")
            }
        }
        ("", "events", "") if matches!(verb, "create" | "patch" | "update") => {
            if node.is_some() {
                Decision::allow("")
            } else {
                Decision::deny("")
            }
        }
        _ if node.is_some() && a.name.is_empty() && a.namespace.is_empty() => Decision::deny(""),
        _ if node.is_some() && a.name.is_empty() => Decision::deny("No Object name found"),
        _ => Decision::deny(""),
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
