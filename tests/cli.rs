//! The real `kaas-join` binary, run as a user would: bad input is refused up front with one line
//! on stderr, exit code 2 and nothing written; joins against the in-process sandbox control plane
//! exit with the documented codes; no output at any verbosity holds the token secret or the
//! node's private key. Each run gets its own temporary `--root`, and every process is killed
//! after 30 s (the kit's runner, `common::process`).

mod common;

use std::path::{Path, PathBuf};

use std::fs;
use std::time::{Duration, Instant};

use common::config_case::write_file;
use common::{Invocation, Run};
use kaas_join::cli::JoinArgs;
use kaas_join::config::{load, Environment};
use kaas_join::model::cgroup_driver::CgroupDriver;
use kaas_sandbox::{Sandbox, SandboxConfig};

const TOKEN: &str = "abcdef.0123456789abcdef";
const PIN: &str = "sha256:9be846df48babcf115c32d5881b8dee2cfc5fd6d34664a10f3ca41dfafa6e8d4";
const CONTAINERD: &str = "unix:///run/containerd/containerd.sock";

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Every entry (files, directories, symlinks) under `root`, relative, sorted.
fn entries(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Bad input: exit 2, one line naming the problem and the fix, nothing on stdout, nothing written
// ---------------------------------------------------------------------------------------------

/// A temporary `--root` (must stay empty) and, beside it, a directory for the token and config
/// files (read as given, not under the root).
struct Fixture {
    root: tempfile::TempDir,
    files: tempfile::TempDir,
    token_file: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        let token_file = write_file(&files.path().join("token"), &format!("{TOKEN}\n"), 0o600);
        Fixture {
            root,
            files,
            token_file,
        }
    }

    fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        write_file(&self.files.path().join(name), text, mode)
    }

    /// A complete, valid `join` command line except for the flags named in `without`, followed
    /// by `extra`. The runtime is given, so nothing is detected on this machine.
    fn args(&self, without: &[&str], extra: &[&str]) -> Vec<String> {
        let root = self.root.path().display().to_string();
        let token_file = self.token_file.display().to_string();
        let flags: [(&str, &str); 6] = [
            ("--server", "10.0.0.5:6443"),
            ("--token-file", &token_file),
            ("--discovery-token-ca-cert-hash", PIN),
            ("--node-name", "worker-1"),
            ("--cri-socket", CONTAINERD),
            ("--cgroup-driver", "systemd"),
        ];
        // No kubelet and no runtime under the temporary root: the preflight is told so.
        let mut args = strings(&[
            "join",
            "--root",
            &root,
            "--ignore-preflight-errors=FileExisting-kubelet,CRI",
        ]);
        for (flag, value) in flags {
            if !without.contains(&flag) {
                args.push(flag.into());
                args.push(value.into());
            }
        }
        args.extend(strings(extra));
        args
    }

    /// Runs the binary and checks everything bad input must do. `expected` are substrings of
    /// the error line (the problem and the fix); `never` must appear nowhere in the output.
    fn refuse(&self, case: &str, args: Vec<String>, expected: &[&str], never: &[&str]) {
        let r = Invocation::new(args).run();
        assert_eq!(r.code, 2, "{case}: exit code of {r:#?}");
        assert!(r.stdout.is_empty(), "{case}: stdout: {:?}", r.stdout);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{case}: stderr is not one line: {:?}",
            r.stderr
        );
        let line = lines[0];
        assert!(
            line.starts_with("kaas-join: error: "),
            "{case}: stderr: {line}"
        );
        for e in expected {
            assert!(line.contains(e), "{case}: {e:?} missing from: {line}");
        }
        for n in never {
            assert!(
                !r.all_output().contains(n),
                "{case}: {n:?} appears in the output: {r:#?}"
            );
        }
        let left = entries(self.root.path());
        assert!(left.is_empty(), "{case}: files left under --root: {left:?}");
    }
}

/// Runs one bad-input case with a fresh fixture.
fn refuse(
    case: &str,
    without: &[&str],
    extra: &[&str],
    expected: &[&str],
    never: &[&str],
) -> Fixture {
    let fx = Fixture::new();
    fx.refuse(case, fx.args(without, extra), expected, never);
    fx
}

