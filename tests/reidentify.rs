//! A node whose identity is lost joins again as itself: the real binary against the sandbox,
//! whose signer issues short-lived certificates (`SandboxConfig::certificate_lifetime`).
//!
//! - `kaas-join run`: kubelet's client certificate expires; `run` stops kubelet, says what
//!   happened and how to fix it (log, STATUS=, run-status file, `kaas-join status`), reports an
//!   expired token as such, and joins again as the same node once a good token appears in the
//!   token file; kubelet runs again with the new certificate, the Node is kept.
//! - `kaas-join join` on such a node: without a token it names the command that mints one and
//!   exits 13; with one it says it joins again as the same node, and does.
//!
//! Every wait is bounded, every process is killed when its test ends; no timing assertions.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::machine::{Daemon, Machine};
use common::{Invocation, Wait};
use kaas_join::host::paths::KUBELET_CLIENT_CURRENT;
use kaas_join::model::identity::certificate_not_after;
use kaas_join::node::join_state::{self as state, Phase, NODE_KEY};
use kaas_sandbox::{Sandbox, SandboxConfig, TokenOptions};
use serde_json::Value;

/// How long the first certificates live: long enough for the join, short enough for a test.
const SHORT_LIFETIME: Duration = Duration::from_secs(8);
/// The bound of each wait: the identity is judged at least every 5 s, kubelet's healthz every
/// 10 s, a join takes well under a second.
const WAIT: Duration = Duration::from_secs(45);

async fn sandbox(lifetime: Duration) -> Sandbox {
    Sandbox::start(SandboxConfig {
        certificate_lifetime: Some(lifetime),
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts")
}

/// Polls `f` every 100 ms until it gives a value; fails with `what` and `context()` after `WAIT`.
async fn wait_for<T>(what: &str, context: impl Fn() -> String, f: impl FnMut() -> Option<T>) -> T {
    Wait::new(what, WAIT)
        .every(Duration::from_millis(100))
        .poll(f)
        .await
        .unwrap_or_else(|timed_out| panic!("{timed_out}\n{}", context()))
}

/// systemd's notify socket: every datagram received, in order.
struct Notifications {
    path: std::path::PathBuf,
    received: Arc<Mutex<Vec<String>>>,
}

impl Notifications {
    fn bind(dir: &std::path::Path) -> Notifications {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let list = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while Arc::strong_count(&list) > 1 {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    list.lock().unwrap().push(text);
                }
            }
        });
        Notifications { path, received }
    }

    fn all(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

/// Runs the binary with `args` to its end (the kit's runner, killed after `WAIT`): exit code,
/// stdout, stderr.
fn run_bounded(
    args: impl IntoIterator<Item = impl AsRef<std::ffi::OsStr>>,
) -> (i32, String, String) {
    let run = Invocation::new(args).timeout(WAIT).run();
    assert_ne!(run.code, -1, "exits by itself: {run:#?}");
    (run.code, run.stdout, run.stderr)
}

/// `kaas-join status --output json`: exit code and report.
fn status(m: &Machine) -> (i32, Value) {
    let root = m.root.display().to_string();
    let (code, out, err) = run_bounded(["status", "--output", "json", "--root", &root]);
    let report = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("status printed no JSON ({e}): {out}\nstderr: {err}"));
    (code, report)
}

