//! `kaas-join token create|list|delete`: bootstrap token Secrets, exactly as `kubeadm token`
//! makes them (`cmd/kubeadm/app/cmd/token.go`, `apis/bootstraptoken/v1/utils.go`), through an
//! admin kubeconfig ([`crate::k8s::admin`]).
//!
//! A token is Secret `kube-system/bootstrap-token-<id>`, type `bootstrap.kubernetes.io/token`,
//! `data` keys `token-id`, `token-secret`, `expiration` (RFC 3339, UTC; left out for `--ttl 0`),
//! `usage-bootstrap-<usage>: "true"` per usage, `auth-extra-groups` (comma-joined) and
//! `description` (when given). `token create` prints the token (the one place kaas-join prints
//! one, to standard output), the join command or a join ticket ([`crate::model::ticket`]); `token list`
//! never prints a token secret (kubeadm does; we mask it as `<id>.****************`).
//!
//! Everything said to the API server about tokens is here ([`create_secret`], [`list_tokens`],
//! [`delete_token`]); `cmd::token` checks the arguments and prints.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::k8s::admin::{Admin, AdminError};
use crate::model::pin::CaPin;
use crate::model::token::BootstrapToken;

const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Where bootstrap token Secrets live (`/<name>` for one).
const SECRETS: &str = "/api/v1/namespaces/kube-system/secrets";

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

/// The CA pins of every certificate in the admin kubeconfig's CA bundle.
pub fn ca_pins(ca_pem: &[u8]) -> Result<Vec<CaPin>, AdminError> {
    let certs = crate::model::pin::certificates_from_pem(ca_pem)
        .map_err(|e| AdminError::Invalid(format!("the admin kubeconfig's CA: {e}")))?;
    certs
        .iter()
        .map(|der| {
            CaPin::of_certificate_der(der)
                .map_err(|e| AdminError::Invalid(format!("the admin kubeconfig's CA: {e}")))
        })
        .collect()
}

/// Creates the token's Secret (`token_secret`); an id already taken is refused with the fix.
pub async fn create_secret(
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

/// The bootstrap tokens in kube-system (Secrets of their type that read as tokens), secrets
/// masked, as `token list` shows them.
pub async fn list_tokens(admin: &Admin) -> Result<Vec<TokenInfo>, AdminError> {
    let path = format!("{SECRETS}?fieldSelector=type%3Dbootstrap.kubernetes.io%2Ftoken");
    let list: Value = admin
        .client
        .get_json(&path)
        .await
        .map_err(|e| admin.api_error(e, "list Secrets in kube-system"))?;
    let now = OffsetDateTime::now_utc();
    Ok(list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|s| s["type"] == SECRET_TYPE)
                .filter_map(|s| token_info(s, now))
                .collect()
        })
        .unwrap_or_default())
}

/// Deletes the Secret of token `id`; a token that is not there is [`AdminError::NotFound`].
pub async fn delete_token(admin: &Admin, id: &str) -> Result<(), AdminError> {
    let path = format!("{SECRETS}/bootstrap-token-{id}");
    match admin.client.delete(&path).await {
        Ok(()) => Ok(()),
        Err(e) if e.status_code() == Some(404) => Err(AdminError::NotFound(format!(
            "bootstrap token {id:?} does not exist (expired tokens are removed by the token \
             cleaner): `kaas-join token list` shows the tokens"
        ))),
        Err(e) => Err(admin.api_error(e, "delete Secrets in kube-system")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::token::DEFAULT_GROUP;

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
}