#[test]
fn the_valid_base_command_line_gets_past_input_checks() {
    // Guards the bad-input tests: the base flags alone are accepted (and then discovery fails
    // to reach 10.0.0.5 quickly; that is not exit 2).
    let fx = Fixture::new();
    let r = Invocation::new(fx.args(
        &["--server"],
        &[
            "--server",
            "127.0.0.1:1",
            "--discovery-timeout",
            "1s",
            "--dry-run",
        ],
    ))
    .run();
    assert_eq!(r.code, 3, "{r:#?}");
}

#[test]
fn malformed_token_is_refused() {
    refuse(
        "--token abc",
        &["--token-file"],
        &["--token", "abc"],
        &[
            "bootstrap token from --token",
            "malformed",
            "kubeadm token create",
        ],
        &[],
    );
    // Too long: the secret part must not be echoed.
    refuse(
        "17-character secret",
        &["--token-file"],
        &["--token", "abcdef.0123456789abcdefx"],
        &["16 characters", "kubeadm token create"],
        &["0123456789abcdef"],
    );
    // No '.': nothing of it may be echoed.
    refuse(
        "no dot",
        &["--token-file"],
        &["--token", "abcdef0123456789abcdef"],
        &["'.'", "kubeadm token create"],
        &["0123456789abcdef"],
    );
}

#[test]
fn token_with_uppercase_is_refused_without_echoing_the_secret() {
    refuse(
        "uppercase secret on the command line",
        &["--token-file"],
        &["--token", "abcdef.0123456789ABCDEF"],
        &["lowercase", "kubeadm token create"],
        &["0123456789ABCDEF", "0123456789abcdef"],
    );
    let fx = Fixture::new();
    let upper = fx.file("upper-token", "abcdef.0123456789ABCDEF\n", 0o600);
    fx.refuse(
        "uppercase secret in a token file",
        fx.args(
            &["--token-file"],
            &["--token-file", upper.to_str().unwrap()],
        ),
        &["--token-file", "lowercase", "kubeadm token create"],
        &["0123456789ABCDEF"],
    );
    let fx = Fixture::new();
    let r = Invocation::new(fx.args(&["--token-file"], &[]))
        .env("KAAS_JOIN_TOKEN", "ABCDEF.0123456789ABCDEF")
        .run();
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("KAAS_JOIN_TOKEN"), "{}", r.stderr);
    assert!(!r.all_output().contains("0123456789ABCDEF"), "{r:#?}");
    assert!(entries(fx.root.path()).is_empty());
}

#[test]
fn malformed_ca_hashes_are_refused() {
    let how = "kubeadm token create --print-join-command";
    refuse(
        "sha256:zz",
        &["--discovery-token-ca-cert-hash"],
        &["--discovery-token-ca-cert-hash", "sha256:zz"],
        &["sha256:zz", "not a SHA-256 hash", how],
        &[],
    );
    let bare = &PIN["sha256:".len()..];
    refuse(
        "no sha256: prefix",
        &["--discovery-token-ca-cert-hash"],
        &["--discovery-token-ca-cert-hash", bare],
        &["not of the form", "sha256:<64 hex digits>", how],
        &[],
    );
    let short = &PIN[..PIN.len() - 2];
    refuse(
        "62 hex digits",
        &["--discovery-token-ca-cert-hash"],
        &["--discovery-token-ca-cert-hash", short],
        &["not a SHA-256 hash", "sha256:<64 hex digits>", how],
        &[],
    );
    let long = format!("{PIN}00");
    refuse(
        "66 hex digits",
        &["--discovery-token-ca-cert-hash"],
        &["--discovery-token-ca-cert-hash", &long],
        &["not a SHA-256 hash", how],
        &[],
    );
}

#[test]
fn no_ca_hash_and_no_unsafe_flag_is_refused() {
    refuse(
        "no pin",
        &["--discovery-token-ca-cert-hash"],
        &[],
        &[
            "no CA pin given",
            "--discovery-token-ca-cert-hash sha256:",
            "--discovery-token-unsafe-skip-ca-verification",
        ],
        &[],
    );
}

#[test]
fn plain_http_server_is_refused() {
    refuse(
        "http://",
        &["--server"],
        &["--server", "http://10.0.0.5:6443"],
        &["http://10.0.0.5:6443", "HTTPS", "https://host[:port]"],
        &[],
    );
}

#[test]
fn missing_server_is_refused() {
    refuse(
        "no --server",
        &["--server"],
        &[],
        &["no API server given", "--server host:port"],
        &[],
    );
}

