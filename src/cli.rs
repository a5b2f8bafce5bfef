//! Command-line definitions (clap derive) and nothing else: the raw arguments.
//!
//! Values are kept as the user typed them (strings, mostly); [`crate::config::load`] merges them
//! with the environment and the config file and validates everything into one
//! [`crate::config::JoinConfig`] before any work starts, so that flags and file fields share one
//! set of checks and error messages. Only closed choices (`--cgroup-driver`, `--output`) are
//! checked by clap.
//!
//! The bootstrap token is deliberately not bound to an environment variable here: clap would show
//! the variable's value in `--help`. `KAAS_JOIN_TOKEN` is read by the config loader instead.

use std::fmt;
use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::config::{CgroupDriver, OutputFormat};

/// kaas-join joins this machine to a kubeadm-style Kubernetes control plane as a worker node.
#[derive(Debug, Parser)]
#[command(
    name = "kaas-join",
    version,
    about = "Join this machine to a kubeadm-style Kubernetes control plane as a worker node",
    long_about = "Join this machine to a kubeadm-style Kubernetes control plane as a worker node.\n\n\
        kaas-join accepts what `kubeadm join` accepts (bootstrap token, CA public-key pins, a \
        kubeadm JoinConfiguration file), verifies the cluster, obtains the kubelet's client \
        certificate itself and writes kubelet's configuration.\n\n\
        Example:\n  kaas-join join --server 10.0.0.5:6443 --token-file /etc/kaas-join/token \\\n    \
        --discovery-token-ca-cert-hash sha256:<hash>",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More log output on stderr: -v info, -vv debug, -vvv trace (with the HTTP connection
    /// pool's logs). Logs never contain the token.
    #[arg(short, long, action = ArgAction::Count, global = true, display_order = 100)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join this machine to the cluster: discover and verify the control plane, obtain kubelet's
    /// client certificate and write kubelet's configuration.
    Join(JoinArgs),
    /// Join if this machine has not joined yet (resuming a half-done join, waiting for its
    /// config or token), then run kubelet as a supervised child and report the node's health
    /// to the control plane. What the systemd unit runs.
    Run(RunArgs),
    /// Show this node's state: joined or not, server, CA pin, client certificate expiry, kubelet
    /// and the conditions last reported. The exit code says healthy (0) or not.
    Status(StatusArgs),
    /// Check whether this machine can join (root, kubelet, container runtime, cgroup driver,
    /// swap, sysctls, modules, ports, files of another join), and, given a server and a token,
    /// the control plane's side (token known, CSRs allowed and auto-approved, clock skew).
    /// Writes nothing. Takes `join`'s flags (replace `join` by `preflight` in a join command),
    /// with --discovery-timeout 10s by default. `join` runs the local checks first; exit code
    /// 24 on errors.
    Preflight(crate::preflight::PreflightArgs),
    /// Print a shell completion script to standard output, generated from this command line's
    /// definition (e.g. `kaas-join completions bash > /usr/share/bash-completion/completions/kaas-join`).
    Completions(CompletionsArgs),
    /// Print a man page (roff) to standard output, generated from this command line's
    /// definition: kaas-join(1), or kaas-join-SUBCOMMAND(1). For packaging.
    #[command(hide = true)]
    Manpage(ManpageArgs),
    /// The provider's side: create, list and delete bootstrap tokens through an admin
    /// kubeconfig, as `kubeadm token` does; print a join command or a join ticket.
    Token(crate::tokens::TokenArgs),
    /// The provider's side: make a control plane not set up by kubeadm joinable
    /// (`cluster prepare`), or check it (`cluster prepare --check`).
    Cluster(crate::prepare::ClusterArgs),
    /// Undo this machine's join: stop kubelet (and `kaas-join run`), remove the files kaas-join
    /// wrote and the client certificates kubelet rotated from them, nothing else; with an admin
    /// --kubeconfig, also delete the Node. Safe to re-run.
    Reset(crate::reset::ResetArgs),
}

/// Arguments of `kaas-join completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Arguments of `kaas-join manpage`.
#[derive(Debug, Clone, Args)]
pub struct ManpageArgs {
    /// The subcommand whose page to print (kaas-join-SUBCOMMAND(1)); without it, kaas-join(1).
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

/// The completion script for `shell`, from the clap definition.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory as _;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "kaas-join", &mut out);
    out
}

/// The visible subcommands that get a page of their own (kaas-join-NAME(1)).
pub fn manpage_subcommands() -> Vec<String> {
    use clap::CommandFactory as _;
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

/// The man page (roff) of kaas-join, or of one subcommand as kaas-join-NAME(1), from the clap
/// definition. `Err` names the subcommands there are.
pub fn manpage(subcommand: Option<&str>) -> Result<Vec<u8>, String> {
    use clap::CommandFactory as _;
    // No `help` subcommand in the pages (it has no page of its own), as clap_mangen's own
    // generate_to does; `build` propagates -v, --help and --version into the subcommands.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let page = match subcommand {
        None => cmd,
        Some(name) => {
            let sub = cmd
                .get_subcommands()
                .find(|c| c.get_name() == name && !c.is_hide_set())
                .ok_or_else(|| {
                    format!(
                        "no subcommand {name:?}; the pages are: {}",
                        manpage_subcommands().join(", ")
                    )
                })?;
            // After `build`, its display name is "kaas-join-NAME" (the page's title, as
            // clap_mangen's own generate_to names pages) and its bin name "kaas-join NAME".
            sub.clone()
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .source(format!("kaas-join {}", env!("CARGO_PKG_VERSION")))
        .render(&mut out)
        .map_err(|e| format!("cannot render the man page: {e}"))?;
    Ok(out)
}

/// Arguments of `kaas-join run`: everything `join` takes, plus how to run kubelet.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub join: JoinArgs,

    /// The kubelet binary to supervise.
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/kubelet")]
    pub kubelet: PathBuf,

    /// An extra kubelet argument (e.g. --kubelet-arg=--v=2). Repeatable; appended after the
    /// arguments from the flags files.
    #[arg(long = "kubelet-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub kubelet_args: Vec<String>,

    /// Consecutive failed kubelet health checks (healthz) before kubelet is restarted.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub liveness_failures: u32,

    /// How often the node's conditions are re-sent when nothing changes (heartbeat).
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub heartbeat: String,

    /// Do not supervise kubelet: only join (if needed) and report the node's health. For nodes
    /// whose kubelet runs as its own systemd unit.
    #[arg(long)]
    pub no_kubelet: bool,
}

/// Arguments of `kaas-join status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Directory that stands for / when reading files.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Format of the result on standard output.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub output: OutputFormat,
}

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

