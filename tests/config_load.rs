//! `config::load` from flags and the environment: precedence, token sources, servers, pins,
//! node name, labels, CRI socket, durations. Every test runs in its own temporary `--root` and
//! injects the environment, so none touches the real machine.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use common::config_case::{environment, write_file as write, Case};
use kaas_join::config::{ConfigError, Environment};
use kaas_join::model::cgroup_driver::CgroupDriver;

const TOKEN: &str = "abcdef.0123456789abcdef";
const OTHER_TOKEN: &str = "zyxwvu.fedcba9876543210";
const SECRET: &str = "0123456789abcdef";
const PIN: &str = "sha256:9be846df48babcf115c32d5881b8dee2cfc5fd6d34664a10f3ca41dfafa6e8d4";
const CONTAINERD: &str = "unix:///run/containerd/containerd.sock";

const HOSTNAME: &str = "Worker-1";

fn env() -> Environment {
    environment(HOSTNAME)
}

fn case() -> Case {
    Case::complete(HOSTNAME, TOKEN, PIN)
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET), "the token secret leaked: {text}");
}

#[test]
fn minimal_flags_give_a_complete_config_with_defaults() {
    let c = case();
    let (cfg, warnings) = c.ok();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(cfg.servers, ["https://10.0.0.5:6443"]);
    assert_eq!(cfg.token.id(), "abcdef");
    assert_eq!(cfg.ca_pins.len(), 1);
    assert_eq!(cfg.ca_pins[0].to_string(), PIN);
    assert!(!cfg.unsafe_skip_ca_verification);
    assert_eq!(cfg.node_name, "worker-1", "hostname, lowercased");
    assert_eq!(cfg.hostname, "worker-1");
    assert!(cfg.node_labels.is_empty());
    assert_eq!(cfg.node_ip, None);
    assert_eq!(cfg.cri_socket, CONTAINERD);
    assert_eq!(cfg.cgroup_driver, None);
    assert_eq!(cfg.cluster_dns, None);
    assert_eq!(cfg.cluster_domain, None);
    assert!(cfg.kubelet_overrides.is_none());
    assert!(cfg.kubelet_extra_args.is_empty());
    assert_eq!(cfg.root, c.dir.path());
    assert_eq!(cfg.discovery_timeout, Duration::from_secs(300));
    assert_eq!(cfg.tls_bootstrap_timeout, Duration::from_secs(300));
    assert!(!cfg.dry_run && !cfg.force);
}

#[test]
fn debug_of_config_and_warnings_never_show_the_secret() {
    let mut c = case();
    c.args.token_file = None;
    c.args.token = Some(TOKEN.into());
    let (cfg, warnings) = c.ok();
    assert_no_secret(&format!("{cfg:?}"));
    assert_no_secret(&format!("{warnings:?}"));
    assert_no_secret(&format!("{:?}", c.args));
}

// --- token sources and precedence -------------------------------------------------------------

#[test]
fn token_flag_works_and_warns_about_the_process_list() {
    let mut c = case();
    c.args.token_file = None;
    c.args.token = Some(TOKEN.into());
    let (cfg, warnings) = c.ok();
    assert_eq!(cfg.token.id(), "abcdef");
    assert!(
        warnings
            .iter()
            .any(|w| w.0.contains("process list") && w.0.contains("--token-file")),
        "{warnings:?}"
    );
}

#[test]
fn token_and_token_file_together_are_refused() {
    let mut c = case();
    c.args.token = Some(TOKEN.into());
    let e = c.err();
    assert!(matches!(e, ConfigError::TokenFlagsConflict), "{e}");
    assert!(e.to_string().contains("only one"), "{e}");
}

#[test]
fn group_readable_token_file_is_refused_with_chmod_fix() {
    let mut c = case();
    let path = write(&c.path("open-token"), TOKEN, 0o644);
    c.args.token_file = Some(path.clone());
    let e = c.err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::TokenFile(_)), "{msg}");
    assert!(
        msg.contains(&format!("chmod 600 {}", path.display())),
        "{msg}"
    );
    assert_no_secret(&msg);
}

