//! `kaas-join join`: the phases in order, each safe to re-run.
//!
//! 1. discover  — find and verify the cluster ([`crate::k8s::discovery`]).
//! 2. cluster   — read kubeadm-config and kubelet-config, and check no Ready Node has our name.
//! 3. configure — decide kubelet's settings and render every file in memory (nothing written yet,
//!    so bad settings fail before a CSR exists).
//! 4. bootstrap — node key (kept across crashes), CSR, certificate ([`crate::k8s::bootstrap`]).
//! 5. write     — files in an order where kubelet never reads a half-made node: certificate and
//!    symlink, CA, KubeletConfiguration, flags, and kubelet.conf last; each one atomic.
//!
//! A re-run after success says "already joined" (unless `--force`); a re-run after a crash
//! reuses the saved key, finds its CSR by its deterministic name and finishes.

pub mod report;

use std::net::IpAddr;
use std::sync::Arc;
use tokio::time::Instant;

use crate::cmd::error::Error;
use crate::cmd::join::report::{FileEntry, JoinReport, Outcome};
use crate::config::JoinConfig;
use crate::host::files;
use crate::host::paths::Paths;
use crate::host::paths::{
    CA_CERT, KUBELET_CLIENT_CURRENT, KUBELET_CONFIG, KUBELET_DIR, KUBELET_FLAGS_ENV,
    KUBELET_KUBECONFIG, KUBELET_PKI_DIR, STATE_DIR,
};
use crate::host::runtime as host;
use crate::k8s::bootstrap::{self, NodeKey};
use crate::k8s::client::{ApiClient, ApiError, RequestCounter};
use crate::k8s::cluster_config::{self, ClusterFacts, Published};
use crate::k8s::discovery::{self, DiscoveryRequest};
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::exit_code::ExitCode;
use crate::model::kubeconfig;
use crate::node::join_state::{self as state, Phase, State};
use crate::render::kubelet_config::{self, KubeletConfigInputs, KubeletFlags};
use std::io::Write as _;

const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/12";
const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// The duplicate-name check is one GET; it may not hold up the join longer than this.
const NODE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// kubeadm's default when nothing else tells (it is also what kubelet packages on systemd hosts expect).
const DEFAULT_CGROUP_DRIVER: CgroupDriver = CgroupDriver::Systemd;

/// A file the join will write: where, with which mode, and whether its content may be shown.
struct PlannedFile {
    node_path: String,
    mode: u32,
    content: Vec<u8>,
    secret: bool,
}

/// `kaas-join join`: load and check the configuration, the local preflight checks, the join,
/// the report on stdout.
pub async fn run(args: &crate::cli::JoinArgs) -> Result<ExitCode, Error> {
    let (cfg, warnings) = crate::config::load(args, crate::config::Environment::from_process())?;
    let warnings: Vec<String> = warnings.into_iter().map(|w| w.0).collect();
    for w in &warnings {
        tracing::warn!("{w}");
    }
    // Before any request or write; a no-op on an already joined machine.
    crate::cmd::preflight::before_join(&cfg, crate::cmd::preflight::KubeletBinary::Search).await?;
    let report = join(&cfg, warnings).await?;
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) is not a failed join.
    let _ = stdout.write_all(report.render(cfg.output).as_bytes());
    Ok(ExitCode::Ok)
}

/// Runs the join. `warnings` come from loading the configuration and go into the report.
pub async fn join(cfg: &JoinConfig, warnings: Vec<String>) -> Result<JoinReport, Error> {
    join_with_counter(cfg, warnings, Arc::new(RequestCounter::default())).await
}