fn problems(report: &Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

/// Writes `token` to the machine's token file, atomically and 0600 (as an operator's `install`
/// or cloud-init would).
fn write_token(m: &Machine, token: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = m.files.join("token.tmp");
    std::fs::write(&tmp, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, &m.token_file).unwrap();
}

fn current_certificate(m: &Machine) -> Vec<u8> {
    std::fs::read(m.host(KUBELET_CLIENT_CURRENT)).unwrap()
}

/// The secret half of a token (`<id>.<secret>`).
fn secret(token: &str) -> &str {
    token.split_once('.').unwrap().1
}

/// Nothing the node says holds any of `tokens`' secrets.
fn assert_no_secret(tokens: &[&str], said: &[(&str, String)]) {
    for token in tokens {
        for (where_, text) in said {
            assert!(
                !text.contains(secret(token)),
                "a bootstrap token's secret in {where_}"
            );
        }
    }
}

fn diagnostics(d: &Daemon, n: &Notifications) -> String {
    format!(
        "log:\n{}\nnotifications: {:#?}\nrun status: {:#}",
        d.log(),
        n.all(),
        d.run_status().unwrap_or(Value::Null)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_stops_kubelet_when_its_certificate_expired_and_joins_again_with_a_later_token() {
    const NODE: &str = "reidentify-run-1";
    let sb = sandbox(SHORT_LIFETIME).await;
    let m = Machine::new(&sb, NODE);
    let first_token = m.token.clone();
    let notify = Notifications::bind(m.dir());
    let mut d = m.spawn_with_env(
        &m.run_args(),
        &[("NOTIFY_SOCKET", notify.path.display().to_string())],
    );
    let context = || String::new();
    wait_for("the join", context, || m.joined().then_some(())).await;
    sb.add_node(NODE, true);
    // The token file goes, as a one-time token's would: joining again has to wait for a new one.
    std::fs::remove_file(&m.token_file).unwrap();
    let first_certificate = current_certificate(&m);

    // The certificate expires: kubelet is stopped, and everything says why and what to do.
    let rs = wait_for(
        "identityLost in the run status",
        || diagnostics(&d, &notify),
        || d.run_status().filter(|rs| rs["identityLost"].is_object()),
    )
    .await;
    assert!(!d.exited(), "{}", diagnostics(&d, &notify));
    assert_eq!(rs["identityLost"]["loss"]["reason"], "expired", "{rs:#}");
    let activity = rs["activity"].as_str().unwrap();
    for words in [
        "kubelet's client certificate expired at ",
        "kubelet is stopped until the node joins again",
        "kaas-join token create --ticket",
        "kubeadm token create --print-join-command",
        &m.token_file.display().to_string(),
        "KAAS_JOIN_TOKEN",
    ] {
        assert!(activity.contains(words), "{words:?} not in {activity:?}");
    }
    assert!(rs["kubelet"]["pid"].is_null(), "{rs:#}");
    assert!(
        notify
            .all()
            .iter()
            .any(|n| n.starts_with("STATUS=kubelet's client certificate expired at ")),
        "{:#?}",
        notify.all()
    );
    let (code, report) = status(&m);
    assert_eq!(code, 21, "{report:#}");
    let said = problems(&report);
    assert!(
        said.iter().any(|p| p
            .starts_with("the node must join again: kubelet's client certificate expired at ")
            && p.contains("kaas-join token create --ticket")),
        "{said:#?}"
    );

    // An expired token: said to be unusable, and the wait goes on.
    let expired_token = sb.create_token_with(TokenOptions {
        expired: true,
        ..TokenOptions::default()
    });
    write_token(&m, &expired_token);
    let rs = wait_for(
        "the expired token reported",
        || diagnostics(&d, &notify),
        || {
            d.run_status().filter(|rs| {
                rs["identityLost"]["tokenProblem"]
                    .as_str()
                    .is_some_and(|p| p.contains("is not usable"))
            })
        },
    )
    .await;
    assert!(rs["kubelet"]["pid"].is_null(), "{rs:#}");
    assert_eq!(sb.csrs().len(), 1, "no CSR with an expired token");

    // A good token in the file: the node joins again as itself and kubelet runs again.
    sb.set_certificate_lifetime(None);
    let good_token = sb.create_token();
    write_token(&m, &good_token);
    let written = Instant::now();
    wait_for(
        "kubelet running with a new certificate",
        || diagnostics(&d, &notify),
        || {
            d.run_status()
                .filter(|rs| rs["kubelet"]["phase"] == "running" && rs["identityLost"].is_null())
        },
    )
    .await;
    eprintln!(
        "kubelet running again {:?} after the token was written",
        written.elapsed()
    );
    let certificate = current_certificate(&m);
    assert_ne!(certificate, first_certificate);
    let not_after = certificate_not_after(&certificate).unwrap();
    assert!(not_after > SystemTime::now() + Duration::from_secs(3600));
    let st = state::load(&m.paths()).unwrap().unwrap();
    assert_eq!(st.phase, Phase::Joined);
    assert_eq!(st.node_name, NODE);
    assert!(st.rejoin.is_none(), "{st:?}");
    assert!(!m.host(NODE_KEY).exists(), "the pending key is gone");
    let csrs = sb.csrs();
    assert_eq!(csrs.len(), 2, "one more CSR");
    // run's metrics count the join again with the first (tests/metrics.rs has the rest).
    let scrape = m.scrape().expect("run serves its metrics");
    let value = |series: &str| {
        scrape.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
    };
    let csr_creates =
        "kaas_join_api_requests_total{call=\"certificatesigningrequest_create\",code=\"201\"}";
    assert_eq!(value(csr_creates), Some(2.0), "{scrape}");
    // The first join, the expired token (tried at least once), the good one.
    let attempts = value("kaas_join_join_attempts_total").unwrap_or(0.0);
    assert!(attempts >= 3.0, "{scrape}");
    assert!(
        value("kaas_join_join_duration_seconds").is_some(),
        "{scrape}"
    );
    // The Node is kept: nothing deleted it, nothing registered another name.
    assert!(sb.node(NODE).is_some());
    assert!(
        !sb.requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.starts_with("/api/v1/nodes")),
        "no Node deleted"
    );
    let (_, report) = status(&m);
    let said = problems(&report);
    assert!(!said.iter().any(|p| p.contains("join again")), "{said:#?}");

    let log = d.log();
    let warnings = log
        .lines()
        .filter(|l| {
            l.contains("WARN") && l.contains("kubelet is stopped until the node joins again")
        })
        .count();
    // One when it stopped kubelet, one when the expired token was found: not one per poll.
    assert!((1..=3).contains(&warnings), "{warnings} warnings:\n{log}");
    assert!(
        log.contains("joining again as the same node with the given token"),
        "{log}"
    );
    let status_file = std::fs::read_to_string(m.host(kaas_join::node::run_status::RUN_STATUS_FILE))
        .unwrap_or_default();
    assert_no_secret(
        &[&first_token, &expired_token, &good_token],
        &[
            ("the log", log),
            ("STATUS=", notify.all().join("\n")),
            ("the run-status file", status_file),
            ("status", report.to_string()),
        ],
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    wait_for("the daemon's exit", String::new, || {
        d.exited().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_on_a_node_whose_certificate_expired_joins_again_or_names_the_command() {
    const NODE: &str = "reidentify-join-1";
    let sb = sandbox(Duration::from_secs(1)).await;
    let m = Machine::new(&sb, NODE);
    let (code, out, err) = run_bounded(m.args("join"));
    assert_eq!(code, 0, "{out}\n{err}");
    let first_certificate = current_certificate(&m);
    let expiry = certificate_not_after(&first_certificate).unwrap();
    wait_for("the certificate's expiry", String::new, || {
        (SystemTime::now() > expiry).then_some(())
    })
    .await;

    // No token: it says what happened, which command mints one and where it goes; exit 13.
    std::fs::remove_file(&m.token_file).unwrap();
    let (code, out, err) = run_bounded(m.args("join"));
    assert_eq!(code, 13, "{out}\n{err}");
    for words in [
        format!("already joined as {NODE}, but kubelet's client certificate expired at "),
        "kaas-join token create --ticket".to_string(),
        m.token_file.display().to_string(),
    ] {
        assert!(err.contains(&words), "{words:?} not in {err}");
    }

    // With a token: it says it joins again as the same node, and does.
    sb.set_certificate_lifetime(None);
    let token = sb.create_token();
    write_token(&m, &token);
    let (code, out, err) = run_bounded(m.args("join"));
    assert_eq!(code, 0, "{out}\n{err}");
    let said = format!("{out}\n{err}");
    assert!(
        said.contains(&format!(
            "already joined as {NODE}, but kubelet's client certificate expired at "
        )) && said.contains("joining again as the same node with the given token"),
        "{said}"
    );
    assert!(out.contains("Joined: node"), "{out}");
    assert_ne!(current_certificate(&m), first_certificate);
    assert_eq!(sb.csrs().len(), 2);
    let st = state::load(&m.paths()).unwrap().unwrap();
    assert_eq!((st.phase, st.node_name.as_str()), (Phase::Joined, NODE));
    assert!(st.rejoin.is_none());

    // Now it is joined with a good certificate: "already joined" again.
    let (code, out, err) = run_bounded(m.args("join"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Already joined"), "{out}");
    assert_no_secret(&[&m.token, &token], &[("join's output", said)]);
}

/// A re-identification cut short (here: the new certificate never arrives in time) leaves the
/// machine as it was, its old join described by the state file, with the new key and its CSR
/// kept; the next try finishes it with the same key and CSR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_cut_short_keeps_the_old_join_and_finishes_with_the_same_key() {
    use kaas_join::cmd::join;
    use kaas_join::model::identity::IdentityLoss;
    const NODE: &str = "reidentify-resume-1";
    const CSR_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    let sb = sandbox(Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let paths = kaas_join::host::paths::Paths::new(dir.path());
    let pin = sb.ca_cert_hash().parse().unwrap();
    let cfg = common::join_config(
        &sb.url(),
        &sb.create_token(),
        pin,
        NODE,
        dir.path(),
        Duration::from_secs(10),
    );
    join::join(&cfg, Vec::new()).await.unwrap();
    let first = state::load(&paths).unwrap().unwrap();
    let first_certificate = std::fs::read(paths.host(KUBELET_CLIENT_CURRENT)).unwrap();
    let expiry = certificate_not_after(&first_certificate).unwrap();
    wait_for("the certificate's expiry", String::new, || {
        (SystemTime::now() > expiry).then_some(())
    })
    .await;
    sb.set_certificate_lifetime(None);

    // The CSR is made, but neither its watch nor its reads answer before the timeout.
    sb.faults()
        .fail_next(&format!("WATCH {CSR_PATH}"), 500, 10_000);
    sb.faults()
        .fail_next(&format!("GET {CSR_PATH}"), 500, 10_000);
    let again = kaas_join::config::JoinConfig {
        token: kaas_join::model::token::BootstrapToken::parse(&sb.create_token()).unwrap(),
        tls_bootstrap_timeout: Duration::from_secs(2),
        ..cfg.clone()
    };
    join::join(&again, Vec::new()).await.unwrap_err();
    let cut_short = state::load(&paths).unwrap().unwrap();
    let rejoin = cut_short
        .rejoin
        .clone()
        .expect("the rejoin under way is recorded");
    assert!(matches!(rejoin.reason, IdentityLoss::Expired { .. }));
    assert_ne!(Some(&rejoin.csr_name), first.csr_name.as_ref());
    // The rest still describes the join kubelet's files are from.
    assert_eq!(
        (
            cut_short.phase,
            &cut_short.csr_name,
            &cut_short.certificate_not_after
        ),
        (Phase::Joined, &first.csr_name, &first.certificate_not_after)
    );
    assert!(paths.host(NODE_KEY).exists(), "the new key is kept");
    assert_eq!(
        std::fs::read(paths.host(KUBELET_CLIENT_CURRENT)).unwrap(),
        first_certificate
    );

    sb.faults().clear();
    let report = join::join(&again, Vec::new()).await.unwrap();
    let bootstrap = report.steps.iter().find(|s| s.name == "bootstrap").unwrap();
    assert!(
        bootstrap.detail.contains("(from an earlier run)"),
        "{}",
        bootstrap.detail
    );
    let done = state::load(&paths).unwrap().unwrap();
    assert_eq!(done.csr_name.as_ref(), Some(&rejoin.csr_name));
    assert!(done.rejoin.is_none());
    assert!(!paths.host(NODE_KEY).exists());
    assert_eq!(sb.csrs().len(), 2, "one CSR per identity");
    assert_ne!(
        std::fs::read(paths.host(KUBELET_CLIENT_CURRENT)).unwrap(),
        first_certificate
    );
}

/// A machine whose certificate expired while it was off: `run` does not start kubelet at all,
/// asks systemd for more start time while it waits (READY=1 was not sent), and starts kubelet
/// once it has joined again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_on_a_machine_whose_certificate_expired_while_off_waits_before_starting_kubelet() {
    const NODE: &str = "reidentify-boot-1";
    let sb = sandbox(Duration::from_secs(1)).await;
    let m = Machine::new(&sb, NODE);
    let (code, out, err) = run_bounded(m.args("join"));
    assert_eq!(code, 0, "{out}\n{err}");
    sb.add_node(NODE, true);
    let expiry = certificate_not_after(&current_certificate(&m)).unwrap();
    wait_for("the certificate's expiry", String::new, || {
        (SystemTime::now() > expiry).then_some(())
    })
    .await;
    std::fs::remove_file(&m.token_file).unwrap();

    let notify = Notifications::bind(m.dir());
    let mut d = m.spawn_with_env(
        &m.run_args(),
        &[("NOTIFY_SOCKET", notify.path.display().to_string())],
    );
    let rs = wait_for(
        "identityLost in the run status",
        || diagnostics(&d, &notify),
        || d.run_status().filter(|rs| rs["identityLost"].is_object()),
    )
    .await;
    assert_eq!(rs["kubelet"]["phase"], "not-started", "{rs:#}");
    wait_for(
        "a start-time extension while waiting",
        || diagnostics(&d, &notify),
        || {
            let said = notify.all();
            let waiting = said
                .iter()
                .position(|n| n.starts_with("STATUS=kubelet's client certificate expired at "))?;
            said[waiting..]
                .iter()
                .any(|n| n.starts_with("EXTEND_TIMEOUT_USEC="))
                .then_some(())
        },
    )
    .await;
    assert!(!notify.all().iter().any(|n| n == "READY=1"));

    sb.set_certificate_lifetime(None);
    write_token(&m, &sb.create_token());
    wait_for(
        "kubelet running",
        || diagnostics(&d, &notify),
        || {
            d.run_status()
                .filter(|rs| rs["kubelet"]["phase"] == "running" && rs["identityLost"].is_null())
        },
    )
    .await;
    let log = d.log();
    assert_eq!(
        log.matches("fake-kubelet args: ").count(),
        1,
        "kubelet started once, after joining again:\n{log}"
    );
    assert!(!d.exited());
}
