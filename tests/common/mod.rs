//! Helpers shared by the integration tests and the benches (benches include this file with
//! `#[path = "../tests/common/mod.rs"]`). Each user takes only what it needs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use kaas_join::config::{CgroupDriver, JoinConfig, OutputFormat};
use kaas_join::pin::CaPin;
use kaas_join::token::BootstrapToken;

/// A complete join configuration for `server`, as flags would give it: containerd, systemd
/// cgroups, the node name as hostname, both phase timeouts `timeout`.
pub fn join_config(
    server: &str,
    token: &str,
    pin: CaPin,
    node_name: &str,
    root: &Path,
    timeout: Duration,
) -> JoinConfig {
    JoinConfig {
        servers: vec![server.to_string()],
        token: BootstrapToken::parse(token).expect("a valid test token"),
        ca_pins: vec![pin],
        unsafe_skip_ca_verification: false,
        node_name: node_name.into(),
        hostname: node_name.into(),
        node_labels: BTreeMap::new(),
        node_ip: None,
        cri_socket: "unix:///run/containerd/containerd.sock".into(),
        cgroup_driver: Some(CgroupDriver::Systemd),
        cluster_dns: None,
        cluster_domain: None,
        kubelet_overrides: None,
        kubelet_extra_args: vec![],
        root: root.to_path_buf(),
        dry_run: false,
        force: false,
        output: OutputFormat::Text,
        discovery_timeout: timeout,
        tls_bootstrap_timeout: timeout,
    }
}

/// [`join_config`] against a sandbox control plane.
pub fn sandbox_join_config(
    sb: &kaas_sandbox::Sandbox,
    token: &str,
    node_name: &str,
    root: &Path,
    timeout: Duration,
) -> JoinConfig {
    let pin = sb.ca_cert_hash().parse().expect("the sandbox's pin parses");
    join_config(&sb.url(), token, pin, node_name, root, timeout)
}
