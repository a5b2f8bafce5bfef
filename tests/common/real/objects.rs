//! The API objects each set-up creates, as plain JSON: what `kubeadm init` makes for joining
//! nodes, what the seed's Helm chart makes instead, bootstrap-token Secrets, and the kubeconfig
//! and audit-policy texts the processes read. Pure, so the tests that always run check it
//! against the recorded fixtures.

use base64::Engine as _;
use serde_json::{json, Value};

/// kubeadm's `NodeBootstrapTokenAuthGroup`.
pub const TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// kubeadm's `NodesGroup`.
pub const NODES_GROUP: &str = "system:nodes";
/// A token group bound only to `system:node-bootstrapper`: its node client CSRs are created but
/// never auto-approved (the fixture `201-ssar-nodeclient-denied-bootstrap-token`).
pub const NO_AUTOAPPROVE_GROUP: &str = "system:bootstrappers:kaas-test:no-autoapprove";
pub const RBAC: &str = "rbac.authorization.k8s.io";
pub const NODECLIENT_ROLE: &str =
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient";
pub const SELFNODECLIENT_ROLE: &str =
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient";
/// The names the chart stand-in gives its objects (the chart's own; kubeadm's differ).
pub const CHART_CLUSTER_INFO_ROLE: &str = "kaas-seed:cluster-info-reader";
pub const CHART_BINDINGS: [(&str, &str); 3] = [
    ("kaas-seed:node-bootstrapper", "system:node-bootstrapper"),
    ("kaas-seed:node-autoapprove-bootstrap", NODECLIENT_ROLE),
    (
        "kaas-seed:node-autoapprove-certificate-rotation",
        SELFNODECLIENT_ROLE,
    ),
];

fn fixture_json(name: &str) -> Value {
    crate::common::fixtures::fixture_json(name)
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// kube-public/cluster-info's `data.kubeconfig`, in the text form kubeadm's `clientcmd.Write`
/// gives (the recorded fixture).
pub fn cluster_info_kubeconfig(server: &str, ca_pem: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        b64(ca_pem.as_bytes())
    )
}

/// The admin kubeconfig (JSON, which kubeconfig loaders accept) for kube-controller-manager,
/// `kaas-join token`/`cluster prepare` and kubectl.
pub fn admin_kubeconfig(server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "real", "cluster": {
            "server": server,
            "certificate-authority-data": b64(ca_pem.as_bytes()),
        }}],
        "users": [{"name": "kubernetes-admin", "user": {
            "client-certificate-data": b64(cert_pem.as_bytes()),
            "client-key-data": b64(key_pem.as_bytes()),
        }}],
        "contexts": [{"name": "real", "context": {"cluster": "real", "user": "kubernetes-admin"}}],
        "current-context": "real",
    });
    serde_json::to_string_pretty(&config).unwrap()
}

/// The audit policy: every request at `Metadata` (one event per request once the request
/// stage is omitted: counting requests per join), and bodies of what joining nodes and
/// bootstrap tokens send and get for CSRs and Nodes.
pub const AUDIT_POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: RequestResponse
  userGroups: [system:bootstrappers, system:nodes]
  resources:
  - group: certificates.k8s.io
    resources: [certificatesigningrequests]
  - group: \"\"
    resources: [nodes]
- level: Metadata
";

/// A random bootstrap token `(id, secret)`, `[a-z0-9]{6}` and `[a-z0-9]{16}`.
pub fn random_token() -> (String, String) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 22];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    let s: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    (s[..6].to_string(), s[6..].to_string())
}

pub fn group(name: &str) -> Value {
    json!({"kind": "Group", "apiGroup": RBAC, "name": name})
}

fn anonymous_user() -> Value {
    json!({"kind": "User", "apiGroup": RBAC, "name": "system:anonymous"})
}

pub fn get_configmap_role(namespace: &str, role: &str, configmap: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": role, "namespace": namespace},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": [configmap]}],
    })
}

pub fn role_binding(namespace: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": role, "namespace": namespace},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role},
        "subjects": subjects,
    })
}

pub fn cluster_role_binding(name: &str, cluster_role: &str, subject: Value) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": cluster_role},
        "subjects": [subject],
    })
}

pub fn configmap(namespace: &str, name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    })
}

/// kube-system/bootstrap-token-<id>, as `kubeadm token create` writes it, with `groups` as
/// `auth-extra-groups`.
pub fn bootstrap_token_secret(
    id: &str,
    secret: &str,
    groups: &[&str],
    expiration: time::OffsetDateTime,
) -> Value {
    let expiration = expiration
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {
            "description": "kaas-join real-control-plane test",
            "token-id": id,
            "token-secret": secret,
            "expiration": expiration,
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": groups.join(","),
        },
    })
}

