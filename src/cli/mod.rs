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

pub mod admin;
pub mod cluster;
pub mod join;
pub mod preflight;
pub mod reset;
pub mod run;
pub mod status;
pub mod token;
pub mod upgrade_kubelet;

use clap::builder::PossibleValue;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

pub use join::JoinArgs;
pub use run::RunArgs;
pub use status::StatusArgs;

use crate::model::cgroup_driver::CgroupDriver;
use crate::model::output::OutputFormat;

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
    Preflight(preflight::PreflightArgs),
    /// Print a shell completion script to standard output, generated from this command line's
    /// definition (e.g. `kaas-join completions bash > /usr/share/bash-completion/completions/kaas-join`).
    Completions(CompletionsArgs),
    /// Print a man page (roff) to standard output, generated from this command line's
    /// definition: kaas-join(1), or kaas-join-SUBCOMMAND(1). For packaging.
    #[command(hide = true)]
    Manpage(ManpageArgs),
    /// The provider's side: create, list and delete bootstrap tokens through an admin
    /// kubeconfig, as `kubeadm token` does; print a join command or a join ticket.
    Token(token::TokenArgs),
    /// The provider's side: make a control plane not set up by kubeadm joinable
    /// (`cluster prepare`), or check it (`cluster prepare --check`).
    Cluster(cluster::ClusterArgs),
    /// Undo this machine's join: stop kubelet (and `kaas-join run`), remove the files kaas-join
    /// wrote and the client certificates kubelet rotated from them, nothing else; with an admin
    /// --kubeconfig, also delete the Node. Safe to re-run.
    Reset(reset::ResetArgs),
    /// Upgrade kubelet in place: check the new binary (it is kubelet, within the version skew
    /// policy against kube-apiserver), hand it to the running `kaas-join run`, which swaps it in
    /// (the old one kept as <kubelet>.previous), restarts kubelet and rolls back by itself when
    /// the new one does not pass its healthz in time; wait for the outcome. Pods are not
    /// evicted: drain the node first (`kubectl drain`) if they must move. Exit code 0 only when
    /// the new kubelet is healthy.
    UpgradeKubelet(upgrade_kubelet::UpgradeKubeletArgs),
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
    use std::path::PathBuf;

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
