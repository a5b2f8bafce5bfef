//! Kubeconfig files: reading the one inside `kube-public/cluster-info`, writing kubelet's.
//!
//! Modelled on kube-rs (`kube-client/src/config/file_config.rs`): serde structs with the
//! kubeconfig field names, optional fields left out when unset, and a flattened map of unknown
//! fields at every level, so a file read and written again loses nothing. Fields are declared in
//! the order client-go writes them (alphabetical), so our output looks like kubectl's.
//! cluster-info's kubeconfig says `clusters: null`, `contexts: null`, `users: null`; those read as
//! empty lists.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};
use serde_norway::Value;

/// Unknown fields, kept as they were read.
pub type Extra = BTreeMap<String, Value>;

/// Errors reading a kubeconfig or taking the cluster endpoint out of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigError {
    /// Not YAML, or not shaped like a kubeconfig.
    #[error("cannot parse kubeconfig: {reason}; it must be a YAML kubeconfig (kind: Config)")]
    Parse { reason: String },
    #[error(
        "cluster-info kubeconfig has no clusters: the control plane must publish its server URL \
         and CA in kube-public/cluster-info (as \"kubeadm init phase bootstrap-token\" does)"
    )]
    NoClusters,
    #[error(
        "cluster-info kubeconfig has no server in its first cluster ({cluster:?}): publish the \
         API server URL in kube-public/cluster-info"
    )]
    NoServer { cluster: String },
    #[error(
        "cluster-info kubeconfig server {server} {reason}: kubelet and kaas-join talk to the API \
         server at https://host[:port][/path] only; fix the server in kube-public/cluster-info \
         (`kaas-join cluster prepare --server`)"
    )]
    InvalidServer {
        /// As [`crate::model::shown::shown`] shows it: cut, user info masked.
        server: String,
        reason: String,
    },
    #[error(
        "cluster-info kubeconfig has no certificate-authority-data: cluster {cluster:?} must carry \
         the CA bundle inline (base64 PEM), a file path is of no use on another machine"
    )]
    NoCa { cluster: String },
    #[error(
        "cluster-info kubeconfig has unusable certificate-authority-data in cluster {cluster:?}: \
         {reason}; it must be base64 of a PEM bundle of CA certificates"
    )]
    BadCa { cluster: String, reason: String },
}

/// A kubeconfig (`kind: Config`).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kubeconfig {
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub clusters: Vec<NamedCluster>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub contexts: Vec<NamedContext>,
    #[serde(
        rename = "current-context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub users: Vec<NamedAuthInfo>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A named entry of `clusters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedCluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
    #[serde(default)]
    pub name: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where a cluster is and how to trust it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    #[serde(
        rename = "certificate-authority",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority: Option<String>,
    /// Base64 of a PEM bundle.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
    #[serde(
        rename = "insecure-skip-tls-verify",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_skip_tls_verify: Option<bool>,
    #[serde(rename = "proxy-url", default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(
        rename = "tls-server-name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_server_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A named entry of `contexts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    #[serde(default)]
    pub name: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A cluster + user (+ namespace) pairing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default)]
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A named entry of `users`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedAuthInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<AuthInfo>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Credentials. Debug hides everything secret.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthInfo {
    #[serde(
        rename = "client-certificate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate: Option<String>,
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate_data: Option<String>,
    #[serde(
        rename = "client-key",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key: Option<String>,
    #[serde(
        rename = "client-key-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// May hold exec/auth-provider settings with secrets: Debug prints only the keys.
    #[serde(flatten)]
    pub extra: Extra,
}

