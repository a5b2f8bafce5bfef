//! `kaas-join token create|list|delete`: bootstrap token Secrets, exactly as `kubeadm token`
//! makes them (`cmd/kubeadm/app/cmd/token.go`, `apis/bootstraptoken/v1/utils.go`), through an
//! admin kubeconfig ([`crate::admin`]).
//!
//! A token is Secret `kube-system/bootstrap-token-<id>`, type `bootstrap.kubernetes.io/token`,
//! `data` keys `token-id`, `token-secret`, `expiration` (RFC 3339, UTC; left out for `--ttl 0`),
//! `usage-bootstrap-<usage>: "true"` per usage, `auth-extra-groups` (comma-joined) and
//! `description` (when given). `token create` prints the token (the one place kaas-join prints
//! one, to standard output), the join command or a join ticket ([`crate::ticket`]); `token list`
//! never prints a token secret (kubeadm does; we mask it as `<id>.****************`).

use std::fmt;
use std::io::Write as _;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::admin::{Admin, AdminArgs, AdminError};
use crate::config::OutputFormat;
use crate::pin::CaPin;
use crate::ticket::Ticket;
use crate::token::BootstrapToken;

/// kubeadm's default extra group for node tokens.
pub const DEFAULT_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// The usages kubeadm knows (`bootstrapapi.KnownTokenUsages`).
pub const KNOWN_USAGES: &[&str] = &["signing", "authentication"];
const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
const SECRETS: &str = "/api/v1/namespaces/kube-system/secrets";

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

/// Runs a `token` subcommand; the exit code on success is 0.
pub async fn run(args: TokenArgs) -> Result<u8, AdminError> {
    let mut out = Vec::new();
    match args.command {
        TokenCommand::Create(a) => create(&a, &mut out).await?,
        TokenCommand::List(a) => list(&a, &mut out).await?,
        TokenCommand::Delete(a) => delete(&a, &mut out).await?,
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out).and_then(|()| stdout.flush());
    Ok(0)
}