/// As [`join`], counting HTTP requests in `counter` (the benchmark reads it).
pub async fn join_with_counter(
    cfg: &JoinConfig,
    warnings: Vec<String>,
    counter: Arc<RequestCounter>,
) -> Result<JoinReport, Error> {
    let paths = Paths::new(&cfg.root);
    let mut report = JoinReport::new(&cfg.node_name, warnings);
    let previous = state::load(&paths)?;

    if let Some(prev) = &previous {
        let kubelet_conf = paths.host(KUBELET_KUBECONFIG);
        if prev.phase == Phase::Joined && kubelet_conf.exists() && !cfg.force {
            // A kill between saving "joined" and removing the pending key leaves it behind.
            remove_if_exists(&paths.host(state::NODE_KEY))?;
            report.node_name = prev.node_name.clone();
            report.server = Some(prev.server.clone());
            report.ca_pin = prev.ca_pin.clone();
            report.finish(Outcome::AlreadyJoined, 0);
            return Ok(report);
        }
    }

    // 1. Discovery.
    let t = Instant::now();
    let found = discovery::discover(&DiscoveryRequest::of(cfg, counter.clone())).await?;
    report.server = Some(found.server.clone());
    report.ca_pin = found.matched_pin.as_ref().map(|p| p.to_string());
    report.step(
        "discover",
        format!(
            "cluster-info from {} signed for token id {}, {}; API server {}{}",
            found.endpoint,
            cfg.token.id(),
            match &found.matched_pin {
                Some(pin) => format!("CA pin {pin} matched"),
                None => "CA NOT verified (--discovery-token-unsafe-skip-ca-verification)".into(),
            },
            found.server,
            if found.retries > 0 {
                format!(" (after {} retries)", found.retries)
            } else {
                String::new()
            }
        ),
        t,
    );

    // 2. What the cluster publishes, and whether our name is taken (concurrently).
    let t = Instant::now();
    let client = found.client.with_bearer(&cfg.token);
    let cluster_deadline = Instant::now() + cfg.tls_bootstrap_timeout;
    let rejoining_same_node = previous
        .as_ref()
        .is_some_and(|p| p.node_name == cfg.node_name && p.phase == Phase::Joined);
    let (facts, node_check) = tokio::join!(
        cluster_config::read(&client, cluster_deadline),
        check_node_name(&client, &cfg.node_name, rejoining_same_node)
    );
    let facts = facts?;
    let node_note = node_check?;
    report.step(
        "cluster",
        format!(
            "kubeadm-config: {}; kubelet-config: {}; {node_note}",
            describe(&facts.networking),
            describe(&facts.kubelet)
        ),
        t,
    );

    // 3. Decide kubelet's settings and render every file.
    let t = Instant::now();
    let (files, settings_note) = plan_files(
        cfg,
        &paths,
        &facts,
        &found.server,
        &found.ca_pem,
        &mut report,
    )?;
    report.step("configure", settings_note, t);

    if cfg.dry_run {
        report.files = files
            .iter()
            .map(|f| FileEntry {
                path: f.node_path.clone(),
                mode: format!("{:04o}", f.mode),
                bytes: f.content.len(),
                content: (!f.secret).then(|| String::from_utf8_lossy(&f.content).into_owned()),
            })
            .collect();
        report.files.push(FileEntry {
            path: KUBELET_CLIENT_CURRENT.into(),
            mode: "0600".into(),
            bytes: 0,
            content: Some("(certificate and private key, made at join time; not shown)".into()),
        });
        report.finish(Outcome::DryRun, counter.get());
        return Ok(report);
    }

    // 4. Key, CSR, certificate: the timeout counts from here, whatever the reads above took.
    let t = Instant::now();
    let bootstrap_deadline = t + cfg.tls_bootstrap_timeout;
    files::ensure_dir(&paths.host(STATE_DIR), 0o700)?;
    files::remove_stale_temp_files(&paths.host(STATE_DIR))?;
    let key = load_or_create_key(&paths, cfg.force && rejoining_same_node)?;
    let csr_name = bootstrap::csr_name(&key.public_key_der(), &cfg.node_name);
    let mut st = State {
        version: 1,
        phase: Phase::Bootstrapping,
        node_name: cfg.node_name.clone(),
        server: found.server.clone(),
        ca_pin: report.ca_pin.clone(),
        csr_name: Some(csr_name),
        certificate_not_after: None,
        updated_at: state::now_rfc3339(),
    };
    state::save(&paths, &st)?;
    let issued =
        bootstrap::request_certificate(&client, &key, &cfg.node_name, bootstrap_deadline).await?;
    report.step(
        "bootstrap",
        format!(
            "CertificateSigningRequest {} {}approved; client certificate for system:node:{} valid until {}",
            issued.csr_name,
            if issued.reused { "(from an earlier run) " } else { "" },
            cfg.node_name,
            issued.not_after
        ),
        t,
    );

    // 5. Write.
    let t = Instant::now();
    let written = write_files(&paths, &files, &issued.certificate_pem, &key)?;
    st.phase = Phase::Joined;
    st.certificate_not_after = Some(issued.not_after.clone());
    st.updated_at = state::now_rfc3339();
    state::save(&paths, &st)?;
    remove_if_exists(&paths.host(state::NODE_KEY))?;
    report.step(
        "write",
        format!(
            "{} files written under {}",
            written.len(),
            cfg.root.display()
        ),
        t,
    );
    report.files = written;
    report.finish(Outcome::Joined, counter.get());
    Ok(report)
}