impl fmt::Debug for AuthInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthInfo")
            .field("client_certificate", &self.client_certificate)
            .field("client_certificate_data", &self.client_certificate_data)
            .field("client_key", &self.client_key)
            .field("client_key_data", &redacted(&self.client_key_data))
            .field("password", &redacted(&self.password))
            .field("token", &redacted(&self.token))
            .field("username", &self.username)
            .field("extra_keys", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kubeconfig")
            .field("api_version", &self.api_version)
            .field("clusters", &self.clusters)
            .field("contexts", &self.contexts)
            .field("current_context", &self.current_context)
            .field("kind", &self.kind)
            .field("preferences", &self.preferences)
            .field("users", &self.users)
            .field("extra_keys", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `null` and a missing key both mean "no entries" (client-go writes `null` for empty maps).
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Parses a kubeconfig from YAML (JSON is YAML too).
pub fn parse(yaml: &str) -> Result<Kubeconfig, KubeconfigError> {
    crate::model::yaml_guard::check_nesting(yaml)
        .map_err(|reason| KubeconfigError::Parse { reason })?;
    serde_norway::from_str(yaml).map_err(|e| KubeconfigError::Parse {
        reason: crate::model::yaml_guard::redact_values(&e.to_string()),
    })
}

impl Kubeconfig {
    /// Serializes to YAML.
    pub fn to_yaml(&self) -> String {
        // Every field is a string, bool, list or YAML value: serialization cannot fail.
        serde_norway::to_string(self).expect("a Kubeconfig always serializes to YAML")
    }
}

/// Where the API server is and which CAs vouch for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEndpoint {
    /// `https://host:port`, as published.
    pub server: String,
    /// The decoded `certificate-authority-data`: a PEM bundle.
    pub ca_pem: Vec<u8>,
}

/// The first cluster's server and CA bundle, as kubeadm's discovery takes them from cluster-info.
pub fn cluster_endpoint(cfg: &Kubeconfig) -> Result<ClusterEndpoint, KubeconfigError> {
    let named = cfg.clusters.first().ok_or(KubeconfigError::NoClusters)?;
    let name = named.name.clone();
    let cluster = named
        .cluster
        .as_ref()
        .ok_or_else(|| KubeconfigError::NoServer {
            cluster: name.clone(),
        })?;
    let server = match cluster.server.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => return Err(KubeconfigError::NoServer { cluster: name }),
    };
    // The same rules as --server (a path prefix allowed): a published `https://h/x?y#z` must
    // not send every request to `GET /x?y`.
    let server = crate::model::endpoint::normalize_cluster_server(&server).map_err(|reason| {
        KubeconfigError::InvalidServer {
            server: crate::model::shown::shown(&server),
            reason,
        }
    })?;
    let data = match cluster.certificate_authority_data.as_deref() {
        Some(d) if !d.trim().is_empty() => d,
        _ => return Err(KubeconfigError::NoCa { cluster: name }),
    };
    // client-go tolerates line breaks inside the base64; so do we.
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let ca_pem = STANDARD
        .decode(compact)
        .map_err(|e| KubeconfigError::BadCa {
            cluster: name.clone(),
            reason: format!("not base64: {e}"),
        })?;
    crate::model::pin::certificates_from_pem(&ca_pem).map_err(|e| KubeconfigError::BadCa {
        cluster: name,
        reason: e.to_string(),
    })?;
    Ok(ClusterEndpoint { server, ca_pem })
}

/// Names kubelet uses in the kubeconfig it writes after its own TLS bootstrap.
const CLUSTER_NAME: &str = "default-cluster";
const USER_NAME: &str = "default-auth";
const CONTEXT_NAME: &str = "default-context";

