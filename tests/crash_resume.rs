//! SIGKILL at every phase boundary and at random points, then a re-run: every run must end
//! joined, with exactly one key, no second CSR, and no partial file anywhere kubelet reads.
//!
//! The real binary runs against sandboxes on 127.0.0.1, each trial with its own bootstrap token
//! (so its CSRs are told apart by `spec.username = system:bootstrap:<id>`), node name and
//! temporary root. Phase boundaries are hit deterministically: the request that starts a phase
//! is delayed ([`PHASE_DELAY`]) in that kind's sandbox, or the approval is, and the process is
//! killed half-way through the delay. Random points are seeded (xorshift) over the whole run,
//! from spawn to past its usual end, so some kills land while or after files are written.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::kill;
use common::{Invocation, Wait};
use kaas_sandbox::{ApprovalMode, Sandbox, SandboxConfig};

const CSR_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
/// How long the request that starts a phase is held in the phase-boundary sandboxes.
const PHASE_DELAY: Duration = Duration::from_millis(500);
/// Trials per phase boundary, and at random points.
const PHASE_TRIALS: usize = 8;
const RANDOM_TRIALS: usize = 100;
const CONCURRENCY: usize = 8;
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
/// No single run of the binary may take longer (it is killed and the trial fails).
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// Where the kill lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// While cluster-info is being fetched: nothing written yet.
    Discovery,
    /// While kubeadm-config is being read.
    ClusterReads,
    /// While the CSR create is in flight: the key and state exist, the CSR is created by the
    /// server after the client died.
    CsrCreate,
    /// While the watch for the CSR is being opened: the CSR exists, pending.
    CsrWatch,
    /// While the CSR waits for approval (the approver is slow).
    Approval,
    /// At a seeded random point of a whole run (faults off).
    Random,
}

impl Kind {
    const PHASES: [Kind; 5] = [
        Kind::Discovery,
        Kind::ClusterReads,
        Kind::CsrCreate,
        Kind::CsrWatch,
        Kind::Approval,
    ];
}

/// Tiny xorshift64* PRNG: fixed seed, no crates.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

struct Env {
    sb: Sandbox,
}

