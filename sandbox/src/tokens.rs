//! Bootstrap tokens, as the control plane keeps them: minted by the [`crate::Sandbox`] handle
//! or read from `bootstrap.kubernetes.io/token` Secrets written through the API, checked by the
//! bootstrap token authenticator, and signed into cluster-info by the bootstrapsigner (which,
//! as the tokencleaner, also drops the signatures of expired or deleted tokens).

use std::collections::BTreeMap;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::shared::{lock, Shared};
use crate::store::{Kind, Obj, ObjectMeta, Secret};
use crate::{authz, sign_detached_jws, util};

/// Token Secrets live here (`bootstrap-token-<id>`).
pub(crate) const TOKEN_NAMESPACE: &str = "kube-system";

/// Options for [`crate::Sandbox::create_token_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOptions {
    /// Created already expired: it authenticates nobody (401) and signs nothing.
    pub expired: bool,
    /// `usage-bootstrap-signing`: the bootstrapsigner adds `jws-kubeconfig-<id>`.
    pub signing: bool,
    /// `usage-bootstrap-authentication`: usable as a Bearer token.
    pub auth: bool,
    /// `auth-extra-groups`.
    pub groups: Vec<String>,
    /// The token's group is bound to the nodeclient ClusterRole, so its node client CSRs are
    /// auto-approved. (In [`crate::ControlPlaneStyle::Bare`] the stored bindings decide instead.)
    pub can_nodeclient: bool,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            expired: false,
            signing: true,
            auth: true,
            groups: vec![authz::KUBEADM_NODE_TOKEN_GROUP.to_string()],
            can_nodeclient: true,
        }
    }
}

/// A bootstrap token, i.e. the Secret `kube-system/bootstrap-token-<id>`. Not `Debug`: it
/// holds the token secret.
#[derive(Clone)]
pub(crate) struct Token {
    pub id: String,
    pub secret: String,
    pub expiration: OffsetDateTime,
    pub opts: TokenOptions,
    /// The bootstrapsigner has processed it (after `jws_delay`).
    pub signed: bool,
}

impl Token {
    pub fn expired(&self) -> bool {
        self.opts.expired || self.expiration <= OffsetDateTime::now_utc()
    }
}

/// Compares two secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Shared {
    /// A valid bootstrap token for `Authorization: Bearer <token>`.
    pub fn authenticate_token(&self, token: &str) -> Option<authz::User> {
        let (id, secret) = token.split_once('.')?;
        let tokens = lock(&self.tokens);
        let t = tokens.get(id)?;
        let ok = constant_time_eq(t.secret.as_bytes(), secret.as_bytes());
        if !ok || t.expired() || !t.opts.auth {
            return None;
        }
        let mut groups = vec![authz::BOOTSTRAPPERS.to_string()];
        groups.extend(t.opts.groups.iter().cloned());
        Some(authz::User::authenticated(
            format!("system:bootstrap:{id}"),
            groups,
        ))
    }

    /// The bootstrapsigner and tokencleaner: makes cluster-info's `jws-kubeconfig-*` keys match
    /// the valid signing tokens, signing the `kubeconfig` cluster-info holds now. Other keys
    /// are left alone.
    pub fn resign_cluster_info(&self) {
        // Without this, two tokens created at once could each read the tokens, then write in
        // the other order: the later token's signature lost, its joins failing "no signature"
        // (seen as a rare exit 6 in tests/crash_resume.rs under CI load).
        let _one_at_a_time = lock(&self.resigning);
        let signers: Vec<(String, String)> = lock(&self.tokens)
            .values()
            .filter(|t| t.signed && t.opts.signing && !t.expired())
            .map(|t| (t.id.clone(), t.secret.clone()))
            .collect();
        self.store.update::<()>(
            Kind::ConfigMap,
            Some("kube-public"),
            "cluster-info",
            move |obj| {
                let Obj::ConfigMap(cm) = obj else {
                    return Ok(false);
                };
                let Some(kubeconfig) = cm.data.get("kubeconfig").cloned() else {
                    return Ok(false);
                };
                let mut data = cm.data.clone();
                data.retain(|k, _| !k.starts_with("jws-kubeconfig-"));
                for (id, secret) in &signers {
                    data.insert(
                        format!("jws-kubeconfig-{id}"),
                        sign_detached_jws(kubeconfig.as_bytes(), id, secret),
                    );
                }
                let changed = cm.data != data;
                cm.data = data;
                Ok(changed)
            },
        );
    }

    /// Makes `token` authenticate and (after `jws_delay`) sign cluster-info.
    pub fn register_token(self: &Arc<Self>, mut token: Token) {
        let immediate = self.config.jws_delay.is_zero();
        token.signed = immediate;
        let id = token.id.clone();
        lock(&self.tokens).insert(id.clone(), token);
        if immediate {
            self.resign_cluster_info();
        } else {
            let shared = self.clone();
            let delay = shared.config.jws_delay;
            self.spawn(async move {
                tokio::time::sleep(delay).await;
                if let Some(t) = lock(&shared.tokens).get_mut(&id) {
                    t.signed = true;
                }
                shared.resign_cluster_info();
            });
        }
    }

    /// Forgets a token (its Secret is gone): it stops authenticating and signing.
    pub fn unregister_token(&self, token_id: &str) -> bool {
        let removed = lock(&self.tokens).remove(token_id).is_some();
        self.resign_cluster_info();
        removed
    }

    /// Mints a token with `opts` (a fresh id, 24 h or already expired), writes its Secret and
    /// registers it; returns `<id>.<secret>`.
    pub fn mint_token(self: &Arc<Self>, opts: TokenOptions) -> String {
        let tokens = lock(&self.tokens);
        let id = loop {
            let id = util::random_token_chars(6);
            if !tokens.contains_key(&id) {
                break id;
            }
        };
        drop(tokens);
        let secret = util::random_token_chars(16);
        let now = OffsetDateTime::now_utc();
        let expiration = if opts.expired {
            now - time::Duration::hours(1)
        } else {
            now + time::Duration::hours(24)
        };
        let token = Token {
            id: id.clone(),
            secret: secret.clone(),
            expiration,
            opts,
            signed: false,
        };
        // Its Secret, as `kubeadm token create` would have written it (listed, deletable).
        let _ = self.store.create(Obj::Secret(token_secret(&token)));
        self.register_token(token);
        format!("{id}.{secret}")
    }

    /// Deletes a token's Secret and forgets the token; whether it was registered.
    pub fn delete_token(&self, token_id: &str) -> bool {
        self.store.delete(
            Kind::Secret,
            Some(TOKEN_NAMESPACE),
            &format!("bootstrap-token-{token_id}"),
        );
        self.unregister_token(token_id)
    }
}

