//! The provider's side against the sandbox control plane on loopback: `kaas-join token
//! create|list|delete` and `kaas-join cluster prepare` through the real binary with an admin
//! kubeconfig, and joins with what they print (through the library, from the printed command
//! line or ticket parsed as the binary parses it).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser as _;
use common::kaas_join as kj;
use kaas_join::cli::{Cli, Command};
use kaas_join::cmd::error::Error;
use kaas_join::cmd::join::report::Outcome;
use kaas_join::config::Environment;
use kaas_join::model::cgroup_driver::CgroupDriver;
use kaas_join::model::exit_code::ExitCode;
use kaas_sandbox::{ControlPlaneStyle, Sandbox, SandboxConfig};

const CONTAINERD: &str = "unix:///run/containerd/containerd.sock";

async fn sandbox(style: ControlPlaneStyle) -> Sandbox {
    Sandbox::start(SandboxConfig {
        style,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts")
}

/// The sandbox's admin kubeconfig (system:masters) written to `dir`.
fn admin_conf(sb: &Sandbox, dir: &Path) -> PathBuf {
    let path = dir.join("admin.conf");
    std::fs::write(&path, sb.admin_kubeconfig()).unwrap();
    path
}

/// `kaas-join token create --print-join-command` with the admin kubeconfig `conf`: the line.
async fn printed_join_command(conf: &Path) -> String {
    let run = kj(&[
        "token",
        "create",
        "--print-join-command",
        "--kubeconfig",
        p(conf),
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    one_line(&run.stdout).to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Joins through the library with a `kaas-join join ...` command line as printed, parsed as the
/// binary parses it, plus the node's own settings.
async fn join_as_printed(
    line: &str,
    root: &Path,
    timeout: &str,
) -> Result<kaas_join::cmd::join::report::JoinReport, Error> {
    let argv: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&argv[..2], ["kaas-join", "join"], "{line}");
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{line}: {e}"));
    let Command::Join(mut args) = cli.command else {
        panic!("not a join: {line}")
    };
    args.node_name = Some("node-1".into());
    args.cri_socket = Some(CONTAINERD.into());
    args.cgroup_driver = Some(CgroupDriver::Systemd);
    args.root = root.to_path_buf();
    args.discovery_timeout = Some(timeout.into());
    args.tls_bootstrap_timeout = Some(timeout.into());
    let env = Environment {
        token: None,
        hostname: "node-1".into(),
        stdin: None,
    };
    let (cfg, _warnings) = kaas_join::config::load(&args, env)?;
    kaas_join::cmd::join::join(&cfg, vec![]).await
}

fn one_line(s: &str) -> &str {
    let t = s.trim_end();
    assert_eq!(t.lines().count(), 1, "not one line: {s:?}");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_create_then_join_with_the_printed_command() {
    let sb = sandbox(ControlPlaneStyle::Kubeadm).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = admin_conf(&sb, dir.path());
    let line = &printed_join_command(&conf).await;
    let port = sb.addr().port();
    assert!(
        line.starts_with(&format!(
            "kaas-join join --server 127.0.0.1:{port} --token "
        )),
        "{line}"
    );
    assert!(
        line.ends_with(&format!(
            "--discovery-token-ca-cert-hash {}",
            sb.ca_cert_hash()
        )),
        "{line}"
    );
    let root = tempfile::tempdir().unwrap();
    let report = join_as_printed(line, root.path(), "10s")
        .await
        .expect("joins");
    assert_eq!(report.outcome, Outcome::Joined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_create_writes_kubeadms_secret() {
    use base64::Engine as _;
    let sb = sandbox(ControlPlaneStyle::Kubeadm).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = admin_conf(&sb, dir.path());
    let run = kj(&[
        "token",
        "create",
        "abcdef.0123456789abcdef",
        "--ttl",
        "2h",
        "--description",
        "tenant a",
        "--kubeconfig",
        p(&conf),
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "abcdef.0123456789abcdef\n");
    let secret = sb
        .object("Secret", "kube-system", "bootstrap-token-abcdef")
        .expect("the Secret exists");
    assert_eq!(secret["type"], "bootstrap.kubernetes.io/token");
    let data = |k: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(
                    secret["data"][k]
                        .as_str()
                        .unwrap_or_else(|| panic!("no {k}")),
                )
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(data("token-id"), "abcdef");
    assert_eq!(data("token-secret"), "0123456789abcdef");
    assert_eq!(data("usage-bootstrap-signing"), "true");
    assert_eq!(data("usage-bootstrap-authentication"), "true");
    assert_eq!(
        data("auth-extra-groups"),
        "system:bootstrappers:kubeadm:default-node-token"
    );
    assert_eq!(data("description"), "tenant a");
    let exp = time::OffsetDateTime::parse(
        &data("expiration"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = exp - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(119) && left <= time::Duration::hours(2),
        "{left}"
    );
    // The same id again: a one-line error, exit 2.
    let again = kj(&[
        "token",
        "create",
        "abcdef.0123456789abcdef",
        "--kubeconfig",
        p(&conf),
    ])
    .await;
    assert_eq!(again.code, ExitCode::Usage, "{}", again.stderr);
    assert!(one_line(&again.stderr).contains("already exists"));
    assert!(
        !again.stderr.contains("0123456789abcdef"),
        "{}",
        again.stderr
    );
    // --ttl 0: no expiration.
    let run = kj(&["token", "create", "--ttl", "0", "--kubeconfig", p(&conf)]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = &run.stdout[..6];
    let secret = sb
        .object("Secret", "kube-system", &format!("bootstrap-token-{id}"))
        .unwrap();
    assert!(secret["data"].get("expiration").is_none(), "{secret}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_list_masks_secrets() {
    let sb = sandbox(ControlPlaneStyle::Kubeadm).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = admin_conf(&sb, dir.path());
    let minted = sb.create_token();
    let run = kj(&[
        "token",
        "create",
        "--description",
        "for-tenant-b",
        "--kubeconfig",
        p(&conf),
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let created = run.stdout.trim().to_string();
    let list = kj(&["token", "list", "--kubeconfig", p(&conf)]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    let out = &list.stdout;
    assert!(
        out.starts_with("TOKEN") && out.contains("TTL") && out.contains("EXTRA GROUPS"),
        "{out}"
    );
    for token in [&minted, &created] {
        let (id, secret) = token.split_once('.').unwrap();
        assert!(out.contains(&format!("{id}.****************")), "{out}");
        assert!(!out.contains(secret), "the list shows a secret:\n{out}");
    }
    assert!(out.contains("23h"), "{out}");
    assert!(out.contains("authentication,signing"), "{out}");
    assert!(
        out.contains("system:bootstrappers:kubeadm:default-node-token"),
        "{out}"
    );
    assert!(out.contains("for-tenant-b"), "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");

    let json = kj(&[
        "token",
        "list",
        "--output",
        "json",
        "--kubeconfig",
        p(&conf),
    ])
    .await;
    assert_eq!(json.code, 0, "{}", json.stderr);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(!json.stdout.contains(created.split_once('.').unwrap().1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_delete_stops_joins() {
    let sb = sandbox(ControlPlaneStyle::Kubeadm).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = admin_conf(&sb, dir.path());
    let line = printed_join_command(&conf).await;
    let token = line
        .split_whitespace()
        .skip_while(|w| *w != "--token")
        .nth(1)
        .unwrap()
        .to_string();
    let id = &token[..6];
    let del = kj(&["token", "delete", id, "--kubeconfig", p(&conf)]).await;
    assert_eq!(del.code, 0, "{}", del.stderr);
    assert_eq!(del.stdout, format!("bootstrap token \"{id}\" deleted\n"));
    assert!(sb
        .object("Secret", "kube-system", &format!("bootstrap-token-{id}"))
        .is_none());

    let root = tempfile::tempdir().unwrap();
    let err = join_as_printed(&line, root.path(), "2s")
        .await
        .expect_err("a deleted token cannot join");
    assert_eq!(err.exit_code(), ExitCode::NoSignature, "{err}");

    // By whole token too; an unknown one is a one-line error.
    let other = sb.create_token();
    let del = kj(&["token", "delete", &other, "--kubeconfig", p(&conf)]).await;
    assert_eq!(del.code, 0, "{}", del.stderr);
    assert!(!del.stdout.contains(other.split_once('.').unwrap().1));
    let del = kj(&["token", "delete", "zzzzzz", "--kubeconfig", p(&conf)]).await;
    assert_eq!(del.code, ExitCode::Usage, "{}", del.stderr);
    assert!(one_line(&del.stderr).contains("does not exist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_round_trip_joins() {
    let sb = sandbox(ControlPlaneStyle::Kubeadm).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = admin_conf(&sb, dir.path());
    let run = kj(&["token", "create", "--ticket", "--kubeconfig", p(&conf)]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = one_line(&run.stdout);
    let ticket = line.strip_prefix("kaas-join join kj1.").expect(line);
    assert!(!ticket.contains(char::is_whitespace));
    let parsed = kaas_join::model::ticket::Ticket::parse(&format!("kj1.{ticket}")).unwrap();
    assert_eq!(parsed.server, sb.url());
    assert_eq!(parsed.pins[0].to_string(), sb.ca_cert_hash());
    let root = tempfile::tempdir().unwrap();
    let report = join_as_printed(line, root.path(), "10s")
        .await
        .expect("joins with the ticket");
    assert_eq!(report.outcome, Outcome::Joined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_tickets_are_one_line_errors_with_exit_2() {
    let sb = sandbox(ControlPlaneStyle::Kubeadm).await;
    let token = kaas_join::model::token::BootstrapToken::parse(&sb.create_token()).unwrap();
    let ticket = kaas_join::model::ticket::Ticket {
        server: sb.url(),
        token,
        pins: vec![sb.ca_cert_hash().parse().unwrap()],
    }
    .encode()
    .to_string();
    let root = tempfile::tempdir().unwrap();
    let root = p(root.path()).to_string();
    let damaged = "the join ticket is damaged (checksum mismatch): copy the whole line again";

    let truncated = &ticket[..ticket.len() - 5];
    let mut changed = ticket.clone().into_bytes();
    changed[10] = if changed[10] == b'x' { b'y' } else { b'x' };
    let changed = String::from_utf8(changed).unwrap();
    for bad in [truncated, &ticket[..30], changed.as_str()] {
        let run = kj(&["join", bad, "--root", &root, "--cri-socket", CONTAINERD]).await;
        assert_eq!(run.code, ExitCode::Usage, "{}", run.stderr);
        let err = one_line(&run.stderr);
        assert!(err.contains(damaged), "{err}");
        assert!(!err.contains(&ticket[4..30]), "echoes the ticket: {err}");
    }
    let newer = ticket.replacen("kj1.", "kj7.", 1);
    let run = kj(&["join", &newer, "--root", &root, "--cri-socket", CONTAINERD]).await;
    assert_eq!(run.code, ExitCode::Usage);
    assert!(
        one_line(&run.stderr).contains("made by a newer kaas-join: upgrade"),
        "{}",
        run.stderr
    );
    let run = kj(&[
        "join",
        &ticket,
        "--server",
        "10.0.0.5:6443",
        "--root",
        &root,
        "--cri-socket",
        CONTAINERD,
    ])
    .await;
    assert_eq!(run.code, ExitCode::Usage);
    assert!(
        one_line(&run.stderr).contains("both a join ticket and --server"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_rights_gets_the_rbac_exit_code() {
    let sb = sandbox(ControlPlaneStyle::Kubeadm).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("viewer.conf");
    std::fs::write(&conf, sb.user_kubeconfig("viewer", &[])).unwrap();
    let run = kj(&["token", "create", "--kubeconfig", p(&conf)]).await;
    assert_eq!(run.code, ExitCode::NotAllowed, "{}", run.stderr);
    assert_eq!(
        one_line(&run.stderr),
        "kaas-join: error: the admin kubeconfig's user \"viewer\" may not create Secrets in \
         kube-system: use a cluster-admin kubeconfig (--kubeconfig /etc/kubernetes/admin.conf \
         on a kubeadm control plane)"
    );
    assert!(
        run.stdout.is_empty(),
        "printed a token that was never created"
    );
    let run = kj(&["cluster", "prepare", "--kubeconfig", p(&conf)]).await;
    assert_eq!(run.code, ExitCode::NotAllowed, "{}", run.stderr);
    // A missing kubeconfig: exit 2, naming the file.
    let missing = dir.path().join("nope.conf");
    let run = kj(&["token", "list", "--kubeconfig", p(&missing)]).await;
    assert_eq!(run.code, ExitCode::Usage);
    assert!(
        one_line(&run.stderr).contains("nope.conf: does not exist"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_on_a_bare_control_plane_is_idempotent() {
    let sb = sandbox(ControlPlaneStyle::Bare).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = admin_conf(&sb, dir.path());

    let check = kj(&["cluster", "prepare", "--check", "--kubeconfig", p(&conf)]).await;
    assert_eq!(check.code, ExitCode::NotPrepared, "{}", check.stderr);
    assert!(
        check
            .stdout
            .contains("missing  ConfigMap kube-public/cluster-info"),
        "{}",
        check.stdout
    );
    assert!(check
        .stdout
        .contains("missing  ClusterRoleBinding kubeadm:node-autoapprove-bootstrap"));
    assert!(
        check.stdout.contains("not prepared: 8 missing, 0 wrong"),
        "{}",
        check.stdout
    );
    assert!(
        sb.object("ConfigMap", "kube-public", "cluster-info")
            .is_none(),
        "--check wrote"
    );

    let first = kj(&["cluster", "prepare", "--kubeconfig", p(&conf)]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    for object in [
        "ConfigMap kube-public/cluster-info",
        "Role kube-public/kubeadm:bootstrap-signer-clusterinfo",
        "RoleBinding kube-public/kubeadm:bootstrap-signer-clusterinfo",
        "ClusterRoleBinding kubeadm:kubelet-bootstrap",
        "ClusterRoleBinding kubeadm:node-autoapprove-bootstrap",
        "ClusterRoleBinding kubeadm:node-autoapprove-certificate-rotation",
        "ClusterRole kubeadm:get-nodes",
        "ClusterRoleBinding kubeadm:get-nodes",
    ] {
        assert!(
            first.stdout.contains(&format!("created  {object}\n")),
            "{object}:\n{}",
            first.stdout
        );
    }
    assert!(
        first
            .stdout
            .contains("skipped  Role kube-system/kubeadm:nodes-kubeadm-config"),
        "{}",
        first.stdout
    );
    let cm = sb
        .object("ConfigMap", "kube-public", "cluster-info")
        .unwrap();
    assert_eq!(cm["data"]["kubeconfig"], sb.cluster_info_kubeconfig());

    let second = kj(&["cluster", "prepare", "--kubeconfig", p(&conf)]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(!second.stdout.contains("created  "), "{}", second.stdout);
    assert!(
        second
            .stdout
            .contains("ok       ConfigMap kube-public/cluster-info"),
        "{}",
        second.stdout
    );
    assert!(second
        .stdout
        .contains("prepared: 0 created, 0 updated, 8 already right"));
    let check = kj(&["cluster", "prepare", "--check", "--kubeconfig", p(&conf)]).await;
    assert_eq!(check.code, 0, "{}", check.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_fixes_a_wrong_cluster_info_and_keeps_signatures() {
    let sb = sandbox(ControlPlaneStyle::Bare).await;
    let token = sb.create_token();
    let id = &token[..6];
    let dir = tempfile::tempdir().unwrap();
    let conf = admin_conf(&sb, dir.path());
    let run = kj(&[
        "cluster",
        "prepare",
        "--server",
        "10.9.9.9:443",
        "--kubeconfig",
        p(&conf),
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cm = sb
        .object("ConfigMap", "kube-public", "cluster-info")
        .unwrap();
    assert!(cm["data"]["kubeconfig"]
        .as_str()
        .unwrap()
        .contains("server: https://10.9.9.9:443\n"));
    let old_sig = cm["data"][format!("jws-kubeconfig-{id}")].clone();
    assert!(old_sig.is_string(), "the bootstrapsigner signed it: {cm}");

    let check = kj(&["cluster", "prepare", "--check", "--kubeconfig", p(&conf)]).await;
    assert_eq!(check.code, ExitCode::NotPrepared);
    assert!(
        check.stdout.contains(&format!(
            "wrong    ConfigMap kube-public/cluster-info: server is https://10.9.9.9:443, want {}",
            sb.url()
        )),
        "{}",
        check.stdout
    );
    let fix = kj(&["cluster", "prepare", "--kubeconfig", p(&conf)]).await;
    assert_eq!(fix.code, 0, "{}", fix.stderr);
    assert!(
        fix.stdout
            .contains("updated  ConfigMap kube-public/cluster-info: server is"),
        "{}",
        fix.stdout
    );
    let cm = sb
        .object("ConfigMap", "kube-public", "cluster-info")
        .unwrap();
    assert_eq!(cm["data"]["kubeconfig"], sb.cluster_info_kubeconfig());
    let new_sig = &cm["data"][format!("jws-kubeconfig-{id}")];
    assert!(
        new_sig.is_string() && *new_sig != old_sig,
        "re-signed: {cm}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_control_plane_joins_only_after_prepare() {
    let sb = sandbox(ControlPlaneStyle::Bare).await;
    let (_dir, conf, line) = refused_before_prepare(&sb).await;

    let prep = kj(&["cluster", "prepare", "--kubeconfig", p(&conf)]).await;
    assert_eq!(prep.code, 0, "{}", prep.stderr);
    let root = tempfile::tempdir().unwrap();
    let report = join_as_printed(&line, root.path(), "10s")
        .await
        .expect("joins after prepare");
    assert_eq!(report.outcome, Outcome::Joined);
}

/// A slow 403 still reads as a 403 when the timeout cuts the attempt in flight: the real
/// kube-apiserver in CI answered slowly enough that the last attempt was cut, and the join said
/// "cannot reach" (exit 3) instead of naming the missing Role (exit 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_refusal_cut_by_the_timeout_is_still_a_refusal() {
    let sb = sandbox(ControlPlaneStyle::Bare).await;
    sb.faults().delay(
        "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        Duration::from_millis(700),
    );
    refused_before_prepare(&sb).await;
}

/// On a bare control plane, the join command `token create --print-join-command` prints is
/// refused (exit 5, anonymous denied) with a 2 s timeout. Gives the admin kubeconfig (and the
/// folder holding it) and the printed line, for what the test does next.
async fn refused_before_prepare(sb: &Sandbox) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let conf = admin_conf(sb, dir.path());
    let line = printed_join_command(&conf).await;
    let root = tempfile::tempdir().unwrap();
    let err = join_as_printed(&line, root.path(), "2s")
        .await
        .expect_err("nothing published yet");
    assert_eq!(err.exit_code(), ExitCode::AnonymousDenied, "{err}");
    (dir, conf, line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_approval_follows_the_nodeclient_binding() {
    let sb = sandbox(ControlPlaneStyle::Bare).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = admin_conf(&sb, dir.path());
    let prep = kj(&["cluster", "prepare", "--kubeconfig", p(&conf)]).await;
    assert_eq!(prep.code, 0, "{}", prep.stderr);
    // An admin removes the auto-approval binding.
    let admin = kaas_join::k8s::admin::from_kubeconfig(
        &kaas_join::model::kubeconfig::parse(&sb.admin_kubeconfig()).unwrap(),
        &conf,
    )
    .unwrap();
    admin
        .client
        .delete("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm:node-autoapprove-bootstrap")
        .await
        .unwrap();
    let line = printed_join_command(&conf).await;
    let root = tempfile::tempdir().unwrap();
    let err = join_as_printed(&line, root.path(), "2s")
        .await
        .expect_err("not approved without the binding");
    assert_eq!(err.exit_code(), ExitCode::NotApproved, "{err}");

    let check = kj(&["cluster", "prepare", "--check", "--kubeconfig", p(&conf)]).await;
    assert_eq!(check.code, ExitCode::NotPrepared);
    assert!(check
        .stdout
        .contains("missing  ClusterRoleBinding kubeadm:node-autoapprove-bootstrap"));
    let prep = kj(&["cluster", "prepare", "--kubeconfig", p(&conf)]).await;
    assert!(prep
        .stdout
        .contains("created  ClusterRoleBinding kubeadm:node-autoapprove-bootstrap"));
    let root = tempfile::tempdir().unwrap();
    let report = join_as_printed(&line, root.path(), "10s")
        .await
        .expect("joins once the binding is back");
    assert_eq!(report.outcome, Outcome::Joined);
}
