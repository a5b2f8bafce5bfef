//! Where the bootstrap token comes from: `--token`, `--token-file` (a file or `-` for standard
//! input), `KAAS_JOIN_TOKEN`, the config file's `tokenFile` or `token`, or a join ticket that
//! stands for the server, the token and the CA pins. [`super::load`] calls [`read_ticket`]
//! first and [`load_token`] when there is no ticket. The token's text is kept in zeroized
//! buffers and never put into a message or a warning.

use std::io;
use std::path::Path;

use zeroize::Zeroizing;

use super::file::FileSettings;
use super::{ConfigError, Warning, TOKEN_ENV};
use crate::cli::JoinArgs;
use crate::host::files::FsError;
use crate::model::ticket::Ticket;
use crate::model::token::BootstrapToken;

type StdinReader = Box<dyn FnOnce() -> io::Result<String>>;

/// Reads and checks the join ticket (`-`: standard input); the flags it stands for must not
/// be given too.
pub(super) fn read_ticket(
    args: &JoinArgs,
    text: &str,
    stdin: &mut Option<StdinReader>,
    warnings: &mut Vec<Warning>,
) -> Result<Ticket, ConfigError> {
    let conflicts = [
        (!args.server.is_empty(), "--server"),
        (args.token.is_some(), "--token"),
        (args.token_file.is_some(), "--token-file"),
        (
            !args.discovery_token_ca_cert_hash.is_empty(),
            "--discovery-token-ca-cert-hash",
        ),
        (
            args.discovery_token_unsafe_skip_ca_verification,
            "--discovery-token-unsafe-skip-ca-verification",
        ),
    ];
    if let Some((_, flag)) = conflicts.iter().find(|(given, _)| *given) {
        return Err(ConfigError::TicketConflict { flag });
    }
    let text = if text.trim() == "-" {
        let read = stdin.take().ok_or(ConfigError::StdinUnavailable)?;
        Zeroizing::new(read().map_err(ConfigError::Stdin)?)
    } else {
        warnings.push(Warning(
            "the join ticket on the command line is visible to other users in the process list \
             while kaas-join runs (it holds the bootstrap token); pass \"-\" and give it on \
             standard input instead"
                .to_owned(),
        ));
        Zeroizing::new(text.to_owned())
    };
    Ticket::parse(&text).map_err(ConfigError::Ticket)
}

/// The flags the ticket stands for: its server and CA pins as `--server` and
/// `--discovery-token-ca-cert-hash` (its token is taken by [`super::load`] directly).
pub(super) fn args_with_ticket(args: &JoinArgs, ticket: &Ticket) -> JoinArgs {
    JoinArgs {
        server: vec![ticket.server.clone()],
        discovery_token_ca_cert_hash: ticket.pins.iter().map(ToString::to_string).collect(),
        ..args.clone()
    }
}

/// Picks the token by precedence and parses it. The token's text is kept in zeroized buffers.
pub(super) fn load_token(
    args: &JoinArgs,
    env_token: Option<&str>,
    stdin: &mut Option<StdinReader>,
    file: &FileSettings,
    warnings: &mut Vec<Warning>,
) -> Result<BootstrapToken, ConfigError> {
    if args.token.is_some() && args.token_file.is_some() {
        return Err(ConfigError::TokenFlagsConflict);
    }
    let env_token = env_token.filter(|t| !t.trim().is_empty());
    let (text, from): (Zeroizing<String>, String) = if let Some(t) = &args.token {
        warnings.push(Warning(
            "--token on the command line is visible to other users in the process list; use \
             --token-file or KAAS_JOIN_TOKEN"
                .to_owned(),
        ));
        (Zeroizing::new(t.clone()), "--token".to_owned())
    } else if let Some(path) = &args.token_file {
        let from = format!("--token-file {}", path.display());
        (read_token_file(path, stdin, &from)?, from)
    } else if let Some(t) = env_token {
        (Zeroizing::new(t.to_owned()), TOKEN_ENV.to_owned())
    } else if let Some(path) = &file.token_file {
        let from = format!(
            "tokenFile {} in config file {}",
            path.display(),
            file.path.display()
        );
        (read_token_file(path, stdin, &from)?, from)
    } else if let Some(t) = &file.token {
        (
            t.clone(),
            format!(
                "{} in config file {}",
                file.token_field,
                file.path.display()
            ),
        )
    } else {
        return Err(ConfigError::NoToken);
    };
    BootstrapToken::parse(&text).map_err(|error| ConfigError::Token { from, error })
}

/// Reads a token file as given (a path on this machine, not under `--root`) through
/// [`crate::host::files::read_private_file`], or standard input for `-`.
fn read_token_file(
    path: &Path,
    stdin: &mut Option<StdinReader>,
    from: &str,
) -> Result<Zeroizing<String>, ConfigError> {
    if path == Path::new("-") {
        let read = stdin.take().ok_or(ConfigError::StdinUnavailable)?;
        return read().map(Zeroizing::new).map_err(ConfigError::Stdin);
    }
    let bytes = crate::host::files::read_private_file(path, "token file").map_err(|e| match e {
        FsError::Read { path, source } => ConfigError::TokenFileRead {
            path,
            from: from.to_owned(),
            source,
        },
        other => ConfigError::TokenFile(other),
    })?;
    std::str::from_utf8(&bytes)
        .map(|s| Zeroizing::new(s.to_owned()))
        .map_err(|_| ConfigError::TokenNotText {
            from: from.to_owned(),
        })
}

/// Where a new bootstrap token goes so that `join` and `run` read it, in words (for the
/// messages of a node whose identity is lost): the `--token-file` given, else the config file's
/// `tokenFile` (or its `token`), and always `KAAS_JOIN_TOKEN` for the unit. Never the token.
pub fn token_place(args: &JoinArgs) -> String {
    let env = format!(
        "or set {TOKEN_ENV} in kaas-join.service's environment (`systemctl edit kaas-join`)"
    );
    if let Some(path) = &args.token_file {
        return format!("the token file {} (--token-file), {env}", path.display());
    }
    if args.token.is_some() || args.ticket.is_some() {
        return format!("--token or --ticket on the command line, {env}");
    }
    let paths = crate::host::paths::Paths::new(super::root_of(args));
    // A broken file is reported by `load`; here only the place matters.
    match super::file::read_config_file(args, &paths, &mut Vec::new()) {
        Ok(Some(file)) => match (&file.token_file, &file.token) {
            (Some(token_file), _) => format!(
                "the token file {} (tokenFile in {}), {env}",
                token_file.display(),
                file.origin()
            ),
            (None, Some(_)) => format!("{} of {}, {env}", file.token_field, file.origin()),
            (None, None) => format!("a file named by tokenFile in {}, {env}", file.origin()),
        },
        _ => format!(
            "a token file named by tokenFile in the config file ({}), {env}",
            args.config
                .as_ref()
                .map_or_else(
                    || paths.host(crate::host::paths::DEFAULT_CONFIG_FILE),
                    Clone::clone
                )
                .display()
        ),
    }
}