impl ValueEnum for CgroupDriver {
    fn value_variants<'a>() -> &'a [Self] {
        &[CgroupDriver::Systemd, CgroupDriver::Cgroupfs]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

impl ValueEnum for OutputFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[OutputFormat::Text, OutputFormat::Json]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            OutputFormat::Text => PossibleValue::new("text").help("human-readable report"),
            OutputFormat::Json => PossibleValue::new("json").help("one JSON object"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn join(args: &[&str]) -> JoinArgs {
        let mut argv = vec!["kaas-join", "join"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Join(a) => a,
            other => panic!("not a join: {other:?}"),
        }
    }

    #[test]
    fn parses_a_kubeadm_style_join() {
        let a = join(&[
            "--server",
            "10.0.0.5:6443",
            "--server=https://cp.example:443",
            "--token-file",
            "/etc/kaas-join/token",
            "--discovery-token-ca-cert-hash",
            "sha256:aa,sha256:bb",
            "--discovery-token-ca-cert-hash=sha256:cc",
            "--node-labels",
            "a=b,c=d",
            "--node-labels",
            "e=f",
            "--cgroup-driver",
            "systemd",
            "--cluster-dns",
            "10.96.0.10,fd00::10",
            "--output",
            "json",
            "--discovery-timeout",
            "90s",
        ]);
        assert_eq!(a.server, ["10.0.0.5:6443", "https://cp.example:443"]);
        assert_eq!(a.discovery_token_ca_cert_hash.len(), 3);
        assert_eq!(a.node_labels, ["a=b,c=d", "e=f"]);
        assert_eq!(a.cgroup_driver, Some(CgroupDriver::Systemd));
        assert_eq!(a.cluster_dns, ["10.96.0.10", "fd00::10"]);
        assert_eq!(a.output, OutputFormat::Json);
        assert_eq!(a.root, PathBuf::from("/"));
        assert_eq!(a.discovery_timeout.as_deref(), Some("90s"));
        assert!(a.tls_bootstrap_timeout.is_none());
    }

    #[test]
    fn defaults() {
        let a = join(&[]);
        assert_eq!(a.output, OutputFormat::Text);
        assert_eq!(a.root, PathBuf::from("/"));
        assert!(!a.dry_run && !a.force);
    }

    #[test]
    fn refuses_unknown_cgroup_driver() {
        assert!(Cli::try_parse_from(["kaas-join", "join", "--cgroup-driver", "cgroupv2"]).is_err());
    }

    #[test]
    fn verbose_is_global() {
        let cli = Cli::try_parse_from(["kaas-join", "join", "-vv"]).unwrap();
        assert_eq!(cli.verbose, 2);
    }

    #[test]
    fn debug_hides_the_token() {
        let a = join(&["--token", "abcdef.0123456789abcdef"]);
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
    }

    #[test]
    fn completions_and_manpage_come_from_the_definition() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::Elvish,
            clap_complete::Shell::PowerShell,
        ] {
            let script = String::from_utf8(completions(shell)).unwrap();
            for word in ["join", "run", "status", "--token-file"] {
                assert!(script.contains(word), "{shell}: no {word} in\n{script}");
            }
        }
        let page = String::from_utf8(manpage(None).unwrap()).unwrap();
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
        for word in ["kaas\\-join", "join", "run", "status"] {
            assert!(page.contains(word), "no {word} in\n{page}");
        }
        // The hidden subcommand is not advertised.
        assert!(!page.contains("manpage"), "{page}");
        assert!(!manpage_subcommands().contains(&"manpage".to_string()));
        for sub in manpage_subcommands() {
            let page = String::from_utf8(manpage(Some(&sub)).unwrap()).unwrap();
            assert!(page.contains(&format!("kaas\\-join\\-{sub}")), "{page}");
        }
        let join = String::from_utf8(manpage(Some("join")).unwrap()).unwrap();
        assert!(join.contains("token\\-file"), "{join}");
        assert!(manpage(Some("manpage")).unwrap_err().contains("join, run"));
    }

    #[test]
    fn manpage_is_hidden_from_help() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("completions"), "{help}");
        assert!(!help.contains("manpage"), "{help}");
    }

    #[test]
    fn token_help_warns_about_process_list() {
        let help = Cli::command()
            .find_subcommand_mut("join")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("process list"), "{help}");
        assert!(help.contains("--token-file"), "{help}");
    }
}