/// The kubeconfig kubelet itself writes after TLS bootstrap (`pkg/kubelet/certificate/bootstrap`,
/// `writeKubeconfigFromBootstrapping`): CA inline, client cert and key both pointing at the
/// rotating `kubelet-client-current.pem`, so kubelet's certificate rotation keeps it valid.
pub fn kubelet_kubeconfig(server: &str, ca_pem: &[u8], client_cert_path: &str) -> Kubeconfig {
    Kubeconfig {
        api_version: Some("v1".into()),
        clusters: vec![NamedCluster {
            cluster: Some(Cluster {
                certificate_authority_data: Some(STANDARD.encode(ca_pem)),
                server: Some(server.into()),
                ..Cluster::default()
            }),
            name: CLUSTER_NAME.into(),
            extra: Extra::new(),
        }],
        contexts: vec![NamedContext {
            context: Some(Context {
                cluster: CLUSTER_NAME.into(),
                namespace: Some("default".into()),
                user: Some(USER_NAME.into()),
                extra: Extra::new(),
            }),
            name: CONTEXT_NAME.into(),
            extra: Extra::new(),
        }],
        current_context: Some(CONTEXT_NAME.into()),
        kind: Some("Config".into()),
        preferences: Some(Value::Mapping(Default::default())),
        users: vec![NamedAuthInfo {
            name: USER_NAME.into(),
            user: Some(AuthInfo {
                client_certificate: Some(client_cert_path.into()),
                client_key: Some(client_cert_path.into()),
                ..AuthInfo::default()
            }),
            extra: Extra::new(),
        }],
        extra: Extra::new(),
    }
}

