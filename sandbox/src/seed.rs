//! What a fresh control plane holds before anyone writes to it: cluster-info (unless
//! [`ControlPlaneStyle::Bare`]); in [`ControlPlaneStyle::Kubeadm`], the kubeadm-config and
//! kubelet-config ConfigMaps with the recorded contents and the RBAC objects `kubeadm init`
//! makes for joining nodes; in [`ControlPlaneStyle::Chart`], the chart's few bindings. The RBAC
//! objects are there to be read (as `kaas-join cluster prepare --check` does, fixture
//! `200-clusterrolebinding-get-kubeadm-get-nodes-admin.json`); in these two styles
//! [`crate::authz`] decides by its table, not by them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::authz::{KUBEADM_NODE_TOKEN_GROUP, NODES};
use crate::store::{ConfigMap, Generic, Kind, Obj, ObjectMeta, Store};
use crate::ControlPlaneStyle;

/// The store's resourceVersion before the initial objects (a real control plane has written
/// many objects before any client sees it, so versions do not start at 1).
const FIRST_RESOURCE_VERSION: u64 = 200;

/// A store with the initial objects of `style`; `kubeconfig` is cluster-info's, `server` the
/// URL it names (kubeadm-config's `controlPlaneEndpoint` is its host and port).
pub(crate) fn store(
    style: ControlPlaneStyle,
    kubeconfig: &str,
    server: &str,
) -> std::io::Result<Store> {
    let store = Store::new(FIRST_RESOURCE_VERSION);
    let endpoint = server
        .split_once("://")
        .map_or(server, |(_, r)| r)
        .trim_end_matches('/');
    let mut initial = Vec::new();
    if style != ControlPlaneStyle::Bare {
        initial.push(configmap(
            "kube-public",
            "cluster-info",
            "kubeconfig",
            kubeconfig.to_string(),
        ));
    }
    if style == ControlPlaneStyle::Kubeadm {
        initial.push(configmap(
            "kube-system",
            "kubeadm-config",
            "ClusterConfiguration",
            cluster_configuration(endpoint),
        ));
        initial.push(configmap(
            "kube-system",
            "kubelet-config",
            "kubelet",
            KUBELET_CONFIGURATION.to_string(),
        ));
    }
    initial.extend(rbac_objects(style));
    for obj in initial {
        store
            .create(obj)
            .map_err(|()| std::io::Error::other("duplicate initial object"))?;
    }
    Ok(store)
}

/// `kube-system/kubeadm-config` `data.ClusterConfiguration` as recorded
/// (`200-kubeadm-config-get-bootstrap-token.json`), `controlPlaneEndpoint` set to ours.
fn cluster_configuration(endpoint: &str) -> String {
    format!("apiServer: {{}}\napiVersion: kubeadm.k8s.io/v1beta4\ncaCertificateValidityPeriod: 87600h0m0s\ncertificateValidityPeriod: 8760h0m0s\ncertificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\ncontrolPlaneEndpoint: {endpoint}\ncontrollerManager: {{}}\ndns: {{}}\nencryptionAlgorithm: RSA-2048\netcd:\n  external:\n    caFile: \"\"\n    certFile: \"\"\n    endpoints:\n    - http://127.0.0.1:2379\n    keyFile: \"\"\nimageRepository: registry.k8s.io\nkind: ClusterConfiguration\nkubernetesVersion: v1.32.0\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\nproxy: {{}}\nscheduler: {{}}\n")
}

/// `kube-system/kubelet-config` `data.kubelet` exactly as recorded
/// (`200-kubelet-config-get-bootstrap-token.json`).
const KUBELET_CONFIGURATION: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  anonymous:\n    enabled: false\n  webhook:\n    cacheTTL: 0s\n    enabled: true\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\nauthorization:\n  mode: Webhook\n  webhook:\n    cacheAuthorizedTTL: 0s\n    cacheUnauthorizedTTL: 0s\ncgroupDriver: cgroupfs\nclusterDNS:\n- 10.96.0.10\nclusterDomain: cluster.local\ncontainerRuntimeEndpoint: \"\"\ncpuManagerReconcilePeriod: 0s\ncrashLoopBackOff: {}\nevictionPressureTransitionPeriod: 0s\nfileCheckFrequency: 0s\nhealthzBindAddress: 127.0.0.1\nhealthzPort: 10248\nhttpCheckFrequency: 0s\nimageMaximumGCAge: 0s\nimageMinimumGCAge: 0s\nkind: KubeletConfiguration\nlogging:\n  flushFrequency: 0\n  options:\n    json:\n      infoBufferSize: \"0\"\n    text:\n      infoBufferSize: \"0\"\n  verbosity: 0\nmemorySwap: {}\nnodeStatusReportFrequency: 0s\nnodeStatusUpdateFrequency: 0s\nrotateCertificates: true\nruntimeRequestTimeout: 0s\nshutdownGracePeriod: 0s\nshutdownGracePeriodCriticalPods: 0s\nstaticPodPath: /etc/kubernetes/manifests\nstreamingConnectionIdleTimeout: 0s\nsyncFrequency: 0s\nvolumeStatsAggPeriod: 0s\n";