async fn sandbox_for(kind: Kind) -> Env {
    let approval = ApprovalMode::Auto {
        delay: if kind == Kind::Approval {
            PHASE_DELAY
        } else {
            Duration::ZERO
        },
    };
    let sb = Sandbox::start(SandboxConfig {
        approval,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts");
    let f = sb.faults();
    match kind {
        Kind::Discovery => f.delay(
            "/api/v1/namespaces/kube-public/configmaps/cluster-info",
            PHASE_DELAY,
        ),
        Kind::ClusterReads => f.delay(
            "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
            PHASE_DELAY,
        ),
        Kind::CsrCreate => f.delay(&format!("POST {CSR_PATH}"), PHASE_DELAY),
        Kind::CsrWatch => f.delay(&format!("WATCH {CSR_PATH}"), PHASE_DELAY),
        Kind::Approval | Kind::Random => {}
    }
    Env { sb }
}

/// Everything one run of the binary needs.
struct Trial {
    index: usize,
    kind: Kind,
    kill_after: Duration,
    url: String,
    pin: String,
    token: String,
    dir: PathBuf,
}

impl Trial {
    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn node(&self) -> String {
        format!("crash-{}", self.index)
    }

    /// Starts the binary (the kit's runner: our variables cleaned out), its stderr to `log`.
    fn spawn(&self, log: &str) -> Child {
        let token_file = self.dir.join("token");
        if !token_file.exists() {
            std::fs::write(&token_file, format!("{}\n", self.token)).unwrap();
            std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let root = self.root().display().to_string();
        let token_file = token_file.display().to_string();
        let node = self.node();
        Invocation::new([
            "join",
            "--root",
            &root,
            "--server",
            &self.url,
            "--token-file",
            &token_file,
            "--discovery-token-ca-cert-hash",
            &self.pin,
            "--node-name",
            &node,
            "--cri-socket",
            "unix:///run/containerd/containerd.sock",
            "--cgroup-driver",
            "systemd",
            // No kubelet and no runtime under the temporary root.
            "--ignore-preflight-errors=FileExisting-kubelet,CRI",
            "--discovery-timeout",
            "15s",
            "--tls-bootstrap-timeout",
            "15s",
        ])
        .spawn(&self.dir.join(log))
    }
}

/// What happened to the killed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Killed {
    /// SIGKILL arrived while it ran.
    Yes,
    /// It had exited before the kill (with this code).
    FinishedFirst(i32),
}

/// What the killed run had left on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Landed {
    /// Nothing under the root (killed in discovery or the cluster reads).
    Nothing,
    /// state.json says bootstrapping (key made, CSR created or about to be).
    Bootstrapping,
    /// Some of kubelet's files written, state not yet joined.
    Writing,
    /// state.json says joined.
    Joined,
}

fn landed_in(root: &Path) -> Landed {
    let state = std::fs::read_to_string(root.join("var/lib/kaas-join/state.json"));
    match state {
        Ok(text) if text.contains("\"joined\"") => Landed::Joined,
        Ok(_) if root.join("var/lib/kubelet/pki").exists() => Landed::Writing,
        Ok(_) => Landed::Bootstrapping,
        Err(_) if walk(root).is_empty() => Landed::Nothing,
        // The state directory or key without state.json yet: the start of bootstrapping.
        Err(_) => Landed::Bootstrapping,
    }
}

/// Whether the run has reached the phase its kill aims at (seen from the sandbox and the disk).
fn reached(trial: &Trial, sb: &Sandbox) -> bool {
    let user = format!("system:bootstrap:{}", &trial.token[..6]);
    let csr_exists = || {
        sb.csrs()
            .iter()
            .any(|c| c["spec"]["username"] == user.as_str())
    };
    match trial.kind {
        Kind::Discovery | Kind::Random => true,
        // Both cluster-info fetches answered: discovery is over, the reads are held.
        Kind::ClusterReads => {
            sb.requests()
                .iter()
                .filter(|r| r.path.ends_with("/cluster-info") && r.status == 200)
                .count()
                >= 2
        }
        // state.json is saved right before the (held) create.
        Kind::CsrCreate => trial.root().join("var/lib/kaas-join/state.json").exists(),
        // The CSR exists: the (held) watch, or the wait for the (slow) approver, has begun.
        Kind::CsrWatch | Kind::Approval => csr_exists(),
    }
}

/// Runs the binary; once it has [`reached`] its phase, SIGKILLs it after `trial.kill_after`
/// (or after [`RUN_LIMIT`] at the latest).
fn run_and_kill(trial: &Trial, sb: &Sandbox) -> Killed {
    let mut child = trial.spawn("killed.log");
    let mut armed: Option<Instant> = None;
    // Polled every 1 ms, so a run that finishes early is seen as such and the kill lands close
    // to its point.
    let finished = Wait::new("the kill point", RUN_LIMIT)
        .every(Duration::from_millis(1))
        .poll_blocking(|| {
            if let Some(status) = child.try_wait().unwrap() {
                return Ok(Some(status.code().unwrap_or(-1)));
            }
            if armed.is_none() && reached(trial, sb) {
                armed = Some(Instant::now());
            }
            match armed {
                Some(at) if at.elapsed() >= trial.kill_after => Ok(None),
                Some(_) => Err("armed"),
                None => Err("not at its phase yet"),
            }
        });
    if let Ok(Some(code)) = finished {
        return Killed::FinishedFirst(code);
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    Killed::Yes
}

/// Runs the binary to its end (killed after [`RUN_LIMIT`]); its exit code and time.
fn run_to_end(trial: &Trial, log: &str) -> (Option<i32>, Duration) {
    let mut child = trial.spawn(log);
    let started = Instant::now();
    let status = Wait::new("the run to end", RUN_LIMIT)
        .every(Duration::from_millis(5))
        .poll_blocking(|| child.try_wait().unwrap());
    match status {
        Ok(status) => (status.code(), started.elapsed()),
        Err(_) => {
            kill(&mut child);
            (None, started.elapsed())
        }
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    common::files_under(root)
}

fn pem_blocks<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    text.match_indices(&begin)
        .filter_map(|(i, _)| {
            let rest = &text[i..];
            rest.find(&end).map(|j| &rest[..j + end.len()])
        })
        .collect()
}

/// The checks after the re-run; the problems found.
fn check(trial: &Trial, sb: &Sandbox) -> Vec<String> {
    let mut bad = Vec::new();
    let root = trial.root();
    let read =
        |node_path: &str| std::fs::read_to_string(root.join(node_path.trim_start_matches('/')));

    match read("/var/lib/kaas-join/state.json") {
        Ok(text) => {
            let state: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if state["phase"] != "joined" {
                bad.push(format!("state.json phase is {}", state["phase"]));
            }
        }
        Err(e) => bad.push(format!("state.json: {e}")),
    }
    if root.join("var/lib/kaas-join/node-key.pem").exists() {
        bad.push("node-key.pem left behind".into());
    }

    // Exactly one key: in kubelet's current pem, and every key anywhere under the root is it.
    let current = read("/var/lib/kubelet/pki/kubelet-client-current.pem").unwrap_or_default();
    let keys = pem_blocks(&current, "PRIVATE KEY");
    if keys.len() != 1 || pem_blocks(&current, "CERTIFICATE").is_empty() {
        bad.push(format!(
            "kubelet-client-current.pem has {} keys and {} certificates",
            keys.len(),
            pem_blocks(&current, "CERTIFICATE").len()
        ));
    }
    let mut distinct = BTreeSet::new();
    let files = walk(&root);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".tmp") {
            bad.push(format!("temporary file left: {}", f.display()));
        }
        if let Ok(text) = std::fs::read_to_string(f) {
            for k in pem_blocks(&text, "PRIVATE KEY") {
                distinct.insert(k.to_string());
            }
        }
    }
    if distinct.len() != 1 {
        bad.push(format!(
            "{} distinct private keys under the root",
            distinct.len()
        ));
    }

    // At most one CSR from this trial's token (exactly one: it joined).
    let user = format!("system:bootstrap:{}", &trial.token[..6]);
    let csrs = sb
        .csrs()
        .iter()
        .filter(|c| c["spec"]["username"] == user.as_str())
        .count();
    if csrs != 1 {
        bad.push(format!("{csrs} CSRs for {user}"));
    }

    // Every file kubelet reads parses.
    for yaml in [
        "/etc/kubernetes/kubelet.conf",
        "/var/lib/kubelet/config.yaml",
    ] {
        match read(yaml) {
            Ok(text) => {
                if let Err(e) = serde_norway::from_str::<serde_norway::Value>(&text) {
                    bad.push(format!("{yaml} is not YAML: {e}"));
                }
            }
            Err(e) => bad.push(format!("{yaml}: {e}")),
        }
    }
    match read("/etc/kubernetes/kubelet.conf") {
        Ok(text) => {
            let conf: serde_norway::Value = serde_norway::from_str(&text).unwrap_or_default();
            let cert = conf["users"][0]["user"]["client-certificate"]
                .as_str()
                .unwrap_or("");
            if cert.is_empty() || !root.join(cert.trim_start_matches('/')).is_file() {
                bad.push(format!(
                    "kubelet.conf's client-certificate {cert:?} is missing"
                ));
            }
        }
        Err(e) => bad.push(format!("kubelet.conf: {e}")),
    }
    match read("/var/lib/kubelet/kubeadm-flags.env") {
        Ok(text) if text.starts_with("KUBELET_KUBEADM_ARGS=") && text.ends_with('\n') => {}
        Ok(text) => bad.push(format!("kubeadm-flags.env is {text:?}")),
        Err(e) => bad.push(format!("kubeadm-flags.env: {e}")),
    }
    match read("/etc/kubernetes/pki/ca.crt") {
        Ok(text) if pem_blocks(&text, "CERTIFICATE").len() == 1 => {}
        Ok(_) => bad.push("ca.crt is not one PEM certificate".into()),
        Err(e) => bad.push(format!("ca.crt: {e}")),
    }
    bad
}

