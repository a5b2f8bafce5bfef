//! Arguments of `kaas-join join` (and, flattened, of `run` and `preflight`).

use std::fmt;
use std::path::PathBuf;

use clap::Args;

use crate::model::cgroup_driver::CgroupDriver;
use crate::model::output::OutputFormat;

/// Arguments of `kaas-join join`. Flags take precedence over `KAAS_JOIN_TOKEN`, which takes
/// precedence over the config file.
///
/// `Debug` is written by hand: it never shows the token.
#[derive(Clone, Default, Args)]
pub struct JoinArgs {
    /// A join ticket (from `kaas-join token create --ticket`): server, token and CA pin in one
    /// string, instead of --server, --token/--token-file and --discovery-token-ca-cert-hash.
    /// "-" reads it from standard input (the ticket holds the token: on the command line it is
    /// visible in the process list).
    #[arg(value_name = "TICKET")]
    pub ticket: Option<String>,

    /// API server to discover the cluster from: host:port, [ipv6]:port or https://host[:port]
    /// (port 443 by default for URLs). Repeat to give several; they are tried in turn.
    #[arg(long = "server", value_name = "ENDPOINT")]
    pub server: Vec<String>,

    /// Bootstrap token (<id>.<secret>, from `kubeadm token create`). Visible to other users in
    /// the process list: prefer --token-file or the KAAS_JOIN_TOKEN environment variable.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,

    /// File holding the bootstrap token; "-" reads it from standard input. The file must not be
    /// readable by group or others (chmod 600). The token can also come from the KAAS_JOIN_TOKEN
    /// environment variable or the config file.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Public-key pin of the cluster CA, sha256:<hex> (printed by `kubeadm token create
    /// --print-join-command`). Repeat or separate with commas; the CA must match one of them.
    #[arg(long, value_name = "sha256:HEX", value_delimiter = ',')]
    pub discovery_token_ca_cert_hash: Vec<String>,

    /// Trust the cluster CA of the first server that answers, without a pin. Dangerous: anyone
    /// who can intercept the connection can pose as the control plane.
    #[arg(long)]
    pub discovery_token_unsafe_skip_ca_verification: bool,

    /// Name of the Node object; a lowercase DNS-1123 subdomain. Default: this machine's hostname,
    /// lowercased.
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// Labels kubelet registers the node with: key=value[,key=value...]. Repeatable. Labels
    /// kubelet may not set on itself (e.g. node-role.kubernetes.io/*) are refused: an admin must
    /// set those with `kubectl label node`.
    #[arg(long, value_name = "KEY=VALUE,...")]
    pub node_labels: Vec<String>,

    /// IP address kubelet advertises for this node (kubelet --node-ip).
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<String>,

    /// Container runtime (CRI) endpoint, e.g. unix:///run/containerd/containerd.sock; a bare
    /// path gets unix:// prepended. Default: detected from the sockets of containerd, CRI-O or
    /// cri-dockerd.
    #[arg(long, value_name = "ENDPOINT")]
    pub cri_socket: Option<String>,

    /// Cgroup driver kubelet uses; must match the container runtime's. Default: read from the
    /// runtime's configuration.
    #[arg(long, value_name = "DRIVER")]
    pub cgroup_driver: Option<CgroupDriver>,

    /// Cluster DNS server IPs for kubelet (comma-separated), used when the cluster does not
    /// publish its kubelet configuration.
    #[arg(long, value_name = "IP,...", value_delimiter = ',')]
    pub cluster_dns: Vec<String>,

    /// Cluster DNS domain for kubelet, used when the cluster does not publish its kubelet
    /// configuration (usually cluster.local).
    #[arg(long, value_name = "DOMAIN")]
    pub cluster_domain: Option<String>,

    /// Config file: a kaas-join.io/v1alpha1 JoinConfiguration, or a kubeadm JoinConfiguration
    /// (v1beta3/v1beta4, optionally with a KubeletConfiguration document). Default:
    /// /etc/kaas-join/config.yaml under --root, if it exists.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory that stands for / when reading and writing files (for tests and image builds).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Check everything and show what would be done, but change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Join again even if this machine has already joined (rewrites kubelet's files).
    #[arg(long)]
    pub force: bool,

    /// Format of the result on standard output.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub output: OutputFormat,

    /// How long to wait for a verified answer from the API server: 90s, 5m, 1m30s, 1h or plain
    /// seconds. Default: 5m.
    #[arg(long, value_name = "DURATION")]
    pub discovery_timeout: Option<String>,

    /// How long to wait for the node's client certificate to be issued (same format).
    /// Default: 5m.
    #[arg(long, value_name = "DURATION")]
    pub tls_bootstrap_timeout: Option<String>,

    /// Preflight checks whose errors are shown as "ignored" instead of stopping the join, e.g.
    /// CRI,Swap (kubeadm's names, case-insensitive; repeatable, comma-separated; "all" ignores
    /// every check). Added to the config file's ignorePreflightErrors. `kaas-join preflight`
    /// lists the checks.
    #[arg(long = "ignore-preflight-errors", value_name = "CHECKS")]
    pub ignore_preflight_errors: Vec<String>,
}

impl fmt::Debug for JoinArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinArgs")
            .field("ticket", &self.ticket.as_ref().map(|_| "<redacted>"))
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field(
                "discovery_token_ca_cert_hash",
                &self.discovery_token_ca_cert_hash,
            )
            .field(
                "discovery_token_unsafe_skip_ca_verification",
                &self.discovery_token_unsafe_skip_ca_verification,
            )
            .field("node_name", &self.node_name)
            .field("node_labels", &self.node_labels)
            .field("node_ip", &self.node_ip)
            .field("cri_socket", &self.cri_socket)
            .field("cgroup_driver", &self.cgroup_driver)
            .field("cluster_dns", &self.cluster_dns)
            .field("cluster_domain", &self.cluster_domain)
            .field("config", &self.config)
            .field("root", &self.root)
            .field("dry_run", &self.dry_run)
            .field("force", &self.force)
            .field("output", &self.output)
            .field("discovery_timeout", &self.discovery_timeout)
            .field("tls_bootstrap_timeout", &self.tls_bootstrap_timeout)
            .field("ignore_preflight_errors", &self.ignore_preflight_errors)
            .finish()
    }
}
