//! The config file: finding and reading it ([`read_config_file`]), splitting it into YAML
//! documents and dispatching each on `apiVersion`/`kind` to its format (`own_format`,
//! `kubeadm_format`, a `KubeletConfiguration` document kept as the kubelet overrides, kubeadm's
//! other kinds ignored with a warning). The result is one [`FileSettings`], whichever format it
//! came from, with the kubelet settings and extra args already lifted into fields
//! (`kubelet_settings`); `merge` then weighs each field against the flags.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::Value;
use zeroize::Zeroizing;

use super::kubeadm_format::{
    drop_unknown_fields, kubeadm_settings, KubeadmJoinConfiguration, KUBEADM_V1BETA3,
    KUBEADM_V1BETA4,
};
use super::kubelet_settings::{lift_extra_args, lift_kubelet_settings, KUBELET_CONFIG_API_VERSION};
use super::own_format::{own_settings, OwnJoinConfiguration};
use super::{ConfigError, Warning, API_VERSION};
use crate::cli::JoinArgs;
use crate::host::paths::{Paths, DEFAULT_CONFIG_FILE};
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::kubelet_schema;
use crate::model::yaml_guard;

/// The config file's settings, whichever format they came from, before validation.
/// No `Debug`: `token` would show in it.
#[derive(Default)]
pub(super) struct FileSettings {
    /// The file as read (for messages).
    pub(super) path: PathBuf,
    pub(super) servers: Vec<String>,
    pub(super) token: Option<Zeroizing<String>>,
    /// Which field `token` came from, for messages.
    pub(super) token_field: &'static str,
    pub(super) token_file: Option<PathBuf>,
    pub(super) ca_cert_hashes: Vec<String>,
    pub(super) unsafe_skip_ca_verification: bool,
    pub(super) node_name: Option<String>,
    pub(super) node_labels: BTreeMap<String, String>,
    pub(super) node_ip: Option<String>,
    pub(super) cri_socket: Option<String>,
    pub(super) cgroup_driver: Option<CgroupDriver>,
    pub(super) cluster_dns: Vec<String>,
    pub(super) cluster_domain: Option<String>,
    pub(super) discovery_timeout: Option<String>,
    pub(super) tls_bootstrap_timeout: Option<String>,
    pub(super) kubelet_extra_args: Vec<(String, String)>,
    pub(super) kubelet: Option<Value>,
    pub(super) dry_run: bool,
    pub(super) ignore_preflight_errors: Vec<String>,
}

impl FileSettings {
    /// Where a value from the file came from, for messages: `config file PATH`.
    pub(super) fn origin(&self) -> String {
        format!("config file {}", self.path.display())
    }
}

/// A config file is a few KB; a larger one is refused before it is read (a 200 MB file took
/// 1.4 GB of memory and 33 s).
pub const MAX_CONFIG_FILE: u64 = 1024 * 1024;

/// The file's text, at most [`MAX_CONFIG_FILE`] bytes (`FileTooLarge` beyond).
fn read_capped(path: &Path) -> io::Result<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_FILE + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_FILE {
        return Err(io::Error::from(io::ErrorKind::FileTooLarge));
    }
    Ok(text)
}

/// Reads `--config`, or the default file under the root if it exists.
pub(super) fn read_config_file(
    args: &JoinArgs,
    paths: &Paths,
    warnings: &mut Vec<Warning>,
) -> Result<Option<FileSettings>, ConfigError> {
    let (path, explicit) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (paths.host(DEFAULT_CONFIG_FILE), false),
    };
    let text = match read_capped(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ConfigError::ConfigFileMissing { path })
        }
        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
            return Err(ConfigError::ConfigFileTooLarge {
                path,
                limit: MAX_CONFIG_FILE,
            })
        }
        Err(source) => return Err(ConfigError::ReadConfigFile { path, source }),
    };
    // Editors on Windows start UTF-8 files with a byte order mark; YAML allows it, and the
    // parser would take it for a document of its own.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let settings = parse_config_text(text, &path, warnings)?;
    if settings.token.is_some() {
        warn_if_token_readable(&path, warnings);
    }
    Ok(Some(settings))
}

/// Warns when the file, which holds the token itself, is readable by group or others.
fn warn_if_token_readable(path: &Path, warnings: &mut Vec<Warning>) {
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    if mode & 0o077 != 0 {
        warnings.push(Warning(format!(
            "config file {} holds the bootstrap token but is readable by group or others \
             (mode {mode:04o}): run `chmod 600 {}`, or move the token to a tokenFile",
            path.display(),
            path.display()
        )));
    }
}

/// What one YAML document of the file is for.
enum Document {
    /// A `JoinConfiguration`, ours or kubeadm's, already turned into settings.
    Join(Box<FileSettings>),
    /// A `KubeletConfiguration`: the kubelet overrides, checked later by `lift_kubelet_settings`.
    Kubelet(Value),
    /// A kubeadm document that does not apply to a join (a warning was given).
    Ignored,
}