#[test]
fn missing_token_file_names_the_path() {
    let mut c = case();
    c.args.token_file = Some(c.path("nope"));
    let msg = c.err().to_string();
    assert!(msg.contains(&c.path("nope").display().to_string()), "{msg}");
}

#[test]
fn token_file_path_is_not_under_root() {
    // The token file is given as an absolute path on this machine; --root does not prefix it.
    let c = case();
    let (cfg, _) = c.ok();
    assert_eq!(cfg.token.id(), "abcdef");
    assert!(c.args.token_file.as_ref().unwrap().is_absolute());
}

#[test]
fn token_file_dash_reads_stdin() {
    let mut c = case();
    c.args.token_file = Some(PathBuf::from("-"));
    let env = Environment {
        stdin: Some(Box::new(|| Ok(format!("{OTHER_TOKEN}\n")))),
        ..env()
    };
    let (cfg, _) = c.load_with(env).unwrap();
    assert_eq!(cfg.token.id(), "zyxwvu");
}

#[test]
fn token_file_dash_without_stdin_is_an_error() {
    let mut c = case();
    c.args.token_file = Some(PathBuf::from("-"));
    assert!(matches!(c.err(), ConfigError::StdinUnavailable));
}

#[test]
fn env_token_is_used_without_flags() {
    let mut c = case();
    c.args.token_file = None;
    let env = Environment {
        token: Some(OTHER_TOKEN.into()),
        ..env()
    };
    let (cfg, warnings) = c.load_with(env).unwrap();
    assert_eq!(cfg.token.id(), "zyxwvu");
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn token_flags_win_over_env() {
    let c = case();
    let env = Environment {
        token: Some(OTHER_TOKEN.into()),
        ..env()
    };
    let (cfg, _) = c.load_with(env).unwrap();
    assert_eq!(
        cfg.token.id(),
        "abcdef",
        "--token-file beats KAAS_JOIN_TOKEN"
    );
}

#[test]
fn empty_env_token_counts_as_unset() {
    let mut c = case();
    c.args.token_file = None;
    let env = Environment {
        token: Some("  ".into()),
        ..env()
    };
    assert!(matches!(c.load_with(env), Err(ConfigError::NoToken)));
}

#[test]
fn missing_token_names_the_three_ways() {
    let mut c = case();
    c.args.token_file = None;
    let msg = c.err().to_string();
    assert!(msg.contains("--token-file"), "{msg}");
    assert!(msg.contains("KAAS_JOIN_TOKEN"), "{msg}");
    assert!(msg.contains("tokenFile"), "{msg}");
}

#[test]
fn malformed_token_is_refused_without_echo() {
    let mut c = case();
    c.args.token_file = None;
    c.args.token = Some("abcdef.0123456789abcdeX".into());
    let e = c.err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::Token { .. }), "{msg}");
    assert!(msg.contains("from --token"), "{msg}");
    assert!(!msg.contains("0123456789abcdeX"), "{msg}");
}

// --- servers --------------------------------------------------------------------------------

#[test]
fn servers_are_normalized_and_deduplicated() {
    let mut c = case();
    c.args.server = vec![
        "10.0.0.5:6443".into(),
        "https://10.0.0.5:6443".into(),
        "[fd00::1]:6443".into(),
        "https://CP.example".into(),
    ];
    let (cfg, _) = c.ok();
    assert_eq!(
        cfg.servers,
        [
            "https://10.0.0.5:6443",
            "https://[fd00::1]:6443",
            "https://cp.example:443"
        ]
    );
}

#[test]
fn no_server_is_an_error_naming_the_flag() {
    let mut c = case();
    c.args.server.clear();
    let e = c.err();
    assert!(matches!(e, ConfigError::NoServer));
    assert!(e.to_string().contains("--server host:port"), "{e}");
}

#[test]
fn http_and_portless_servers_are_refused() {
    let mut c = case();
    c.args.server = vec!["http://10.0.0.5:6443".into()];
    let msg = c.err().to_string();
    assert!(msg.contains("https") || msg.contains("HTTPS"), "{msg}");
    assert!(msg.contains("--server"), "{msg}");
    c.args.server = vec!["10.0.0.5".into()];
    assert!(c.err().to_string().contains("no port"));
}

