//! `config::load` with config files: our own `kaas-join.io/v1alpha1` format, kubeadm's
//! `JoinConfiguration` (the recorded `join.yaml`, v1beta3, multi-document files), unknown
//! fields and kinds, and the precedence flags > `KAAS_JOIN_TOKEN` > file.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::config_case::{environment, write_file as write, Case};
use kaas_join::config::{ConfigError, Environment};
use kaas_join::model::cgroup_driver::CgroupDriver;

const TOKEN: &str = "abcdef.0123456789abcdef";
const OTHER_TOKEN: &str = "zyxwvu.fedcba9876543210";
const PIN: &str = "sha256:9be846df48babcf115c32d5881b8dee2cfc5fd6d34664a10f3ca41dfafa6e8d4";
const OTHER_PIN: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

const HOSTNAME: &str = "host-a";

fn env() -> Environment {
    environment(HOSTNAME)
}

fn case() -> Case {
    Case::bare(HOSTNAME, TOKEN)
}

const OWN_FULL: &str = r#"
apiVersion: kaas-join.io/v1alpha1
kind: JoinConfiguration
servers: ["10.0.0.5:6443", "https://cp.example"]
tokenFile: $TOKEN_FILE
caCertHashes: ["sha256:9be846df48babcf115c32d5881b8dee2cfc5fd6d34664a10f3ca41dfafa6e8d4"]
unsafeSkipCAVerification: false
nodeName: worker-1
nodeLabels: {team: a}
nodeIP: 10.0.0.7
criSocket: /run/containerd/containerd.sock
cgroupDriver: systemd
clusterDNS: ["10.96.0.10"]
clusterDomain: cluster.local
discoveryTimeout: 2m
tlsBootstrapTimeout: 90
kubeletExtraArgs: [{name: max-pods, value: "50"}]
kubelet:
  serializeImagePulls: false
  evictionHard: {memory.available: 200Mi}
"#;

#[test]
fn own_format_loads_every_field() {
    let mut c = case();
    c.args.cri_socket = None;
    c.config(OWN_FULL);
    let (cfg, warnings) = c.ok();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        cfg.servers,
        ["https://10.0.0.5:6443", "https://cp.example:443"]
    );
    assert_eq!(cfg.token.id(), "abcdef");
    assert_eq!(cfg.ca_pins[0].to_string(), PIN);
    assert_eq!(cfg.node_name, "worker-1");
    assert_eq!(cfg.hostname, "host-a");
    assert_eq!(cfg.node_labels["team"], "a");
    assert_eq!(cfg.node_ip, Some("10.0.0.7".parse().unwrap()));
    assert_eq!(cfg.cri_socket, "unix:///run/containerd/containerd.sock");
    assert_eq!(cfg.cgroup_driver, Some(CgroupDriver::Systemd));
    assert_eq!(cfg.cluster_dns, Some(vec!["10.96.0.10".parse().unwrap()]));
    assert_eq!(cfg.cluster_domain.as_deref(), Some("cluster.local"));
    assert_eq!(cfg.discovery_timeout, Duration::from_secs(120));
    assert_eq!(cfg.tls_bootstrap_timeout, Duration::from_secs(90));
    assert_eq!(
        cfg.kubelet_extra_args,
        [("max-pods".to_owned(), "50".to_owned())]
    );
    let kubelet = cfg.kubelet_overrides.expect("kubelet overrides");
    assert_eq!(
        kubelet.get("serializeImagePulls"),
        Some(&serde_norway::Value::Bool(false))
    );
}

#[test]
fn default_config_file_is_read_under_root() {
    let mut c = case();
    let text = OWN_FULL.replace(
        "$TOKEN_FILE",
        &write(&c.path("token"), TOKEN, 0o600).display().to_string(),
    );
    write(&c.path("etc/kaas-join/config.yaml"), &text, 0o600);
    c.args.config = None;
    let (cfg, _) = c.ok();
    assert_eq!(cfg.node_name, "worker-1");
}

