//! The REAL kubelet under `kaas-join run`, against the real control plane of
//! `tests/common/real/` and a real containerd: the join, kubelet as `run`'s child, our Node
//! conditions on the Node kubelet registered, kubelet killed and restarted, the daemon killed
//! and stopped; and the seed's demo for real: an nginx Deployment scheduled by kube-scheduler
//! onto the joined node, serving a page.
//!
//! ```text
//! export KUBEBUILDER_ASSETS=$(scripts/test-binaries.sh)   # kubelet, kube-scheduler included
//! cargo test --locked --test real_node -- --ignored        # as root, containerd and runc installed
//! ```
//!
//! The node's paths (`/etc/kubernetes`, `/var/lib/kubelet`, ...) are folders of the test's own,
//! mounted at those paths in a private mount namespace where containerd, `kaas-join run --root /`
//! and so kubelet run (`tests/common/real/node_host.rs` says why): everything runs at the real
//! paths, as on a node, and this machine's own files are left alone.
//!
//! `#[ignore]`d: they need the binaries, root, containerd and runc (and gcc and nginx for the
//! demo's images). Without `KUBEBUILDER_ASSETS`, or with something missing, they say exactly
//! what and pass, unless `KAAS_REAL_NODE_REQUIRED=1` (CI sets it): then they fail. The tests run
//! one at a time (kubelet's ports are fixed). Every wait is bounded; no test asserts a timing.

mod common;
#[path = "common/real/mod.rs"]
mod real;

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use real::node_host::{self, NodeHost, RunDaemon};
use real::{RealControlPlane, Setup};
use serde_json::{json, Value};

/// Set (to anything but empty) where a real node must run: a missing piece fails the test.
const REQUIRED_ENV: &str = "KAAS_REAL_NODE_REQUIRED";
/// From `kaas-join run`'s start to the Node registered by kubelet (about 1.5 s here; a cold
/// kubelet on a busy machine takes longer).
const REGISTER_WAIT: Duration = Duration::from_secs(120);
/// A SIGTERMed daemon stops kubelet (its grace period) and reports that: well within this.
const STOP_WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------------------------

/// Says why the test cannot run here: a failure when [`REQUIRED_ENV`] is set, else a skip.
fn cannot_run(what: &str) {
    let required = std::env::var_os(REQUIRED_ENV).is_some_and(|v| !v.is_empty());
    assert!(!required, "{REQUIRED_ENV} is set, but {what}");
    println!("skipped: {what} (set {REQUIRED_ENV}=1 to make this a failure)");
}

/// The control plane (with kube-scheduler when asked) and the node's host, or `None` after
/// saying what is missing.
async fn start(scheduler: bool, tools: &[(&str, &str)]) -> Option<(RealControlPlane, NodeHost)> {
    let Some(assets) = real::assets_dir() else {
        cannot_run(&format!(
            "{} is not set; {}",
            real::ASSETS_ENV,
            real::HOW_TO_GET_BINARIES
        ));
        return None;
    };
    let mut missing = node_host::missing(&assets);
    if scheduler {
        missing.extend(real::missing_binaries(&assets, &["kube-scheduler"]));
    }
    for (tool, package) in tools {
        if !Path::new(tool).is_file() {
            missing.push(format!("{tool} (Debian: apt-get install {package})"));
        }
    }
    if !missing.is_empty() {
        cannot_run(&format!(
            "this machine cannot run a real node: missing {}",
            missing.join("; ")
        ));
        return None;
    }
    let host = match NodeHost::start(&assets.join("kubelet")) {
        Ok(host) => host,
        Err(e) => {
            cannot_run(&format!("containerd does not start here: {e}"));
            return None;
        }
    };
    let mut cp = RealControlPlane::start_with(Setup::Kubeadm, &assets).await;
    if scheduler {
        cp.start_scheduler().await;
    }
    Some((cp, host))
}

// ---------------------------------------------------------------------------------------------
// What the API server says
// ---------------------------------------------------------------------------------------------

async fn get_node(cp: &RealControlPlane, node: &str) -> Option<Value> {
    let a = cp.admin.get(&format!("/api/v1/nodes/{node}")).await;
    (a.status == 200).then(|| a.json())
}

/// `(status, reason, message)` of the Node's condition `type_`.
fn condition(node: &Value, type_: &str) -> Option<(String, String, String)> {
    let c = node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}