// --- CA pins ----------------------------------------------------------------------------------

#[test]
fn bad_hash_is_refused_naming_it() {
    let mut c = case();
    c.args.discovery_token_ca_cert_hash = vec!["sha256:1234".into()];
    let e = c.err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::InvalidCaPin { .. }), "{msg}");
    assert!(msg.contains("sha256:1234"), "{msg}");
    c.args.discovery_token_ca_cert_hash = vec!["md5:abcd".into()];
    assert!(matches!(c.err(), ConfigError::InvalidCaPin { .. }));
}

#[test]
fn no_pin_is_refused_in_kubeadm_words() {
    let mut c = case();
    c.args.discovery_token_ca_cert_hash.clear();
    let e = c.err();
    assert!(matches!(e, ConfigError::NoCaPin));
    assert_eq!(
        e.to_string(),
        "no CA pin given: pass --discovery-token-ca-cert-hash sha256:<hash> (printed by \
         `kubeadm token create --print-join-command`), or \
         --discovery-token-unsafe-skip-ca-verification to trust the first server that answers \
         (dangerous)"
    );
}

#[test]
fn unsafe_skip_without_pins_warns_loudly() {
    let mut c = case();
    c.args.discovery_token_ca_cert_hash.clear();
    c.args.discovery_token_unsafe_skip_ca_verification = true;
    let (cfg, warnings) = c.ok();
    assert!(cfg.unsafe_skip_ca_verification);
    assert!(cfg.ca_pins.is_empty());
    assert!(
        warnings
            .iter()
            .any(|w| w.0.contains("CA verification is OFF") && w.0.contains("10.0.0.5")),
        "{warnings:?}"
    );
}

#[test]
fn unsafe_skip_with_pins_keeps_checking_the_pins() {
    let mut c = case();
    c.args.discovery_token_unsafe_skip_ca_verification = true;
    let (cfg, warnings) = c.ok();
    assert!(!cfg.unsafe_skip_ca_verification);
    assert_eq!(cfg.ca_pins.len(), 1);
    assert!(
        warnings.iter().any(|w| w.0.contains("ignored")),
        "{warnings:?}"
    );
}

// --- node name, labels, IP --------------------------------------------------------------------

#[test]
fn node_name_flag_is_validated() {
    let mut c = case();
    c.args.node_name = Some("worker_1".into());
    let e = c.err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::InvalidNodeName { .. }), "{msg}");
    assert!(msg.contains("\"worker_1\""), "{msg}");
    assert!(msg.contains("DNS-1123"), "{msg}");
}

#[test]
fn node_name_flag_is_lowercased_with_a_warning() {
    let mut c = case();
    c.args.node_name = Some("Worker-2".into());
    let (cfg, warnings) = c.ok();
    assert_eq!(cfg.node_name, "worker-2");
    assert_eq!(cfg.hostname, "worker-1");
    assert!(
        warnings.iter().any(|w| w.0.contains("lowercase")),
        "{warnings:?}"
    );
}

#[test]
fn unreadable_hostname_requires_node_name() {
    let c = case();
    let env = Environment {
        hostname: String::new(),
        ..env()
    };
    let e = c.load_with(env).unwrap_err();
    assert!(matches!(e, ConfigError::NoHostname), "{e}");
    assert!(e.to_string().contains("--node-name"));
}

#[test]
fn node_labels_are_parsed_and_checked() {
    let mut c = case();
    c.args.node_labels = vec!["team=a,env=prod".into(), "node.kubernetes.io/pool=x".into()];
    let (cfg, _) = c.ok();
    assert_eq!(cfg.node_labels.len(), 3);
    assert_eq!(cfg.node_labels["node.kubernetes.io/pool"], "x");

    c.args.node_labels = vec!["node-role.kubernetes.io/worker=".into()];
    let e = c.err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::Label(_)), "{msg}");
    assert!(msg.contains("kubectl label node"), "{msg}");
}

