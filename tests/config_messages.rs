//! The exact words of what `config::load` says about a config file: the errors that refuse it and
//! the warnings it gives, one case each for the paths the other config tests check only by
//! variant or by a fragment (kubelet settings lifted into fields, document dispatch, kubeadm's
//! taints and ignored fields, flags that replace file values). Pinned word for word so that a
//! restructuring of src/config cannot change them unnoticed; in the texts, `PATH` stands for
//! the config file's path.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use kaas_join::cli::JoinArgs;
use kaas_join::config::{load, Environment};

const TOKEN: &str = "abcdef.0123456789abcdef";
const PIN: &str = "sha256:9be846df48babcf115c32d5881b8dee2cfc5fd6d34664a10f3ca41dfafa6e8d4";

/// Our format with everything a join needs; a case appends its fields.
const OWN: &str = "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\n\
                   servers: [\"10.0.0.5:6443\"]\ntoken: \"$TOKEN\"\ncaCertHashes: [\"$PIN\"]\n";
/// kubeadm's v1beta4 with everything a join needs; a case appends its fields.
const KUBEADM: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n\
                       discovery:\n  bootstrapToken:\n    apiServerEndpoint: 10.0.0.5:6443\n    \
                       token: \"$TOKEN\"\n    caCertHashes: [\"$PIN\"]\n";
const KUBELET_DOC: &str = "---\napiVersion: kubelet.config.k8s.io/v1beta1\n\
                           kind: KubeletConfiguration\nmaxPods: 5\n";

/// Loads `text` as `--config` (mode 0600) with the flags `tweak` sets; returns `error: …`, or
/// `ok: …` with the fields the file's kubelet settings feed and the warnings, one a line; the
/// file's path shown as `PATH`.
fn outcome(text: &str, tweak: fn(&mut JoinArgs)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let text = text.replace("$TOKEN", TOKEN).replace("$PIN", PIN);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let mut args = JoinArgs {
        root: dir.path().to_owned(),
        config: Some(path.clone()),
        cri_socket: Some("unix:///run/containerd/containerd.sock".into()),
        ..JoinArgs::default()
    };
    tweak(&mut args);
    let env = Environment {
        token: None,
        hostname: "worker-1".into(),
        stdin: None,
    };
    let shown = match load(&args, env) {
        Err(e) => format!("error: {e}"),
        Ok((cfg, warnings)) => {
            let kubelet_keys: Vec<&str> = cfg
                .kubelet_overrides
                .as_ref()
                .and_then(|k| k.as_mapping())
                .map(|m| m.keys().filter_map(|k| k.as_str()).collect())
                .unwrap_or_default();
            let mut lines = vec![format!(
                "ok: node_ip {:?}, cgroup_driver {:?}, cluster_dns {:?}, cluster_domain {:?}, \
                 extra args {:?}, kubelet keys {kubelet_keys:?}",
                cfg.node_ip.map(|ip| ip.to_string()),
                cfg.cgroup_driver.map(|d| d.as_str()),
                cfg.cluster_dns
                    .map(|d| d.iter().map(ToString::to_string).collect::<Vec<_>>()),
                cfg.cluster_domain,
                cfg.kubelet_extra_args,
            )];
            lines.extend(warnings.iter().map(|w| format!("warning: {w}")));
            lines.join("\n")
        }
    };
    shown.replace(&path.display().to_string(), "PATH")
}

fn no_flags(_: &mut JoinArgs) {}

/// A case: its name, the file, the flags it sets, and what `outcome` must return.
type Case = (&'static str, String, fn(&mut JoinArgs), &'static str);

