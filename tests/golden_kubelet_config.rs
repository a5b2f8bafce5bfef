//! Golden tests: kubelet's config.yaml and kubeadm-flags.env against the files a real
//! `kubeadm join` v1.32.0 wrote (fixtures/kubeadm-join-trace), from the ConfigMaps it read.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use kaas_join::model::cgroup_driver::CgroupDriver;
use kaas_join::model::kubelet_schema::validate;
use kaas_join::render::kubelet_config::{
    cluster_dns_from_service_subnet, render_flags_env, render_kubelet_config, KubeletConfigInputs,
    KubeletFlags,
};
use serde_norway::Value;

const CA: &str = "/etc/kubernetes/pki/ca.crt";

fn fixtures() -> PathBuf {
    common::fixtures::fixtures_dir()
}

fn read(rel: &str) -> String {
    let p = fixtures().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

fn configmap_data(rel: &str, key: &str) -> String {
    let cm: serde_json::Value = serde_json::from_str(&read(rel)).unwrap();
    cm["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{rel}: no data.{key}"))
        .to_owned()
}

/// The kubelet-config ConfigMap exactly as `kubeadm join` received it, from the audit log of
/// that join. (It differs from `200-kubelet-config-get-bootstrap-token.json`, recorded earlier:
/// `address: 127.0.0.1` was applied to the ConfigMap with kubectl 2 s before the join.)
fn kubelet_config_seen_by_kubeadm_join() -> String {
    let log = read("kubeadm-join-trace/audit-events.jsonl");
    for line in log.lines() {
        let ev: serde_json::Value = serde_json::from_str(line).unwrap();
        let is_it = ev["verb"] == "get"
            && ev["objectRef"]["resource"] == "configmaps"
            && ev["objectRef"]["name"] == "kubelet-config"
            && ev["responseStatus"]["code"] == 200;
        if is_it {
            return ev["responseObject"]["data"]["kubelet"]
                .as_str()
                .unwrap()
                .to_owned();
        }
    }
    panic!("no kubelet-config GET in kubeadm-join-trace/audit-events.jsonl");
}

/// clusterDNS as kubeadm derives it from the recorded kubeadm-config's serviceSubnet.
fn recorded_cluster_dns() -> IpAddr {
    let cc = configmap_data(
        "200-kubeadm-config-get-bootstrap-token.json",
        "ClusterConfiguration",
    );
    let cc: Value = serde_norway::from_str(&cc).unwrap();
    let subnet = cc["networking"]["serviceSubnet"].as_str().unwrap();
    cluster_dns_from_service_subnet(subnet).unwrap()
}

fn inputs<'a>(
    cluster: Option<&'a Value>,
    overrides: Option<&'a Value>,
    driver: CgroupDriver,
) -> KubeletConfigInputs<'a> {
    KubeletConfigInputs {
        cluster,
        overrides,
        cluster_dns: vec![recorded_cluster_dns()],
        cluster_domain: "cluster.local".into(),
        cgroup_driver: driver,
        client_ca_file: CA,
    }
}

fn parse(s: &str) -> Value {
    serde_norway::from_str(s).unwrap()
}

/// Overrides that replace whole sections (the secure fields inside must survive).
const SECTION_OVERRIDES: &str = "authentication:\n  webhook:\n    cacheTTL: 1m\n  anonymous: {}\nauthorization:\n  webhook:\n    cacheAuthorizedTTL: 1m\n";
/// A cluster KubeletConfiguration with insecure values (corrected when rendering).
const INSECURE_CLUSTER: &str =
    "authentication:\n  anonymous:\n    enabled: true\nreadOnlyPort: 10255\nrotateCertificates: false\n";
/// Overrides that weaken secure defaults on purpose (kept when rendering).
const EXPLICIT_INSECURE_OVERRIDES: &str =
    "readOnlyPort: 10255\nauthentication:\n  anonymous:\n    enabled: true\n";

