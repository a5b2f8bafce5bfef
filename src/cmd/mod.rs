//! One module per subcommand, [`dispatch`] to them, and the error where they meet.
pub mod cluster;
pub mod completions;
pub mod error;
pub mod join;
pub mod preflight;
pub mod reset;
pub mod run;
pub mod status;
pub mod token;
pub mod upgrade_kubelet;

use std::io::Write as _;

use crate::cli::Command;
use crate::cmd::error::Error;
use crate::model::exit_code::ExitCode;

/// Runs the subcommand; `Ok` holds the exit code of a command that ended as designed.
pub async fn dispatch(command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Join(args) => join::run(&args).await,
        Command::Run(args) => run::run(args, run::os_signals()?)
            .await
            .map(|()| ExitCode::Ok),
        Command::Preflight(args) => preflight::run(args).await,
        Command::Status(args) => status::status(&args),
        Command::Completions(args) => Ok(print(&completions::completions(args.shell))),
        Command::Manpage(args) => match completions::manpage(args.subcommand.as_deref()) {
            Ok(page) => Ok(print(&page)),
            Err(e) => {
                eprintln!("kaas-join: error: {e}");
                Ok(ExitCode::Usage)
            }
        },
        Command::Token(args) => Ok(token::run(args).await?),
        Command::Cluster(args) => Ok(cluster::run(args).await?),
        Command::Reset(args) => Ok(reset::run(args).await?),
        Command::UpgradeKubelet(args) => upgrade_kubelet::run(args).await,
    }
}

/// Writes generated output (completions, man page) to stdout; exit code 14 if that fails (a
/// packaging script must not ship half a file).
fn print(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            eprintln!("kaas-join: error: cannot write to standard output: {e}");
            ExitCode::Filesystem
        }
    }
}