#[test]
fn absent_default_config_file_is_fine() {
    let mut c = case();
    c.args.server = vec!["10.0.0.5:6443".into()];
    c.args.token = Some(TOKEN.into());
    c.args.discovery_token_ca_cert_hash = vec![PIN.into()];
    let (cfg, _) = c.ok();
    assert_eq!(cfg.node_name, "host-a");
}

#[test]
fn flags_win_over_the_file() {
    let mut c = case();
    c.config(OWN_FULL);
    c.args.server = vec!["10.9.9.9:6443".into()];
    c.args.discovery_token_ca_cert_hash = vec![OTHER_PIN.into()];
    c.args.node_name = Some("flag-name".into());
    c.args.node_labels = vec!["team=b,extra=1".into()];
    c.args.node_ip = Some("10.0.0.8".into());
    c.args.cri_socket = Some("/run/crio/crio.sock".into());
    c.args.cgroup_driver = Some(CgroupDriver::Cgroupfs);
    c.args.cluster_dns = vec!["10.100.0.10".into()];
    c.args.cluster_domain = Some("example.local".into());
    c.args.discovery_timeout = Some("10s".into());
    let (cfg, _) = c.ok();
    assert_eq!(cfg.servers, ["https://10.9.9.9:6443"]);
    assert_eq!(cfg.ca_pins[0].to_string(), OTHER_PIN);
    assert_eq!(cfg.node_name, "flag-name");
    assert_eq!(cfg.node_labels["team"], "b", "flag labels win per key");
    assert_eq!(cfg.node_labels["extra"], "1");
    assert_eq!(cfg.node_ip, Some("10.0.0.8".parse().unwrap()));
    assert_eq!(cfg.cri_socket, "unix:///run/crio/crio.sock");
    assert_eq!(cfg.cgroup_driver, Some(CgroupDriver::Cgroupfs));
    assert_eq!(cfg.cluster_dns, Some(vec!["10.100.0.10".parse().unwrap()]));
    assert_eq!(cfg.cluster_domain.as_deref(), Some("example.local"));
    assert_eq!(cfg.discovery_timeout, Duration::from_secs(10));
    assert_eq!(
        cfg.tls_bootstrap_timeout,
        Duration::from_secs(90),
        "from the file"
    );
}

#[test]
fn token_precedence_flag_then_env_then_file() {
    let mut c = case();
    c.config(OWN_FULL); // tokenFile holds TOKEN (id abcdef)
    let with_env = || Environment {
        token: Some(OTHER_TOKEN.into()),
        ..env()
    };
    assert_eq!(c.load_with(env()).unwrap().0.token.id(), "abcdef", "file");
    assert_eq!(
        c.load_with(with_env()).unwrap().0.token.id(),
        "zyxwvu",
        "env > file"
    );
    let flag_file = write(&c.path("flag-token"), "qwerty.0000000000000000\n", 0o600);
    c.args.token_file = Some(flag_file);
    assert_eq!(
        c.load_with(with_env()).unwrap().0.token.id(),
        "qwerty",
        "flag > env"
    );
}

#[test]
fn file_token_field_works_and_warns_when_file_is_world_readable() {
    let mut c = case();
    let path = c.config(&format!(
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nservers: [\"h:6443\"]\n\
         token: \"{TOKEN}\"\ncaCertHashes: [\"{PIN}\"]\n"
    ));
    let (cfg, warnings) = c.ok();
    assert_eq!(cfg.token.id(), "abcdef");
    assert!(warnings.is_empty(), "{warnings:?}");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let (_, warnings) = c.ok();
    assert!(
        warnings.iter().any(|w| w.0.contains("chmod 600")),
        "{warnings:?}"
    );
    assert!(!format!("{warnings:?}").contains("0123456789abcdef"));
}

#[test]
fn token_and_token_file_in_file_are_refused() {
    let mut c = case();
    c.config(&format!(
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\ntoken: \"{TOKEN}\"\ntokenFile: $TOKEN_FILE\n"
    ));
    assert!(matches!(c.err(), ConfigError::TokenFieldsConflict { .. }));
}

#[test]
fn token_file_from_file_must_be_private() {
    let mut c = case();
    c.config(OWN_FULL);
    fs::set_permissions(c.path("token"), fs::Permissions::from_mode(0o640)).unwrap();
    let msg = c.err().to_string();
    assert!(msg.contains("chmod 600"), "{msg}");
}

#[test]
fn unknown_field_is_refused_naming_it() {
    let mut c = case();
    c.config("apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\ntokenFlie: /x\n");
    let e = c.err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::Document { .. }), "{msg}");
    assert!(msg.contains("tokenFlie"), "{msg}");
    assert!(msg.contains("misspelled"), "{msg}");
}

