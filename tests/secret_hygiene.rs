//! Secret hygiene end to end: the real binary joins, runs, reports and fails at trace level
//! (`-vvv`, which also lets library logs through) against the sandbox control plane, and no byte
//! it prints or leaves on disk holds the token secret or private key material, in plain text,
//! hex or base64 (any alignment: an `Authorization: Bearer <id>.<secret>` header, a ticket
//! payload, a kubeconfig field). The only places secrets may be are listed in
//! [`SECRET_FILES`] (checked to be mode 0600 instead) and the stdout of `token create`, whose
//! purpose is to print the token.
//!
//! What is scanned, per test: stdout and stderr of every process, and every regular file under
//! each temporary `--root` (kubelet's files, state.json, `/run/kaas-join/status.json`). Each
//! source that must say something has a minimum line count, so a logging regression that silences
//! everything cannot make the scan pass vacuously; a summary of bytes and lines per source is
//! printed (`-- --nocapture`).
//!
//! Also here: a node joining again after its certificate expired (with no token, an expired one,
//! a good one). `run` joining again is checked in `tests/reidentify.rs` (log, STATUS=, status
//! file and `status` hold no token).
//!
//! Related tests elsewhere, not repeated here: Debug/Display of tokens, tickets, configs and keys
//! (unit tests in `src/model/token.rs`, `src/model/ticket.rs`, `src/k8s/bootstrap/key.rs`, `tests/config_load.rs`,
//! `tests/properties.rs`); a 0644 token file refused by the binary (`tests/cli.rs`); zeroize on
//! drop of `BootstrapToken` and `NodeKey` (unit tests in `src/model/token.rs` and `src/k8s/bootstrap/key.rs`).
//!
//! Loopback only; every process is killed after [`PROCESS_TIMEOUT`], every wait is bounded.

mod common;

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::config_case::write_file;
use common::machine::Machine;
use common::process::Running;
use common::sandbox;
use common::{Invocation, Run, Wait};
use kaas_sandbox::{ApprovalMode, Sandbox, SandboxConfig};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const CRI: &str = "unix:///run/containerd/containerd.sock";
/// Generous: a join against the sandbox takes well under a second, even on a loaded CI machine.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);
/// From kubelet's start until the Node shows our condition: the supervisor probes healthz at
/// start and then every 10 s (see tests/run.rs).
const CONDITION_WAIT: Duration = Duration::from_secs(30);
/// A trace-level join logs every phase and request: far more than this many lines.
const TRACE_JOIN_MIN_LINES: usize = 20;

/// Files that hold a private key by design (paths relative to the root; `*` is kubelet's
/// timestamp). They are not scanned; they must be mode 0600 instead.
const SECRET_FILES: [&str; 2] = [
    // The client certificate and the node's key; `kubelet-client-current.pem` links to it.
    "var/lib/kubelet/pki/kubelet-client-*.pem",
    // The node key between its creation and the certificate's arrival.
    "var/lib/kaas-join/node-key.pem",
];

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