/// The kubeconfig `kubeadm init` publishes in `kube-public/cluster-info` (`data.kubeconfig`),
/// byte for byte in client-go's text form (the recorded
/// `fixtures/200-anonymous-get-cluster-info-signed.json`): one unnamed cluster with `server` and
/// the CA bundle inline, nothing else. `kaas-join cluster prepare` writes it.
pub fn cluster_info_kubeconfig(server: &str, ca_pem: &[u8]) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        STANDARD.encode(ca_pem)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        crate::fixtures::fixtures_dir()
    }

    fn cluster_info_kubeconfig() -> String {
        let body =
            std::fs::read(fixtures().join("200-anonymous-get-cluster-info-signed.json")).unwrap();
        let cm: serde_json::Value = serde_json::from_slice(&body).unwrap();
        cm["data"]["kubeconfig"].as_str().unwrap().to_owned()
    }

    #[test]
    fn cluster_info_kubeconfig_is_kubeadms_text() {
        let recorded = cluster_info_kubeconfig();
        let ep = cluster_endpoint(&parse(&recorded).unwrap()).unwrap();
        assert_eq!(
            super::cluster_info_kubeconfig(&ep.server, &ep.ca_pem),
            recorded
        );
    }

    #[test]
    fn cluster_info_endpoint_and_pin() {
        let cfg = parse(&cluster_info_kubeconfig()).unwrap();
        assert!(cfg.users.is_empty() && cfg.contexts.is_empty());
        let ep = cluster_endpoint(&cfg).unwrap();
        assert_eq!(ep.server, "https://127.0.0.1:6443");
        let certs = crate::model::pin::certificates_from_pem(&ep.ca_pem).unwrap();
        let pin = crate::model::pin::CaPin::of_certificate_der(&certs[0]).unwrap();
        let want = std::fs::read_to_string(fixtures().join("ca-cert-hash.txt")).unwrap();
        assert_eq!(pin.to_string(), want.trim());
    }

    #[test]
    fn round_trip_keeps_unknown_fields() {
        let yaml = r#"
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: AAAA
    extensions:
    - name: x
      extension: {a: 1}
  color: blue
contexts:
- name: ctx
  context: {cluster: c, user: u, future-field: 7}
current-context: ctx
users:
- name: u
  user:
    exec: {command: helper, apiVersion: client.authentication.k8s.io/v1}
    token: s3cr3t
preferences: {colors: true}
top-level-unknown: [1, 2]
"#;
        let cfg = parse(yaml).unwrap();
        assert_eq!(
            cfg.extra["top-level-unknown"],
            serde_norway::from_str::<Value>("[1, 2]").unwrap()
        );
        assert!(cfg.clusters[0].extra.contains_key("color"));
        assert!(cfg.clusters[0]
            .cluster
            .as_ref()
            .unwrap()
            .extra
            .contains_key("extensions"));
        assert!(cfg.contexts[0]
            .context
            .as_ref()
            .unwrap()
            .extra
            .contains_key("future-field"));
        let again = parse(&cfg.to_yaml()).unwrap();
        assert_eq!(again, cfg);
        let a: Value = serde_norway::from_str(yaml).unwrap();
        let b: Value = serde_norway::from_str(&cfg.to_yaml()).unwrap();
        assert_eq!(a, b, "the round trip must not add or drop anything");
        // Debug shows no secret.
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
    }

    #[test]
    fn kubelet_kubeconfig_shape_and_round_trip() {
        let ca = std::fs::read(fixtures().join("ca.crt")).unwrap();
        let path = "/var/lib/kubelet/pki/kubelet-client-current.pem";
        let cfg = kubelet_kubeconfig("https://10.0.0.1:6443", &ca, path);
        let yaml = cfg.to_yaml();
        let again = parse(&yaml).unwrap();
        assert_eq!(again, cfg);
        let ep = cluster_endpoint(&again).unwrap();
        assert_eq!(ep.server, "https://10.0.0.1:6443");
        assert_eq!(ep.ca_pem, ca);
        let v: Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(v["current-context"], "default-context");
        assert_eq!(v["contexts"][0]["name"], "default-context");
        assert_eq!(v["contexts"][0]["context"]["cluster"], "default-cluster");
        assert_eq!(v["contexts"][0]["context"]["namespace"], "default");
        assert_eq!(v["contexts"][0]["context"]["user"], "default-auth");
        assert_eq!(v["users"][0]["name"], "default-auth");
        assert_eq!(v["users"][0]["user"]["client-certificate"], path);
        assert_eq!(v["users"][0]["user"]["client-key"], path);
        assert_eq!(v["clusters"][0]["name"], "default-cluster");
        assert_eq!(v["kind"], "Config");
        assert_eq!(v["apiVersion"], "v1");
    }

    #[test]
    fn endpoint_errors() {
        let base = |cluster: &str| {
            format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n{cluster}")
        };
        let err = |y: &str| cluster_endpoint(&parse(y).unwrap()).unwrap_err();
        assert_eq!(err("clusters: null\n"), KubeconfigError::NoClusters);
        assert!(matches!(
            err(&base("    certificate-authority-data: AAAA\n")),
            KubeconfigError::NoServer { .. }
        ));
        assert!(matches!(
            err(&base(
                "    server: http://1.2.3.4:6443\n    certificate-authority-data: AAAA\n"
            )),
            KubeconfigError::InvalidServer { .. }
        ));
        for bad in [
            "https://h:6443/x?y#z",
            "https://user:secret@h:6443",
            "https://h:6443#frag",
        ] {
            let e = err(&base(&format!(
                "    server: {bad}\n    certificate-authority-data: AAAA\n"
            )));
            assert!(
                matches!(e, KubeconfigError::InvalidServer { .. }),
                "{bad}: {e}"
            );
            assert!(!e.to_string().contains("secret"), "{e}");
        }
        let no_ca = err(&base(
            "    server: https://1.2.3.4:6443\n    certificate-authority: /etc/ca.crt\n",
        ));
        assert!(matches!(no_ca, KubeconfigError::NoCa { .. }));
        assert!(no_ca
            .to_string()
            .starts_with("cluster-info kubeconfig has no certificate-authority-data: "));
        assert!(matches!(
            err(&base(
                "    server: https://1.2.3.4:6443\n    certificate-authority-data: '%%%'\n"
            )),
            KubeconfigError::BadCa { .. }
        ));
        // Valid base64, but not a PEM certificate.
        assert!(matches!(
            err(&base(
                "    server: https://1.2.3.4:6443\n    certificate-authority-data: aGVsbG8=\n"
            )),
            KubeconfigError::BadCa { .. }
        ));
        assert!(matches!(
            parse("[unclosed").unwrap_err(),
            KubeconfigError::Parse { .. }
        ));
    }
}