/// A token far in the future stands for "no expiration" (`expiration` key left out).
fn never() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(365 * 100)
}

/// The bootstrap token a `bootstrap.kubernetes.io/token` Secret stands for, read as the
/// bootstrap authenticator and bootstrapsigner read it: named `bootstrap-token-<token-id>`,
/// `token-id` and `token-secret` well-formed. `None` if it is not a usable token Secret.
pub(crate) fn token_from_secret(secret: &Secret) -> Option<Token> {
    use base64::Engine as _;
    if secret.type_ != "bootstrap.kubernetes.io/token" {
        return None;
    }
    let get = |k: &str| {
        secret
            .data
            .get(k)
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .and_then(|b| String::from_utf8(b).ok())
    };
    let id = get("token-id")?;
    let token_secret = get("token-secret")?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !ok(&id, 6)
        || !ok(&token_secret, 16)
        || secret.metadata.name != format!("bootstrap-token-{id}")
    {
        return None;
    }
    let expiration = match get("expiration") {
        None => never(),
        Some(e) => OffsetDateTime::parse(&e, &time::format_description::well_known::Rfc3339)
            // An unparsable expiration makes the authenticator treat the token as expired.
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    };
    let groups: Vec<String> = get("auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect();
    let can_nodeclient = groups.iter().any(|g| g == authz::KUBEADM_NODE_TOKEN_GROUP);
    Some(Token {
        id,
        secret: token_secret,
        expiration,
        opts: TokenOptions {
            expired: false,
            signing: get("usage-bootstrap-signing").as_deref() == Some("true"),
            auth: get("usage-bootstrap-authentication").as_deref() == Some("true"),
            groups,
            can_nodeclient,
        },
        signed: false,
    })
}

/// The Secret `kubeadm token create` would write for `token`.
fn token_secret(token: &Token) -> Secret {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let mut data = BTreeMap::new();
    data.insert("token-id".to_string(), b64(&token.id));
    data.insert("token-secret".to_string(), b64(&token.secret));
    data.insert(
        "expiration".to_string(),
        b64(&util::format_time(token.expiration)),
    );
    if token.opts.signing {
        data.insert("usage-bootstrap-signing".to_string(), b64("true"));
    }
    if token.opts.auth {
        data.insert("usage-bootstrap-authentication".to_string(), b64("true"));
    }
    if !token.opts.groups.is_empty() {
        data.insert(
            "auth-extra-groups".to_string(),
            b64(&token.opts.groups.join(",")),
        );
    }
    Secret {
        metadata: ObjectMeta::new(
            &format!("bootstrap-token-{}", token.id),
            Some(TOKEN_NAMESPACE),
        ),
        data,
        type_: "bootstrap.kubernetes.io/token".to_string(),
    }
}