/// The binary with `args`, killed after [`PROCESS_TIMEOUT`] (the kit's runner cleans our
/// variables out of its environment).
fn bin(args: Vec<String>) -> Invocation {
    Invocation::new(args).timeout(PROCESS_TIMEOUT)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The preflight checks refuse a temporary root (no kubelet binary, no container runtime):
/// `all` turns their errors into "ignored", so their output is printed, and scanned, too.
fn preflight_args() -> Vec<String> {
    vec!["--ignore-preflight-errors=all".into()]
}

/// The common part of every `join` here: trace level, a root, this node's settings, short
/// timeouts. Server, token and pin are added by the caller (a ticket carries them).
fn join_args(root: &Path, node: &str, extra: &[&str]) -> Vec<String> {
    let mut args = strings(&[
        "join",
        "-vvv",
        "--root",
        &root.display().to_string(),
        "--node-name",
        node,
        "--cri-socket",
        CRI,
        "--cgroup-driver",
        "systemd",
        "--discovery-timeout",
        "10s",
        "--tls-bootstrap-timeout",
        "10s",
    ]);
    args.extend(preflight_args());
    args.extend(strings(extra));
    args
}

/// `--server` and `--discovery-token-ca-cert-hash` for `sb`.
fn server_args(sb: &Sandbox) -> Vec<String> {
    vec![
        "--server".into(),
        sb.url(),
        "--discovery-token-ca-cert-hash".into(),
        sb.ca_cert_hash(),
    ]
}

/// Sets the value of `flag` in `args` (which has it).
fn set_flag(args: &mut [String], flag: &str, value: &str) {
    let at = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} not in {args:?}"));
    args[at + 1] = value.into();
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

// ---------------------------------------------------------------------------------------------
// What must never appear
// ---------------------------------------------------------------------------------------------

/// Every encoding of every secret a test knows, each with what it is (for the failure message).
#[derive(Default)]
struct Needles(Vec<(String, Vec<u8>)>);

/// The base64 (standard and URL-safe) of `data` at each of the three byte alignments it can have
/// inside a longer encoded text, cut to the characters that depend on `data` alone: whatever
/// surrounds the secret (`Bearer `, a ticket's server line), one of these is in its encoding.
fn base64_fragments(data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for offset in 0..3usize {
            let mut buf = vec![0u8; offset];
            buf.extend_from_slice(data);
            let encoded = engine.encode(&buf);
            // Characters mixing bits of the padding, or of what follows, are dropped.
            let skip = [0, 2, 3][offset];
            let keep = buf.len() * 8 / 6;
            out.push(encoded[skip..keep].to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

fn hex(data: &[u8]) -> String {
    data.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Needles {
    fn add(&mut self, what: String, bytes: impl Into<Vec<u8>>) {
        let bytes = bytes.into();
        assert!(bytes.len() >= 12, "needle {what} too short to be unique");
        self.0.push((what, bytes));
    }

    /// What of this is in `bytes`.
    fn hits(&self, bytes: &[u8]) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, needle)| contains(bytes, needle))
            .map(|(what, _)| what.as_str())
            .collect()
    }

    /// A bootstrap token `<id>.<secret>` (or any text given as one): the whole of it, and its
    /// secret part in plain text, hex and base64.
    fn token(&mut self, what: &str, token: &str) {
        self.add(format!("{what} (whole)"), token);
        let secret = token.split_once('.').map_or(token, |(_, s)| s);
        self.add(format!("{what}: its secret"), secret);
        self.add(format!("{what}: its secret in hex"), hex(secret.as_bytes()));
        for (i, f) in base64_fragments(secret.as_bytes()).into_iter().enumerate() {
            self.add(format!("{what}: its secret in base64 (form {i}: {f})"), f);
        }
    }

    /// A PEM private key: every line of its body, the DER's base64 in one piece, the DER bytes,
    /// and the EC private scalar in raw, hex and base64 forms.
    fn private_key(&mut self, what: &str, pem_text: &str) {
        let body = pem_body(pem_text, "PRIVATE KEY");
        assert!(!body.is_empty(), "{what}: no PRIVATE KEY block in the PEM");
        for (i, line) in body.iter().enumerate() {
            if line.len() >= 16 {
                self.add(format!("{what}: PEM line {i}"), line.as_str());
            }
        }
        let der = STANDARD
            .decode(body.concat())
            .unwrap_or_else(|e| panic!("{what}: the PEM body is not base64: {e}"));
        self.add(format!("{what}: DER in base64"), STANDARD.encode(&der));
        self.add(format!("{what}: DER bytes"), der.clone());
        // ECPrivateKey { INTEGER 1, OCTET STRING (32) d, ... } inside PKCS#8 (or SEC1).
        let marker = [0x02, 0x01, 0x01, 0x04, 0x20];
        let at = der
            .windows(marker.len())
            .position(|w| w == marker)
            .unwrap_or_else(|| panic!("{what}: no EC private scalar in the DER"));
        let scalar = &der[at + marker.len()..at + marker.len() + 32];
        self.add(format!("{what}: private scalar"), scalar.to_vec());
        self.add(format!("{what}: private scalar in hex"), hex(scalar));
        for (i, f) in base64_fragments(scalar).into_iter().enumerate() {
            self.add(format!("{what}: private scalar in base64 (form {i})"), f);
        }
    }
}

/// The base64 lines of the first PEM block whose label ends with `label_end`.
fn pem_body(pem_text: &str, label_end: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in pem_text.lines().map(str::trim) {
        if line.starts_with("-----BEGIN") && line.contains(&format!("{label_end}-----")) {
            inside = true;
        } else if line.starts_with("-----END") && inside {
            break;
        } else if inside && !line.is_empty() {
            lines.push(line.to_owned());
        }
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// Where it must not appear
// ---------------------------------------------------------------------------------------------

/// One stream or file, with the fewest lines it must have (0: may be empty).
struct Source {
    name: String,
    bytes: Vec<u8>,
    min_lines: usize,
}

#[derive(Default)]
struct Scan {
    sources: Vec<Source>,
    /// Secret files found and checked (mode 0600), not scanned.
    exempt: Vec<String>,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Scan {
    fn add(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>, min_lines: usize) {
        self.sources.push(Source {
            name: name.into(),
            bytes: bytes.into(),
            min_lines,
        });
    }

    /// stdout and stderr of `run`; stderr must have `stderr_min` lines, stdout `stdout_min`.
    fn run(&mut self, name: &str, r: &Run, stdout_min: usize, stderr_min: usize) {
        self.add(format!("{name}: stdout"), r.stdout.as_bytes(), stdout_min);
        self.add(format!("{name}: stderr"), r.stderr.as_bytes(), stderr_min);
    }

    /// Every regular file under `root`, except [`SECRET_FILES`] (checked to be 0600). Symlinks
    /// are not followed (their targets are files scanned here); sockets are skipped.
    fn root(&mut self, name: &str, root: &Path) {
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() {
                    if is_secret_file(&rel) {
                        assert_eq!(
                            mode_of(&path),
                            0o600,
                            "{name}: {rel} holds a private key: it must be mode 0600"
                        );
                        self.exempt.push(format!("{name}: {rel}"));
                    } else {
                        let bytes = std::fs::read(&path).unwrap();
                        self.add(format!("{name}: file {rel}"), bytes, 0);
                    }
                }
            }
        }
    }

    /// Prints the summary, checks the minimum sizes, then that no needle is anywhere; and
    /// "PRIVATE KEY" nowhere.
    fn assert_clean(&self, test: &str, needles: &Needles) {
        let mut summary = format!("{test}: scanned\n");
        let (mut bytes, mut lines) = (0, 0);
        for s in &self.sources {
            let n = s.bytes.iter().filter(|&&b| b == b'\n').count();
            bytes += s.bytes.len();
            lines += n;
            let _ = writeln!(
                summary,
                "  {:>8} bytes {:>6} lines  {}",
                s.bytes.len(),
                n,
                s.name
            );
        }
        let _ = writeln!(
            summary,
            "  {bytes:>8} bytes {lines:>6} lines  in {} sources, for {} needles; not scanned (0600 checked): {:?}",
            self.sources.len(),
            needles.0.len(),
            self.exempt
        );
        eprint!("{summary}");
        for s in &self.sources {
            let n = String::from_utf8_lossy(&s.bytes).lines().count();
            assert!(
                n >= s.min_lines,
                "{}: {n} lines, expected at least {}: the output was silenced?\n{}",
                s.name,
                s.min_lines,
                String::from_utf8_lossy(&s.bytes)
            );
        }
        let mut leaks = Vec::new();
        for s in &self.sources {
            for (what, needle) in &needles.0 {
                if contains(&s.bytes, needle) {
                    leaks.push(format!("{} contains {what}", s.name));
                }
            }
            if contains(&s.bytes, b"PRIVATE KEY") {
                leaks.push(format!("{} contains \"PRIVATE KEY\"", s.name));
            }
        }
        assert!(
            leaks.is_empty(),
            "secrets leaked:\n  {}\n{summary}",
            leaks.join("\n  ")
        );
    }
}

fn is_secret_file(rel: &str) -> bool {
    SECRET_FILES
        .iter()
        .any(|pattern| match pattern.split_once('*') {
            Some((head, tail)) => {
                rel.len() > head.len() + tail.len()
                    && rel.starts_with(head)
                    && rel.ends_with(tail)
                    && !rel[head.len()..].contains('/')
            }
            None => rel == *pattern,
        })
}

/// The node key written by a successful join into `root`, as PEM text.
fn node_key(root: &Path) -> String {
    let path = root.join("var/lib/kubelet/pki/kubelet-client-current.pem");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink(),
        "kubelet-client-current.pem is a link to the dated file"
    );
    text
}

// ---------------------------------------------------------------------------------------------
// `kaas-join run` on its own machine: config file, fake runtime socket, fake kubelet
// ---------------------------------------------------------------------------------------------

/// A running `kaas-join run -vvv` with its output drained; killed (and its kubelet with it) when
/// dropped.
struct Daemon {
    process: Running,
    root: PathBuf,
}

impl Daemon {
    fn run_status(&self) -> Option<Value> {
        let bytes = std::fs::read(self.root.join("run/kaas-join/status.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Polls `f` every 50 ms until it gives a value; fails after `timeout` or if the daemon exits.
    async fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Daemon) -> Option<T>,
    ) -> T {
        let found = Wait::new(what, timeout)
            .every(Duration::from_millis(50))
            .poll(|| {
                if let Ok(Some(status)) = self.process.child.try_wait() {
                    panic!(
                        "kaas-join run exited ({status}) while waiting for {what}\n{}",
                        self.process.stderr_so_far()
                    );
                }
                f(self)
            })
            .await;
        found.unwrap_or_else(|timed_out| panic!("{timed_out}\n{}", self.process.stderr_so_far()))
    }

    /// SIGTERM, then a bounded wait for the exit; (exit code, stdout, stderr).
    async fn terminate(self) -> Run {
        kill(Pid::from_raw(self.process.pid() as i32), Signal::SIGTERM).unwrap();
        self.process.finish_async(Duration::from_secs(20)).await
    }
}

/// The status of the Node's condition `type_`, and its reason.
fn condition(sb: &Sandbox, node: &str, type_: &str) -> Option<(String, String)> {
    let node = sb.node(node)?;
    let c = node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .clone();
    Some((
        c["status"].as_str()?.to_owned(),
        c["reason"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// `kaas-join status` text and JSON on `root`, scanned as `name`; the JSON report.
async fn status(scan: &mut Scan, name: &str, root: &Path) -> Value {
    let root = p(root);
    let text = bin(strings(&["status", "-vvv", "--root", &root]))
        .run_async()
        .await;
    assert!(matches!(text.code, 0 | 21), "{name}: {text:#?}");
    scan.run(&format!("{name} status"), &text, 3, 0);
    let json = bin(strings(&[
        "status", "-vvv", "--root", &root, "--output", "json",
    ]))
    .run_async()
    .await;
    assert!(matches!(json.code, 0 | 21), "{name}: {json:#?}");
    scan.run(&format!("{name} status --output json"), &json, 3, 0);
    serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("{name}: status printed no JSON ({e}): {}", json.stdout))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// The token given each way, a dry run (text and JSON), `run` with a kubelet kill, and `status`:
/// all at trace level, nothing holds the token or a node key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_dry_runs_run_and_status_at_trace_level_show_no_secret() {
    let sb = sandbox(SandboxConfig::default()).await;
    let token = sb.create_token();
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_file(
        &dir.path().join("files/token"),
        &format!("{token}\n"),
        0o600,
    );
    let mut needles = Needles::default();
    needles.token("the bootstrap token", &token);
    let mut scan = Scan::default();
    let mut joined_roots = Vec::new();

    // The token each way: file, environment, a ticket on stdin, and the flag (which warns).
    let ticket = kaas_join::model::ticket::Ticket {
        server: sb.url(),
        token: kaas_join::model::token::BootstrapToken::parse(&token).unwrap(),
        pins: vec![sb.ca_cert_hash().parse().unwrap()],
    }
    .encode()
    .to_string();
    needles.add("the join ticket".into(), ticket.as_str());
    // (how, the token's part of the invocation)
    let ways = [
        (
            "--token-file",
            bin([
                server_args(&sb),
                strings(&["--token-file", &p(&token_file)]),
            ]
            .concat()),
        ),
        (
            "KAAS_JOIN_TOKEN",
            bin(server_args(&sb)).env("KAAS_JOIN_TOKEN", token.clone()),
        ),
        (
            "ticket on stdin",
            bin(strings(&["-"])).stdin(format!("{ticket}\n")),
        ),
        (
            "--token",
            bin([server_args(&sb), strings(&["--token", &token])].concat()),
        ),
    ];
    for (i, (way, inv)) in ways.into_iter().enumerate() {
        let root = dir.path().join(format!("join-{i}"));
        let args = join_args(&root, &format!("node-{i}"), &[]);
        let r = inv.prepend_args(args).run_async().await;
        assert_eq!(r.code, 0, "join with {way}: {r:#?}");
        if way == "--token" {
            assert!(r.stderr.contains("visible to other users"), "{}", r.stderr);
        }
        scan.run(&format!("join with {way}"), &r, 3, TRACE_JOIN_MIN_LINES);
        joined_roots.push((format!("join with {way}"), root));
    }

    // Dry runs: text and JSON, on fresh roots (they write nothing, but whatever is there is
    // scanned).
    for output in ["text", "json"] {
        let root = dir.path().join(format!("dry-run-{output}"));
        let mut args = join_args(&root, "dry-node", &["--dry-run", "--output", output]);
        args.extend(server_args(&sb));
        args.extend(strings(&["--token-file", &p(&token_file)]));
        let r = bin(args).run_async().await;
        assert_eq!(r.code, 0, "dry run {output}: {r:#?}");
        assert!(
            sb.csrs().len() == joined_roots.len(),
            "a dry run made a CSR"
        );
        scan.run(
            &format!("join --dry-run --output {output}"),
            &r,
            10,
            TRACE_JOIN_MIN_LINES,
        );
        scan.root(&format!("dry run {output} root"), &root);
    }

    // `kaas-join run -vvv`: joins (from a config file), supervises the fake kubelet, reports
    // its conditions; kubelet is killed once so they change.
    let node = "run-node";
    let m = Machine::builder(&sb, node).token(&token).build();
    std::fs::set_permissions(&m.config_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let root = m.root.clone();
    // run_args: the fake kubelet, a 2 s heartbeat, preflight errors ignored.
    let mut args = m.run_args();
    args.push("-vvv".into());
    let process = bin(args).envs(m.fake_kubelet_env()).start();
    let mut d = Daemon {
        process,
        root: root.clone(),
    };
    d.wait_for("the join", CONDITION_WAIT, |_| {
        root.join("etc/kubernetes/kubelet.conf")
            .exists()
            .then_some(())
    })
    .await;
    sb.add_node(node, true);
    d.wait_for("KubeletUnhealthy False on the Node", CONDITION_WAIT, |_| {
        condition(&sb, node, "KubeletUnhealthy").filter(|(s, _)| s == "False")
    })
    .await;
    status(&mut scan, "while running:", &root).await;
    let pid = d
        .wait_for("kubelet's pid", CONDITION_WAIT, |d| {
            d.run_status()?["kubelet"]["pid"].as_i64()
        })
        .await;
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    d.wait_for("KubeletUnhealthy True on the Node", CONDITION_WAIT, |_| {
        condition(&sb, node, "KubeletUnhealthy").filter(|(s, _)| s == "True")
    })
    .await;
    let r = d.terminate().await;
    assert_eq!(r.code, 0, "run: {}", r.stderr);
    assert!(
        root.join("run/kaas-join/status.json").is_file(),
        "run left no status file"
    );
    scan.run("run", &r, 0, TRACE_JOIN_MIN_LINES);
    let report = status(&mut scan, "after run:", &root).await;
    assert_eq!(report["joined"], true, "{report:#}");
    joined_roots.push(("run".into(), root));

    // What the joins left behind, and each node's key as needles for every source.
    let (_, first) = &joined_roots[0];
    let report = status(&mut scan, "joined, no daemon:", first).await;
    assert_eq!(report["joined"], true, "{report:#}");
    for (name, root) in &joined_roots {
        needles.private_key(&format!("the node key of {name}"), &node_key(root));
        scan.root(&format!("{name} root"), root);
    }
    assert!(
        scan.exempt.len() >= joined_roots.len(),
        "every join wrote its key file: {:?}",
        scan.exempt
    );
    scan.assert_clean("joins, dry runs, run and status", &needles);
    sb.shutdown().await;
}

/// Joins that fail, each at trace level: the error names the problem, never the secret given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_joins_at_trace_level_show_no_secret() {
    let sb = sandbox(SandboxConfig::default()).await;
    let token = sb.create_token();
    let id = &token[..6];
    let dir = tempfile::tempdir().unwrap();
    let mut needles = Needles::default();
    needles.token("the real token", &token);
    let mut scan = Scan::default();
    let files = dir.path().join("files");

    // (case, token given through KAAS_JOIN_TOKEN, expected exit code)
    let wrong_secret = format!("{id}.{}", "7".repeat(16));
    let unknown_id = format!("zz{}.{}", &id[2..], &token[7..]);
    let cases = [
        ("wrong secret (signature mismatch)", wrong_secret, 7),
        ("unknown token id", unknown_id, 6),
        (
            "secret too long",
            format!("{token}x"),
            2, // the secret part is 17 characters
        ),
        ("secret too short", format!("{id}.{}", &token[7..22]), 2),
        (
            "secret with a bad character",
            format!("{}Q", &token[..22]),
            2,
        ),
    ];
    for (i, (case, given, code)) in cases.into_iter().enumerate() {
        needles.token(&format!("the token of case {case:?}"), &given);
        let root = dir.path().join(format!("case-{i}"));
        let mut args = join_args(&root, "node-1", &[]);
        set_flag(&mut args, "--discovery-timeout", "2s");
        args.extend(server_args(&sb));
        let r = bin(args).env("KAAS_JOIN_TOKEN", given).run_async().await;
        assert_eq!(r.code, code, "{case}: {r:#?}");
        assert!(
            r.stderr.contains("kaas-join: error: "),
            "{case}: {}",
            r.stderr
        );
        scan.run(case, &r, 0, 1);
        scan.root(&format!("{case} root"), &root);
    }

    // A token file holding a malformed token.
    let bad = format!("{token}9\n");
    needles.token("the token in the file", bad.trim());
    let bad_file = write_file(&files.join("bad-token"), &bad, 0o600);
    let root = dir.path().join("bad-file");
    let mut args = join_args(&root, "node-1", &["--token-file", &p(&bad_file)]);
    args.extend(server_args(&sb));
    let r = bin(args).run_async().await;
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains(&p(&bad_file)), "{}", r.stderr);
    scan.run("malformed token file", &r, 0, 1);

    // A ticket with a wrong checksum, on stdin.
    let other = sb.create_token();
    needles.token("the token in the damaged ticket", &other);
    let ticket = kaas_join::model::ticket::Ticket {
        server: sb.url(),
        token: kaas_join::model::token::BootstrapToken::parse(&other).unwrap(),
        pins: vec![sb.ca_cert_hash().parse().unwrap()],
    }
    .encode()
    .to_string();
    let (head, sum) = ticket.rsplit_once('.').unwrap();
    let wrong_sum = if sum.starts_with('0') { "1" } else { "0" }.to_string() + &sum[1..];
    let damaged = format!("{head}.{wrong_sum}");
    needles.add("the damaged ticket's payload".into(), &head[4..]);
    let root = dir.path().join("ticket");
    let r = bin(join_args(&root, "node-1", &["-"]))
        .stdin(format!("{damaged}\n"))
        .run_async()
        .await;
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("checksum mismatch"), "{}", r.stderr);
    scan.run("damaged ticket", &r, 0, 1);

    // Config files holding the token, broken further down: the YAML error must not quote it.
    let in_config = sb.create_token();
    needles.token("the token in the config files", &in_config);
    let head = format!(
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nservers: [\"{}\"]\n\
         caCertHashes: [\"{}\"]\ntoken: \"{in_config}\"\n",
        sb.url(),
        sb.ca_cert_hash()
    );
    // (case, file, what the error must say)
    let configs = [
        (
            "a syntax error",
            format!("{head}nodeLabels: {{team: a\n  : ]\n"),
            "",
        ),
        (
            "a wrong indentation",
            format!("{head}kubelet:\n  maxPods: 5\n maxPods: 6\n"),
            "",
        ),
        (
            "the token where a map belongs",
            format!("{head}kubelet: \"{in_config}\"\n"),
            "",
        ),
        (
            "the token in a misspelled field",
            format!("{head}tokn: {in_config}\n"),
            "unknown field",
        ),
        // A token is a valid node name: it would have gone into the Node, the CSR and the logs.
        (
            "the token pasted as the node name",
            format!("{head}nodeName: {in_config}\n"),
            "contains the bootstrap token's secret",
        ),
    ];
    for (i, (case, text, says)) in configs.into_iter().enumerate() {
        let file = write_file(&files.join(format!("config-{i}.yaml")), &text, 0o600);
        let root = dir.path().join(format!("config-{i}"));
        let mut args = join_args(&root, "node-1", &["--config", &p(&file)]);
        // The file names the node; the flag would win over it.
        let at = args.iter().position(|a| a == "--node-name").unwrap();
        args.drain(at..at + 2);
        let r = bin(args).run_async().await;
        assert_eq!(r.code, 2, "config with {case}: {r:#?}");
        assert!(
            r.stderr.contains(&p(&file)),
            "config with {case}: {}",
            r.stderr
        );
        assert!(r.stderr.contains(says), "config with {case}: {}", r.stderr);
        scan.run(&format!("config with {case}"), &r, 0, 1);
        scan.root(&format!("config with {case} root"), &root);
    }

    // The token is deleted after discovery, before the CSR: rejected (exit 13). The cluster
    // phase is held up so that the deletion lands after discovery.
    let doomed = sb.create_token();
    let doomed_id = doomed[..6].to_owned();
    needles.token("the token deleted after discovery", &doomed);
    sb.faults().delay(
        "GET /api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        Duration::from_millis(1500),
    );
    let root = dir.path().join("deleted");
    let mut args = join_args(&root, "node-1", &[]);
    args.extend(server_args(&sb));
    let cluster_info_reads = |sb: &Sandbox| {
        sb.requests()
            .iter()
            .filter(|r| r.path.ends_with("/configmaps/cluster-info") && r.status == 200)
            .count()
    };
    let before = cluster_info_reads(&sb);
    let joining =
        tokio::task::spawn_blocking(move || bin(args).env("KAAS_JOIN_TOKEN", doomed).run());
    // Discovery reads cluster-info twice (unverified, then verified by the CA).
    Wait::new(
        "discovery's two cluster-info reads",
        Duration::from_secs(30),
    )
    .every(Duration::from_millis(5))
    .until(|| {
        let reads = cluster_info_reads(&sb) - before;
        if reads >= 2 {
            Ok(())
        } else {
            Err(format!("{reads} reads"))
        }
    })
    .await;
    assert!(sb.delete_token(&doomed_id));
    let r = joining.await.unwrap();
    sb.faults().clear();
    assert_eq!(r.code, 13, "{r:#?}");
    scan.run("token deleted after discovery", &r, 0, TRACE_JOIN_MIN_LINES);
    scan.root("token deleted after discovery root", &root);

    scan.assert_clean("failing joins", &needles);
    sb.shutdown().await;
}

/// A token file others may read (0640; 0644 is in tests/cli.rs), and a node key left by an
/// interrupted join and then opened to others: refused with the command that fixes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_files_readable_by_others_are_refused_with_the_chmod_fix() {
    let sb = sandbox(SandboxConfig {
        approval: ApprovalMode::Never,
        ..SandboxConfig::default()
    })
    .await;
    let token = sb.create_token();
    let dir = tempfile::tempdir().unwrap();
    let mut needles = Needles::default();
    needles.token("the token", &token);
    let mut scan = Scan::default();
    let root = dir.path().join("root");

    let open_token = write_file(
        &dir.path().join("files/token"),
        &format!("{token}\n"),
        0o640,
    );
    let mut args = join_args(&root, "node-1", &["--token-file", &p(&open_token)]);
    args.extend(server_args(&sb));
    let r = bin(args.clone()).run_async().await;
    assert_eq!(r.code, 2, "{r:#?}");
    let fix = format!("chmod 600 {}", p(&open_token));
    assert!(r.stderr.contains(&fix), "no `{fix}` in: {}", r.stderr);
    assert!(r.stderr.contains("0640"), "{}", r.stderr);
    assert!(!root.exists(), "a refused join wrote under its root");
    scan.run("token file 0640", &r, 0, 1);

    // An interrupted join: no approval comes, so it stops with its key saved (0600).
    std::fs::set_permissions(&open_token, std::fs::Permissions::from_mode(0o600)).unwrap();
    set_flag(&mut args, "--tls-bootstrap-timeout", "1s");
    let r = bin(args.clone()).run_async().await;
    assert_eq!(r.code, 11, "{r:#?}");
    scan.run("join left pending", &r, 0, TRACE_JOIN_MIN_LINES);
    let key_path = root.join("var/lib/kaas-join/node-key.pem");
    let key = std::fs::read_to_string(&key_path).expect("the pending key is kept");
    assert_eq!(mode_of(&key_path), 0o600);
    needles.private_key("the pending node key", &key);
    scan.root("pending join root", &root);

    // The key opened to others: the re-run refuses it, names the fix and keeps it as it is.
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = bin(args).run_async().await;
    assert_eq!(r.code, 14, "{r:#?}");
    let fix = format!("chmod 600 {}", p(&key_path));
    assert!(r.stderr.contains(&fix), "no `{fix}` in: {}", r.stderr);
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key);
    scan.run("node key 0644", &r, 0, 1);
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();

    scan.assert_clean("secret files readable by others", &needles);
    sb.shutdown().await;
}

/// `token create` prints the token: on its stdout and nowhere else (not in its log, not in `token
/// list`, not in what a join with the printed ticket says or writes). The admin's own key stays
/// out of every output too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_commands_print_the_token_only_on_create_stdout() {
    let sb = sandbox(SandboxConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = sb.admin_kubeconfig();
    let admin_conf = write_file(&dir.path().join("admin.conf"), &admin, 0o600);
    let conf = p(&admin_conf);
    let mut needles = Needles::default();
    let mut scan = Scan::default();
    let admin_key = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-key-data: "))
        .expect("the admin kubeconfig has a key");
    let admin_key = String::from_utf8(STANDARD.decode(admin_key).unwrap()).unwrap();
    needles.private_key("the admin's key", &admin_key);
    needles.add("the admin's key data".into(), admin_key.as_bytes());
    let minted = sb.create_token();
    needles.token("a token minted by the sandbox", &minted);

    // create: the token (or ticket, or command) on stdout, by design; never on stderr.
    let mut printed = Vec::new();
    for how in [&[][..], &["--print-join-command"], &["--ticket"]] {
        let mut args = strings(&["token", "create", "-vvv", "--kubeconfig", &conf]);
        args.extend(strings(how));
        let r = bin(args).run_async().await;
        assert_eq!(r.code, 0, "token create {how:?}: {r:#?}");
        scan.add(
            format!("token create {how:?}: stderr"),
            r.stderr.as_bytes(),
            1,
        );
        printed.push(r.stdout.trim().to_owned());
    }
    let plain = printed[0].clone();
    kaas_join::model::token::BootstrapToken::parse(&plain).expect("create prints a token");
    needles.token("the created token", &plain);
    let command_token = printed[1]
        .split_whitespace()
        .skip_while(|w| *w != "--token")
        .nth(1)
        .expect("the join command has --token")
        .to_owned();
    needles.token("the token in the printed join command", &command_token);
    let ticket = printed[2]
        .strip_prefix("kaas-join join ")
        .expect("create --ticket prints `kaas-join join <ticket>`")
        .to_owned();
    let ticket_token = kaas_join::model::ticket::Ticket::parse(&ticket)
        .expect("the printed ticket parses")
        .token
        .bearer()
        .to_string();
    needles.token("the token in the printed ticket", &ticket_token);
    needles.add("the printed ticket".into(), ticket.as_str());
    assert!(printed[1].contains(&command_token), "{}", printed[1]);
    assert!(printed[2].contains(&ticket), "{}", printed[2]);
    // The scan would have caught them (the ticket: by the secret's base64 in its payload).
    let base64_of_ticket_secret = Needles(
        needles
            .0
            .iter()
            .filter(|(what, _)| {
                what.starts_with("the token in the printed ticket: its secret in base64")
            })
            .cloned()
            .collect(),
    );
    assert!(!base64_of_ticket_secret
        .hits(printed[2].as_bytes())
        .is_empty());
    for stdout in &printed {
        assert!(!needles.hits(stdout.as_bytes()).is_empty(), "{stdout}");
    }

    // list: every secret masked.
    for output in ["text", "json"] {
        let r = bin(strings(&[
            "token",
            "list",
            "-vvv",
            "--kubeconfig",
            &conf,
            "--output",
            output,
        ]))
        .run_async()
        .await;
        assert_eq!(r.code, 0, "token list {output}: {r:#?}");
        assert!(
            r.stdout.contains(&plain[..6]),
            "the list names {}: {}",
            &plain[..6],
            r.stdout
        );
        scan.run(&format!("token list --output {output}"), &r, 2, 1);
    }

    // A join with the printed ticket on stdin, at trace level.
    let root = dir.path().join("root");
    let r = bin(join_args(&root, "node-1", &["-"]))
        .stdin(format!("{ticket}\n"))
        .run_async()
        .await;
    assert_eq!(r.code, 0, "join with the printed ticket: {r:#?}");
    scan.run("join with the printed ticket", &r, 3, TRACE_JOIN_MIN_LINES);
    needles.private_key("the node key", &node_key(&root));
    scan.root("joined root", &root);

    scan.assert_clean("token commands", &needles);
    sb.shutdown().await;
}

/// A node whose client certificate expired joins again (`join` without a token, with an expired
/// one, with a good one) at trace level: the advice names where the token goes, never a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_again_at_trace_level_shows_no_secret() {
    let sb = sandbox(SandboxConfig {
        certificate_lifetime: Some(Duration::from_secs(1)),
        ..SandboxConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let token_file = dir.path().join("files/token");
    let mut needles = Needles::default();
    let mut scan = Scan::default();
    let mut args = join_args(&root, "node-1", &["--token-file", &p(&token_file)]);
    args.extend(server_args(&sb));
    set_flag(&mut args, "--discovery-timeout", "2s");
    let join = |args: &Vec<String>| bin(args.clone()).run_async();

    let first = sb.create_token();
    needles.token("the first token", &first);
    write_file(&token_file, &format!("{first}\n"), 0o600);
    let r = join(&args).await;
    assert_eq!(r.code, 0, "{r:#?}");
    scan.run("first join", &r, 3, TRACE_JOIN_MIN_LINES);
    // Until the 1 s certificate has expired (its notAfter is whole seconds).
    let pem = std::fs::read(root.join("var/lib/kubelet/pki/kubelet-client-current.pem")).unwrap();
    let expiry = kaas_join::model::identity::certificate_not_after(&pem).unwrap();
    Wait::new("the first certificate's expiry", Duration::from_secs(5))
        .every(Duration::from_millis(50))
        .until(|| std::time::SystemTime::now() > expiry)
        .await;

    std::fs::remove_file(&token_file).unwrap();
    let r = join(&args).await;
    assert_eq!(r.code, 13, "{r:#?}");
    assert!(
        r.stderr.contains("kaas-join token create --ticket"),
        "{r:#?}"
    );
    scan.run("join again without a token", &r, 0, 1);

    let expired = sb.create_token_with(kaas_sandbox::TokenOptions {
        expired: true,
        ..kaas_sandbox::TokenOptions::default()
    });
    needles.token("the expired token", &expired);
    write_file(&token_file, &format!("{expired}\n"), 0o600);
    let r = join(&args).await;
    assert_eq!(r.code, 6, "{r:#?}");
    scan.run("join again with an expired token", &r, 0, 1);

    sb.set_certificate_lifetime(None);
    let good = sb.create_token();
    needles.token("the new token", &good);
    write_file(&token_file, &format!("{good}\n"), 0o600);
    let r = join(&args).await;
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(
        r.stdout.contains("joining again as the same node"),
        "{r:#?}"
    );
    scan.run("join again", &r, 3, TRACE_JOIN_MIN_LINES);
    scan.root("joined-again root", &root);

    scan.assert_clean("joining again", &needles);
    sb.shutdown().await;
}

#[test]
fn base64_fragments_find_a_secret_at_every_alignment() {
    let secret = b"0123456789abcdef";
    let fragments = base64_fragments(secret);
    for prefix in ["", "a", "ab", "Bearer ", "Bearer x", "Bearer xy", "abcdef."] {
        for suffix in ["", "z", "\n"] {
            let text = [prefix.as_bytes(), secret, suffix.as_bytes()].concat();
            for encoded in [STANDARD.encode(&text), URL_SAFE_NO_PAD.encode(&text)] {
                assert!(
                    fragments.iter().any(|f| encoded.contains(f.as_str())),
                    "{prefix:?}+secret+{suffix:?}: {encoded} has none of {fragments:?}"
                );
            }
        }
    }
    assert!(is_secret_file(
        "var/lib/kubelet/pki/kubelet-client-2025-01-01-00-00-00.pem"
    ));
    assert!(is_secret_file("var/lib/kaas-join/node-key.pem"));
    assert!(!is_secret_file(
        "var/lib/kubelet/pki/x/kubelet-client-1.pem"
    ));
    assert!(!is_secret_file("var/lib/kaas-join/state.json"));
}
