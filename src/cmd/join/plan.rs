//! Phase 3, configure: decide kubelet's settings (user > cluster > detected > default, saying
//! which) and render every file kubelet reads, in memory. Nothing is written here, so bad
//! settings fail before a CSR exists; [`super::write`] writes the plan, `--dry-run` shows it.

use std::net::IpAddr;

use tokio::time::Instant;

use crate::cmd::error::Error;
use crate::cmd::join::report::{FileEntry, JoinReport};
use crate::config::JoinConfig;
use crate::host::paths::{
    Paths, CA_CERT, KUBELET_CLIENT_CURRENT, KUBELET_CONFIG, KUBELET_FLAGS_ENV, KUBELET_KUBECONFIG,
};
use crate::host::runtime as host;
use crate::host::Host;
use crate::k8s::cluster_config::{ClusterFacts, Published};
use crate::k8s::discovery::Discovered;
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::kubeconfig;
use crate::render::kubelet_config::{self, KubeletConfigInputs, KubeletFlags};

const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/12";
const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// A file the join will write: where, with which mode, and whether its content may be shown.
pub(super) struct PlannedFile {
    pub node_path: String,
    pub mode: u32,
    pub content: Vec<u8>,
    pub secret: bool,
}

/// What the container runtime says of its cgroup driver (its files, else its answer over CRI);
/// `None` when the user set the driver, so nothing was asked.
pub(super) type RuntimeDriver = Option<Result<(CgroupDriver, String), host::HostError>>;

/// Asks the runtime for its cgroup driver unless the user set it. The CRI question may wait
/// seconds on a runtime that does not answer, so the caller runs this off the async worker.
pub(super) fn runtime_driver(
    given: Option<CgroupDriver>,
    cri_socket: &str,
    machine: &dyn Host,
    paths: &Paths,
) -> RuntimeDriver {
    given
        .is_none()
        .then(|| host::runtime_cgroup_driver(machine, paths, cri_socket))
}

/// Decides kubelet's settings and renders its files, in the order they are to be written.
#[tracing::instrument(
    name = "configure",
    skip_all,
    fields(node = %cfg.node_name, server = %found.server, cri = %cfg.cri_socket)
)]
pub(super) fn configure(
    cfg: &JoinConfig,
    machine: &dyn Host,
    paths: &Paths,
    facts: &ClusterFacts,
    found: &Discovered,
    runtime: RuntimeDriver,
    report: &mut JoinReport,
) -> Result<Vec<PlannedFile>, Error> {
    let t = Instant::now();
    let settings = Settings::decide(cfg, machine, paths, facts, runtime, report)?;
    let files = render_files(cfg, facts, &settings, &found.server, &found.ca_pem)?;
    report.step("configure", settings.note(cfg), t);
    Ok(files)
}

/// What `--dry-run` reports: the planned files (content unless secret) and the certificate file
/// that only the bootstrap would make.
pub(super) fn dry_run_entries(files: &[PlannedFile]) -> Vec<FileEntry> {
    let mut entries: Vec<FileEntry> = files
        .iter()
        .map(|f| FileEntry {
            path: f.node_path.clone(),
            mode: format!("{:04o}", f.mode),
            bytes: f.content.len(),
            content: (!f.secret).then(|| String::from_utf8_lossy(&f.content).into_owned()),
        })
        .collect();
    entries.push(FileEntry {
        path: KUBELET_CLIENT_CURRENT.into(),
        mode: "0600".into(),
        bytes: 0,
        content: Some("(certificate and private key, made at join time; not shown)".into()),
    });
    entries
}

/// kubelet's settings as decided, with where they came from.
struct Settings {
    cgroup_driver: CgroupDriver,
    /// "set by you", "default", or what the runtime's configuration said.
    cgroup_how: String,
    cluster_dns: Vec<IpAddr>,
    cluster_domain: String,
    /// The service subnet kubeadm-config publishes, if it does.
    service_subnet: Option<String>,
}

impl Settings {
    /// Decides each setting; warns (in the report) when the cgroup driver cannot be detected and
    /// when the cluster publishes no KubeletConfiguration, so defaults are used.
    fn decide(
        cfg: &JoinConfig,
        machine: &dyn Host,
        paths: &Paths,
        facts: &ClusterFacts,
        runtime: RuntimeDriver,
        report: &mut JoinReport,
    ) -> Result<Settings, Error> {
        let networking = facts.networking.found();
        let (cgroup_driver, cgroup_how) = cgroup_driver(cfg, machine, paths, runtime, report);
        // Cluster DNS and domain for a cluster that does not publish a KubeletConfiguration.
        let service_subnet = networking.and_then(|n| n.service_subnet.clone());
        let dns_from = |subnet: &str| kubelet_config::cluster_dns_from_service_subnet(subnet);
        let cluster_dns: Vec<IpAddr> = match (&cfg.cluster_dns, &service_subnet) {
            (Some(dns), _) => dns.clone(),
            (None, Some(subnet)) => vec![dns_from(subnet)?],
            (None, None) => vec![dns_from(DEFAULT_SERVICE_SUBNET)?],
        };
        let cluster_domain = cfg
            .cluster_domain
            .clone()
            .or_else(|| networking.and_then(|n| n.dns_domain.clone()))
            .unwrap_or_else(|| DEFAULT_CLUSTER_DOMAIN.to_string());
        let settings = Settings {
            cgroup_driver,
            cgroup_how,
            cluster_dns,
            cluster_domain,
            service_subnet,
        };
        if let Published::Missing(why) = &facts.kubelet {
            report.warn(settings.defaults_warning(cfg, why));
        }
        Ok(settings)
    }

