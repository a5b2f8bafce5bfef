//! The kubelet supervisor against a stand-in kubelet (`fake-kubelet`, a binary of kaas-sandbox):
//! start and healthz, graceful and forced stops, crash loops and recovery, liveness kills, a
//! missing binary, another kubelet already running, and kubelet dying with its supervisor.
//!
//! Each test gives its fake kubelet its own behaviour through `/usr/bin/env NAME=VALUE ...` as
//! the "kubelet binary" (env execs fake-kubelet in place: same pid, same process group), so tests
//! running side by side never share environment variables. Loopback only; small intervals.

mod common;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{alive, free_port, Invocation, Wait};
use kaas_join::host::paths::Paths;
use kaas_join::model::kubelet_process::{KubeletPhase, KubeletState};
use kaas_join::node::supervisor::{self, Control, SupervisorConfig, SupervisorError};
use tokio::sync::{mpsc, watch};

/// `/usr/bin/env`, which sets a fake kubelet's variables and execs it.
fn env_binary() -> PathBuf {
    ["/usr/bin/env", "/bin/env"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("no env binary")
}

/// The "kubelet" binary and arguments that run fake-kubelet with `vars`, then `args`.
fn fake_command(vars: &[(&str, String)], args: &[&str]) -> (PathBuf, Vec<String>) {
    let mut all: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
    all.push(common::fake_kubelet().display().to_string());
    all.extend(args.iter().map(|a| a.to_string()));
    (env_binary(), all)
}

fn healthz_var(port: u16) -> (&'static str, String) {
    ("FAKE_KUBELET_HEALTHZ", format!("127.0.0.1:{port}"))
}

/// Fast settings for tests.
fn config(kubelet: PathBuf, args: Vec<String>, port: Option<u16>) -> SupervisorConfig {
    let mut cfg = SupervisorConfig::new(
        kubelet,
        args,
        port.map(|p| format!("http://127.0.0.1:{p}/healthz")),
    );
    cfg.healthz_interval = Duration::from_millis(50);
    cfg.healthz_timeout = Duration::from_millis(200);
    cfg.backoff_initial = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(400);
    cfg.grace = Duration::from_millis(500);
    cfg.check_other_kubelet = false;
    cfg
}

struct Supervised {
    rx: watch::Receiver<KubeletState>,
    control: mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<Result<(), SupervisorError>>,
}

fn start(cfg: SupervisorConfig) -> Supervised {
    let (tx, rx) = watch::channel(KubeletState::default());
    let (control, control_rx) = mpsc::channel(4);
    let task = tokio::spawn(supervisor::supervise(cfg, tx, control_rx));
    Supervised { rx, control, task }
}

/// Waits until `pred` holds, failing with `what` and the last state after `timeout`.
async fn wait_for(
    rx: &mut watch::Receiver<KubeletState>,
    what: &str,
    timeout: Duration,
    pred: impl FnMut(&KubeletState) -> bool,
) -> KubeletState {
    let result = tokio::time::timeout(timeout, rx.wait_for(pred))
        .await
        .map(|r| r.map(|state| state.clone()));
    match result {
        Ok(Ok(state)) => state,
        Ok(Err(_)) => panic!("supervisor gone while waiting for {what}"),
        Err(_) => panic!(
            "no {what} within {timeout:?}; last state: {:#?}",
            *rx.borrow()
        ),
    }
}

/// Sends Stop and waits for `supervise` to return; the final state and how long it took.
async fn stop(s: Supervised) -> (KubeletState, Duration) {
    let t = Instant::now();
    s.control.send(Control::Stop).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), s.task)
        .await
        .expect("supervise did not return within 5 s of Stop")
        .expect("supervise panicked");
    assert!(result.is_ok(), "{result:?}");
    let state = s.rx.borrow().clone();
    assert_eq!(state.phase, KubeletPhase::Stopped);
    assert_eq!(state.pid, None);
    (state, t.elapsed())
}

/// Field 5 of /proc/<pid>/stat: the process group.
fn pgid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

fn lines_contain(state: &KubeletState, needle: &str) -> bool {
    state
        .last_exit
        .as_ref()
        .is_some_and(|e| e.last_lines.iter().any(|l| l.contains(needle)))
}