/// Parses a config file's text: dispatches each YAML document on `apiVersion`/`kind`, then
/// joins the one `JoinConfiguration` with the `KubeletConfiguration` document, if any.
fn parse_config_text(
    text: &str,
    path: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<FileSettings, ConfigError> {
    yaml_guard::check_nesting(text).map_err(|message| ConfigError::Yaml {
        path: path.to_owned(),
        message,
    })?;
    let mut join: Option<FileSettings> = None;
    let mut kubelet_doc: Option<Value> = None;
    for (i, de) in serde_norway::Deserializer::from_str(text).enumerate() {
        let doc = i + 1;
        let value = Value::deserialize(de).map_err(|e| ConfigError::Yaml {
            path: path.to_owned(),
            message: yaml_guard::redact_values(&e.to_string()),
        })?;
        if value.is_null() {
            continue;
        }
        match read_document(value, path, doc, warnings)? {
            Document::Join(settings) => {
                if join.is_some() {
                    return Err(ConfigError::DuplicateDocument {
                        path: path.to_owned(),
                        kind: "JoinConfiguration",
                    });
                }
                join = Some(*settings);
            }
            Document::Kubelet(value) => {
                if kubelet_doc.is_some() {
                    return Err(ConfigError::DuplicateDocument {
                        path: path.to_owned(),
                        kind: "KubeletConfiguration",
                    });
                }
                kubelet_doc = Some(value);
            }
            Document::Ignored => {}
        }
    }
    let mut settings = join.ok_or_else(|| ConfigError::NoJoinConfiguration {
        path: path.to_owned(),
    })?;
    if let Some(doc) = kubelet_doc {
        if settings.kubelet.is_some() {
            return Err(ConfigError::InvalidKubeletConfig {
                path: path.to_owned(),
                reason: "is given both as kubelet: and as a KubeletConfiguration document: keep \
                         one"
                .into(),
            });
        }
        settings.kubelet = Some(doc);
    }
    // Checked against KubeletConfiguration v1beta1 before anything is lifted out of it: a typo
    // or a wrong type fails here, not in kubelet at its start; an override that weakens a
    // secure default is named.
    if let Some(kubelet) = &settings.kubelet {
        let weakened = kubelet_schema::validate(kubelet, Some(text)).map_err(|error| {
            ConfigError::KubeletSchema {
                path: path.to_owned(),
                error,
            }
        })?;
        warnings.extend(weakened.iter().map(|w| {
            Warning(format!(
                "config file {}: {w}; leave it out unless you mean it",
                path.display()
            ))
        }));
    }
    lift_kubelet_settings(&mut settings)?;
    lift_extra_args(&mut settings, warnings)?;
    Ok(settings)
}

/// One document (number `doc`, from 1) by its `apiVersion` and `kind`.
fn read_document(
    value: Value,
    path: &Path,
    doc: usize,
    warnings: &mut Vec<Warning>,
) -> Result<Document, ConfigError> {
    let (api_version, kind) = type_of(&value, path, doc)?;
    let document_error = |e| document_error(path, doc, e);
    match (api_version.as_str(), kind.as_str()) {
        (API_VERSION, "JoinConfiguration") => {
            let own: OwnJoinConfiguration =
                serde_norway::from_value(value).map_err(document_error)?;
            Ok(Document::Join(Box::new(own_settings(own, path)?)))
        }
        (KUBEADM_V1BETA4 | KUBEADM_V1BETA3, "JoinConfiguration") => {
            let v1beta3 = api_version == KUBEADM_V1BETA3;
            let mut value = value;
            drop_unknown_fields(&mut value, path, doc, warnings);
            let kubeadm: KubeadmJoinConfiguration =
                serde_norway::from_value(value).map_err(document_error)?;
            let settings = kubeadm_settings(kubeadm, v1beta3, path, doc, warnings)?;
            Ok(Document::Join(Box::new(settings)))
        }
        (KUBELET_CONFIG_API_VERSION, "KubeletConfiguration") => Ok(Document::Kubelet(value)),
        (
            KUBEADM_V1BETA4 | KUBEADM_V1BETA3,
            "InitConfiguration"
            | "ClusterConfiguration"
            | "ResetConfiguration"
            | "UpgradeConfiguration",
        )
        | ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration") => {
            warnings.push(Warning(format!(
                "config file {}: ignoring the {kind} document (document {doc}): only \
                 JoinConfiguration and KubeletConfiguration apply to joining a node",
                path.display()
            )));
            Ok(Document::Ignored)
        }
        _ => Err(ConfigError::UnknownKind {
            path: path.to_owned(),
            doc,
            api_version: yaml_guard::shown_api_version(&api_version),
            kind: yaml_guard::shown_kind(&kind),
        }),
    }
}

/// A document's `apiVersion` and `kind`; both must be there (as strings).
fn type_of(value: &Value, path: &Path, doc: usize) -> Result<(String, String), ConfigError> {
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
        return Err(ConfigError::Document {
            path: path.to_owned(),
            doc,
            message: format!(
                "no apiVersion and kind: start the document with apiVersion: {API_VERSION} \
                 and kind: JoinConfiguration"
            ),
        });
    };
    Ok((api_version, kind))
}

/// A document that does not deserialize into its format's type.
fn document_error(path: &Path, doc: usize, e: serde_norway::Error) -> ConfigError {
    // serde quotes the refused value: it may be the token, put where a map belongs.
    let mut message = yaml_guard::redact_values(&e.to_string());
    if message.contains("unknown field") {
        message.push_str(
            " (misspelled? unknown fields are refused so that typos do not pass silently)",
        );
    }
    ConfigError::Document {
        path: path.to_owned(),
        doc,
        message,
    }
}