#[derive(Debug)]
struct Result1 {
    kind: Kind,
    kill_after: Duration,
    killed: Killed,
    landed: Landed,
    rerun: Duration,
    problems: Vec<String>,
}

async fn run_trial(trial: Trial, env: Arc<Env>) -> Result1 {
    let kind = trial.kind;
    let kill_after = trial.kill_after;
    let env2 = env.clone();
    let (trial, killed, landed, code, rerun) = tokio::task::spawn_blocking(move || {
        let env = env2;
        let killed = run_and_kill(&trial, &env.sb);
        let landed = landed_in(&trial.root());
        let (code, rerun) = run_to_end(&trial, "rerun.log");
        (trial, killed, landed, code, rerun)
    })
    .await
    .expect("trial thread");
    let mut problems = Vec::new();
    let want = match kind {
        Kind::Discovery | Kind::ClusterReads => Some(Landed::Nothing),
        Kind::CsrCreate | Kind::CsrWatch | Kind::Approval => Some(Landed::Bootstrapping),
        Kind::Random => None,
    };
    if want.is_some_and(|w| w != landed) {
        problems.push(format!("the kill landed at {landed:?}, not in {kind:?}"));
    }
    if code != Some(0) {
        let log = std::fs::read_to_string(trial.dir.join("rerun.log")).unwrap_or_default();
        problems.push(format!("re-run exited {code:?}: {}", log.trim()));
    }
    problems.extend(check(&trial, &env.sb));
    Result1 {
        kind,
        kill_after,
        killed,
        landed,
        rerun,
        problems,
    }
}