#[test]
/// kubeadm's format is kubeadm's: an unknown field is a warning naming it, and the join goes
/// on, as `kubeadm join --config` does (issue 11, item 8: it was refused).
fn unknown_kubeadm_field_is_a_warning_naming_it() {
    let mut c = case();
    c.config(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    tokn: x\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.5:6443\n    caCertHashes: [\"sha256:9be846df48babcf115c32d5881b8dee2cfc5fd6d34664a10f3ca41dfafa6e8d4\"]\nnodeRegistration:\n  name: w1\n  nmae: typo\n",
    );
    let (cfg, warnings) = c.ok();
    assert_eq!(cfg.node_name, "w1");
    let text: Vec<String> = warnings.iter().map(|w| w.0.clone()).collect();
    for field in ["`discovery.bootstrapToken.tokn`", "`nodeRegistration.nmae`"] {
        assert!(
            text.iter()
                .any(|w| w.contains(field) && w.contains("ignored")),
            "{field}: {text:#?}"
        );
    }
}

#[test]
fn unknown_field_in_our_own_format_is_still_an_error() {
    let mut c = case();
    c.config("apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nnodeNmae: x\n");
    let msg = c.err().to_string();
    assert!(msg.contains("nodeNmae"), "{msg}");
}

/// Found by the property test `config_file_near_valid_body`: a mangled file whose token line
/// was joined onto the kind line made the unknown-kind error echo the token. apiVersion and kind
/// are echoed only when shaped like one.
#[test]
fn unknown_kind_holding_the_token_is_not_echoed() {
    let mut c = case();
    c.config("apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration abcdef.0123456789abcdef\nservers:");
    let e = c.err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::UnknownKind { .. }), "{msg}");
    assert!(!msg.contains("0123456789abcdef"), "{msg}");
    assert!(!format!("{e:?}").contains("0123456789abcdef"), "{e:?}");
    assert!(msg.contains("kind (not shown: not a kind)"), "{msg}");
    assert!(msg.contains("\"kaas-join.io/v1alpha1\""), "{msg}");

    c.config("apiVersion: abcdef.0123456789abcdef\nkind: JoinConfiguration\n");
    let msg = c.err().to_string();
    assert!(!msg.contains("0123456789abcdef"), "{msg}");
    assert!(
        msg.contains("apiVersion (not shown: not an apiVersion)"),
        "{msg}"
    );
}

#[test]
fn unknown_api_version_or_kind_names_what_is_accepted() {
    let mut c = case();
    c.config("apiVersion: kubeadm.k8s.io/v1beta2\nkind: JoinConfiguration\n");
    let e = c.err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::UnknownKind { .. }), "{msg}");
    assert!(msg.contains("kubeadm.k8s.io/v1beta2"), "{msg}");
    assert!(
        msg.contains("kaas-join.io/v1alpha1 JoinConfiguration"),
        "{msg}"
    );
    assert!(msg.contains("kubeadm.k8s.io/v1beta4"), "{msg}");

    c.config("apiVersion: kaas-join.io/v1alpha1\nkind: Joinconfiguration\n");
    assert!(matches!(c.err(), ConfigError::UnknownKind { .. }));

    c.config("servers: [\"h:6443\"]\n");
    let msg = c.err().to_string();
    assert!(msg.contains("apiVersion"), "{msg}");
}