#[test]
fn token_file_readable_by_others_is_refused_with_chmod_advice() {
    let fx = Fixture::new();
    let open = fx.file("open-token", &format!("{TOKEN}\n"), 0o644);
    let open_str = open.display().to_string();
    fx.refuse(
        "token file 0644",
        fx.args(&["--token-file"], &["--token-file", &open_str]),
        &["0644", &format!("chmod 600 {open_str}")],
        &["0123456789abcdef"],
    );
}

#[test]
fn missing_token_file_is_refused() {
    let fx = Fixture::new();
    let missing = fx.files.path().join("no-such-token");
    let missing_str = missing.display().to_string();
    fx.refuse(
        "token file missing",
        fx.args(&["--token-file"], &["--token-file", &missing_str]),
        &[&missing_str, "No such file"],
        &[],
    );
}

/// A missing token file's message says that the path is the token file, where it came from
/// (`--token-file` or `tokenFile` in the config file) and what to do.
#[test]
fn missing_token_file_error_names_the_token_file_and_the_fix() {
    let fx = Fixture::new();
    let missing = fx.files.path().join("no-such-token");
    let missing_str = missing.display().to_string();
    fx.refuse(
        "token file missing, message",
        fx.args(&["--token-file"], &["--token-file", &missing_str]),
        &[&missing_str, "token file", "--token-file"],
        &[],
    );
    let fx = Fixture::new();
    let cfg = fx.file(
        "config.yaml",
        &format!(
            "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\ntokenFile: {missing_str}\n"
        ),
        0o644,
    );
    let cfg_str = cfg.display().to_string();
    fx.refuse(
        "tokenFile missing, message",
        fx.args(&["--token-file"], &["--config", &cfg_str]),
        &[&missing_str, "tokenFile", &cfg_str],
        &[],
    );
}

#[test]
fn token_and_token_file_together_are_refused() {
    refuse(
        "--token and --token-file",
        &[],
        &["--token", TOKEN],
        &["--token and --token-file", "pass only one"],
        &["0123456789abcdef"],
    );
}

#[test]
fn config_file_with_an_unknown_field_is_refused() {
    let fx = Fixture::new();
    let cfg = fx.file(
        "config.yaml",
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nnodeLables: {team: a}\n",
        0o644,
    );
    let cfg_str = cfg.display().to_string();
    fx.refuse(
        "unknown field",
        fx.args(&[], &["--config", &cfg_str]),
        &[&cfg_str, "nodeLables", "misspelled"],
        &[],
    );
}

#[test]
fn config_file_with_a_wrong_api_version_is_refused() {
    let fx = Fixture::new();
    let cfg = fx.file(
        "config.yaml",
        "apiVersion: kaas-join.io/v1\nkind: JoinConfiguration\n",
        0o644,
    );
    let cfg_str = cfg.display().to_string();
    fx.refuse(
        "wrong apiVersion",
        fx.args(&[], &["--config", &cfg_str]),
        &[
            &cfg_str,
            "unsupported apiVersion \"kaas-join.io/v1\"",
            "accepted: kaas-join.io/v1alpha1 JoinConfiguration",
        ],
        &[],
    );
}

#[test]
fn config_file_that_is_not_yaml_is_refused() {
    let fx = Fixture::new();
    let cfg = fx.file(
        "config.yaml",
        "apiVersion: [kaas-join.io/v1alpha1\nkind: {JoinConfiguration\n\t- :\n",
        0o644,
    );
    let cfg_str = cfg.display().to_string();
    fx.refuse(
        "not YAML",
        fx.args(&[], &["--config", &cfg_str]),
        &[&cfg_str, "not valid YAML"],
        &[],
    );
}

#[test]
fn missing_config_file_is_refused() {
    let fx = Fixture::new();
    let cfg = fx.files.path().join("nope.yaml").display().to_string();
    fx.refuse(
        "config file missing",
        fx.args(&[], &["--config", &cfg]),
        &[&cfg, "does not exist", "--config"],
        &[],
    );
}

#[test]
fn node_role_label_is_refused_with_kubectl_label_advice() {
    refuse(
        "node-role label",
        &[],
        &["--node-labels", "node-role.kubernetes.io/worker="],
        &[
            "node-role.kubernetes.io/worker",
            "NodeRestriction",
            "kubectl label node",
        ],
        &[],
    );
}

#[test]
fn invalid_node_name_is_refused() {
    refuse(
        "Bad_Name",
        &["--node-name"],
        &["--node-name", "Bad_Name"],
        &["Bad_Name", "DNS-1123", "pass a valid --node-name"],
        &[],
    );
}

