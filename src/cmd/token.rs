//! `kaas-join token create|list|delete`: the provider's side of bootstrap tokens, through an
//! admin kubeconfig. The Secrets themselves are [`crate::k8s::bootstrap_tokens`]'.

use std::io::Write as _;
use std::time::Duration;

use crate::cli::token::{CreateArgs, DeleteArgs, ListArgs, TokenArgs, TokenCommand};
use crate::k8s::admin::AdminError;
use crate::k8s::bootstrap_tokens::{
    ca_pins, create_secret, delete_token, generate_token, list_tokens, token_secret, TokenInfo,
};
use crate::model::exit_code::ExitCode;
use crate::model::output::OutputFormat;
use crate::model::pin::CaPin;
use crate::model::ticket::Ticket;
use crate::model::token::{BootstrapToken, DEFAULT_GROUP, KNOWN_USAGES};
use time::OffsetDateTime;

/// Runs a `token` subcommand; the exit code on success is 0.
pub async fn run(args: TokenArgs) -> Result<ExitCode, AdminError> {
    let mut out = Vec::new();
    match args.command {
        TokenCommand::Create(a) => create(&a, &mut out).await?,
        TokenCommand::List(a) => list(&a, &mut out).await?,
        TokenCommand::Delete(a) => delete(&a, &mut out).await?,
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out).and_then(|()| stdout.flush());
    Ok(ExitCode::Ok)
}

async fn create(args: &CreateArgs, out: &mut Vec<u8>) -> Result<(), AdminError> {
    // Everything the user typed is checked before anything is sent.
    let token = match &args.token {
        Some(t) => BootstrapToken::parse(t).map_err(|e| AdminError::Invalid(e.to_string()))?,
        None => generate_token(),
    };
    let ttl = parse_ttl(&args.ttl)?;
    let mut usages: Vec<String> = Vec::new();
    for u in args
        .usages
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
    {
        if !KNOWN_USAGES.contains(&u) {
            return Err(AdminError::Invalid(format!(
                "--usages {u:?} is not a bootstrap token usage: use {}",
                KNOWN_USAGES.join(" and/or ")
            )));
        }
        if !usages.iter().any(|x| x == u) {
            usages.push(u.to_string());
        }
    }
    let mut groups: Vec<String> = Vec::new();
    for g in args
        .groups
        .iter()
        .map(|g| g.trim())
        .filter(|g| !g.is_empty())
    {
        check_group(g)?;
        if !groups.iter().any(|x| x == g) {
            groups.push(g.to_string());
        }
    }
    if !groups.is_empty() && !usages.iter().any(|u| u == "authentication") {
        return Err(AdminError::Invalid(
            "--groups only matter for a token with the authentication usage: add \
             --usages authentication, or leave --groups out"
                .into(),
        ));
    }
    let server_override = crate::k8s::admin::server_override(args.server.as_deref())?;

    let admin = crate::k8s::admin::connect(args.admin.kubeconfig.as_deref())?;
    let pins = ca_pins(&admin.ca_pem)?;
    let expiration = ttl.map(|d| OffsetDateTime::now_utc() + d);
    let secret = token_secret(
        &token,
        expiration,
        &usages,
        &groups,
        args.description.as_deref(),
    );
    create_secret(&admin, &token, &secret).await?;
    tracing::info!(token_id = token.id(), "bootstrap token created");

    let server = match server_override {
        Some(s) => s,
        None => {
            crate::model::endpoint::normalize_server(&admin.server).unwrap_or(admin.server.clone())
        }
    };
    let line = if args.ticket {
        let ticket = Ticket {
            server,
            token,
            pins,
        };
        format!("kaas-join join {}", ticket.encode().as_str())
    } else if args.print_join_command {
        join_command(&server, &token, &pins)
    } else {
        token.bearer().to_string()
    };
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    Ok(())
}