#[test]
fn recorded_cluster_config_gives_kubeadms_config_yaml_byte_for_byte() {
    let cluster = parse(&kubelet_config_seen_by_kubeadm_join());
    let out = render_kubelet_config(&inputs(Some(&cluster), None, CgroupDriver::Cgroupfs)).unwrap();
    let want = read("kubeadm-join-trace/config.yaml");
    assert_eq!(out, want, "differs from what kubeadm join wrote");
}

#[test]
fn earlier_recorded_kubelet_config_round_trips_byte_for_byte() {
    // The standalone recording predates the `address` edit; everything else is the same file.
    let data = configmap_data("200-kubelet-config-get-bootstrap-token.json", "kubelet");
    let cluster = parse(&data);
    let out = render_kubelet_config(&inputs(Some(&cluster), None, CgroupDriver::Cgroupfs)).unwrap();
    assert_eq!(out, data);
    let want = read("kubeadm-join-trace/config.yaml").replace("address: 127.0.0.1\n", "");
    assert_eq!(out, want);
}

#[test]
fn flags_env_matches_kubeadm_byte_for_byte() {
    let labels = BTreeMap::new();
    let extra = vec![(
        "pod-infra-container-image".to_string(),
        "registry.k8s.io/pause:3.10".to_string(),
    )];
    let out = render_flags_env(&KubeletFlags {
        cri_endpoint: "unix:///run/containerd/containerd.sock",
        node_ip: Some("127.0.0.1".parse().unwrap()),
        hostname_override: Some("kubeadm-join-1"),
        node_labels: &labels,
        extra_args: &extra,
    });
    let want = read("kubeadm-join-trace/kubeadm-flags.env");
    assert!(want.ends_with("\"\n"), "the fixture ends with one newline");
    assert_eq!(out, want);
}

#[test]
fn chart_style_control_plane_gets_kubeadm_defaults_and_secure_settings() {
    let out = render_kubelet_config(&inputs(None, None, CgroupDriver::Systemd)).unwrap();
    let v = parse(&out);
    assert_eq!(v["apiVersion"], "kubelet.config.k8s.io/v1beta1");
    assert_eq!(v["kind"], "KubeletConfiguration");
    assert_eq!(v["authentication"]["anonymous"]["enabled"], false);
    assert_eq!(v["authentication"]["webhook"]["enabled"], true);
    assert_eq!(v["authentication"]["x509"]["clientCAFile"], CA);
    assert_eq!(v["authorization"]["mode"], "Webhook");
    assert_eq!(v["rotateCertificates"], true);
    assert_eq!(v["cgroupDriver"], "systemd");
    assert_eq!(v["clusterDNS"], parse("[10.96.0.10]"));
    assert_eq!(v["clusterDomain"], "cluster.local");
    assert_eq!(v["healthzBindAddress"], "127.0.0.1");
    assert_eq!(v["healthzPort"], 10248);
    assert_eq!(v["staticPodPath"], "/etc/kubernetes/manifests");
    // readOnlyPort absent = 0 (disabled) for a v1beta1 config file, as kubeadm writes it.
    assert!(v.get("readOnlyPort").is_none_or(|p| *p == 0), "{out}");
    // Printed like kubeadm: sorted keys.
    assert!(
        out.starts_with("apiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n"),
        "{out}"
    );

    let dns = cluster_dns_from_service_subnet("fd00::/108").unwrap();
    let mut i = inputs(None, None, CgroupDriver::Cgroupfs);
    i.cluster_dns = vec![dns];
    let v = parse(&render_kubelet_config(&i).unwrap());
    assert_eq!(v["clusterDNS"], parse("[fd00::a]"));
    assert_eq!(v["cgroupDriver"], "cgroupfs");
}

