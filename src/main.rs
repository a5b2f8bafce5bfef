//! `kaas-join`: parse, set up logging, run, map the error to its documented exit code.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::Parser as _;
use kaas_join::cli::{Cli, Command};
use kaas_join::error::{exit, Error};
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
            return ExitCode::from(exit::INTERNAL as u8);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("kaas-join: error: {err}");
            ExitCode::from(err.exit_code() as u8)
        }
    }
}

async fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Join(args) => {
            let (cfg, warnings) =
                kaas_join::config::load(&args, kaas_join::config::Environment::from_process())?;
            let warnings: Vec<String> = warnings.into_iter().map(|w| w.0).collect();
            for w in &warnings {
                tracing::warn!("{w}");
            }
            // Before any request or write; a no-op on an already joined machine.
            kaas_join::preflight::before_join(&cfg, kaas_join::preflight::KubeletBinary::Search)
                .await?;
            let report = kaas_join::join::join(&cfg, warnings).await?;
            let mut stdout = std::io::stdout().lock();
            // A closed stdout (e.g. `| head`) is not a failed join.
            let _ = stdout.write_all(report.render(cfg.output).as_bytes());
            Ok(0)
        }
        Command::Run(args) => kaas_join::run::run(args).await.map(|()| 0),
        Command::Preflight(args) => kaas_join::preflight::run(args).await,
        Command::Status(args) => kaas_join::status::status(&args),
        Command::Completions(args) => Ok(print(&kaas_join::cli::completions(args.shell))),
        Command::Manpage(args) => match kaas_join::cli::manpage(args.subcommand.as_deref()) {
            Ok(page) => Ok(print(&page)),
            Err(e) => {
                eprintln!("kaas-join: error: {e}");
                Ok(kaas_join::error::exit::USAGE as u8)
            }
        },
        Command::Token(args) => Ok(kaas_join::tokens::run(args).await?),
        Command::Cluster(args) => Ok(kaas_join::prepare::run(args).await?),
        Command::Reset(args) => Ok(kaas_join::reset::run(args).await?),
    }
}

/// Writes generated output (completions, man page) to stdout; exit code 14 if that fails (a
/// packaging script must not ship half a file).
fn print(bytes: &[u8]) -> u8 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("kaas-join: error: cannot write to standard output: {e}");
            kaas_join::error::exit::FILESYSTEM as u8
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