/// The API path a new object of this kind is POSTed to.
pub fn collection_path(object: &Value) -> String {
    let kind = object["kind"].as_str().expect("kind");
    let ns = object["metadata"]["namespace"].as_str();
    let (prefix, plural) = match kind {
        "Namespace" => ("/api/v1", "namespaces"),
        "ConfigMap" => ("/api/v1", "configmaps"),
        "Secret" => ("/api/v1", "secrets"),
        "Role" => ("/apis/rbac.authorization.k8s.io/v1", "roles"),
        "RoleBinding" => ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
        "ClusterRole" => ("/apis/rbac.authorization.k8s.io/v1", "clusterroles"),
        "ClusterRoleBinding" => ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings"),
        "Deployment" => ("/apis/apps/v1", "deployments"),
        other => panic!("no path for kind {other}"),
    };
    match ns {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}"),
        None => format!("{prefix}/{plural}"),
    }
}

/// The path of an existing object.
pub fn object_path(object: &Value) -> String {
    format!(
        "{}/{}",
        collection_path(object),
        object["metadata"]["name"].as_str().expect("name")
    )
}

/// Binds [`NO_AUTOAPPROVE_GROUP`] to `system:node-bootstrapper` only (no set-up has it; a test
/// adds it): a token in that group creates CSRs nobody auto-approves.
pub fn no_autoapprove_binding() -> Value {
    cluster_role_binding(
        "kaas-test:no-autoapprove-bootstrapper",
        "system:node-bootstrapper",
        group(NO_AUTOAPPROVE_GROUP),
    )
}

/// Every object `kubeadm init` (phases upload-config and bootstrap-token) makes that a joining
/// worker relies on, in creation order. The names are kubeadm's
/// (`cmd/kubeadm/app/phases/bootstraptoken/{clusterinfo,node}`, `uploadconfig`, constants).
/// `server` goes into cluster-info. Tokens come separately ([`bootstrap_token_secret`]).
pub fn kubeadm_init_objects(server: &str, ca_pem: &str) -> Vec<Value> {
    let kubeadm_config = fixture_json("200-kubeadm-config-get-bootstrap-token.json");
    let kubelet_config = fixture_json("200-kubelet-config-get-bootstrap-token.json");
    let token_group = || group(TOKEN_GROUP);
    vec![
        // upload-config: kubeadm-config and kubelet-config, readable by joining nodes.
        configmap(
            "kube-system",
            "kubeadm-config",
            kubeadm_config["data"].clone(),
        ),
        get_configmap_role(
            "kube-system",
            "kubeadm:nodes-kubeadm-config",
            "kubeadm-config",
        ),
        role_binding(
            "kube-system",
            "kubeadm:nodes-kubeadm-config",
            vec![token_group(), group(NODES_GROUP)],
        ),
        configmap(
            "kube-system",
            "kubelet-config",
            kubelet_config["data"].clone(),
        ),
        get_configmap_role("kube-system", "kubeadm:kubelet-config", "kubelet-config"),
        role_binding(
            "kube-system",
            "kubeadm:kubelet-config",
            vec![token_group(), group(NODES_GROUP)],
        ),
        // bootstrap-token: cluster-info, public.
        configmap(
            "kube-public",
            "cluster-info",
            json!({"kubeconfig": cluster_info_kubeconfig(server, ca_pem)}),
        ),
        get_configmap_role(
            "kube-public",
            "kubeadm:bootstrap-signer-clusterinfo",
            "cluster-info",
        ),
        role_binding(
            "kube-public",
            "kubeadm:bootstrap-signer-clusterinfo",
            vec![anonymous_user()],
        ),
        // bootstrap-token: tokens may post CSRs, their CSRs and renewals are auto-approved,
        // and they may get Nodes (the duplicate-name check).
        cluster_role_binding(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            token_group(),
        ),
        cluster_role_binding(
            "kubeadm:node-autoapprove-bootstrap",
            NODECLIENT_ROLE,
            token_group(),
        ),
        cluster_role_binding(
            "kubeadm:node-autoapprove-certificate-rotation",
            SELFNODECLIENT_ROLE,
            group(NODES_GROUP),
        ),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "kubeadm:get-nodes"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
        }),
        cluster_role_binding("kubeadm:get-nodes", "kubeadm:get-nodes", token_group()),
    ]
}

/// What the seed's Helm chart makes instead: cluster-info naming `service_server` (the API
/// server's Service address) with its anonymous read, and only the node-bootstrapper,
/// nodeclient and selfnodeclient bindings, under the chart's own names. No kubeadm-config, no
/// kubelet-config, no Role to read them, no `kubeadm:get-nodes`.
pub fn chart_objects(service_server: &str, ca_pem: &str) -> Vec<Value> {
    let mut objects = vec![
        configmap(
            "kube-public",
            "cluster-info",
            json!({"kubeconfig": cluster_info_kubeconfig(service_server, ca_pem)}),
        ),
        get_configmap_role("kube-public", CHART_CLUSTER_INFO_ROLE, "cluster-info"),
        role_binding(
            "kube-public",
            CHART_CLUSTER_INFO_ROLE,
            vec![anonymous_user()],
        ),
    ];
    for (name, role) in CHART_BINDINGS {
        let subject = if role == SELFNODECLIENT_ROLE {
            group(NODES_GROUP)
        } else {
            group(TOKEN_GROUP)
        };
        objects.push(cluster_role_binding(name, role, subject));
    }
    objects
}

/// Standard base64 decoded (a kubeconfig's `*-data`); panics on bad input.
pub fn b64_decode(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}