#[test]
fn overrides_cannot_silently_drop_secure_defaults() {
    let cluster = parse(&kubelet_config_seen_by_kubeadm_join());
    // Replacing whole sections must not lose the secure fields inside them.
    let over = parse(SECTION_OVERRIDES);
    let v = parse(
        &render_kubelet_config(&inputs(Some(&cluster), Some(&over), CgroupDriver::Systemd))
            .unwrap(),
    );
    assert_eq!(v["authentication"]["anonymous"]["enabled"], false);
    assert_eq!(v["authentication"]["webhook"]["enabled"], true);
    assert_eq!(v["authentication"]["webhook"]["cacheTTL"], "1m");
    assert_eq!(v["authentication"]["x509"]["clientCAFile"], CA);
    assert_eq!(v["authorization"]["mode"], "Webhook");
    assert_eq!(v["authorization"]["webhook"]["cacheAuthorizedTTL"], "1m");
    assert_eq!(v["rotateCertificates"], true);
    assert_eq!(v["cgroupDriver"], "systemd");

    // An insecure cluster value is corrected too.
    let insecure = parse(INSECURE_CLUSTER);
    let v = parse(
        &render_kubelet_config(&inputs(Some(&insecure), None, CgroupDriver::Systemd)).unwrap(),
    );
    assert_eq!(v["authentication"]["anonymous"]["enabled"], false);
    assert_eq!(v["readOnlyPort"], 0);
    assert_eq!(v["rotateCertificates"], true);
}

#[test]
fn explicit_overrides_are_kept() {
    let cluster = parse(&kubelet_config_seen_by_kubeadm_join());
    let over = parse(EXPLICIT_INSECURE_OVERRIDES);
    let out = render_kubelet_config(&inputs(Some(&cluster), Some(&over), CgroupDriver::Cgroupfs))
        .unwrap();
    let v = parse(&out);
    assert_eq!(v["readOnlyPort"], 10255);
    assert_eq!(v["authentication"]["anonymous"]["enabled"], true);
    // Everything else stays as kubeadm wrote it; the new key lands where kubeadm would sort it.
    let mut want = parse(&read("kubeadm-join-trace/config.yaml"));
    want["readOnlyPort"] = Value::Number(10255.into());
    want["authentication"]["anonymous"]["enabled"] = Value::Bool(true);
    assert_eq!(v, want);
    assert!(
        out.contains("\nreadOnlyPort: 10255\nrotateCertificates: true\n"),
        "{out}"
    );
}

/// The paths of the overrides `validate` lists as weakening a secure default.
fn weakened_paths(config: &str) -> Vec<String> {
    let weakened = validate(&parse(config), Some(config)).unwrap_or_else(|e| panic!("{e}"));
    weakened.into_iter().map(|w| w.path).collect()
}

/// Every KubeletConfiguration these golden tests feed in fits the kubelet schema (Kubernetes
/// v1.33): the recorded cluster configurations and the file kubeadm wrote with no weakening,
/// the overrides with exactly the weakenings they are about.
#[test]
fn golden_inputs_fit_the_kubelet_schema() {
    for recorded in [
        kubelet_config_seen_by_kubeadm_join(),
        configmap_data("200-kubelet-config-get-bootstrap-token.json", "kubelet"),
        read("kubeadm-join-trace/config.yaml"),
    ] {
        assert_eq!(weakened_paths(&recorded), Vec::<String>::new());
    }
    assert_eq!(weakened_paths(SECTION_OVERRIDES), Vec::<String>::new());
    assert_eq!(
        weakened_paths(INSECURE_CLUSTER),
        [
            "authentication.anonymous.enabled",
            "readOnlyPort",
            "rotateCertificates"
        ]
    );
    assert_eq!(
        weakened_paths(EXPLICIT_INSECURE_OVERRIDES),
        ["authentication.anonymous.enabled", "readOnlyPort"]
    );
}

/// The sandbox publishes the recorded kubelet-config; it fits the schema too.
#[tokio::test]
async fn sandbox_kubelet_config_fits_the_kubelet_schema() {
    let sandbox = kaas_sandbox::Sandbox::start(kaas_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let configmap = sandbox
        .object("ConfigMap", "kube-system", "kubelet-config")
        .expect("the kubeadm-style sandbox publishes kubelet-config");
    let kubelet = configmap["data"]["kubelet"].as_str().unwrap();
    assert_eq!(weakened_paths(kubelet), Vec::<String>::new());
}