fn describe<T>(p: &Published<T>) -> String {
    match p {
        Published::Found(_) => "read".into(),
        Published::Missing(why) => format!("not readable ({why})"),
    }
}

/// Refuses a name already held by a Ready Node, where the token may read Nodes (kubeadm's RBAC
/// lets it); a 403 means this control plane does not allow the check, which is not an error.
async fn check_node_name(
    client: &ApiClient,
    name: &str,
    rejoining_same_node: bool,
) -> Result<String, Error> {
    // Best effort: a control plane that does not answer this quickly still gets the node.
    let answer = tokio::time::timeout(
        NODE_CHECK_TIMEOUT,
        client.get_json::<serde_json::Value>(&format!("/api/v1/nodes/{name}")),
    )
    .await
    .unwrap_or_else(|_| Err(ApiError::deadline_passed(&format!("/api/v1/nodes/{name}"))));
    match answer {
        Ok(node) => {
            let ready = node["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if ready && !rejoining_same_node {
                Err(Error::DuplicateNode { name: name.into() })
            } else if ready {
                Ok(format!(
                    "Node {name} exists and is Ready: this machine, joining again"
                ))
            } else {
                Ok(format!(
                    "Node {name} exists but is not Ready; taking it over"
                ))
            }
        }
        Err(ApiError::Status { code: 404, .. }) => Ok(format!("no Node named {name} yet")),
        Err(ApiError::Status { code: 403, .. }) => {
            Ok("the token may not read Nodes, duplicate-name check skipped".into())
        }
        Err(err) => {
            tracing::warn!(error = %err, "duplicate-name check failed; going on without it");
            Ok(format!("duplicate-name check failed ({err})"))
        }
    }
}

