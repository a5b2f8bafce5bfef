//! `kaas-sandbox serve`: runs the sandbox control plane until SIGINT/SIGTERM and prints how to
//! join it (one line on stdout). Logs go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kaas_sandbox::{ApprovalMode, ControlPlaneStyle, Sandbox, SandboxConfig};

#[derive(Parser)]
#[command(
    name = "kaas-sandbox",
    version,
    about = "A sandbox Kubernetes control plane (node-facing API only) for kaas-join's tests and demo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the sandbox, mint a bootstrap token, print the join parameters and serve.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: std::net::SocketAddr,
    /// Which control plane to imitate.
    #[arg(long, value_enum, default_value_t = Style::Kubeadm)]
    style: Style,
    /// What happens to node client CSRs.
    #[arg(long, value_enum, default_value_t = Approval::Auto)]
    approval: Approval,
    /// Delay before auto-approval, in milliseconds.
    #[arg(long, default_value_t = 0)]
    approval_delay_ms: u64,
    /// The `server` published in cluster-info (default: the listen URL).
    #[arg(long)]
    advertised_server: Option<String>,
    /// Where to write ca.crt (default: a new directory under the system temp dir).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// How to print the join parameters on stdout.
    #[arg(long, value_enum, default_value_t = PrintJoin::Json)]
    print_join: PrintJoin,
}

#[derive(Clone, Copy, ValueEnum)]
enum Style {
    Kubeadm,
    Chart,
}

#[derive(Clone, Copy, ValueEnum)]
enum Approval {
    Auto,
    Deny,
    Never,
    Fail,
}

#[derive(Clone, Copy, ValueEnum)]
enum PrintJoin {
    Json,
    Text,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match std::env::var("KAAS_SANDBOX_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("trace") => tracing::Level::TRACE,
        Ok("warn") => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kaas-sandbox: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let Command::Serve(args) = cli.command;
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kaas-sandbox: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = SandboxConfig {
        listen: args.listen,
        style: match args.style {
            Style::Kubeadm => ControlPlaneStyle::Kubeadm,
            Style::Chart => ControlPlaneStyle::Chart,
        },
        approval: match args.approval {
            Approval::Auto => ApprovalMode::Auto {
                delay: std::time::Duration::from_millis(args.approval_delay_ms),
            },
            Approval::Deny => ApprovalMode::Deny,
            Approval::Never => ApprovalMode::Never,
            Approval::Fail => ApprovalMode::Fail,
        },
        advertised_server: args.advertised_server,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config)
        .await
        .map_err(|e| format!("cannot start on {}: {e}", args.listen))?;
    let dir = match args.state_dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("kaas-sandbox-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, sandbox.ca_pem())
        .map_err(|e| format!("cannot write {}: {e}", ca_file.display()))?;
    let token = sandbox.create_token();
    let line = match args.print_join {
        PrintJoin::Json => {
            let q = |s: &str| serde_json::Value::from(s).to_string();
            format!(
                "{{\"server\":{},\"token\":{},\"caCertHash\":{},\"caFile\":{}}}",
                q(&sandbox.url()),
                q(&token),
                q(&sandbox.ca_cert_hash()),
                q(&ca_file.display().to_string())
            )
        }
        PrintJoin::Text => format!(
            "server={} token={} caCertHash={} caFile={}",
            sandbox.url(),
            token,
            sandbox.ca_cert_hash(),
            ca_file.display()
        ),
    };
    println!("{line}");
    wait_for_signal().await?;
    tracing::info!("shutting down");
    sandbox.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| format!("cannot watch SIGINT: {e}")),
        _ = term.recv() => Ok(()),
    }
}