#[test]
fn invalid_node_ip_is_refused() {
    refuse(
        "not-an-ip",
        &[],
        &["--node-ip", "not-an-ip"],
        &["not-an-ip", "not an IP address", "--node-ip 10.0.0.7"],
        &[],
    );
}

#[test]
fn invalid_discovery_timeout_is_refused() {
    refuse(
        "5x",
        &[],
        &["--discovery-timeout", "5x"],
        &["--discovery-timeout", "\"5x\"", "not a duration", "5m"],
        &[],
    );
}

// ---------------------------------------------------------------------------------------------
// The example config file stays valid
// ---------------------------------------------------------------------------------------------

#[test]
fn the_packaged_example_config_loads() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/config.example.yaml");
    let root = tempfile::tempdir().unwrap();
    let args = JoinArgs {
        config: Some(example.clone()),
        root: root.path().to_owned(),
        ..JoinArgs::default()
    };
    let env = Environment {
        token: Some(TOKEN.into()),
        hostname: "worker-1".into(),
        stdin: None,
    };
    let (cfg, warnings) =
        load(&args, env).unwrap_or_else(|e| panic!("{} does not load: {e}", example.display()));
    assert_eq!(cfg.servers, ["https://10.0.0.5:6443"]);
    assert_eq!(cfg.ca_pins.len(), 1);
    assert!(!cfg.unsafe_skip_ca_verification);
    assert_eq!(cfg.token.id(), "abcdef");
    assert!(!cfg.node_labels.is_empty(), "the example shows nodeLabels");
    assert!(cfg.kubelet_overrides.is_some(), "the example shows kubelet");
    assert_eq!(cfg.cri_socket, CONTAINERD);
    assert_eq!(cfg.cgroup_driver, Some(CgroupDriver::Systemd));
    assert!(!cfg.dry_run);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(entries(root.path()).is_empty());

    // It must stay an example: it names a tokenFile, not a token.
    let text = fs::read_to_string(&example).unwrap();
    assert!(text.contains("\ntokenFile: /etc/kaas-join/token"), "{text}");
    assert!(!text.contains("\ntoken:"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Against the sandbox control plane
// ---------------------------------------------------------------------------------------------

/// A sandbox, a token it knows, a token file holding it, and an empty root.
struct Join {
    sb: Sandbox,
    token: String,
    token_file: PathBuf,
    root: tempfile::TempDir,
    _files: tempfile::TempDir,
}

impl Join {
    async fn start() -> Join {
        let sb = Sandbox::start(SandboxConfig::default())
            .await
            .expect("sandbox starts");
        let token = sb.create_token();
        let files = tempfile::tempdir().unwrap();
        let token_file = write_file(&files.path().join("token"), &format!("{token}\n"), 0o600);
        Join {
            sb,
            token,
            token_file,
            root: tempfile::tempdir().unwrap(),
            _files: files,
        }
    }

    fn secret(&self) -> &str {
        &self.token[7..]
    }

    /// A join command line against the sandbox without any token source; `extra` appended.
    fn args_without_token(&self, extra: &[&str]) -> Vec<String> {
        let root = self.root.path().display().to_string();
        let url = self.sb.url();
        let pin = self.sb.ca_cert_hash();
        let mut args = strings(&[
            "join",
            "--root",
            &root,
            "--server",
            &url,
            "--discovery-token-ca-cert-hash",
            &pin,
            "--node-name",
            "node-1",
            "--cri-socket",
            CONTAINERD,
            "--cgroup-driver",
            "systemd",
            "--discovery-timeout",
            "10s",
            "--tls-bootstrap-timeout",
            "10s",
            // No kubelet and no runtime under the temporary root.
            "--ignore-preflight-errors=FileExisting-kubelet,CRI",
        ]);
        args.extend(strings(extra));
        args
    }

    /// A full join command line with `--token-file`; `extra` appended.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let token_file = self.token_file.display().to_string();
        let mut args = self.args_without_token(&["--token-file", &token_file]);
        args.extend(strings(extra));
        args
    }

    async fn run(&self, args: Vec<String>) -> Run {
        Invocation::new(args).run_async().await
    }

    fn assert_joined_files(&self) {
        let r = self.root.path();
        for f in [
            "etc/kubernetes/kubelet.conf",
            "etc/kubernetes/pki/ca.crt",
            "var/lib/kubelet/config.yaml",
            "var/lib/kubelet/kubeadm-flags.env",
            "var/lib/kubelet/pki/kubelet-client-current.pem",
            "var/lib/kaas-join/state.json",
        ] {
            assert!(r.join(f).exists(), "{f} missing: {:?}", entries(r));
        }
    }

    /// The base64 lines of the node's private key, as written.
    fn private_key_lines(&self) -> Vec<String> {
        let pem = fs::read_to_string(
            self.root
                .path()
                .join("var/lib/kubelet/pki/kubelet-client-current.pem"),
        )
        .expect("the client cert+key file is written");
        let mut lines = Vec::new();
        let mut inside = false;
        for line in pem.lines() {
            if line.starts_with("-----BEGIN") && line.contains("PRIVATE KEY-----") {
                inside = true;
            } else if line.starts_with("-----END") && line.contains("PRIVATE KEY-----") {
                inside = false;
            } else if inside && !line.trim().is_empty() {
                lines.push(line.trim().to_owned());
            }
        }
        assert!(!lines.is_empty(), "no private key in:\n{pem}");
        lines
    }

    async fn stop(self) {
        self.sb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_join_reports_json_and_writes_kubelets_files() {
    let j = Join::start().await;
    let r = j.run(j.args(&["--output", "json"])).await;
    assert_eq!(r.code, 0, "{r:#?}");
    let report: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", r.stdout));
    assert_eq!(report["outcome"], "joined", "{report:#}");
    assert_eq!(report["nodeName"], "node-1", "{report:#}");
    let requests = report["requests"].as_u64().expect("requests is a number");
    assert!(
        (1..=7).contains(&requests),
        "one join made {requests} requests"
    );
    let files: Vec<&str> = report["files"]
        .as_array()
        .expect("files is a list")
        .iter()
        .map(|f| f["path"].as_str().expect("each file has a path"))
        .collect();
    for expected in [
        "/var/lib/kubelet/config.yaml",
        "/var/lib/kubelet/kubeadm-flags.env",
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/pki/ca.crt",
        "kubelet-client-",
    ] {
        assert!(
            files.iter().any(|f| f.contains(expected)),
            "{expected} not in {files:?}"
        );
    }
    for f in report["files"].as_array().unwrap() {
        assert!(f["mode"].is_string(), "{f}");
    }
    j.assert_joined_files();
    assert_eq!(j.sb.csrs().len(), 1);
    assert!(!r.all_output().contains(j.secret()), "{r:#?}");
    j.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_can_come_from_stdin() {
    let j = Join::start().await;
    let r = Invocation::new(j.args_without_token(&["--token-file", "-"]))
        .stdin(format!("{}\n", j.token))
        .run_async()
        .await;
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stdout.contains("Joined: node node-1"), "{}", r.stdout);
    j.assert_joined_files();
    j.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_can_come_from_the_environment() {
    let j = Join::start().await;
    let r = Invocation::new(j.args_without_token(&[]))
        .env("KAAS_JOIN_TOKEN", j.token.clone())
        .run_async()
        .await;
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stdout.contains("Joined: node node-1"), "{}", r.stdout);
    j.assert_joined_files();
    j.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_secret_exits_7() {
    let j = Join::start().await;
    let id = &j.token[..6];
    let wrong = format!("{id}.{}", "0".repeat(16));
    assert_ne!(wrong, j.token);
    let r = Invocation::new(j.args_without_token(&[]))
        .env("KAAS_JOIN_TOKEN", wrong)
        .run_async()
        .await;
    assert_eq!(r.code, 7, "{r:#?}");
    assert!(r.stderr.contains("kaas-join: error: "), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(!r.all_output().contains(&"0".repeat(16)), "{r:#?}");
    assert!(j.sb.csrs().is_empty());
    j.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_exits_8_and_names_the_servers_pin() {
    let j = Join::start().await;
    let mut args = j.args(&[]);
    // Replace the right pin by another valid one.
    let at = args
        .iter()
        .position(|a| a == "--discovery-token-ca-cert-hash")
        .unwrap();
    assert_ne!(args[at + 1], PIN);
    args[at + 1] = PIN.into();
    let r = j.run(args).await;
    assert_eq!(r.code, 8, "{r:#?}");
    assert!(
        r.stderr.contains(&j.sb.ca_cert_hash()),
        "the server's pin {} is not listed: {}",
        j.sb.ca_cert_hash(),
        r.stderr
    );
    assert!(
        entries(j.root.path()).is_empty(),
        "{:?}",
        entries(j.root.path())
    );
    j.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_exits_3_after_the_discovery_timeout() {
    let j = Join::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let token_file = j.token_file.display().to_string();
    let root = j.root.path().display().to_string();
    let closed = closed.to_string();
    let started = Instant::now();
    let r = j
        .run(strings(&[
            "join",
            "--root",
            &root,
            "--server",
            &closed,
            "--token-file",
            &token_file,
            "--discovery-token-ca-cert-hash",
            &j.sb.ca_cert_hash(),
            "--node-name",
            "node-1",
            "--cri-socket",
            CONTAINERD,
            "--cgroup-driver",
            "systemd",
            "--discovery-timeout",
            "1s",
            "--ignore-preflight-errors=FileExisting-kubelet,CRI",
        ]))
        .await;
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?} for a 1s discovery timeout",
        started.elapsed()
    );
    assert!(r.stderr.contains(&closed), "{}", r.stderr);
    assert!(
        entries(j.root.path()).is_empty(),
        "{:?}",
        entries(j.root.path())
    );
    j.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing_and_shows_the_kubelet_config() {
    let j = Join::start().await;
    let r = j.run(j.args(&["--dry-run"])).await;
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(
        r.stdout.contains("/var/lib/kubelet/config.yaml"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Dry run"), "{}", r.stdout);
    assert!(
        entries(j.root.path()).is_empty(),
        "a dry run wrote {:?}",
        entries(j.root.path())
    );
    assert!(j.sb.csrs().is_empty(), "a dry run created a CSR");
    assert!(!r.all_output().contains(j.secret()), "{r:#?}");
    j.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_verbosity_shows_the_token_secret_or_the_private_key() {
    let j = Join::start().await;
    let r = j.run(j.args(&["-vvv"])).await;
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(
        r.stderr.lines().count() > 10,
        "-vvv logged almost nothing: {}",
        r.stderr
    );
    let out = r.all_output();
    assert!(!out.contains(j.secret()), "the token secret leaked at -vvv");
    for line in j.private_key_lines() {
        assert!(
            !out.contains(&line),
            "a private key line leaked at -vvv: {line}"
        );
    }

    // A dry run with the JSON report, on a fresh root.
    let dry_root = tempfile::tempdir().unwrap();
    let dry_root_str = dry_root.path().display().to_string();
    let mut args = j.args(&["-vvv", "--dry-run", "--output", "json"]);
    let at = args.iter().position(|a| a == "--root").unwrap();
    args[at + 1] = dry_root_str;
    let r = j.run(args).await;
    assert_eq!(r.code, 0, "{r:#?}");
    let report: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", r.stdout));
    assert_eq!(report["outcome"], "dry-run", "{report:#}");
    assert!(
        !r.all_output().contains(j.secret()),
        "the token secret leaked in a -vvv dry run"
    );

    // A failing join (wrong secret for a real token id), on a fresh root.
    let wrong_secret = "0".repeat(16);
    let fail_root = tempfile::tempdir().unwrap();
    let fail_root_str = fail_root.path().display().to_string();
    let mut args = j.args_without_token(&["-vvv"]);
    let at = args.iter().position(|a| a == "--root").unwrap();
    args[at + 1] = fail_root_str;
    let r = Invocation::new(args)
        .env(
            "KAAS_JOIN_TOKEN",
            format!("{}.{wrong_secret}", &j.token[..6]),
        )
        .run_async()
        .await;
    assert_eq!(r.code, 7, "{r:#?}");
    let out = r.all_output();
    assert!(
        !out.contains(&wrong_secret),
        "the given token secret leaked in a failing -vvv join"
    );
    assert!(
        !out.contains(j.secret()),
        "the real token secret leaked in a failing -vvv join"
    );
    j.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_says_already_joined() {
    let j = Join::start().await;
    let first = j.run(j.args(&[])).await;
    assert_eq!(first.code, 0, "{first:#?}");
    let requests_after_first = j.sb.requests().len();
    let second = j.run(j.args(&[])).await;
    assert_eq!(second.code, 0, "{second:#?}");
    assert!(
        second.stdout.contains("Already joined"),
        "{}",
        second.stdout
    );
    assert_eq!(
        j.sb.requests().len(),
        requests_after_first,
        "a re-run talked to the API server"
    );
    assert_eq!(j.sb.csrs().len(), 1);
    j.stop().await;
}