/// Decides kubelet's settings (user > cluster > detected > default, saying which) and renders
/// the files kubelet reads.
fn plan_files(
    cfg: &JoinConfig,
    paths: &Paths,
    facts: &ClusterFacts,
    server: &str,
    ca_pem: &[u8],
    report: &mut JoinReport,
) -> Result<(Vec<PlannedFile>, String), Error> {
    let cluster_kubelet = facts.kubelet.found();
    let networking = facts.networking.found();

    // cgroup driver: the user's word, else what the runtime is configured for.
    let (cgroup_driver, cgroup_how) = match cfg.cgroup_driver {
        Some(d) => (d, "set by you".to_string()),
        None => match host::detect_cgroup_driver(paths, &cfg.cri_socket) {
            Ok((d, how)) => (d, how),
            Err(err) => {
                report.warn(format!(
                    "cannot tell which cgroup driver the container runtime uses ({err}); using {} — set --cgroup-driver if the runtime differs, or kubelet will fail to start pods",
                    DEFAULT_CGROUP_DRIVER.as_str()
                ));
                (DEFAULT_CGROUP_DRIVER, "default".to_string())
            }
        },
    };

    // Cluster DNS and domain for a cluster that does not publish a KubeletConfiguration.
    let subnet = networking.and_then(|n| n.service_subnet.clone());
    let dns_from = |subnet: &str| kubelet_config::cluster_dns_from_service_subnet(subnet);
    let cluster_dns: Vec<IpAddr> = match (&cfg.cluster_dns, &subnet) {
        (Some(dns), _) => dns.clone(),
        (None, Some(subnet)) => vec![dns_from(subnet)?],
        (None, None) => vec![dns_from(DEFAULT_SERVICE_SUBNET)?],
    };
    let cluster_domain = cfg
        .cluster_domain
        .clone()
        .or_else(|| networking.and_then(|n| n.dns_domain.clone()))
        .unwrap_or_else(|| DEFAULT_CLUSTER_DOMAIN.to_string());

    if cluster_kubelet.is_none() {
        let why = match &facts.kubelet {
            Published::Missing(why) => why.clone(),
            Published::Found(_) => String::new(),
        };
        report.warn(format!(
            "the cluster publishes no KubeletConfiguration (kube-system/kubelet-config: {why}); using defaults: clusterDNS {} ({}), clusterDomain {cluster_domain}, cgroupDriver {} ({cgroup_how}). If your cluster differs, set --cluster-dns, --cluster-domain and --cgroup-driver (or clusterDNS/clusterDomain/cgroupDriver in the config file)",
            cluster_dns.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(","),
            if cfg.cluster_dns.is_some() { "set by you".to_string() } else if let Some(s) = &subnet { format!("from serviceSubnet {s}") } else { format!("kubeadm's default service subnet {DEFAULT_SERVICE_SUBNET}") },
            cgroup_driver.as_str(),
        ));
    }

    // The user's cluster DNS/domain win over the cluster's: they go in as overrides.
    let mut overrides = cfg
        .kubelet_overrides
        .clone()
        .unwrap_or(serde_norway::Value::Mapping(Default::default()));
    if let Some(map) = overrides.as_mapping_mut() {
        if let Some(dns) = &cfg.cluster_dns {
            map.insert(
                "clusterDNS".into(),
                serde_norway::Value::Sequence(dns.iter().map(|ip| ip.to_string().into()).collect()),
            );
        }
        if let Some(domain) = &cfg.cluster_domain {
            map.insert("clusterDomain".into(), domain.clone().into());
        }
    }
    let overrides_given = overrides.as_mapping().is_some_and(|m| !m.is_empty());

    let kubelet_yaml = kubelet_config::render_kubelet_config(&KubeletConfigInputs {
        cluster: cluster_kubelet,
        overrides: overrides_given.then_some(&overrides),
        cluster_dns: cluster_dns.clone(),
        cluster_domain: cluster_domain.clone(),
        cgroup_driver,
        client_ca_file: CA_CERT,
    })?;
    let hostname_override = (cfg.node_name != cfg.hostname).then_some(cfg.node_name.as_str());
    let flags = kubelet_config::render_flags_env(&KubeletFlags {
        cri_endpoint: &cfg.cri_socket,
        node_ip: cfg.node_ip,
        hostname_override,
        node_labels: &cfg.node_labels,
        extra_args: &cfg.kubelet_extra_args,
    });
    let kubelet_conf = kubeconfig::kubelet_kubeconfig(server, ca_pem, KUBELET_CLIENT_CURRENT);

    let files = vec![
        PlannedFile {
            node_path: CA_CERT.into(),
            mode: 0o644,
            content: ca_pem.to_vec(),
            secret: false,
        },
        PlannedFile {
            node_path: KUBELET_CONFIG.into(),
            mode: 0o644,
            content: kubelet_yaml.into_bytes(),
            secret: false,
        },
        PlannedFile {
            node_path: KUBELET_FLAGS_ENV.into(),
            mode: 0o644,
            content: flags.into_bytes(),
            secret: false,
        },
        // Last: its presence is what kubeadm's drop-in and kubelet take as "joined".
        PlannedFile {
            node_path: KUBELET_KUBECONFIG.into(),
            mode: 0o600,
            content: kubelet_conf.to_yaml().into_bytes(),
            secret: false,
        },
    ];
    let note = format!(
        "cgroupDriver {} ({cgroup_how}); clusterDNS {}; clusterDomain {cluster_domain}; runtime {}{}",
        cgroup_driver.as_str(),
        cluster_dns.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(","),
        cfg.cri_socket,
        hostname_override.map_or(String::new(), |n| format!("; --hostname-override={n}")),
    );
    Ok((files, note))
}