async fn list(args: &ListArgs, out: &mut Vec<u8>) -> Result<(), AdminError> {
    let admin = crate::k8s::admin::connect(args.admin.kubeconfig.as_deref())?;
    let tokens = list_tokens(&admin).await?;
    let text = match args.output {
        OutputFormat::Json => {
            serde_json::to_string_pretty(&tokens).unwrap_or_else(|_| "[]".into()) + "\n"
        }
        OutputFormat::Text => render_table(&tokens),
    };
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

async fn delete(args: &DeleteArgs, out: &mut Vec<u8>) -> Result<(), AdminError> {
    let ids = args
        .tokens
        .iter()
        .enumerate()
        .map(|(i, a)| token_id(a, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    let admin = crate::k8s::admin::connect(args.admin.kubeconfig.as_deref())?;
    for id in ids {
        delete_token(&admin, &id).await?;
        out.extend_from_slice(format!("bootstrap token {id:?} deleted\n").as_bytes());
    }
    Ok(())
}

/// The table `kubeadm token list` prints (tabwriter: min width 10, padding 3), secrets masked.
pub fn render_table(tokens: &[TokenInfo]) -> String {
    let none = |s: String| if s.is_empty() { "<none>".into() } else { s };
    let mut rows: Vec<[String; 6]> = vec![[
        "TOKEN".into(),
        "TTL".into(),
        "EXPIRES".into(),
        "USAGES".into(),
        "DESCRIPTION".into(),
        "EXTRA GROUPS".into(),
    ]];
    for t in tokens {
        rows.push([
            t.token.clone(),
            t.ttl.clone(),
            t.expires.clone(),
            none(t.usages.join(",")),
            none(t.description.clone()),
            none(t.groups.join(",")),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count() + 3).max(10);
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The one-line `kaas-join join` command for `token` (it runs as printed).
pub fn join_command(server_url: &str, token: &BootstrapToken, pins: &[CaPin]) -> String {
    let mut cmd = format!(
        "kaas-join join --server {} --token {}",
        endpoint(server_url),
        token.bearer().as_str()
    );
    for pin in pins {
        cmd.push_str(&format!(" --discovery-token-ca-cert-hash {pin}"));
    }
    cmd
}

/// `host:port` for `--server`, from an https URL.
fn endpoint(url: &str) -> String {
    url.split_once("://").map_or(url, |(_, r)| r).to_string()
}

/// The token id of a `token delete` argument (an id or a whole token).
fn token_id(arg: &str, index: usize) -> Result<String, AdminError> {
    let arg = arg.trim();
    let is_id = arg.len() == 6
        && arg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if is_id {
        return Ok(arg.to_string());
    }
    // Not echoed: it may be a (mistyped) token.
    BootstrapToken::parse(arg)
        .map(|t| t.id().to_string())
        .map_err(|_| {
            AdminError::Invalid(format!(
                "argument {index} of `token delete` is neither a token id ([a-z0-9]{{6}}) nor a \
                 token ([a-z0-9]{{6}}.[a-z0-9]{{16}}): `kaas-join token list` shows the ids"
            ))
        })
}

/// `--ttl`: `None` for 0 (never expires).
fn parse_ttl(s: &str) -> Result<Option<Duration>, AdminError> {
    let t = s.trim();
    if !t.is_empty()
        && t.trim_end_matches(['s', 'm', 'h'])
            .bytes()
            .all(|b| b == b'0')
    {
        return Ok(None);
    }
    crate::model::duration::parse_duration(t)
        .map(Some)
        .map_err(|reason| {
            AdminError::Invalid(format!(
                "--ttl {s:?} is not a duration: {reason}; use e.g. 24h, 90m, 1h30m, or 0 for a \
                 token that never expires"
            ))
        })
}

/// kubeadm's `BootstrapGroupPattern`: `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`.
fn check_group(g: &str) -> Result<(), AdminError> {
    let rest = g.strip_prefix("system:bootstrappers:").unwrap_or("");
    let ok = !rest.is_empty()
        && rest.len() <= 256
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "--groups {g:?} is not a bootstrap token group: it must match \
             system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9] (e.g. {DEFAULT_GROUP})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::bootstrap_tokens::token_info;

    #[test]
    fn delete_arguments() {
        assert_eq!(token_id("abcdef", 1).unwrap(), "abcdef");
        assert_eq!(token_id("abcdef.0123456789abcdef", 1).unwrap(), "abcdef");
        let err = token_id("abcdef.0123456789abcdeX", 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("argument 2") && !err.contains("0123456789"),
            "{err}"
        );
    }

    #[test]
    fn join_command_runs_as_printed() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let pin: CaPin = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(
            join_command("https://10.0.0.5:6443", &token, std::slice::from_ref(&pin)),
            format!("kaas-join join --server 10.0.0.5:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {pin}")
        );
    }

    #[test]
    fn ttl_and_groups() {
        assert_eq!(parse_ttl("0").unwrap(), None);
        assert_eq!(parse_ttl("0s").unwrap(), None);
        assert_eq!(parse_ttl("24h").unwrap(), Some(Duration::from_secs(86400)));
        assert!(parse_ttl("1d").is_err());
        assert!(check_group(DEFAULT_GROUP).is_ok());
        assert!(check_group("system:masters").is_err());
        assert!(check_group("system:bootstrappers:").is_err());
        assert!(check_group("system:bootstrappers:a-").is_err());
    }

    #[test]
    fn the_list_masks_the_secret() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let exp = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let secret = token_secret(&token, Some(exp), &["signing".into()], &[], None);
        let info = token_info(&secret, exp - time::Duration::hours(3)).unwrap();
        let table = render_table(&[info]);
        assert!(!table.contains("0123456789abcdef"), "{table}");
        assert!(
            table.starts_with("TOKEN                     TTL"),
            "{table}"
        );
    }
}