/// One unkilled join, to learn how long a whole run takes here (debug build, loaded machine).
fn typical_join(env: &Env, dir: &Path) -> Duration {
    let trial = Trial {
        index: 999_999,
        kind: Kind::Random,
        kill_after: Duration::ZERO,
        url: env.sb.url(),
        pin: env.sb.ca_cert_hash(),
        token: env.sb.create_token(),
        dir: dir.to_path_buf(),
    };
    std::fs::create_dir_all(&trial.dir).unwrap();
    let (code, took) = run_to_end(&trial, "typical.log");
    assert_eq!(code, Some(0), "a plain join fails");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_every_phase_and_at_random_points_then_rerun() {
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    // Random trials share one sandbox (faults off); each phase trial gets its own, so what the
    // sandbox saw tells when that run reached its phase.
    let random_env = Arc::new(sandbox_for(Kind::Random).await);
    // How long a whole run takes here with CONCURRENCY of them at once (as the trials run).
    let typical = {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..CONCURRENCY {
            let env = random_env.clone();
            let dir = work.path().join(format!("typical{i}"));
            set.spawn_blocking(move || typical_join(&env, &dir));
        }
        let mut max = Duration::ZERO;
        while let Some(t) = set.join_next().await {
            max = max.max(t.unwrap());
        }
        max
    };
    // Random kills span the whole run and past its end: [0, 1.3 x the slowest loaded join].
    let random_span = typical.mul_f64(1.3);

    let mut rng = XorShift(SEED);
    let mut trials = Vec::new();
    let mut index = 0;
    for kind in Kind::PHASES {
        for _ in 0..PHASE_TRIALS {
            // Within the first 60 % of the held request (or approval) once the phase is
            // reached; discovery: 100..400 ms after the start (its request is held 500 ms).
            let jitter = Duration::from_millis(rng.below(PHASE_DELAY.as_millis() as u64 * 3 / 5));
            let kill_after = if kind == Kind::Discovery {
                Duration::from_millis(100) + jitter / 2
            } else {
                jitter
            };
            trials.push((kind, kill_after, index));
            index += 1;
        }
    }
    for _ in 0..RANDOM_TRIALS {
        let kill_after = Duration::from_micros(rng.below(random_span.as_micros() as u64));
        trials.push((Kind::Random, kill_after, index));
        index += 1;
    }

    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for (kind, kill_after, index) in trials {
        let env = if kind == Kind::Random {
            random_env.clone()
        } else {
            Arc::new(sandbox_for(kind).await)
        };
        let dir = work.path().join(format!("t{index}"));
        std::fs::create_dir_all(&dir).unwrap();
        let trial = Trial {
            index,
            kind,
            kill_after,
            url: env.sb.url(),
            pin: env.sb.ca_cert_hash(),
            token: env.sb.create_token(),
            dir,
        };
        let permits = permits.clone();
        set.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore open");
            run_trial(trial, env).await
        });
    }
    let mut results = Vec::new();
    while let Some(r) = set.join_next().await {
        results.push(r.expect("a trial's harness panicked"));
    }
    results.sort_by_key(|r| (r.kind, r.kill_after));

    // The report: per kind, how many, where the kills landed, how many finished first.
    println!(
        "plain join: {:.0} ms (slowest of {CONCURRENCY} at once); random kills in [0, {:.0} ms] after the start; phase kills after the phase is reached",
        typical.as_secs_f64() * 1e3,
        random_span.as_secs_f64() * 1e3
    );
    for kind in Kind::PHASES.into_iter().chain([Kind::Random]) {
        let of: Vec<&Result1> = results.iter().filter(|r| r.kind == kind).collect();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let finished_first = of
            .iter()
            .filter(|r| matches!(r.killed, Killed::FinishedFirst(_)))
            .count();
        let mut landed = std::collections::BTreeMap::new();
        for r in &of {
            *landed.entry(r.landed).or_insert(0) += 1;
        }
        println!(
            "{kind:?}: {} trials, kill at {:.0}..{:.0} ms, {} finished before the kill, left {:?}, re-run up to {:.0} ms",
            of.len(),
            of.iter().map(|r| ms(r.kill_after)).fold(f64::MAX, f64::min),
            of.iter().map(|r| ms(r.kill_after)).fold(0.0, f64::max),
            finished_first,
            landed,
            of.iter().map(|r| ms(r.rerun)).fold(0.0, f64::max),
        );
    }
    println!(
        "{} trials in {:.1}s",
        results.len(),
        started.elapsed().as_secs_f64()
    );

    assert!(results.len() >= 100 + Kind::PHASES.len() * PHASE_TRIALS);
    // Phase-boundary kills must really have landed inside the run.
    for r in results.iter().filter(|r| r.kind != Kind::Random) {
        assert_eq!(
            r.killed,
            Killed::Yes,
            "{r:?}: the run ended before the kill"
        );
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| {
            format!(
                "{:?} kill at {:?} ({:?}): {}",
                r.kind,
                r.kill_after,
                r.killed,
                r.problems.join("; ")
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} trials did not end joined and clean:\n{}",
        failed.len(),
        results.len(),
        failed.join("\n")
    );
}
