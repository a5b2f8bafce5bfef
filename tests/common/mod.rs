//! Helpers shared by the integration tests and the benches (benches include this file with
//! `#[path = "../tests/common/mod.rs"]`). Each user takes only what it needs. The kit: one
//! binary runner ([`process`]), one bounded wait ([`wait`]), one fixture loader ([`fixtures`]),
//! one sandbox builder ([`cluster`]); the rest builds on them.
#![allow(dead_code)]

pub mod bench;
pub mod cluster;
pub mod config_case;
pub mod faults;
pub mod fixtures;
pub mod machine;
pub mod node;
pub mod process;
pub mod wait;

#[allow(unused_imports)] // each user takes what it needs
pub use process::{Invocation, Run};
#[allow(unused_imports)]
pub use wait::{wait_for, wait_for_await, wait_for_blocking, Wait};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use kaas_join::config::JoinConfig;
use kaas_join::model::cgroup_driver::CgroupDriver;
use kaas_join::model::output::OutputFormat;
use kaas_join::model::pin::CaPin;
use kaas_join::model::token::BootstrapToken;

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
        ignore_preflight_errors: Vec::new(),
    }
}

/// A sandbox control plane on loopback with `config`.
pub async fn sandbox(config: kaas_sandbox::SandboxConfig) -> kaas_sandbox::Sandbox {
    kaas_sandbox::Sandbox::start(config)
        .await
        .expect("sandbox starts")
}

/// Runs the binary with `args` (see [`Invocation::run_async`]): no stdin, the cleaned
/// environment, off the runtime's threads, so a sandbox in this process keeps serving.
pub async fn kaas_join<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Run {
    Invocation::new(args).run_async().await
}

/// A free TCP port on loopback (bound, then released for a child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Every file (not directory) under `root`, sorted; none when `root` is missing.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn alive(pid: impl Into<i64>) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.into()))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
        })
        .is_some_and(|state| !matches!(state, 'Z' | 'X'))
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

/// The fake-kubelet binary (kaas-sandbox's stand-in kubelet), next to the test binary's
/// directory (`target/<profile>/`), built if missing (when only this package's tests were built).
pub fn fake_kubelet() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/<test>-<hash> → target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary in target/<profile>/deps")
            .to_owned();
        let bin = profile_dir.join("fake-kubelet");
        if !bin.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "kaas-sandbox", "--bin", "fake-kubelet"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            if let Some(target_dir) = profile_dir.parent() {
                cmd.env("CARGO_TARGET_DIR", target_dir);
            }
            let status = cmd
                .status()
                .expect("cannot run cargo to build fake-kubelet");
            assert!(status.success(), "building fake-kubelet failed: {status}");
        }
        assert!(bin.exists(), "fake-kubelet not found at {}", bin.display());
        bin
    })
    .clone()
}

/// `GET path` from `authority` (`127.0.0.1:PORT`) over HTTP/1.1, blocking, each step bounded by
/// 5 s: the body of a 200 answer, or why there is none.
pub fn http_get(authority: &str, path: &str) -> Result<String, String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(authority)
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let limit = Some(Duration::from_secs(5));
    stream.set_read_timeout(limit).map_err(|e| e.to_string())?;
    stream.set_write_timeout(limit).map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot send to {authority}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("cannot read from {authority}: {e}"))?;
    let answer = String::from_utf8(answer).map_err(|e| e.to_string())?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP answer: {answer:?}"))?;
    if !head.starts_with("HTTP/1.1 200 ") {
        return Err(format!("{path} answered {head:?}"));
    }
    Ok(body.to_owned())
}