#[test]
fn invalid_yaml_is_an_error() {
    let mut c = case();
    c.config("apiVersion: [unclosed\n");
    assert!(matches!(c.err(), ConfigError::Yaml { .. }));
}

#[test]
fn bad_hash_in_file_names_the_file() {
    let mut c = case();
    c.config(
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nservers: [\"h:6443\"]\n\
         tokenFile: $TOKEN_FILE\ncaCertHashes: [\"sha256:nothex\"]\n",
    );
    let e = c.err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::InvalidCaPin { .. }), "{msg}");
    assert!(msg.contains("config.yaml"), "{msg}");
}

#[test]
fn refused_label_in_file() {
    let mut c = case();
    c.config(
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nnodeLabels:\n  node-role.kubernetes.io/worker: \"\"\n",
    );
    assert!(matches!(c.err(), ConfigError::Label(_)));
}

// --- kubeadm ----------------------------------------------------------------------------------

fn fixture(name: &str) -> String {
    common::fixtures::fixture_text(&format!("kubeadm-join-trace/{name}"))
}

#[test]
fn recorded_kubeadm_join_yaml_loads() {
    let mut c = case();
    c.args.cri_socket = None;
    let text = fixture("join.yaml").replace("<redacted-expired-test-token>", TOKEN);
    c.config(&text);
    let (cfg, warnings) = c.ok();
    assert_eq!(cfg.servers, ["https://127.0.0.1:6443"]);
    assert_eq!(cfg.token.id(), "abcdef");
    assert_eq!(cfg.ca_pins[0].to_string(), PIN);
    assert_eq!(cfg.node_name, "kubeadm-join-1");
    assert_eq!(cfg.cri_socket, "unix:///run/containerd/containerd.sock");
    assert_eq!(
        cfg.node_ip,
        Some("127.0.0.1".parse().unwrap()),
        "lifted from kubeletExtraArgs"
    );
    assert!(
        cfg.kubelet_extra_args.is_empty(),
        "{:?}",
        cfg.kubelet_extra_args
    );
    // Honoured now (kaas-join's preflight checks carry kubeadm's names), not warned about.
    assert_eq!(cfg.ignore_preflight_errors, ["all"]);
    assert!(
        !warnings
            .iter()
            .any(|w| w.0.contains("ignorePreflightErrors")),
        "{warnings:?}"
    );
}

const KUBEADM_V1BETA4: &str = r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
dryRun: true
caCertPath: /etc/kubernetes/pki/ca.crt
discovery:
  bootstrapToken:
    apiServerEndpoint: "[fd00::1]:6443"
    token: "abcdef.0123456789abcdef"
    caCertHashes: ["sha256:9be846df48babcf115c32d5881b8dee2cfc5fd6d34664a10f3ca41dfafa6e8d4"]
  tlsBootstrapToken: "abcdef.0123456789abcdef"
nodeRegistration:
  name: Node-B
  criSocket: /var/run/crio/crio.sock
  imagePullPolicy: IfNotPresent
  taints:
  - key: dedicated
    value: gpu
    effect: NoSchedule
  - key: example.com/maintenance
    effect: NoExecute
  kubeletExtraArgs:
  - name: max-pods
    value: "60"
  - name: node-labels
    value: "team=x,node.kubernetes.io/pool=gpu"
timeouts:
  discovery: 2m0s
  tlsBootstrap: 1m30s
  kubeletHealthCheck: 4m0s
skipPhases: [preflight]
"#;

