//! `kaas-join cluster prepare [--check]`: makes a control plane joinable, or checks it. What
//! is ensured is [`crate::k8s::cluster_prepare`]'s.

use std::io::Write as _;

use crate::cli::cluster::{ClusterArgs, ClusterCommand};
use crate::k8s::admin::AdminError;
use crate::k8s::cluster_prepare::*;
use crate::model::exit_code::ExitCode;

/// Runs `kaas-join cluster ...`; the exit code (0, or 23 for `--check` finding problems).
pub async fn run(args: ClusterArgs) -> Result<ExitCode, AdminError> {
    let ClusterCommand::Prepare(args) = args.command;
    let server = crate::k8s::admin::server_override(args.server.as_deref())?;
    let admin = crate::k8s::admin::connect(args.admin.kubeconfig.as_deref())?;
    let server = server.unwrap_or_else(|| admin.server.clone());
    let kubeconfig = crate::model::kubeconfig::cluster_info_kubeconfig(&server, &admin.ca_pem);
    let desired = desired_objects(&kubeconfig);
    let lines = ensure(&admin, &desired, args.check, |line| {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
    })
    .await?;
    let count = |s: State| lines.iter().filter(|l| l.state == s).count();
    let mut stdout = std::io::stdout().lock();
    if args.check {
        let bad = count(State::Missing) + count(State::Wrong);
        if bad > 0 {
            let _ = writeln!(
                stdout,
                "not prepared: {} missing, {} wrong; run `kaas-join cluster prepare` to fix",
                count(State::Missing),
                count(State::Wrong)
            );
            return Ok(ExitCode::NotPrepared);
        }
        let _ = writeln!(stdout, "prepared: nodes can join with bootstrap tokens");
    } else {
        let _ = writeln!(
            stdout,
            "prepared: {} created, {} updated, {} already right",
            count(State::Created),
            count(State::Updated),
            count(State::Ok)
        );
    }
    Ok(ExitCode::Ok)
}