#[test]
fn node_ip_must_be_an_ip() {
    let mut c = case();
    c.args.node_ip = Some("10.0.0.7".into());
    assert_eq!(c.ok().0.node_ip, Some("10.0.0.7".parse().unwrap()));
    c.args.node_ip = Some("fd00::7".into());
    assert_eq!(c.ok().0.node_ip, Some("fd00::7".parse().unwrap()));
    c.args.node_ip = Some("10.0.0".into());
    assert!(matches!(c.err(), ConfigError::InvalidNodeIp { .. }));
}

// --- CRI socket, cgroup driver, DNS, durations, misc ----------------------------------------

#[test]
fn bare_cri_socket_path_gets_unix_scheme() {
    let mut c = case();
    c.args.cri_socket = Some("/run/x.sock".into());
    assert_eq!(c.ok().0.cri_socket, "unix:///run/x.sock");
    c.args.cri_socket = Some("tcp://1.2.3.4:1".into());
    assert!(matches!(c.err(), ConfigError::InvalidCriSocket { .. }));
}

#[test]
fn cri_socket_is_detected_under_root_when_not_given() {
    let mut c = case();
    c.args.cri_socket = None;
    // An image being built has no runtime running: containerd's default, as kubeadm's.
    let (cfg, warnings) = c.ok();
    assert_eq!(cfg.cri_socket, "unix:///var/run/containerd/containerd.sock");
    let warning = warnings
        .iter()
        .find(|w| w.0.contains("no container runtime socket"))
        .unwrap_or_else(|| panic!("no warning about the socket: {warnings:?}"));
    assert!(warning.0.contains("--cri-socket"), "{warning}");
    let sock = c.path("run/crio/crio.sock");
    fs::create_dir_all(sock.parent().unwrap()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert_eq!(c.ok().0.cri_socket, "unix:///run/crio/crio.sock");
}

#[test]
fn cgroup_driver_and_cluster_settings_from_flags() {
    let mut c = case();
    c.args.cgroup_driver = Some(CgroupDriver::Systemd);
    c.args.cluster_dns = vec!["10.96.0.10".into(), "fd00::a".into()];
    c.args.cluster_domain = Some("Cluster.Local.".into());
    c.args.dry_run = true;
    c.args.force = true;
    let (cfg, _) = c.ok();
    assert_eq!(cfg.cgroup_driver, Some(CgroupDriver::Systemd));
    assert_eq!(
        cfg.cluster_dns,
        Some(vec![
            "10.96.0.10".parse().unwrap(),
            "fd00::a".parse().unwrap()
        ])
    );
    assert_eq!(cfg.cluster_domain.as_deref(), Some("cluster.local"));
    assert!(cfg.dry_run && cfg.force);

    c.args.cluster_dns = vec!["10.96.0".into()];
    assert!(matches!(c.err(), ConfigError::InvalidClusterDns { .. }));
    c.args.cluster_dns.clear();
    c.args.cluster_domain = Some("bad_domain".into());
    assert!(matches!(c.err(), ConfigError::InvalidClusterDomain { .. }));
}

#[test]
fn durations_from_flags() {
    let mut c = case();
    c.args.discovery_timeout = Some("90s".into());
    c.args.tls_bootstrap_timeout = Some("1m30s".into());
    let (cfg, _) = c.ok();
    assert_eq!(cfg.discovery_timeout, Duration::from_secs(90));
    assert_eq!(cfg.tls_bootstrap_timeout, Duration::from_secs(90));
    c.args.discovery_timeout = Some("300".into());
    assert_eq!(c.ok().0.discovery_timeout, Duration::from_secs(300));
    c.args.discovery_timeout = Some("5 minutes".into());
    let e = c.err();
    assert!(matches!(e, ConfigError::InvalidDuration { .. }));
    assert!(e.to_string().contains("--discovery-timeout"), "{e}");
}

#[test]
fn explicit_config_file_must_exist() {
    let mut c = case();
    c.args.config = Some(c.path("missing.yaml"));
    let e = c.err();
    assert!(matches!(e, ConfigError::ConfigFileMissing { .. }), "{e}");
    assert!(e.to_string().contains("missing.yaml"), "{e}");
}
