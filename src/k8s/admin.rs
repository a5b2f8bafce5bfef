//! The provider's side: an API client from an admin kubeconfig, for `kaas-join token ...` and
//! `kaas-join cluster prepare`.
//!
//! The kubeconfig is `--kubeconfig PATH`, else the first existing file of `$KUBECONFIG` (a
//! colon-separated list, as kubectl takes it; no merging), else `/etc/kubernetes/admin.conf`
//! (kubeadm's). From its current context we take the cluster's `server` and CA
//! (`certificate-authority-data`, or the `certificate-authority` file, relative to the
//! kubeconfig's folder as client-go resolves it) and the user's client certificate and key
//! (`client-certificate-data`/`client-key-data`, or the files) or bearer `token`. Exec and
//! auth-provider plugins are not run. The server is always verified against the CA: the CA is
//! also what the join command's pin is computed from, so `insecure-skip-tls-verify` is refused.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::k8s::client::{ApiClient, ApiError, RequestCounter, Trust};
use crate::model::exit_code::ExitCode;
use crate::model::kubeconfig::{AuthInfo, Cluster, Context, Kubeconfig};

/// kubeadm's admin kubeconfig.
pub const DEFAULT_ADMIN_KUBECONFIG: &str = "/etc/kubernetes/admin.conf";

/// Why the admin kubeconfig could not be used, or the API server refused it. One line each,
/// with the fix; never a credential.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin kubeconfig {}: {reason}", path.display())]
    Kubeconfig { path: PathBuf, reason: String },
    #[error(
        "the admin kubeconfig's user {user:?} may not {action}: use a cluster-admin kubeconfig \
         (--kubeconfig /etc/kubernetes/admin.conf on a kubeadm control plane)"
    )]
    Forbidden { user: String, action: String },
    #[error(
        "the API server rejected the admin kubeconfig's credentials (user {user:?}, 401 \
         Unauthorized): the certificate or token is expired, revoked or from another cluster; use \
         a current cluster-admin kubeconfig"
    )]
    Unauthorized { user: String },
    #[error("{0}")]
    Api(ApiError),
    /// Bad input to a provider subcommand (the message names the flag and the fix).
    #[error("{0}")]
    Invalid(String),
    /// A token, or an object, that is not there.
    #[error("{0}")]
    NotFound(String),
}

impl AdminError {
    /// The documented exit code.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            AdminError::Kubeconfig { .. } | AdminError::Invalid(_) | AdminError::NotFound(_) => {
                ExitCode::Usage
            }
            AdminError::Forbidden { .. } | AdminError::Unauthorized { .. } => ExitCode::NotAllowed,
            AdminError::Api(e) => e.exit_code(),
        }
    }
}

/// The admin's connection to the cluster.
#[derive(Debug)]
pub struct Admin {
    pub client: ApiClient,
    /// The current context's cluster server, `https://host[:port]`.
    pub server: String,
    /// The cluster CA bundle (PEM), from the kubeconfig.
    pub ca_pem: Vec<u8>,
    /// Who the credentials are, for messages: the client certificate's CN, else the
    /// kubeconfig's user entry name.
    pub user: String,
    /// The kubeconfig read.
    pub path: PathBuf,
}

impl Admin {
    /// Sorts an API error into the admin error classes: 403 is "not allowed to <action>", 401
    /// "credentials rejected".
    pub fn api_error(&self, err: ApiError, action: &str) -> AdminError {
        match err.status_code() {
            Some(403) => AdminError::Forbidden {
                user: self.user.clone(),
                action: action.to_string(),
            },
            Some(401) => AdminError::Unauthorized {
                user: self.user.clone(),
            },
            _ => AdminError::Api(err),
        }
    }
}

/// Which kubeconfig to read: the flag, else the first existing entry of `$KUBECONFIG` (or its
/// first entry when none exists, so the error names it), else kubeadm's admin.conf.
pub fn kubeconfig_path(flag: Option<&Path>, env: Option<&OsStr>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(env) = env.filter(|e| !e.is_empty()) {
        let entries: Vec<PathBuf> = std::env::split_paths(env)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if let Some(p) = entries.iter().find(|p| p.exists()).or(entries.first()) {
            return p.clone();
        }
    }
    PathBuf::from(DEFAULT_ADMIN_KUBECONFIG)
}

/// A `--server` given instead of the admin kubeconfig's, normalized as join normalizes it.
pub fn server_override(server: Option<&str>) -> Result<Option<String>, AdminError> {
    server
        .map(|s| {
            crate::model::endpoint::normalize_server(s)
                .map_err(|reason| AdminError::Invalid(format!("--server {s:?} {reason}")))
        })
        .transpose()
}