/// A new random token, `[a-z0-9]{6}.[a-z0-9]{16}`, from the system RNG without modulo bias.
pub fn generate_token() -> BootstrapToken {
    use ring::rand::SecureRandom as _;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let rng = ring::rand::SystemRandom::new();
    let mut chars = zeroize::Zeroizing::new(String::with_capacity(23));
    while chars.len() < 23 {
        let mut buf = [0u8; 32];
        rng.fill(&mut buf)
            .expect("the system random number generator failed");
        for b in buf {
            // 252 = 7 * 36: drop 252..=255 so every character is equally likely.
            if b < 252 && chars.len() < 23 {
                if chars.len() == 6 {
                    chars.push('.');
                }
                chars.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
    }
    BootstrapToken::parse(&chars).expect("a generated token is well-formed")
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
    crate::config::parse_duration(t)
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

/// The Secret `kubeadm token create` writes (`BootstrapTokenToSecret`).
pub fn token_secret(
    token: &BootstrapToken,
    expiration: Option<OffsetDateTime>,
    usages: &[String],
    groups: &[String],
    description: Option<&str>,
) -> Value {
    let b64 = |s: &str| Value::String(STANDARD.encode(s.as_bytes()));
    let mut data = serde_json::Map::new();
    data.insert("token-id".into(), b64(token.id()));
    data.insert("token-secret".into(), b64(token.secret()));
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        data.insert("description".into(), b64(d));
    }
    if let Some(exp) = expiration {
        data.insert("expiration".into(), b64(&rfc3339(exp)));
    }
    for usage in usages {
        data.insert(format!("usage-bootstrap-{usage}"), b64("true"));
    }
    if !groups.is_empty() {
        data.insert("auth-extra-groups".into(), b64(&groups.join(",")));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{}", token.id()), "namespace": "kube-system"},
        "type": SECRET_TYPE,
        "data": data,
    })
}

/// Go's `time.RFC3339` of a UTC time: whole seconds, `Z`.
fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `host:port` for `--server`, from an https URL.
fn endpoint(url: &str) -> String {
    url.split_once("://").map_or(url, |(_, r)| r).to_string()
}

/// The CA pins of every certificate in the admin kubeconfig's CA bundle.
pub fn ca_pins(ca_pem: &[u8]) -> Result<Vec<CaPin>, AdminError> {
    let certs = crate::pin::certificates_from_pem(ca_pem)
        .map_err(|e| AdminError::Invalid(format!("the admin kubeconfig's CA: {e}")))?;
    certs
        .iter()
        .map(|der| {
            CaPin::of_certificate_der(der)
                .map_err(|e| AdminError::Invalid(format!("the admin kubeconfig's CA: {e}")))
        })
        .collect()
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
    let server_override = crate::admin::server_override(args.server.as_deref())?;

    let admin = crate::admin::connect(&args.admin)?;
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
        None => crate::config::normalize_server(&admin.server).unwrap_or(admin.server.clone()),
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

async fn create_secret(
    admin: &Admin,
    token: &BootstrapToken,
    secret: &Value,
) -> Result<(), AdminError> {
    match admin.client.post_json::<_, Value>(SECRETS, secret).await {
        Ok(_) => Ok(()),
        Err(e) if e.status_code() == Some(409) => Err(AdminError::Invalid(format!(
            "a bootstrap token with id {:?} already exists: create another one (leave the TOKEN \
             argument out for a random one), or delete it first with `kaas-join token delete {}`",
            token.id(),
            token.id()
        ))),
        Err(e) => Err(admin.api_error(e, "create Secrets in kube-system")),
    }
}

/// One row of `token list`, without the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub id: String,
    /// `<id>.****************`.
    pub token: String,
    /// Go's `ShortHumanDuration` of the time left, `<forever>` without expiration.
    pub ttl: String,
    /// RFC 3339, or `<never>`.
    pub expires: String,
    pub usages: Vec<String>,
    pub description: String,
    pub groups: Vec<String>,
}

/// `duration.ShortHumanDuration` (apimachinery), as `kubeadm token list` shows the TTL.
pub fn short_human_duration(seconds: i64) -> String {
    if seconds < -1 {
        "<invalid>".into()
    } else if seconds < 0 {
        "0s".into()
    } else if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 3600 {
        format!("{}m", seconds / 60)
    } else if seconds < 24 * 3600 {
        format!("{}h", seconds / 3600)
    } else if seconds < 365 * 24 * 3600 {
        format!("{}d", seconds / (24 * 3600))
    } else {
        format!("{}y", seconds / (365 * 24 * 3600))
    }
}

/// A token Secret as `BootstrapTokenFromSecret` reads it; `None` if it is not one.
pub fn token_info(secret: &Value, now: OffsetDateTime) -> Option<TokenInfo> {
    let data = secret["data"].as_object()?;
    let get = |k: &str| {
        data.get(k)
            .and_then(Value::as_str)
            .and_then(|v| STANDARD.decode(v).ok())
            .and_then(|b| String::from_utf8(b).ok())
    };
    let id = get("token-id")?;
    if secret["metadata"]["name"].as_str() != Some(&format!("bootstrap-token-{id}")) {
        return None;
    }
    let (ttl, expires) = match get("expiration") {
        None => ("<forever>".to_string(), "<never>".to_string()),
        Some(e) => {
            match OffsetDateTime::parse(&e, &time::format_description::well_known::Rfc3339) {
                Ok(t) => (short_human_duration((t - now).whole_seconds()), e),
                Err(_) => ("<invalid>".to_string(), e),
            }
        }
    };
    let mut usages: Vec<String> = data
        .keys()
        .filter_map(|k| k.strip_prefix("usage-bootstrap-"))
        .filter(|u| get(&format!("usage-bootstrap-{u}")).as_deref() == Some("true"))
        .map(str::to_string)
        .collect();
    usages.sort();
    let groups = get("auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect();
    Some(TokenInfo {
        token: format!("{id}.****************"),
        id,
        ttl,
        expires,
        usages,
        description: get("description").unwrap_or_default(),
        groups,
    })
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

async fn list(args: &ListArgs, out: &mut Vec<u8>) -> Result<(), AdminError> {
    let admin = crate::admin::connect(&args.admin)?;
    let path = format!("{SECRETS}?fieldSelector=type%3Dbootstrap.kubernetes.io%2Ftoken");
    let list: Value = admin
        .client
        .get_json(&path)
        .await
        .map_err(|e| admin.api_error(e, "list Secrets in kube-system"))?;
    let now = OffsetDateTime::now_utc();
    let tokens: Vec<TokenInfo> = list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|s| s["type"] == SECRET_TYPE)
                .filter_map(|s| token_info(s, now))
                .collect()
        })
        .unwrap_or_default();
    let text = match args.output {
        OutputFormat::Json => {
            serde_json::to_string_pretty(&tokens).unwrap_or_else(|_| "[]".into()) + "\n"
        }
        OutputFormat::Text => render_table(&tokens),
    };
    out.extend_from_slice(text.as_bytes());
    Ok(())
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

async fn delete(args: &DeleteArgs, out: &mut Vec<u8>) -> Result<(), AdminError> {
    let ids = args
        .tokens
        .iter()
        .enumerate()
        .map(|(i, a)| token_id(a, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    let admin = crate::admin::connect(&args.admin)?;
    for id in ids {
        let path = format!("{SECRETS}/bootstrap-token-{id}");
        match admin.client.delete(&path).await {
            Ok(()) => out.extend_from_slice(format!("bootstrap token {id:?} deleted\n").as_bytes()),
            Err(e) if e.status_code() == Some(404) => {
                return Err(AdminError::NotFound(format!(
                    "bootstrap token {id:?} does not exist (expired tokens are removed by the \
                     token cleaner): `kaas-join token list` shows the tokens"
                )))
            }
            Err(e) => return Err(admin.api_error(e, "delete Secrets in kube-system")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_differ() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a.bearer().as_str(), b.bearer().as_str());
        assert_eq!(a.bearer().len(), 23);
    }

    #[test]
    fn secret_is_kubeadms() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let exp = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let s = token_secret(
            &token,
            Some(exp),
            &["signing".into(), "authentication".into()],
            &[DEFAULT_GROUP.into()],
            Some("for tenant a"),
        );
        assert_eq!(s["metadata"]["name"], "bootstrap-token-abcdef");
        assert_eq!(s["metadata"]["namespace"], "kube-system");
        assert_eq!(s["type"], "bootstrap.kubernetes.io/token");
        let d = |k: &str| {
            String::from_utf8(STANDARD.decode(s["data"][k].as_str().unwrap()).unwrap()).unwrap()
        };
        assert_eq!(d("token-id"), "abcdef");
        assert_eq!(d("token-secret"), "0123456789abcdef");
        assert_eq!(d("expiration"), "2027-01-15T08:00:00Z");
        assert_eq!(d("usage-bootstrap-signing"), "true");
        assert_eq!(d("usage-bootstrap-authentication"), "true");
        assert_eq!(d("auth-extra-groups"), DEFAULT_GROUP);
        assert_eq!(d("description"), "for tenant a");
        let never = token_secret(&token, None, &[], &[], None);
        assert!(never["data"].get("expiration").is_none());
        assert!(never["data"].get("description").is_none());
        let info = token_info(&s, exp - time::Duration::hours(3)).unwrap();
        assert_eq!(info.token, "abcdef.****************");
        assert_eq!(info.ttl, "3h");
        assert_eq!(info.usages, ["authentication", "signing"]);
        let table = render_table(&[info]);
        assert!(!table.contains("0123456789abcdef"), "{table}");
        assert!(
            table.starts_with("TOKEN                     TTL"),
            "{table}"
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
    fn short_human_durations() {
        assert_eq!(short_human_duration(-5), "<invalid>");
        assert_eq!(short_human_duration(59), "59s");
        assert_eq!(short_human_duration(3599), "59m");
        assert_eq!(short_human_duration(86399), "23h");
        assert_eq!(short_human_duration(86400 * 3), "3d");
        assert_eq!(short_human_duration(86400 * 800), "2y");
    }

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
}