/// The saved key of an interrupted run, or a new one saved before any CSR refers to it.
fn load_or_create_key(paths: &Paths, fresh: bool) -> Result<NodeKey, Error> {
    let path = paths.host(state::NODE_KEY);
    if !fresh && path.exists() {
        let pem = files::read_private_file(&path, "node key")?;
        let text = String::from_utf8_lossy(&pem);
        return Ok(NodeKey::from_pem(&text, &path.display().to_string())?);
    }
    let key = NodeKey::generate()?;
    files::write_atomic(&path, key.pem().as_bytes(), 0o600)?;
    Ok(key)
}

/// Writes kubelet's certificate (with a relative `-current` symlink, as kubelet's own store
/// does), then the planned files, kubelet.conf last.
fn write_files(
    paths: &Paths,
    files: &[PlannedFile],
    certificate_pem: &str,
    key: &NodeKey,
) -> Result<Vec<FileEntry>, Error> {
    let mut written = Vec::new();
    files::ensure_dir(&paths.host("/etc/kubernetes"), 0o755)?;
    files::ensure_dir(&paths.host("/etc/kubernetes/pki"), 0o755)?;
    files::ensure_dir(&paths.host(KUBELET_DIR), 0o700)?;
    files::ensure_dir(&paths.host(KUBELET_PKI_DIR), 0o700)?;
    for dir in [
        "/etc/kubernetes",
        "/etc/kubernetes/pki",
        KUBELET_DIR,
        KUBELET_PKI_DIR,
    ] {
        files::remove_stale_temp_files(&paths.host(dir))?;
    }

    // kubelet's store names files kubelet-client-<YYYY-MM-DD-HH-MM-SS>.pem: certificate, then key.
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]-[hour]-[minute]-[second]"
        ))
        .map_err(|e| Error::Internal(e.to_string()))?;
    let pem_name = format!("kubelet-client-{stamp}.pem");
    let mut pair = zeroize::Zeroizing::new(Vec::new());
    pair.extend_from_slice(certificate_pem.as_bytes());
    if !certificate_pem.ends_with('\n') {
        pair.push(b'\n');
    }
    pair.extend_from_slice(key.pem().as_bytes());
    let pem_node_path = format!("{}/{pem_name}", KUBELET_PKI_DIR);
    files::write_atomic(&paths.host(&pem_node_path), &pair, 0o600)?;
    written.push(FileEntry {
        path: pem_node_path,
        mode: "0600".into(),
        bytes: pair.len(),
        content: None,
    });
    files::symlink_atomic(
        std::path::Path::new(&pem_name),
        &paths.entry(KUBELET_CLIENT_CURRENT),
    )?;
    written.push(FileEntry {
        path: format!("{} -> {pem_name}", KUBELET_CLIENT_CURRENT),
        mode: "link".into(),
        bytes: 0,
        content: None,
    });

    for f in files {
        files::write_atomic(&paths.host(&f.node_path), &f.content, f.mode)?;
        written.push(FileEntry {
            path: f.node_path.clone(),
            mode: format!("{:04o}", f.mode),
            bytes: f.content.len(),
            content: None,
        });
    }
    Ok(written)
}

fn remove_if_exists(path: &std::path::Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Internal(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    }
}
