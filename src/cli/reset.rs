//! Arguments of `kaas-join reset`.

use std::path::PathBuf;

use clap::Args;

use crate::model::output::OutputFormat;

/// `kaas-join reset`.
#[derive(Debug, Clone, Args)]
pub struct ResetArgs {
    /// Directory that stands for / (image building, tests).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// An admin kubeconfig (a cluster-admin's, e.g. kubeadm's /etc/kubernetes/admin.conf): also
    /// delete this node's Node object. Without it the Node stays (a node's own identity may
    /// not delete Nodes): `kubectl delete node NAME` then.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Print what would be stopped, removed and deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Do not ask for confirmation (needed when standard input is not a terminal).
    #[arg(short, long)]
    pub force: bool,

    /// Format of the report on standard output.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub output: OutputFormat,
}
