//! Arguments of `kaas-join cluster prepare` (the provider's side).

use clap::{Args, Subcommand};

use crate::cli::admin::AdminArgs;

/// `kaas-join cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Make this control plane joinable as `kubeadm init` does (cluster-info and its anonymous
    /// read, the bootstrap RBAC bindings), idempotently; --check only reports.
    Prepare(PrepareArgs),
}

/// Arguments of `kaas-join cluster prepare`.
#[derive(Debug, Clone, Args)]
pub struct PrepareArgs {
    /// Only report what is missing or wrong (exit 23 if anything is); change nothing. For a
    /// provider's health check.
    #[arg(long)]
    pub check: bool,

    /// The API server URL published in cluster-info, host:port or https://host[:port]: what
    /// nodes reach (on a hosted control plane often the Service address, not the admin's).
    /// Default: the admin kubeconfig's server.
    #[arg(long, value_name = "ENDPOINT")]
    pub server: Option<String>,

    #[command(flatten)]
    pub admin: AdminArgs,
}
