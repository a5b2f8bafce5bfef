//! `kaas-join`: parse, set up logging, run, map the error to its documented exit code.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;
use kaas_join::cli::Cli;
use kaas_join::model::exit_code::ExitCode as Exit;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kaas-join: cannot start: {e}");
            return ExitCode::from(Exit::Internal.code());
        }
    };
    match runtime.block_on(kaas_join::cmd::dispatch(cli.command)) {
        Ok(code) => ExitCode::from(code.code()),
        Err(err) => {
            eprintln!("kaas-join: error: {err}");
            ExitCode::from(err.exit_code().code())
        }
    }
}

/// Logs go to stderr; stdout carries only the report. Default: warnings; -v info, -vv debug,
/// -vvv trace. No level prints the token or a key: they are never passed to a log macro.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    // Our own logs at the chosen level; libraries that log through tracing (hyper) only from
    // -vvv on. rustls and reqwest use the `log` crate, which is deliberately not bridged: no
    // dependency for it, and nothing of theirs reaches the output (tests/secret_hygiene.rs).
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("kaas_join", level)
        // kubelet's own output, passed through by the supervisor: always, as the journal's record.
        .with_target("kubelet", level.max(tracing::Level::INFO))
        .with_default(if verbose >= 3 {
            tracing::Level::TRACE
        } else {
            tracing::Level::WARN
        });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .with(filter)
        .init();
}