#[test]
fn kubeadm_v1beta4_fields_map() {
    let mut c = case();
    c.args.cri_socket = None;
    c.config(KUBEADM_V1BETA4);
    let (cfg, warnings) = c.ok();
    assert_eq!(cfg.servers, ["https://[fd00::1]:6443"]);
    assert_eq!(cfg.token.id(), "abcdef");
    assert_eq!(cfg.node_name, "node-b");
    assert_eq!(cfg.cri_socket, "unix:///var/run/crio/crio.sock");
    assert!(cfg.dry_run);
    assert_eq!(cfg.discovery_timeout, Duration::from_secs(120));
    assert_eq!(cfg.tls_bootstrap_timeout, Duration::from_secs(90));
    assert_eq!(cfg.node_labels["team"], "x");
    assert_eq!(cfg.node_labels["node.kubernetes.io/pool"], "gpu");
    assert_eq!(
        cfg.kubelet_extra_args,
        [
            ("max-pods".to_owned(), "60".to_owned()),
            (
                "register-with-taints".to_owned(),
                "dedicated=gpu:NoSchedule,example.com/maintenance:NoExecute".to_owned()
            ),
        ]
    );
    assert!(
        warnings.iter().any(|w| w.0.contains("skipPhases")),
        "{warnings:?}"
    );
}

#[test]
fn kubeadm_v1beta3_map_args_and_discovery_timeout() {
    let mut c = case();
    c.config(
        r#"
apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: cp.example:6443
    token: "abcdef.0123456789abcdef"
    unsafeSkipCAVerification: true
  timeout: 45s
nodeRegistration:
  kubeletExtraArgs:
    node-ip: 10.0.0.9
    v: "2"
"#,
    );
    let (cfg, warnings) = c.ok();
    assert_eq!(cfg.servers, ["https://cp.example:6443"]);
    assert!(cfg.unsafe_skip_ca_verification);
    assert!(warnings
        .iter()
        .any(|w| w.0.contains("CA verification is OFF")));
    assert_eq!(cfg.discovery_timeout, Duration::from_secs(45));
    assert_eq!(cfg.node_ip, Some("10.0.0.9".parse().unwrap()));
    assert_eq!(cfg.kubelet_extra_args, [("v".to_owned(), "2".to_owned())]);
    assert_eq!(cfg.node_name, "host-a");
}

#[test]
fn kubeadm_v1beta4_refuses_map_extra_args() {
    let mut c = case();
    c.config(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n    v: \"2\"\n",
    );
    let msg = c.err().to_string();
    assert!(msg.contains("kubeletExtraArgs"), "{msg}");
}

#[test]
fn kubeadm_tls_bootstrap_token_is_the_token() {
    let mut c = case();
    c.config(&format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  \
         bootstrapToken:\n    apiServerEndpoint: h:6443\n    caCertHashes: [\"{PIN}\"]\n  \
         tlsBootstrapToken: \"{OTHER_TOKEN}\"\n"
    ));
    assert_eq!(c.ok().0.token.id(), "zyxwvu");

    c.config(&format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  \
         bootstrapToken:\n    token: \"{TOKEN}\"\n  tlsBootstrapToken: \"{OTHER_TOKEN}\"\n"
    ));
    let e = c.err();
    assert!(matches!(e, ConfigError::TokenMismatch { .. }), "{e}");
    assert!(!e.to_string().contains("fedcba9876543210"));
}

#[test]
fn unquoted_numeric_token_is_refused_without_echo() {
    let mut c = case();
    c.config(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: 123456.1234567890123456\n",
    );
    let msg = c.err().to_string();
    assert!(msg.contains("quoted string"), "{msg}");
    assert!(!msg.contains("1234567890"), "{msg}");
}