const RBAC: &str = "rbac.authorization.k8s.io";
const NODECLIENT: &str = "system:certificates.k8s.io:certificatesigningrequests:nodeclient";
const SELFNODECLIENT: &str = "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient";

fn group(name: &str) -> Value {
    json!({"kind": "Group", "apiGroup": RBAC, "name": name})
}

fn rbac(kind: Kind, namespace: Option<&str>, name: &str, fields: Value) -> Obj {
    Obj::Rbac(
        kind,
        Generic {
            metadata: ObjectMeta::new(name, namespace),
            rest: fields.as_object().cloned().unwrap_or_default(),
        },
    )
}

/// A Role granting `get` on one ConfigMap, and its RoleBinding to `subjects`.
fn configmap_reader(namespace: &str, role: &str, configmap: &str, subjects: Value) -> [Obj; 2] {
    [
        rbac(
            Kind::Role,
            Some(namespace),
            role,
            json!({"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": [configmap]}]}),
        ),
        rbac(
            Kind::RoleBinding,
            Some(namespace),
            role,
            json!({"roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role}, "subjects": subjects}),
        ),
    ]
}

fn cluster_role_binding(name: &str, role: &str, subject: Value) -> Obj {
    rbac(
        Kind::ClusterRoleBinding,
        None,
        name,
        json!({"roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}, "subjects": [subject]}),
    )
}

/// The RBAC objects of `style`, with kubeadm's names and rules
/// (`phases/bootstraptoken/{clusterinfo,node}`, `phases/uploadconfig`), or the chart's: the
/// cluster-info reader and the bootstrapper, nodeclient and selfnodeclient bindings only.
fn rbac_objects(style: ControlPlaneStyle) -> Vec<Obj> {
    let anonymous = json!([{"kind": "User", "apiGroup": RBAC, "name": "system:anonymous"}]);
    let token = || group(KUBEADM_NODE_TOKEN_GROUP);
    let readers = json!([token(), group(NODES)]);
    let (cluster_info_role, names) = match style {
        ControlPlaneStyle::Bare => return Vec::new(),
        ControlPlaneStyle::Kubeadm => (
            "kubeadm:bootstrap-signer-clusterinfo",
            [
                "kubeadm:kubelet-bootstrap",
                "kubeadm:node-autoapprove-bootstrap",
                "kubeadm:node-autoapprove-certificate-rotation",
            ],
        ),
        ControlPlaneStyle::Chart => (
            "kaas-seed:cluster-info-reader",
            [
                "kaas-seed:node-bootstrapper",
                "kaas-seed:node-autoapprove-bootstrap",
                "kaas-seed:node-autoapprove-certificate-rotation",
            ],
        ),
    };
    let mut objects: Vec<Obj> =
        configmap_reader("kube-public", cluster_info_role, "cluster-info", anonymous).into();
    objects.push(cluster_role_binding(
        names[0],
        "system:node-bootstrapper",
        token(),
    ));
    objects.push(cluster_role_binding(names[1], NODECLIENT, token()));
    objects.push(cluster_role_binding(names[2], SELFNODECLIENT, group(NODES)));
    if style == ControlPlaneStyle::Kubeadm {
        objects.push(rbac(
            Kind::ClusterRole,
            None,
            "kubeadm:get-nodes",
            json!({"rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}),
        ));
        objects.push(cluster_role_binding(
            "kubeadm:get-nodes",
            "kubeadm:get-nodes",
            token(),
        ));
        objects.extend(configmap_reader(
            "kube-system",
            "kubeadm:nodes-kubeadm-config",
            "kubeadm-config",
            readers.clone(),
        ));
        objects.extend(configmap_reader(
            "kube-system",
            "kubeadm:kubelet-config",
            "kubelet-config",
            readers,
        ));
    }
    objects
}

fn configmap(namespace: &str, name: &str, key: &str, value: String) -> Obj {
    Obj::ConfigMap(ConfigMap {
        metadata: ObjectMeta::new(name, Some(namespace)),
        data: BTreeMap::from([(key.to_string(), value)]),
    })
}
