//! The [`Sandbox`] handle: starts the control plane and is how tests, benches and the
//! `kaas-sandbox` binary drive it (tokens, kubeconfigs, objects, nodes, request records,
//! faults) and stop it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::shared::{lock, Shared};
use crate::store::{self, Kind, Obj};
use crate::{
    api, authz, cluster_info_kubeconfig, seed, tls, util, Faults, RequestRecord, SandboxConfig,
    TokenOptions,
};

/// A running sandbox control plane. Dropping it stops the server and its controllers.
pub struct Sandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

/// The names the serving certificate is valid for: loopback, the bound address, and the
/// advertised server's host.
fn serving_names(addr: SocketAddr, advertised_server: Option<&str>) -> Vec<String> {
    let mut names = vec!["127.0.0.1".to_string(), "::1".into(), "localhost".into()];
    if !addr.ip().is_unspecified() {
        names.push(addr.ip().to_string());
    }
    if let Some(host) = advertised_server.and_then(url_host) {
        names.push(host);
    }
    names
}

/// The host part of a URL like `https://host:port/...` (brackets removed for IPv6).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_string())
}

impl Sandbox {
    /// Generates the CA, binds `config.listen`, publishes cluster-info (and, in Kubeadm style,
    /// kubeadm-config and kubelet-config) and starts serving.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let ca = tls::Ca::generate().map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let url = format!("https://{addr}");
        let names = serving_names(addr, config.advertised_server.as_deref());
        let tls_config = Arc::new(tls::server_config(&ca, &names)?);
        let server = config
            .advertised_server
            .clone()
            .unwrap_or_else(|| url.clone());
        let kubeconfig = cluster_info_kubeconfig(&ca.pem(), &server);
        let store = seed::store(config.style, &kubeconfig, &server)?;
        let shared = Arc::new(Shared::new(config, url, ca, store, kubeconfig));
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(api::serve(shared.clone(), listener, tls_config, stopped));
        tracing::info!(url = %shared.url, "sandbox control plane listening");
        Ok(Sandbox {
            shared,
            addr,
            stop,
            server: Some(server),
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cluster CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.shared.ca.pem()
    }

    /// `sha256:<hex>` over the CA's DER SubjectPublicKeyInfo.
    pub fn ca_cert_hash(&self) -> String {
        self.shared.ca.cert_hash()
    }

    /// The kubeconfig text published in cluster-info.
    pub fn cluster_info_kubeconfig(&self) -> String {
        self.shared.kubeconfig.clone()
    }

    /// Mints a kubeadm-style bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`, 24 h, usages
    /// authentication + signing, group `system:bootstrappers:kubeadm:default-node-token`,
    /// bound to nodeclient).
    pub fn create_token(&self) -> String {
        self.create_token_with(TokenOptions::default())
    }

    pub fn create_token_with(&self, opts: TokenOptions) -> String {
        self.shared.mint_token(opts)
    }

    /// Deletes a token (its Secret): it stops authenticating and its signature disappears.
    pub fn delete_token(&self, token_id: &str) -> bool {
        self.shared.delete_token(token_id)
    }

    /// A kubeconfig (YAML) for `kubernetes-admin` in group `system:masters`, as kubeadm's
    /// `admin.conf`: server, CA data, client certificate and key data. Authorized for
    /// everything.
    pub fn admin_kubeconfig(&self) -> String {
        self.user_kubeconfig("kubernetes-admin", &[authz::MASTERS])
    }

    /// A kubeconfig (YAML) with a client certificate from the cluster CA for `user` in
    /// `groups` (e.g. a `viewer` with no rights at all).
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> String {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let (cert, key) = self
            .shared
            .ca
            .issue_client_cert(user, groups)
            .expect("user_kubeconfig: cannot issue a client certificate");
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: sandbox\ncontexts:\n- context:\n    cluster: sandbox\n    user: {user}\n  name: {user}@sandbox\ncurrent-context: {user}@sandbox\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&self.shared.ca.pem()),
            self.shared.url,
            b64(&cert),
            b64(&key),
        )
    }

    /// An object as a GET would return it: `kind` is e.g. `ConfigMap`, `Secret`, `Role`,
    /// `ClusterRoleBinding`; `namespace` is empty for cluster-scoped kinds.
    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<serde_json::Value> {
        let kind = match kind {
            "ConfigMap" => Kind::ConfigMap,
            "Secret" => Kind::Secret,
            "Role" => Kind::Role,
            "RoleBinding" => Kind::RoleBinding,
            "ClusterRole" => Kind::ClusterRole,
            "ClusterRoleBinding" => Kind::ClusterRoleBinding,
            "Node" => Kind::Node,
            _ => return None,
        };
        let ns = (!namespace.is_empty()).then_some(namespace);
        self.shared.store.get(kind, ns, name).map(|o| o.value())
    }

    /// Adds (or replaces the status of) a Node with a `Ready` condition True/False.
    pub fn add_node(&self, name: &str, ready: bool) {
        let (status, reason, message) = if ready {
            ("True", "KubeletReady", "kubelet is posting ready status")
        } else {
            (
                "False",
                "KubeletNotReady",
                "container runtime network not ready",
            )
        };
        let now = util::now();
        let condition = serde_json::json!({
            "type": "Ready", "status": status, "lastHeartbeatTime": now,
            "lastTransitionTime": now, "reason": reason, "message": message,
        });
        let body = serde_json::json!({"metadata": {"labels": {
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
        }}});
        let mut node = api::new_node(name, &body);
        node.status["conditions"] = serde_json::json!([condition.clone()]);
        if ready {
            // The node lifecycle controller removes the not-ready taint from a Ready node.
            node.spec["taints"] = serde_json::json!([]);
            if let Some(spec) = node.spec.as_object_mut() {
                spec.remove("taints");
            }
        }
        if self.shared.store.create(Obj::Node(node)).is_err() {
            self.shared
                .store
                .update::<()>(Kind::Node, None, name, |obj| {
                    if let Obj::Node(n) = obj {
                        n.status["conditions"] = serde_json::json!([condition]);
                    }
                    Ok(true)
                });
        }
    }

    /// Deletes a CertificateSigningRequest (watchers see `DELETED`), as an admin would.
    pub fn delete_csr(&self, name: &str) -> bool {
        self.shared.store.delete(Kind::Csr, None, name).is_some()
    }

    /// The Node as a GET would return it.
    pub fn node(&self, name: &str) -> Option<serde_json::Value> {
        self.shared
            .store
            .get(Kind::Node, None, name)
            .map(|o| o.value())
    }

    /// All Events in `namespace`, as GETs would return them.
    pub fn events(&self, namespace: &str) -> Vec<serde_json::Value> {
        self.all(Kind::Event, Some(namespace))
    }

    /// All CertificateSigningRequests, as GETs would return them.
    pub fn csrs(&self) -> Vec<serde_json::Value> {
        self.all(Kind::Csr, None)
    }

    /// Every stored object of `kind` (in `namespace`, if given), as GETs would return them.
    fn all(&self, kind: Kind, namespace: Option<&str>) -> Vec<serde_json::Value> {
        let sel = store::Selector {
            kind,
            namespace: namespace.map(str::to_string),
            name: None,
        };
        self.shared
            .store
            .list(&sel)
            .0
            .iter()
            .map(Obj::value)
            .collect()
    }

    /// Every request served so far (the last 100 000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests()
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// How long the certificates signed from now on live ([`SandboxConfig::certificate_lifetime`]).
    pub fn set_certificate_lifetime(&self, lifetime: Option<std::time::Duration>) {
        *lock(&self.shared.certificate_lifetime) = lifetime;
    }

    /// Issues a node client certificate (digital signature, client auth; 1 year) for a PEM CSR
    /// from the CA, as the signer would. Panics on an unparsable CSR (a test helper).
    pub fn sign_client_cert(&self, csr_pem: &str) -> String {
        let der = x509_parser::pem::parse_x509_pem(csr_pem.as_bytes())
            .expect("sign_client_cert: not a PEM CSR")
            .1
            .contents;
        self.shared
            .ca
            .sign_csr(
                &der,
                &["digital signature".into(), "client auth".into()],
                time::Duration::days(365),
            )
            .expect("sign_client_cert: cannot sign")
    }

    /// Stops serving, closes every connection and stops the controllers.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.shared.abort_tasks();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
        self.shared.abort_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://10.0.0.1:443").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(url_host("https://[::1]:6443/").as_deref(), Some("::1"));
        assert_eq!(
            url_host("https://api.example").as_deref(),
            Some("api.example")
        );
    }
}