/// Waits (bounded by [`real::SETTLE_WAIT`]) until the Node's condition `type_` has `status`;
/// the Node then.
async fn wait_condition(cp: &RealControlPlane, node: &str, type_: &str, status: &str) -> Value {
    let deadline = Instant::now() + real::SETTLE_WAIT;
    loop {
        let n = get_node(cp, node).await;
        let now = n.as_ref().and_then(|n| condition(n, type_));
        if now.as_ref().is_some_and(|(s, _, _)| s == status) {
            return n.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{type_}={status} on Node {node}: not within {:?}; last: {now:?}",
            real::SETTLE_WAIT
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until kubelet has registered the Node; fails at once when the daemon exits.
async fn wait_registered(cp: &RealControlPlane, d: &mut RunDaemon, node: &str) {
    let deadline = Instant::now() + REGISTER_WAIT;
    while get_node(cp, node).await.is_none() {
        d.assert_running();
        assert!(
            Instant::now() < deadline,
            "Node {node} not registered within {REGISTER_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every CSR in the cluster.
async fn all_csrs(cp: &RealControlPlane) -> Vec<Value> {
    let a = cp
        .admin
        .get("/apis/certificates.k8s.io/v1/certificatesigningrequests")
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["items"].as_array().cloned().unwrap_or_default()
}

/// The first certificate of a PEM text, as DER.
fn first_cert_der(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .expect("a certificate")
        .expect("valid PEM")
        .to_vec()
}

/// Waits (bounded) until the daemon's kubelet is running (healthz answered), not `not`.
async fn running_kubelet(d: &mut RunDaemon, not: Option<u32>) -> u32 {
    let deadline = Instant::now() + REGISTER_WAIT;
    loop {
        if let Some(pid) = d.running_kubelet().filter(|p| Some(*p) != not) {
            return pid;
        }
        d.assert_running();
        assert!(
            Instant::now() < deadline,
            "kubelet not running within {REGISTER_WAIT:?}: {:?}",
            d.run_status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(pid as i32), sig).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, containerd, runc and real Kubernetes binaries (KUBEBUILDER_ASSETS); see README"]
async fn run_supervises_the_real_kubelet() {
    let _one = node_host::one_at_a_time().await;
    let Some((cp, host)) = start(false, &[]).await else {
        return;
    };
    let node = "real-node-1";
    let token = cp.token().await;
    let token_file = host.token_file(&token);
    let args = host.kaas_join_args("run", &cp, &token_file, node);
    let audit_from = cp.audit.offset();
    let mut d = host.spawn_kaas_join(&args);

    // The join, then kubelet as run's child registers the Node.
    let started = Instant::now();
    wait_registered(&cp, &mut d, node).await;
    println!("Node registered {:?} after run started", started.elapsed());
    let kubelet = running_kubelet(&mut d, None).await;

    // Registered with the certificate kaas-join obtained: one CSR, ours (the bootstrap token's),
    // none of kubelet's own; its certificate is the one kubelet's kubeconfig points at.
    let csrs = all_csrs(&cp).await;
    assert_eq!(csrs.len(), 1, "only kaas-join's CSR: {csrs:#?}");
    let csr = &csrs[0];
    assert_eq!(
        csr["spec"]["username"],
        format!("system:bootstrap:{}", token.id),
        "{csr:#}"
    );
    assert_eq!(
        real::csr_subject_cn(csr).as_deref(),
        Some(format!("system:node:{node}").as_str())
    );
    let issued = {
        use base64::Engine as _;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(csr["status"]["certificate"].as_str().expect("issued"))
            .unwrap();
        first_cert_der(&pem)
    };
    let current =
        std::fs::read(host.file("/var/lib/kubelet/pki/kubelet-client-current.pem")).unwrap();
    assert_eq!(
        first_cert_der(&current),
        issued,
        "kubelet uses the certificate kaas-join got"
    );
    let creates: Vec<_> = cp
        .audit_since(audit_from)
        .await
        .into_iter()
        .filter(|e| {
            e.verb == "create"
                && e.uri.starts_with("/api/v1/nodes")
                && e.stage == "ResponseComplete"
        })
        .collect();
    assert!(
        creates
            .iter()
            .any(|e| e.user == format!("system:node:{node}") && e.code == 201),
        "the Node created by kubelet as system:node:{node}: {:#?}",
        creates
            .iter()
            .map(|e| (&e.user, e.code, &e.user_agent))
            .collect::<Vec<_>>()
    );

    // Our conditions, accepted on the real Node (NodeRestriction lets a node patch its own
    // status) and read back; the runtime reachable at the socket kubelet is given.
    let n = wait_condition(&cp, node, "KubeletUnhealthy", "False").await;
    let n = match condition(&n, "ContainerRuntimeUnreachable") {
        Some((s, _, _)) if s == "False" => n,
        _ => wait_condition(&cp, node, "ContainerRuntimeUnreachable", "False").await,
    };
    println!(
        "conditions: {:#?}",
        n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| format!("{} {} {}", c["type"], c["status"], c["reason"]))
            .collect::<Vec<_>>()
    );
    assert!(
        condition(&n, "Ready").is_some(),
        "kubelet's own conditions are there"
    );

    // kubelet SIGKILLed: the Node says KubeletUnhealthy=True, and False again once it is back.
    signal(kubelet, Signal::SIGKILL);
    let (_, reason, message) = condition(
        &wait_condition(&cp, node, "KubeletUnhealthy", "True").await,
        "KubeletUnhealthy",
    )
    .unwrap();
    println!("after SIGKILL of kubelet: {reason}: {message}");
    let restarted = running_kubelet(&mut d, Some(kubelet)).await;
    wait_condition(&cp, node, "KubeletUnhealthy", "False").await;

    // The daemon SIGKILLed: no kubelet is left (PR_SET_PDEATHSIG).
    signal(d.pid(), Signal::SIGKILL);
    assert!(
        d.wait_exit(STOP_WAIT).is_some(),
        "SIGKILLed kaas-join exits"
    );
    assert_eq!(
        d.kubelets_left(),
        Vec::<u32>::new(),
        "kubelet died with its daemon"
    );
    assert!(d.kubelets().contains(&restarted));
    drop(d);

    // Started again (joined already: no token needed, no new CSR); SIGTERM stops kubelet and the
    // daemon exits 0, having written the stop on the Node.
    std::fs::remove_file(&token_file).unwrap();
    let mut d = host.spawn_kaas_join(&args);
    let kubelet = running_kubelet(&mut d, None).await;
    wait_condition(&cp, node, "KubeletUnhealthy", "False").await;
    signal(d.pid(), Signal::SIGTERM);
    let status = d.wait_exit(STOP_WAIT).expect("SIGTERMed kaas-join exits");
    assert!(status.success(), "{status}\n{}", d.log());
    assert!(!common::alive(kubelet), "kubelet stopped with its daemon");
    assert_eq!(d.kubelets_left(), Vec::<u32>::new());
    let n = wait_condition(&cp, node, "KubeletUnhealthy", "True").await;
    println!("after SIGTERM: {:?}", condition(&n, "KubeletUnhealthy"));
    assert_eq!(
        all_csrs(&cp).await.len(),
        1,
        "no CSR of kubelet's own, ever"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, containerd, runc, gcc, nginx and real Kubernetes binaries (KUBEBUILDER_ASSETS); see README"]
async fn nginx_is_scheduled_onto_the_joined_node_and_serves() {
    let _one = node_host::one_at_a_time().await;
    let tools = [
        ("/usr/sbin/nginx", "nginx"),
        ("/usr/bin/gcc", "gcc libc6-dev"),
    ];
    let Some((cp, host)) = start(true, &tools).await else {
        return;
    };
    let node = "real-node-demo";

    // The images, built here (no registry is reachable) and imported for kubelet.
    let port = common::free_port();
    let images = host.scratch().join("images");
    let page = build_images(&images, port);
    for tar in ["pause.tar", "nginx.tar"] {
        host.containerd.import(&images.join(tar)).unwrap();
    }

    let token = cp.token().await;
    let token_file = host.token_file(&token);
    let mut d = host.spawn_kaas_join(&host.kaas_join_args("run", &cp, &token_file, node));
    wait_registered(&cp, &mut d, node).await;
    running_kubelet(&mut d, None).await;

    cp.apply(&nginx_deployment(node)).await;
    // Scheduled by kube-scheduler onto the node; the page over the pod's host network.
    let deadline = Instant::now() + REGISTER_WAIT;
    let served = loop {
        d.assert_running();
        match common::http_get(&format!("127.0.0.1:{port}"), "/") {
            Ok(body) => break body,
            Err(e) => assert!(
                Instant::now() < deadline,
                "nginx not serving within {REGISTER_WAIT:?}: {e}; pods: {}",
                pods_summary(&cp).await
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(served.trim(), page.trim());
    let pods = cp.admin.get("/api/v1/namespaces/default/pods").await.json();
    let pod = &pods["items"][0];
    assert_eq!(pod["spec"]["nodeName"], node, "{pod:#}");
    let scheduled = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "PodScheduled" && c["status"] == "True");
    assert!(scheduled, "{pod:#}");
    println!(
        "nginx in pod {} on {node} served: {}",
        pod["metadata"]["name"],
        served.trim()
    );

    signal(d.pid(), Signal::SIGTERM);
    let status = d.wait_exit(STOP_WAIT).expect("SIGTERMed kaas-join exits");
    assert!(status.success(), "{status}\n{}", d.log());
}

/// Runs `scripts/demo-images.sh` into `out` for `port`; the page nginx will serve.
fn build_images(out: &Path, port: u16) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo-images.sh");
    let built = std::process::Command::new("bash")
        .arg(script)
        .arg(out)
        .arg(port.to_string())
        .output()
        .expect("bash runs");
    assert!(
        built.status.success(),
        "demo-images.sh: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    String::from_utf8(built.stdout)
        .unwrap()
        .lines()
        .last()
        .expect("the page")
        .to_string()
}

/// One nginx replica on the host's network, from the imported image only, on `node`. It
/// tolerates the not-ready taint: without a CNI network the Node stays NotReady (kubelet's
/// NetworkReady=false), which host-network pods do not need.
fn nginx_deployment(node: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "hostNetwork": true,
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{
                        "name": "nginx",
                        "image": "kaas-join.local/nginx:demo",
                        "imagePullPolicy": "Never",
                    }],
                },
            },
        },
    })
}

/// The pods' phases and conditions, for a failed wait's message.
async fn pods_summary(cp: &RealControlPlane) -> String {
    let pods = cp.admin.get("/api/v1/namespaces/default/pods").await.json();
    let items = pods["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|p| {
            format!(
                "{} on {} {} {}",
                p["metadata"]["name"],
                p["spec"]["nodeName"],
                p["status"]["phase"],
                p["status"]["containerStatuses"]
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