/// Runs every case and reports all that differ at once, each with what was said.
fn check(cases: &[Case]) {
    let mut wrong = Vec::new();
    for (name, text, tweak, expected) in cases {
        let got = outcome(text, *tweak);
        if got != *expected {
            wrong.push(format!(
                "{name}:\n  expected: {expected:?}\n  got:      {got:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

fn own(extra: &str) -> String {
    format!("{OWN}{extra}")
}

fn kubeadm(extra: &str) -> String {
    format!("{KUBEADM}{extra}")
}

#[test]
fn kubelet_settings_in_the_file() {
    check(&[
        (
            "kubelet not a mapping",
            own("kubelet: 5\n"),
            no_flags,
            "error: config file PATH: kubelet settings: the kubelet configuration (line 6) is the number 5, expected a mapping of KubeletConfiguration fields",
        ),
        (
            "kubelet with another apiVersion",
            own("kubelet: {apiVersion: v1, maxPods: 5}\n"),
            no_flags,
            "error: config file PATH: kubelet settings: `apiVersion` (line 6) is not one of `kubelet.config.k8s.io/v1beta1`",
        ),
        (
            "kubelet with another kind",
            own("kubelet: {kind: Pod, maxPods: 5}\n"),
            no_flags,
            "error: config file PATH: kubelet settings: `kind` (line 6) is not one of `KubeletConfiguration`",
        ),
        (
            "kubelet cgroupDriver not a driver",
            own("kubelet: {cgroupDriver: nope}\n"),
            no_flags,
            "error: config file PATH: kubelet settings: `cgroupDriver` (line 6) is not one of `cgroupfs`, `systemd`",
        ),
        (
            "kubelet cgroupDriver against the field",
            own("cgroupDriver: systemd\nkubelet: {cgroupDriver: cgroupfs}\n"),
            no_flags,
            "error: config file PATH: kubelet configuration sets cgroupDriver cgroupfs but cgroupDriver systemd is also given: keep one",
        ),
        (
            "kubelet clusterDNS against the field",
            own("clusterDNS: [10.96.0.10]\nkubelet: {clusterDNS: [10.96.0.11]}\n"),
            no_flags,
            "error: config file PATH: kubelet configuration sets clusterDNS but clusterDNS is also given with other values: keep one",
        ),
        (
            "kubelet clusterDomain against the field",
            own("clusterDomain: a.local\nkubelet: {clusterDomain: b.local}\n"),
            no_flags,
            "error: config file PATH: kubelet configuration sets clusterDomain but clusterDomain is also given with another value: keep one",
        ),
        (
            "kubelet clusterDomain not a string",
            own("kubelet: {clusterDomain: [a]}\n"),
            no_flags,
            "error: config file PATH: kubelet settings: `clusterDomain` (line 6) is a list, expected a string",
        ),
        (
            "kubelet: and a KubeletConfiguration document",
            own(&format!("kubelet: {{maxPods: 1}}\n{KUBELET_DOC}")),
            no_flags,
            "error: config file PATH: kubelet configuration is given both as kubelet: and as a KubeletConfiguration document: keep one",
        ),
        (
            "two KubeletConfiguration documents",
            own(&format!("{KUBELET_DOC}{KUBELET_DOC}")),
            no_flags,
            "error: config file PATH holds more than one KubeletConfiguration document: keep one",
        ),
        (
            "kubelet settings that agree with the fields",
            own(&format!(
                "cgroupDriver: systemd\nclusterDNS: [10.96.0.10]\nclusterDomain: a.local\n\
                 {KUBELET_DOC}cgroupDriver: systemd\nclusterDNS: [10.96.0.10]\nclusterDomain: a.local\n"
            )),
            no_flags,
            "ok: node_ip None, cgroup_driver Some(\"systemd\"), cluster_dns Some([\"10.96.0.10\"]), cluster_domain Some(\"a.local\"), extra args [], kubelet keys [\"maxPods\"]",
        ),
    ]);
}

#[test]
fn kubelet_extra_args_in_the_file() {
    check(&[
        (
            "empty name",
            own("kubeletExtraArgs: [{name: \"\", value: \"1\"}]\n"),
            no_flags,
            "error: config file PATH: kubelet extra argument \"\" is empty: give a kubelet flag name, e.g. max-pods",
        ),
        (
            "name with a value",
            own("kubeletExtraArgs: [{name: \"max-pods=1\", value: \"1\"}]\n"),
            no_flags,
            "error: config file PATH: kubelet extra argument \"max-pods=1\" contains '=' or a space: give the name and the value separately",
        ),
        (
            "node-ip next to nodeIP",
            own("nodeIP: 10.0.0.7\nkubeletExtraArgs: [{name: node-ip, value: 10.0.0.8}]\n"),
            no_flags,
            "ok: node_ip Some(\"10.0.0.7\"), cgroup_driver None, cluster_dns None, cluster_domain None, extra args [], kubelet keys []\nwarning: config file PATH: kubeletExtraArgs node-ip=10.0.0.8 is ignored: nodeIP is also given",
        ),
        (
            "dual-stack node-ip replaced by --node-ip",
            own("kubeletExtraArgs: [{name: node-ip, value: \"10.0.0.8,fd00::8\"}]\n"),
            |a| a.node_ip = Some("10.0.0.9".into()),
            "ok: node_ip Some(\"10.0.0.9\"), cgroup_driver None, cluster_dns None, cluster_domain None, extra args [], kubelet keys []\nwarning: kubeletExtraArgs node-ip in PATH is replaced by --node-ip 10.0.0.9",
        ),
    ]);
}

#[test]
fn documents_of_the_file() {
    check(&[
        (
            "no apiVersion and kind",
            "servers: [\"10.0.0.5:6443\"]\n".to_owned(),
            no_flags,
            "error: config file PATH, document 1: no apiVersion and kind: start the document with apiVersion: kaas-join.io/v1alpha1 and kind: JoinConfiguration",
        ),
        (
            "other kubeadm kinds are ignored",
            format!(
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n---\n\
                 apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
                 ---\n{KUBEADM}"
            ),
            no_flags,
            "ok: node_ip None, cgroup_driver None, cluster_dns None, cluster_domain None, extra args [], kubelet keys []\nwarning: config file PATH: ignoring the ClusterConfiguration document (document 1): only JoinConfiguration and KubeletConfiguration apply to joining a node\nwarning: config file PATH: ignoring the KubeProxyConfiguration document (document 2): only JoinConfiguration and KubeletConfiguration apply to joining a node",
        ),
        (
            "a token in a group-readable file",
            own(""),
            |a| {
                let path = a.config.clone().unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            },
            "ok: node_ip None, cgroup_driver None, cluster_dns None, cluster_domain None, extra args [], kubelet keys []\nwarning: config file PATH holds the bootstrap token but is readable by group or others (mode 0644): run `chmod 600 PATH`, or move the token to a tokenFile",
        ),
        (
            "unknown field",
            own("nodeNmae: x\n"),
            no_flags,
            "error: config file PATH, document 1: unknown field `nodeNmae`, expected one of `apiVersion`, `kind`, `servers`, `token`, `tokenFile`, `caCertHashes`, `unsafeSkipCAVerification`, `nodeName`, `nodeLabels`, `nodeIP`, `criSocket`, `cgroupDriver`, `clusterDNS`, `clusterDomain`, `discoveryTimeout`, `tlsBootstrapTimeout`, `kubeletExtraArgs`, `kubelet`, `ignorePreflightErrors` (misspelled? unknown fields are refused so that typos do not pass silently)",
        ),
    ]);
}

#[test]
fn kubeadm_fields() {
    check(&[
        (
            "ignored fields",
            kubeadm("skipPhases: [preflight]\npatches: {directory: /p}\ncaCertPath: /ca.crt\n"),
            no_flags,
            "ok: node_ip None, cgroup_driver None, cluster_dns None, cluster_domain None, extra args [], kubelet keys []\nwarning: config file PATH: skipPhases (preflight) is ignored: kaas-join has its own phases and runs them all\nwarning: config file PATH: patches is ignored: put kubelet settings in a KubeletConfiguration document instead\nwarning: config file PATH: caCertPath /ca.crt is ignored: the CA is always written to /etc/kubernetes/pki/ca.crt, where kubelet expects it",
        ),
        (
            "taints",
            kubeadm(
                "nodeRegistration:\n  taints:\n  - {key: dedicated, value: gpu, effect: NoSchedule}\n",
            ),
            no_flags,
            "ok: node_ip None, cgroup_driver None, cluster_dns None, cluster_domain None, extra args [(\"register-with-taints\", \"dedicated=gpu:NoSchedule\")], kubelet keys []",
        ),
        (
            "invalid taint",
            kubeadm("nodeRegistration:\n  taints:\n  - {key: a, effect: Sometimes}\n"),
            no_flags,
            "error: config file PATH: taint \"a=:Sometimes\" has an invalid effect: use NoSchedule, PreferNoSchedule or NoExecute",
        ),
        (
            "taints and register-with-taints",
            kubeadm(
                "nodeRegistration:\n  taints:\n  - {key: a, effect: NoSchedule}\n  \
                 kubeletExtraArgs:\n  - {name: register-with-taints, value: \"b:NoSchedule\"}\n",
            ),
            no_flags,
            "error: config file PATH: kubelet extra argument \"register-with-taints\" is given as well as nodeRegistration.taints: keep one",
        ),
        (
            "v1beta4 with a map of extra args",
            kubeadm("nodeRegistration:\n  kubeletExtraArgs: {v: \"2\"}\n"),
            no_flags,
            "error: config file PATH, document 1: nodeRegistration.kubeletExtraArgs: invalid type: map, expected a sequence (v1beta4 wants a list of {name, value}, v1beta3 a map)",
        ),
        (
            "v1beta3 with a list of extra args",
            kubeadm("nodeRegistration:\n  kubeletExtraArgs: [{name: v, value: \"2\"}]\n")
                .replace("v1beta4", "v1beta3"),
            no_flags,
            "error: config file PATH, document 1: nodeRegistration.kubeletExtraArgs: invalid type: sequence, expected a map (v1beta4 wants a list of {name, value}, v1beta3 a map)",
        ),
    ]);
}

#[test]
fn flags_over_the_file() {
    check(&[
        (
            "unsafe skip with pins",
            own("unsafeSkipCAVerification: true\n"),
            no_flags,
            "ok: node_ip None, cgroup_driver None, cluster_dns None, cluster_domain None, extra args [], kubelet keys []\nwarning: --discovery-token-unsafe-skip-ca-verification is ignored because CA pins are given: the CA is checked against them",
        ),
        (
            "unsafe skip without pins",
            own("unsafeSkipCAVerification: true\n").replace("[\"$PIN\"]", "[]"),
            no_flags,
            "ok: node_ip None, cgroup_driver None, cluster_dns None, cluster_domain None, extra args [], kubelet keys []\nwarning: CA verification is OFF (--discovery-token-unsafe-skip-ca-verification): the cluster CA is taken from whichever server answers at https://10.0.0.5:6443 without checking it against a pin, so a machine in the middle could pose as the control plane and take this node; pass --discovery-token-ca-cert-hash sha256:<hash> instead",
        ),
        (
            "node name lowercased",
            own("nodeName: Worker-2\n"),
            no_flags,
            "ok: node_ip None, cgroup_driver None, cluster_dns None, cluster_domain None, extra args [], kubelet keys []\nwarning: node name \"Worker-2\" (from config file PATH) is used as \"worker-2\": Node names are lowercase, as kubelet makes them",
        ),
        (
            "node IP from the file",
            own("nodeIP: not-an-ip\n"),
            no_flags,
            "error: node IP \"not-an-ip\" (from config file PATH) is not an IP address: give one IPv4 or IPv6 address, e.g. --node-ip 10.0.0.7",
        ),
        (
            "cluster DNS from the flag",
            own("clusterDNS: [10.96.0.10]\n"),
            |a| a.cluster_dns = vec!["ten".into()],
            "error: cluster DNS address \"ten\" (from --cluster-dns) is not an IP address: give IPs, e.g. --cluster-dns 10.96.0.10",
        ),
        (
            "cluster domain from the file",
            own("clusterDomain: -bad-\n"),
            no_flags,
            "error: cluster domain \"-bad-\" (from config file PATH) is not valid: it has a part that starts or ends with '-' (a DNS-1123 subdomain); e.g. --cluster-domain cluster.local",
        ),
        (
            "timeout from the file",
            own("tlsBootstrapTimeout: soon\n"),
            no_flags,
            "error: the TLS bootstrap timeout in PATH \"soon\" is not a duration: expected a number at \"soon\" (fractions are not supported); use e.g. 90s, 5m, 1m30s, 1h or plain seconds",
        ),
        (
            "server from the file",
            own("").replace("10.0.0.5:6443", "ftp://x"),
            no_flags,
            "error: API server \"ftp://x\" (from config file PATH) has scheme ftp://: use https://host[:port] or host:port",
        ),
        (
            "CRI socket from the file",
            own("criSocket: relative.sock\n"),
            |a| a.cri_socket = None,
            "error: CRI socket \"relative.sock\" (from config file PATH) is neither a unix:// URL nor an absolute path: give unix:///path/to/runtime.sock or an absolute path",
        ),
    ]);
}