#[test]
fn kubeadm_control_plane_and_file_discovery_are_refused() {
    let mut c = case();
    c.config(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ncontrolPlane:\n  certificateKey: abc\n",
    );
    let e = c.err();
    assert!(
        matches!(
            e,
            ConfigError::Unsupported {
                field: "controlPlane",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("worker nodes only"), "{e}");

    c.config(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  file:\n    kubeConfigPath: /x\n",
    );
    assert!(matches!(
        c.err(),
        ConfigError::Unsupported {
            field: "discovery.file",
            ..
        }
    ));
}

#[test]
fn kubeadm_refused_label_in_extra_args() {
    let mut c = case();
    c.config(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n  - name: node-labels\n    value: node-role.kubernetes.io/worker=\n",
    );
    let msg = c.err().to_string();
    assert!(msg.contains("NodeRestriction"), "{msg}");
}

const MULTI_DOC: &str = r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: "abcdef.0123456789abcdef"
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  serviceSubnet: 10.96.0.0/12
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.0.0.5:6443
    token: "abcdef.0123456789abcdef"
    caCertHashes: ["sha256:9be846df48babcf115c32d5881b8dee2cfc5fd6d34664a10f3ca41dfafa6e8d4"]
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
clusterDNS: [10.96.0.10]
maxPods: 42
"#;

#[test]
fn kubeadm_multi_document_file_picks_join_and_kubelet_docs() {
    let mut c = case();
    c.config(MULTI_DOC);
    let (cfg, warnings) = c.ok();
    assert_eq!(cfg.servers, ["https://10.0.0.5:6443"]);
    assert_eq!(cfg.cgroup_driver, Some(CgroupDriver::Systemd));
    assert_eq!(cfg.cluster_dns, Some(vec!["10.96.0.10".parse().unwrap()]));
    let kubelet = cfg.kubelet_overrides.expect("kubelet overrides");
    assert_eq!(kubelet.get("maxPods").and_then(|v| v.as_u64()), Some(42));
    assert!(kubelet.get("apiVersion").is_none());
    assert!(
        kubelet.get("cgroupDriver").is_none(),
        "lifted into cgroup_driver"
    );
    for kind in ["InitConfiguration", "ClusterConfiguration"] {
        assert!(
            warnings.iter().any(|w| w.0.contains(kind)),
            "{kind}: {warnings:?}"
        );
    }
}

#[test]
fn cgroup_driver_flag_beats_kubelet_document() {
    let mut c = case();
    c.config(MULTI_DOC);
    c.args.cgroup_driver = Some(CgroupDriver::Cgroupfs);
    let (cfg, _) = c.ok();
    assert_eq!(cfg.cgroup_driver, Some(CgroupDriver::Cgroupfs));
    assert!(cfg.kubelet_overrides.unwrap().get("cgroupDriver").is_none());
}

#[test]
fn two_join_documents_are_refused() {
    let mut c = case();
    c.config(&format!(
        "{MULTI_DOC}---\napiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\n"
    ));
    assert!(matches!(
        c.err(),
        ConfigError::DuplicateDocument {
            kind: "JoinConfiguration",
            ..
        }
    ));
}

#[test]
fn file_without_join_document_is_refused() {
    let mut c = case();
    c.config("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 1\n");
    assert!(matches!(c.err(), ConfigError::NoJoinConfiguration { .. }));
}

#[test]
fn own_format_with_kubelet_document() {
    let mut c = case();
    c.config(
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nservers: [\"h:6443\"]\n\
         tokenFile: $TOKEN_FILE\nunsafeSkipCAVerification: true\n---\n\
         apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 7\n",
    );
    let (cfg, _) = c.ok();
    assert_eq!(
        cfg.kubelet_overrides
            .unwrap()
            .get("maxPods")
            .and_then(|v| v.as_u64()),
        Some(7)
    );
}

#[test]
fn bad_extra_arg_name_is_refused() {
    let mut c = case();
    c.config(
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nkubeletExtraArgs: [{name: --max-pods, value: \"1\"}]\n",
    );
    let msg = c.err().to_string();
    assert!(msg.contains("leading dashes"), "{msg}");
}

#[test]
fn bad_duration_in_file_names_the_file() {
    let mut c = case();
    c.config(
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nservers: [\"h:6443\"]\n\
         tokenFile: $TOKEN_FILE\nunsafeSkipCAVerification: true\ndiscoveryTimeout: 5 min\n",
    );
    let e = c.err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::InvalidDuration { .. }), "{msg}");
    assert!(msg.contains("config.yaml"), "{msg}");
}