/// Kills a helper process even when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes a control file atomically (the fake kubelet may read it at any moment).
fn write_control(path: &Path, mode: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, mode).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_runs_healthy_and_stops_gracefully() {
    let port = free_port();
    let (kubelet, args) = fake_command(
        &[("FAKE_KUBELET_MODE", "serve".into()), healthz_var(port)],
        &["--config=/var/lib/kubelet/config.yaml", "--v=2"],
    );
    let mut s = start(config(kubelet, args, Some(port)));
    let mut recorder = s.rx.clone();
    let history = tokio::spawn(async move {
        let mut seen = vec![recorder.borrow_and_update().clone()];
        while recorder.changed().await.is_ok() {
            seen.push(recorder.borrow_and_update().clone());
        }
        seen
    });

    let t = Instant::now();
    let running = wait_for(&mut s.rx, "Running", Duration::from_secs(5), |s| {
        s.phase == KubeletPhase::Running
    })
    .await;
    eprintln!("Running after {:?}", t.elapsed());
    // Running means healthz answered (what `run` turns into READY=1).
    assert_eq!(running.healthz.ok, Some(true));
    assert_eq!(running.healthz.consecutive_failures, 0);
    assert_eq!(running.restarts, 0);
    assert!(running.started_at.is_some());
    assert_eq!(running.problem, None);
    let pid = running.pid.expect("pid while running");
    assert!(alive(pid));
    // Its own process group, so signals reach everything it started.
    assert_eq!(pgid(pid), Some(pid));

    let (stopped, took) = stop(s).await;
    eprintln!("stopped in {took:?}");
    // SIGTERM was enough (no SIGKILL after the grace): the description says so, below.
    let exit = stopped.last_exit.clone().expect("last_exit after stop");
    assert_eq!(exit.code, Some(0), "{exit:?}");
    assert_eq!(
        exit.description, "exited with code 0 (stopped by kaas-join)",
        "{exit:?}"
    );
    assert!(
        lines_contain(
            &stopped,
            "fake-kubelet args: --config=/var/lib/kubelet/config.yaml --v=2"
        ),
        "{exit:?}"
    );
    assert!(lines_contain(&stopped, "SIGTERM"), "{exit:?}");
    assert_eq!(stopped.restarts, 0, "a stop is not a restart");
    assert!(!alive(pid), "kubelet {pid} still runs after Stop");

    // A watch receiver sees only the latest value: the recorder may miss short-lived states
    // (Running was asserted above), but every Running it did see must have had healthz ok.
    let history = history.await.unwrap();
    for running in history.iter().filter(|s| s.phase == KubeletPhase::Running) {
        assert_eq!(running.healthz.ok, Some(true), "{running:?}");
    }
    let phases: Vec<_> = history.iter().map(|s| s.phase).collect();
    assert!(
        !phases.contains(&KubeletPhase::BackingOff),
        "no restart expected: {phases:?}"
    );
    assert_eq!(phases.last(), Some(&KubeletPhase::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loops_with_growing_backoff_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control");
    write_control(&control, "crash");
    let port = free_port();
    let (kubelet, args) = fake_command(
        &[
            ("FAKE_KUBELET_CONTROL", control.display().to_string()),
            ("FAKE_KUBELET_AFTER_MS", "20".into()),
            healthz_var(port),
        ],
        &[],
    );
    let mut cfg = config(kubelet, args, Some(port));
    cfg.crashloop_restarts = 3;
    cfg.crashloop_window = Duration::from_secs(30);
    let mut s = start(cfg);

    let t = Instant::now();
    let looping = wait_for(&mut s.rx, "CrashLooping", Duration::from_secs(8), |s| {
        s.phase == KubeletPhase::CrashLooping
    })
    .await;
    eprintln!("CrashLooping after {:?}", t.elapsed());
    assert_eq!(looping.restarts, 3);
    assert_eq!(looping.pid, None);
    let exit = looping.last_exit.clone().unwrap();
    assert_eq!(exit.code, Some(1), "{exit:?}");
    assert_eq!(exit.signal, None);
    assert_eq!(exit.description, "exited with code 1");
    assert!(
        lines_contain(&looping, "E1127 failed to run Kubelet: misconfiguration"),
        "{exit:?}"
    );
    assert!(lines_contain(&looping, "fake-kubelet args:"), "{exit:?}");

    // The fix lands: the next start serves.
    write_control(&control, "serve");
    let running = wait_for(&mut s.rx, "Running again", Duration::from_secs(5), |s| {
        s.phase == KubeletPhase::Running
    })
    .await;
    eprintln!("Running again after {:?}", t.elapsed());
    assert_eq!(running.healthz.ok, Some(true));
    assert_eq!(running.restarts, 3);
    assert!(running.last_exit.is_some(), "the last crash stays visible");

    // Start times: waits of 50 ms, 100 ms, then the 400 ms cap once crash-looping (-10 %).
    let starts: Vec<u128> = std::fs::read_to_string(format!("{}.starts", control.display()))
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(starts.len() >= 4, "{starts:?}");
    let gaps: Vec<u128> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("gaps between starts (ms): {gaps:?}");
    for (gap, min) in gaps.iter().zip([45u128, 90, 360]) {
        assert!(*gap >= min, "gap {gap} ms < {min} ms: {gaps:?}");
    }
    stop(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_kubelet_is_killed_and_restarted() {
    let port = free_port();
    let (kubelet, args) = fake_command(
        &[
            ("FAKE_KUBELET_MODE", "hang".into()),
            ("FAKE_KUBELET_AFTER_MS", "300".into()),
            healthz_var(port),
        ],
        &[],
    );
    let mut cfg = config(kubelet, args, Some(port));
    cfg.liveness_failures = 3;
    cfg.healthz_timeout = Duration::from_millis(100);
    let mut s = start(cfg);

    let running = wait_for(&mut s.rx, "Running", Duration::from_secs(5), |s| {
        s.phase == KubeletPhase::Running
    })
    .await;
    let first = running.pid.unwrap();
    let t = Instant::now();
    let killed = wait_for(&mut s.rx, "a liveness kill", Duration::from_secs(5), |s| {
        s.restarts >= 1
    })
    .await;
    eprintln!("killed {:?} after Running", t.elapsed());
    let exit = killed.last_exit.clone().unwrap();
    assert_eq!(exit.description, "killed: healthz failed 3 times (hung)");
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    assert_eq!(exit.code, None);
    assert!(killed.healthz.consecutive_failures >= 3);
    assert!(!alive(first), "the hung kubelet {first} still runs");
    assert!(lines_contain(&killed, "hanging"), "{exit:?}");

    let again = wait_for(&mut s.rx, "a new kubelet", Duration::from_secs(5), |s| {
        s.pid.is_some_and(|p| p != first)
    })
    .await;
    assert_eq!(again.restarts, 1);
    stop(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stubborn_kubelet_gets_sigkill_after_grace() {
    let port = free_port();
    let (kubelet, args) = fake_command(
        &[("FAKE_KUBELET_MODE", "stubborn".into()), healthz_var(port)],
        &[],
    );
    let mut s = start(config(kubelet, args, Some(port)));
    let running = wait_for(&mut s.rx, "Running", Duration::from_secs(5), |s| {
        s.phase == KubeletPhase::Running
    })
    .await;
    let pid = running.pid.unwrap();
    let (stopped, took) = stop(s).await;
    eprintln!("stopped in {took:?} (grace 500 ms)");
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let exit = stopped.last_exit.unwrap();
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    assert!(
        exit.description.starts_with("killed by SIGKILL"),
        "{exit:?}"
    );
    assert!(exit.description.contains("did not stop within"), "{exit:?}");
    assert!(
        exit.last_lines
            .iter()
            .any(|l| l.contains("ignoring SIGTERM")),
        "{exit:?}"
    );
    assert!(!alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_binary_is_reported_without_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let kubelet = dir.path().join("kubelet");
    let port = free_port();
    let mut s = start(config(kubelet.clone(), vec![], Some(port)));
    let state = wait_for(&mut s.rx, "CannotStart", Duration::from_secs(2), |s| {
        s.phase == KubeletPhase::CannotStart
    })
    .await;
    assert_eq!(
        state.problem.as_deref(),
        Some(
            format!(
                "kubelet binary {} not found (install the kubelet package, or pass --kubelet PATH)",
                kubelet.display()
            )
            .as_str()
        )
    );
    assert_eq!(state.pid, None);

    // Over one second: a handful of notifications at most (none, as nothing changes).
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut updates = 0;
    let mut rx = s.rx.clone();
    rx.mark_unchanged();
    while let Ok(Ok(())) = tokio::time::timeout_at(deadline.into(), rx.changed()).await {
        updates += 1;
    }
    eprintln!("{updates} state updates in 1 s while CannotStart");
    assert!(updates <= 5, "{updates} updates in 1 s: spinning");

    // A file that is not executable: re-checked, and a different problem.
    let script = format!(
        "#!/bin/sh\nexec {} FAKE_KUBELET_MODE=serve FAKE_KUBELET_HEALTHZ=127.0.0.1:{port} {} \"$@\"\n",
        env_binary().display(),
        common::fake_kubelet().display()
    );
    std::fs::write(&kubelet, script).unwrap();
    let state = wait_for(&mut s.rx, "not executable", Duration::from_secs(2), |s| {
        s.problem
            .as_deref()
            .is_some_and(|p| p.contains("is not executable (chmod +x"))
    })
    .await;
    assert_eq!(state.phase, KubeletPhase::CannotStart);

    // Fixed: it starts, within the (capped) backoff.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kubelet, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = wait_for(&mut s.rx, "Running", Duration::from_secs(5), |s| {
        s.phase == KubeletPhase::Running
    })
    .await;
    assert_eq!(state.problem, None);
    assert_eq!(state.restarts, 0);
    stop(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_control_restarts_at_once() {
    let port = free_port();
    let (kubelet, args) = fake_command(
        &[("FAKE_KUBELET_MODE", "serve".into()), healthz_var(port)],
        &[],
    );
    let mut s = start(config(kubelet, args, Some(port)));
    let first = wait_for(&mut s.rx, "Running", Duration::from_secs(5), |s| {
        s.phase == KubeletPhase::Running
    })
    .await
    .pid
    .unwrap();
    s.control.send(Control::Restart).await.unwrap();
    let again = wait_for(&mut s.rx, "Running again", Duration::from_secs(5), |s| {
        s.phase == KubeletPhase::Running && s.pid.is_some_and(|p| p != first)
    })
    .await;
    assert_eq!(again.restarts, 1);
    let exit = again.last_exit.unwrap();
    assert_eq!(exit.description, "exited with code 0 (restart requested)");
    assert!(!alive(first));
    stop(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_control_channel_stops_kubelet() {
    let (kubelet, args) = fake_command(&[("FAKE_KUBELET_MODE", "serve".into())], &[]);
    // No healthz: Running at once.
    let mut s = start(config(kubelet, args, None));
    let pid = wait_for(&mut s.rx, "Running", Duration::from_secs(5), |s| {
        s.phase == KubeletPhase::Running
    })
    .await
    .pid
    .unwrap();
    drop(s.control);
    let result = tokio::time::timeout(Duration::from_secs(5), s.task)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok());
    assert_eq!(s.rx.borrow().phase, KubeletPhase::Stopped);
    assert!(!alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_run_beside_another_kubelet() {
    if let Some(pid) = supervisor::other_kubelet_running(&kaas_join::host::LinuxHost, None) {
        eprintln!("skipped: a kubelet (pid {pid}) already runs on this machine");
        return;
    }
    // A process named "kubelet": a copy of fake-kubelet under that name.
    let dir = tempfile::tempdir().unwrap();
    let imposter_bin = dir.path().join("kubelet");
    std::fs::copy(common::fake_kubelet(), &imposter_bin).unwrap();
    // Another test thread may fork while the copy is open for writing: retried while busy.
    let imposter =
        Wait::new("the imposter to start", Duration::from_secs(2)).until_blocking(|| {
            match Command::new(&imposter_bin)
                .env("FAKE_KUBELET_MODE", "serve")
                .env_remove("FAKE_KUBELET_HEALTHZ")
                .env_remove("FAKE_KUBELET_CONTROL")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(c) => Ok(c),
                Err(e) if e.kind() == ErrorKind::ExecutableFileBusy => Err(e.kind()),
                Err(e) => panic!("cannot run {}: {e}", imposter_bin.display()),
            }
        });
    let imposter = KillOnDrop(imposter);
    let imposter_pid = imposter.0.id();
    // The kernel names the process after the binary a moment after exec lets the parent go on.
    Wait::new(
        format!("the imposter {imposter_pid} to be seen as a kubelet"),
        Duration::from_secs(2),
    )
    .every(Duration::from_millis(5))
    .until_blocking(|| {
        let seen = supervisor::other_kubelet_running(&kaas_join::host::LinuxHost, None);
        if seen == Some(imposter_pid) {
            Ok(())
        } else {
            Err(seen)
        }
    });

    let port = free_port();
    let (kubelet, args) = fake_command(
        &[("FAKE_KUBELET_MODE", "serve".into()), healthz_var(port)],
        &[],
    );
    let mut cfg = config(kubelet, args, Some(port));
    cfg.check_other_kubelet = true;
    let mut s = start(cfg);
    let state = wait_for(&mut s.rx, "Conflict", Duration::from_secs(5), |s| {
        s.phase == KubeletPhase::Conflict
    })
    .await;
    assert_eq!(
        state.problem.as_deref(),
        Some(
            format!(
                "another kubelet (pid {imposter_pid}) is already running, probably \
                 kubelet.service: stop and disable it (systemctl disable --now kubelet) so that \
                 kaas-join runs the only kubelet"
            )
            .as_str()
        )
    );
    assert_eq!(state.pid, None);

    drop(imposter);
    let state = wait_for(&mut s.rx, "Running", Duration::from_secs(5), |s| {
        s.phase == KubeletPhase::Running
    })
    .await;
    assert_eq!(state.problem, None);
    stop(s).await;
}

#[test]
fn command_line_and_healthz_url_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let err = supervisor::kubelet_command_line(&paths, &[]).unwrap_err();
    assert!(matches!(err, SupervisorError::NotJoined { .. }), "{err:?}");
    assert!(err.to_string().contains("run `kaas-join join`"), "{err}");

    std::fs::create_dir_all(paths.host("/var/lib/kubelet")).unwrap();
    std::fs::create_dir_all(paths.host("/etc/default")).unwrap();
    std::fs::create_dir_all(paths.host("/etc/sysconfig")).unwrap();
    std::fs::write(
        paths.host("/var/lib/kubelet/kubeadm-flags.env"),
        "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock \
         --node-ip=10.0.0.7 --node-labels='team=a,tier=web' --hostname-override=\\\"node 1\\\"\"\n",
    )
    .unwrap();
    // Without the packages' env file: the drop-in's arguments, kubeadm's, then ours.
    let extra = vec!["--v=4".to_owned()];
    let base = [
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--config=/var/lib/kubelet/config.yaml",
        "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
        "--node-ip=10.0.0.7",
        "--node-labels=team=a,tier=web",
        "--hostname-override=node 1",
    ];
    let args = supervisor::kubelet_command_line(&paths, &extra).unwrap();
    assert_eq!(args, [&base[..], &["--v=4"]].concat());

    std::fs::write(
        paths.host("/etc/sysconfig/kubelet"),
        "KUBELET_EXTRA_ARGS=--max-pods=20\n",
    )
    .unwrap();
    let args = supervisor::kubelet_command_line(&paths, &extra).unwrap();
    assert_eq!(args, [&base[..], &["--max-pods=20", "--v=4"]].concat());
    // /etc/default/kubelet (deb) comes first when both exist.
    std::fs::write(
        paths.host("/etc/default/kubelet"),
        "# set by the admin\nKUBELET_EXTRA_ARGS=--max-pods=50   --feature-gates='A=true,B=false'\n",
    )
    .unwrap();
    let args = supervisor::kubelet_command_line(&paths, &extra).unwrap();
    assert_eq!(
        args,
        [
            &base[..],
            &["--max-pods=50", "--feature-gates=A=true,B=false", "--v=4"]
        ]
        .concat()
    );
    // Paths in arguments stay node paths, whatever the root.
    assert!(args
        .iter()
        .all(|a| !a.contains(&*dir.path().to_string_lossy())));

    std::fs::write(
        paths.host("/etc/default/kubelet"),
        "KUBELET_EXTRA_ARGS=\"--unterminated\n",
    )
    .unwrap();
    let err = supervisor::kubelet_command_line(&paths, &[]).unwrap_err();
    assert!(err.to_string().contains("/etc/default/kubelet"), "{err}");

    let config = paths.host("/var/lib/kubelet/config.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n",
    )
    .unwrap();
    assert_eq!(
        supervisor::healthz_url(&paths).unwrap().as_deref(),
        Some("http://127.0.0.1:10248/healthz")
    );
    std::fs::write(&config, "kind: KubeletConfiguration\nhealthzPort: 0\n").unwrap();
    assert_eq!(supervisor::healthz_url(&paths).unwrap(), None);
    std::fs::write(
        &config,
        "kind: KubeletConfiguration\nhealthzBindAddress: 10.0.0.7\nhealthzPort: 10249\n",
    )
    .unwrap();
    assert_eq!(
        supervisor::healthz_url(&paths).unwrap().as_deref(),
        Some("http://10.0.0.7:10249/healthz")
    );
    std::fs::write(&config, "healthzBindAddress: '::1'\n").unwrap();
    assert_eq!(
        supervisor::healthz_url(&paths).unwrap().as_deref(),
        Some("http://[::1]:10248/healthz")
    );
}

/// Runs only as a child process of `kubelet_dies_with_its_supervisor`: supervises a fake kubelet,
/// writes its pid, and waits to be killed.
#[test]
#[ignore = "helper process of kubelet_dies_with_its_supervisor"]
fn orphan_child_helper() {
    let Ok(pid_file) = std::env::var("ORPHAN_HELPER_PID_FILE") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let port = free_port();
        let (kubelet, args) = fake_command(
            &[("FAKE_KUBELET_MODE", "serve".into()), healthz_var(port)],
            &[],
        );
        let mut s = start(config(kubelet, args, Some(port)));
        let pid = wait_for(&mut s.rx, "Running", Duration::from_secs(10), |s| {
            s.phase == KubeletPhase::Running
        })
        .await
        .pid
        .unwrap();
        let tmp = format!("{pid_file}.tmp");
        std::fs::write(&tmp, pid.to_string()).unwrap();
        std::fs::rename(&tmp, &pid_file).unwrap();
        // The parent SIGKILLs this process long before.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
}

#[test]
fn kubelet_dies_with_its_supervisor() {
    common::fake_kubelet();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("kubelet.pid");
    let mut helper = Invocation::of(
        std::env::current_exe().unwrap(),
        [
            "orphan_child_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ],
    )
    .env("ORPHAN_HELPER_PID_FILE", &pid_file)
    .spawn_quiet();
    let kubelet_pid: u32 = Wait::new("the helper's kubelet pid", Duration::from_secs(15))
        .poll_blocking(|| {
            if let Some(status) = helper.try_wait().unwrap() {
                panic!("the helper exited ({status}) before writing the kubelet pid");
            }
            std::fs::read_to_string(&pid_file).map(|text| text.trim().parse().unwrap())
        })
        .unwrap_or_else(|timed_out| {
            let _ = helper.kill();
            panic!("{timed_out}");
        });
    assert!(alive(kubelet_pid));

    // SIGKILL: no cleanup code runs in the supervisor; only PR_SET_PDEATHSIG can act.
    let t = Instant::now();
    helper.kill().unwrap();
    helper.wait().unwrap();
    let gone = Wait::new(
        format!("kubelet {kubelet_pid} to die"),
        Duration::from_secs(2),
    )
    .every(Duration::from_millis(10))
    .poll_blocking(|| !alive(kubelet_pid));
    assert!(
        gone.is_ok(),
        "kubelet {kubelet_pid} outlived its supervisor by 2 s"
    );
    eprintln!(
        "orphaned kubelet gone {:?} after its supervisor",
        t.elapsed()
    );
}