/// Reads the admin kubeconfig (`--kubeconfig`, else `$KUBECONFIG`, else kubeadm's) and builds
/// its client.
pub fn connect(kubeconfig: Option<&Path>) -> Result<Admin, AdminError> {
    let env = std::env::var_os("KUBECONFIG");
    let path = kubeconfig_path(kubeconfig, env.as_deref());
    let text = std::fs::read_to_string(&path).map_err(|e| AdminError::Kubeconfig {
        path: path.clone(),
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            "does not exist: pass --kubeconfig PATH (a cluster-admin kubeconfig; kubeadm's is \
             /etc/kubernetes/admin.conf) or set KUBECONFIG"
                .to_string()
        } else {
            format!("cannot be read ({e}): check the path and that you may read it")
        },
    })?;
    let config = crate::model::kubeconfig::parse(&text).map_err(|e| AdminError::Kubeconfig {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    from_kubeconfig(&config, &path)
}

fn bad(path: &Path, reason: impl Into<String>) -> AdminError {
    AdminError::Kubeconfig {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A path in a kubeconfig is relative to the kubeconfig's folder (client-go's
/// `ResolveLocalPaths`).
fn resolve(kubeconfig: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        kubeconfig
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(p)
    }
}

/// Inline base64 data, or the file named beside it.
fn data_or_file(
    path: &Path,
    data: Option<&str>,
    file: Option<&str>,
    what: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, AdminError> {
    if let Some(d) = data.filter(|d| !d.trim().is_empty()) {
        let compact: String = d.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        return STANDARD
            .decode(compact)
            .map(|b| Some(Zeroizing::new(b)))
            .map_err(|_| bad(path, format!("{what}-data is not base64")));
    }
    if let Some(f) = file.filter(|f| !f.trim().is_empty()) {
        let full = resolve(path, f);
        return std::fs::read(&full)
            .map(|b| Some(Zeroizing::new(b)))
            .map_err(|e| {
                bad(
                    path,
                    format!("cannot read {what} file {} ({e})", full.display()),
                )
            });
    }
    Ok(None)
}

/// Builds the client from a parsed kubeconfig (`path` for messages and relative files): the
/// current context, its cluster's server and CA, its user's credentials.
pub fn from_kubeconfig(config: &Kubeconfig, path: &Path) -> Result<Admin, AdminError> {
    let (context_name, context) = current_context(config, path)?;
    let cluster = context_cluster(config, context_name, context, path)?;
    let server = cluster_server(cluster, &context.cluster, path)?;
    let ca_pem = cluster_ca(cluster, &context.cluster, path)?;
    let user_name = context.user.clone().unwrap_or_default();
    let no_user = AuthInfo::default();
    let auth = context_user(config, context_name, &user_name, path)?.unwrap_or(&no_user);
    let (client, user) = authenticated_client(auth, &user_name, &server, &ca_pem, path)?;
    Ok(Admin {
        client,
        server,
        ca_pem,
        user,
        path: path.to_path_buf(),
    })
}

/// The current context's name and entry.
fn current_context<'a>(
    config: &'a Kubeconfig,
    path: &Path,
) -> Result<(&'a str, &'a Context), AdminError> {
    let context_name = config
        .current_context
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            let names: Vec<&str> = config.contexts.iter().map(|c| c.name.as_str()).collect();
            bad(
                path,
                format!(
                    "has no current-context: choose one with `kubectl config use-context NAME \
                     --kubeconfig {}` (contexts: {})",
                    path.display(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })?;
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| {
            bad(
                path,
                format!("its current-context {context_name:?} is not among its contexts"),
            )
        })?;
    Ok((context_name, context))
}

/// The cluster the context names.
fn context_cluster<'a>(
    config: &'a Kubeconfig,
    context_name: &str,
    context: &Context,
    path: &Path,
) -> Result<&'a Cluster, AdminError> {
    config
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| {
            bad(
                path,
                format!(
                    "context {context_name:?} names cluster {:?}, which is not among its clusters",
                    context.cluster
                ),
            )
        })
}

/// The cluster's `server`, which must be https.
fn cluster_server(
    cluster: &Cluster,
    cluster_name: &str,
    path: &Path,
) -> Result<String, AdminError> {
    let server = cluster
        .server
        .as_deref()
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(path, format!("cluster {cluster_name:?} has no server")))?;
    if !server.to_ascii_lowercase().starts_with("https://") {
        return Err(bad(
            path,
            format!("server {server:?} is not an https:// URL: the API server only speaks TLS"),
        ));
    }
    Ok(server)
}

/// The cluster CA bundle (PEM), inline or from its file; required, and checked to parse.
fn cluster_ca(cluster: &Cluster, cluster_name: &str, path: &Path) -> Result<Vec<u8>, AdminError> {
    let ca_pem = data_or_file(
        path,
        cluster.certificate_authority_data.as_deref(),
        cluster.certificate_authority.as_deref(),
        "certificate-authority",
    )?
    .ok_or_else(|| {
        bad(
            path,
            format!(
                "cluster {cluster_name:?} has no certificate-authority-data (nor \
                 certificate-authority): kaas-join verifies the API server and computes the join \
                 command's CA pin from it; use a kubeconfig with the cluster CA"
            ),
        )
    })?
    .to_vec();
    crate::model::pin::certificates_from_pem(&ca_pem)
        .map_err(|e| bad(path, format!("its cluster CA is not usable: {e}")))?;
    Ok(ca_pem)
}

