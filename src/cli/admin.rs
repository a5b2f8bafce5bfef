//! `--kubeconfig`, shared by the provider's subcommands.

use std::path::PathBuf;

/// `--kubeconfig`, shared by the provider's subcommands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdminArgs {
    /// Admin kubeconfig (a cluster-admin's: kubeadm's /etc/kubernetes/admin.conf). Default: the
    /// first existing file in $KUBECONFIG, else /etc/kubernetes/admin.conf.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
}