    fn dns_list(&self) -> String {
        self.cluster_dns
            .iter()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Which defaults a cluster without a KubeletConfiguration gets, and how to change them.
    fn defaults_warning(&self, cfg: &JoinConfig, why: &str) -> String {
        let dns_from = if cfg.cluster_dns.is_some() {
            "set by you".to_string()
        } else if let Some(s) = &self.service_subnet {
            format!("from serviceSubnet {s}")
        } else {
            format!("kubeadm's default service subnet {DEFAULT_SERVICE_SUBNET}")
        };
        format!(
            "the cluster publishes no KubeletConfiguration (kube-system/kubelet-config: {why}); using defaults: clusterDNS {} ({dns_from}), clusterDomain {}, cgroupDriver {} ({}). If your cluster differs, set --cluster-dns, --cluster-domain and --cgroup-driver (or clusterDNS/clusterDomain/cgroupDriver in the config file)",
            self.dns_list(),
            self.cluster_domain,
            self.cgroup_driver.as_str(),
            self.cgroup_how,
        )
    }

    /// The configure step's line in the report.
    fn note(&self, cfg: &JoinConfig) -> String {
        format!(
            "cgroupDriver {} ({}); clusterDNS {}; clusterDomain {}; runtime {}{}",
            self.cgroup_driver.as_str(),
            self.cgroup_how,
            self.dns_list(),
            self.cluster_domain,
            cfg.cri_socket,
            hostname_override(cfg).map_or(String::new(), |n| format!("; --hostname-override={n}")),
        )
    }
}

/// The user's word, else what the container runtime is configured for (its files, else its
/// answer over CRI), else the default for
/// this root ([`host::fallback_cgroup_driver`]: systemd only where systemd runs or the image has
/// it), with a warning: a wrong driver keeps kubelet from starting pods.
fn cgroup_driver(
    cfg: &JoinConfig,
    machine: &dyn Host,
    paths: &Paths,
    runtime: RuntimeDriver,
    report: &mut JoinReport,
) -> (CgroupDriver, String) {
    match (cfg.cgroup_driver, runtime) {
        (Some(d), _) => (d, "set by you".to_string()),
        (None, None) => unreachable!("the runtime is asked whenever the user set no driver"),
        (None, Some(answer)) => match answer {
            Ok((d, how)) => (d, how),
            Err(err) => {
                let (driver, why) = host::fallback_cgroup_driver(machine, paths);
                if driver == CgroupDriver::Cgroupfs {
                    // kubeadm would say systemd here; say why we do not.
                    tracing::info!("cgroup driver {}: {why}", driver.as_str());
                }
                report.warn(format!(
                    "cannot tell which cgroup driver the container runtime uses ({err}); using {} ({why}) — set --cgroup-driver if the runtime differs, or kubelet will fail to start pods",
                    driver.as_str()
                ));
                (driver, why)
            }
        },
    }
}

/// `--hostname-override` when the node name is not the hostname (else kubelet registers the
/// wrong name).
fn hostname_override(cfg: &JoinConfig) -> Option<&str> {
    (cfg.node_name != cfg.hostname).then_some(cfg.node_name.as_str())
}

/// The user's KubeletConfiguration fragment with their clusterDNS/clusterDomain, which win over
/// the cluster's; `None` when there is nothing to override.
fn kubelet_overrides(cfg: &JoinConfig) -> Option<serde_norway::Value> {
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
    let given = overrides.as_mapping().is_some_and(|m| !m.is_empty());
    given.then_some(overrides)
}

/// The files kubelet reads, rendered: CA, KubeletConfiguration, flags, kubelet.conf last.
fn render_files(
    cfg: &JoinConfig,
    facts: &ClusterFacts,
    settings: &Settings,
    server: &str,
    ca_pem: &[u8],
) -> Result<Vec<PlannedFile>, Error> {
    let overrides = kubelet_overrides(cfg);
    let kubelet_yaml = kubelet_config::render_kubelet_config(&KubeletConfigInputs {
        cluster: facts.kubelet.found(),
        overrides: overrides.as_ref(),
        cluster_dns: settings.cluster_dns.clone(),
        cluster_domain: settings.cluster_domain.clone(),
        cgroup_driver: settings.cgroup_driver,
        client_ca_file: CA_CERT,
    })?;
    let flags = kubelet_config::render_flags_env(&KubeletFlags {
        cri_endpoint: &cfg.cri_socket,
        node_ip: cfg.node_ip,
        hostname_override: hostname_override(cfg),
        node_labels: &cfg.node_labels,
        extra_args: &cfg.kubelet_extra_args,
    });
    let kubelet_conf = kubeconfig::kubelet_kubeconfig(server, ca_pem, KUBELET_CLIENT_CURRENT);
    let file = |node_path: &str, mode: u32, content: Vec<u8>| PlannedFile {
        node_path: node_path.into(),
        mode,
        content,
        secret: false,
    };
    Ok(vec![
        file(CA_CERT, 0o644, ca_pem.to_vec()),
        file(KUBELET_CONFIG, 0o644, kubelet_yaml.into_bytes()),
        file(KUBELET_FLAGS_ENV, 0o644, flags.into_bytes()),
        // Last: its presence is what kubeadm's drop-in and kubelet take as "joined".
        file(
            KUBELET_KUBECONFIG,
            0o600,
            kubelet_conf.to_yaml().into_bytes(),
        ),
    ])
}
