//! The control plane's child processes and the folder they live in: started with their output
//! in `<name>.log`, killed and reaped when [`Processes`] is dropped (also while a test panics,
//! and then each log's tail is printed first), and bounded readiness waits that notice a child
//! that died.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest one readiness wait may take (a cold kube-apiserver on a busy 2-core machine
/// takes about 10 s).
pub const START_WAIT: Duration = Duration::from_secs(90);
/// Between two polls of a readiness wait.
pub const POLL: Duration = Duration::from_millis(100);
/// Lines of each log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;
/// Set to keep the folder (certificates, configuration, logs, audit log) after the test.
pub const KEEP_ENV: &str = "KAAS_REAL_KEEP";

/// `setpriv` (util-linux), when present: children get `--pdeathsig KILL`, so they die with
/// the test process even when it is killed outright and no destructor runs. (The signal comes
/// when the spawning *thread* ends; the kit is created and dropped on one thread.)
fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            ["/usr/bin/setpriv", "/bin/setpriv"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        })
        .as_deref()
}

/// One started child.
struct Started {
    name: String,
    child: Child,
    log: PathBuf,
}

/// The processes of one control plane and its folder.
pub struct Processes {
    children: Vec<Started>,
    dir: tempfile::TempDir,
}

impl Processes {
    pub fn new() -> Processes {
        let dir = tempfile::Builder::new()
            .prefix("kaas-real-cp-")
            .tempdir()
            .expect("a temp dir for the control plane");
        Processes {
            children: Vec::new(),
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `content` to `name` in the folder.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    /// Starts `bin` with `args`, stdout and stderr into `<name>.log` in the folder.
    pub fn spawn(&mut self, name: &str, bin: &Path, args: &[String]) -> u32 {
        let log = self.path(&format!("{name}.log"));
        let file = File::create(&log).unwrap();
        let mut cmd = match setpriv() {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let pid = child.id();
        println!("started {name} (pid {pid}), log {}", log.display());
        self.children.push(Started {
            name: name.to_string(),
            child,
            log,
        });
        pid
    }

    /// The pids of the children, by name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .map(|s| (s.name.clone(), s.child.id()))
            .collect()
    }

    /// Panics (printing the logs on drop) when a child has exited: it will not come back.
    pub fn assert_running(&mut self) {
        for s in &mut self.children {
            if let Some(status) = s.child.try_wait().unwrap() {
                panic!("{} exited early with {status}; its log follows", s.name);
            }
        }
    }

    /// The last lines of every child's log.
    pub fn print_logs(&self) {
        for s in &self.children {
            let mut text = String::new();
            let _ = File::open(&s.log).and_then(|mut f| f.read_to_string(&mut text));
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "----- {}: last {} of {} lines of {} -----\n{}",
                s.name,
                tail.len(),
                lines.len(),
                s.log.display(),
                tail.join("\n")
            );
        }
    }

    /// Polls `probe` every [`POLL`] until it says `Ok`, at most [`START_WAIT`]; a child that
    /// exits meanwhile fails the wait at once. `what` names the wait in the panic.
    pub async fn wait_until<F, Fut>(&mut self, what: &str, mut probe: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let deadline = Instant::now() + START_WAIT;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            self.assert_running();
            match probe().await {
                Ok(()) => return,
                Err(e) => last = e,
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("{what}: not within {START_WAIT:?}; last: {last}");
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        for s in self.children.iter_mut().rev() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        if std::env::var_os(KEEP_ENV).is_some() || std::thread::panicking() {
            let kept = std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().expect("a placeholder temp dir"),
            )
            .keep();
            eprintln!("control plane folder kept: {}", kept.display());
        }
    }
}

/// etcd on loopback, one member, plain HTTP.
pub fn etcd_args(data_dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name=default".into(),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=default={peer}"),
    ]
}

/// A plain-HTTP client (reqwest wants a TLS configuration with a crypto provider all the same).
pub fn plain_http() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Waits until etcd at `port` says it is healthy.
pub async fn wait_for_etcd(procs: &mut Processes, port: u16) {
    let http = plain_http();
    let url = format!("http://127.0.0.1:{port}/health");
    procs
        .wait_until("etcd /health", || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let resp = http.get(&url).send().await.map_err(|e| e.to_string())?;
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                if status.is_success() && body.contains("\"health\":\"true\"") {
                    Ok(())
                } else {
                    Err(format!("{status} {body}"))
                }
            }
        })
        .await;
}