/// The user entry the context names; `None` when the entry has no `user` at all.
fn context_user<'a>(
    config: &'a Kubeconfig,
    context_name: &str,
    user_name: &str,
    path: &Path,
) -> Result<Option<&'a AuthInfo>, AdminError> {
    config
        .users
        .iter()
        .find(|u| u.name == user_name)
        .map(|u| u.user.as_ref())
        .ok_or_else(|| {
            bad(
                path,
                format!(
                    "context {context_name:?} names user {user_name:?}, which is not among its \
                     users"
                ),
            )
        })
}

/// A client for `server` verified against `ca_pem`, authenticating as the user: a client
/// certificate and key, else a bearer token. Returns it with who the user is for messages.
fn authenticated_client(
    auth: &AuthInfo,
    user_name: &str,
    server: &str,
    ca_pem: &[u8],
    path: &Path,
) -> Result<(ApiClient, String), AdminError> {
    let counter = Arc::new(RequestCounter::default());
    let cert = data_or_file(
        path,
        auth.client_certificate_data.as_deref(),
        auth.client_certificate.as_deref(),
        "client-certificate",
    )?;
    let key = data_or_file(
        path,
        auth.client_key_data.as_deref(),
        auth.client_key.as_deref(),
        "client-key",
    )?;
    match (cert, key, auth.token.as_deref().filter(|t| !t.is_empty())) {
        (Some(cert), Some(key), _) => {
            let mut identity = Zeroizing::new(cert.to_vec());
            identity.push(b'\n');
            identity.extend_from_slice(&key);
            let client = ApiClient::with_client_certificate(server, ca_pem, &identity, counter)
                .map_err(|e| bad(path, format!("user {user_name:?}: {e}")))?;
            let cn = certificate_cn(&cert).unwrap_or_else(|| user_name.to_string());
            Ok((client, cn))
        }
        (Some(_), None, _) | (None, Some(_), _) => Err(bad(
            path,
            format!(
                "user {user_name:?} has a client certificate without its key (or a key without \
                 its certificate): give both"
            ),
        )),
        (None, None, Some(token)) => {
            let client = ApiClient::new(server, &Trust::Ca(ca_pem.to_vec()), counter)
                .map_err(|e| bad(path, e.to_string()))?
                .with_bearer_token(token);
            Ok((client, user_name.to_string()))
        }
        (None, None, None) => Err(bad(path, no_credentials(auth, user_name))),
    }
}

/// Why a user entry without a certificate or token cannot be used.
fn no_credentials(auth: &AuthInfo, user_name: &str) -> String {
    let plugin = ["exec", "auth-provider"]
        .into_iter()
        .find(|k| auth.extra.contains_key(*k));
    match plugin {
        Some(p) => format!(
            "user {user_name:?} authenticates through an {p} plugin, which kaas-join does not \
             run: use a kubeconfig with a client certificate or a token (kubeadm's admin.conf \
             has a client certificate)"
        ),
        None => format!(
            "user {user_name:?} has no credentials (client-certificate-data and client-key-data, \
             or token): use a cluster-admin kubeconfig"
        ),
    }
}

/// The CN of the first certificate in a PEM.
fn certificate_cn(pem: &[u8]) -> Option<String> {
    let der = crate::model::pin::certificates_from_pem(pem)
        .ok()?
        .into_iter()
        .next()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_path_precedence() {
        let flag = Path::new("/x/flag.conf");
        assert_eq!(
            kubeconfig_path(Some(flag), Some(OsStr::new("/y"))),
            PathBuf::from("/x/flag.conf")
        );
        assert_eq!(
            kubeconfig_path(None, None),
            PathBuf::from(DEFAULT_ADMIN_KUBECONFIG)
        );
        let dir = tempfile::tempdir().unwrap();
        let second = dir.path().join("b.conf");
        std::fs::write(&second, "").unwrap();
        let env = format!("/nonexistent/a.conf:{}", second.display());
        assert_eq!(kubeconfig_path(None, Some(OsStr::new(&env))), second);
        assert_eq!(
            kubeconfig_path(None, Some(OsStr::new("/nonexistent/a.conf:/nonexistent/b"))),
            PathBuf::from("/nonexistent/a.conf")
        );
    }

    fn load(yaml: &str) -> Result<Admin, AdminError> {
        from_kubeconfig(
            &crate::model::kubeconfig::parse(yaml).unwrap(),
            Path::new("/tmp/x.conf"),
        )
    }

    #[test]
    fn clear_errors() {
        let err =
            load("apiVersion: v1\nkind: Config\ncontexts: [{name: a, context: {cluster: c}}]\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("no current-context") && err.contains("contexts: a"),
            "{err}"
        );
        let err = load(
            "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n\
             clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {}}]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no certificate-authority-data"), "{err}");
    }
}
