//! Arguments of `kaas-join token create|list|delete` (the provider's side).

use std::fmt;

use clap::{Args, Subcommand};

use crate::cli::admin::AdminArgs;
use crate::model::output::OutputFormat;
use crate::model::token::DEFAULT_GROUP;

/// `kaas-join token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token (as `kubeadm token create`) and print it, the join command
    /// (--print-join-command) or a join ticket (--ticket).
    Create(CreateArgs),
    /// List the bootstrap tokens. Token secrets are masked (<id>.****************), unlike
    /// `kubeadm token list`, to keep them out of terminals and logs.
    List(ListArgs),
    /// Delete bootstrap tokens, given by id (<id>) or whole token: joins with them stop working.
    Delete(DeleteArgs),
}

/// Arguments of `kaas-join token create`. `Debug` never shows the token.
#[derive(Clone, Args)]
pub struct CreateArgs {
    /// The token to create, [a-z0-9]{6}.[a-z0-9]{16}; default: a new random one.
    #[arg(value_name = "TOKEN")]
    pub token: Option<String>,

    /// How long the token is valid (e.g. 24h, 90m, 1h30m); 0 = never expires.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub ttl: String,

    /// What the token may be used for: signing (cluster-info, for discovery) and/or
    /// authentication (as a bearer token, for the TLS bootstrap).
    #[arg(
        long,
        value_name = "USAGE,...",
        value_delimiter = ',',
        default_value = "signing,authentication"
    )]
    pub usages: Vec<String>,

    /// Extra groups the token authenticates as (each system:bootstrappers:...). kubeadm's
    /// bootstrap RBAC (`kaas-join cluster prepare`) is bound to the default.
    #[arg(
        long,
        value_name = "GROUP,...",
        value_delimiter = ',',
        default_value = DEFAULT_GROUP
    )]
    pub groups: Vec<String>,

    /// A human-friendly description of the token's purpose.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,

    /// Print the whole `kaas-join join --server ... --token ... --discovery-token-ca-cert-hash
    /// ...` command instead of only the token.
    #[arg(long, conflicts_with = "ticket")]
    pub print_join_command: bool,

    /// Print `kaas-join join <ticket>`: one string carrying server, token and CA pin, with a
    /// checksum (see README, "Join ticket").
    #[arg(long)]
    pub ticket: bool,

    /// The API server nodes join through, host:port or https://host[:port], for the join
    /// command or ticket. Default: the admin kubeconfig's server (on a hosted control plane the
    /// nodes may reach another address, e.g. the Service's).
    #[arg(long, value_name = "ENDPOINT")]
    pub server: Option<String>,

    #[command(flatten)]
    pub admin: AdminArgs,
}

impl fmt::Debug for CreateArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateArgs")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ttl", &self.ttl)
            .field("usages", &self.usages)
            .field("groups", &self.groups)
            .field("description", &self.description)
            .field("print_join_command", &self.print_join_command)
            .field("ticket", &self.ticket)
            .field("server", &self.server)
            .field("admin", &self.admin)
            .finish()
    }
}

/// Arguments of `kaas-join token list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Format of the list on standard output.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub output: OutputFormat,

    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Arguments of `kaas-join token delete`. `Debug` never shows a token.
#[derive(Clone, Args)]
pub struct DeleteArgs {
    /// Token ids ([a-z0-9]{6}) or whole tokens.
    #[arg(value_name = "ID|TOKEN", required = true)]
    pub tokens: Vec<String>,

    #[command(flatten)]
    pub admin: AdminArgs,
}

impl fmt::Debug for DeleteArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeleteArgs")
            .field("tokens", &self.tokens.len())
            .field("admin", &self.admin)
            .finish()
    }
}
