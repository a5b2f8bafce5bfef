//! The container runtime: its CRI socket and the cgroup driver it uses (kubelet must use the
//! same one, or pods fail to start).
//!
//! Everything is read under `--root` through [`crate::host::paths::Paths`], so tests run
//! against a temporary directory.
//!
//! The cgroup driver is read from the runtime's configuration files, like an admin would:
//! - containerd: `/etc/containerd/config.toml` and the files its `imports = [...]` name (globs
//!   allowed in the file name, later files override earlier ones), key `SystemdCgroup` in the
//!   options of the default runtime (`default_runtime_name`, `runc` unless set):
//!   `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]` (config version 2,
//!   containerd 1.x), `[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]`
//!   (version 3, containerd 2.x) or `[plugins.cri.containerd.runtimes.runc.options]` (version 1).
//!   Unset means cgroupfs: containerd 1.x and 2.x both default to `SystemdCgroup = false`
//!   (containerd/containerd#7319 and #12101 are still open about changing or showing that).
//! - CRI-O: `/etc/crio/crio.conf`, then `/etc/crio/crio.conf.d/*.conf` in lexical order (later
//!   files override), key `cgroup_manager` in `[crio.runtime]`; unset means systemd.
//! - cri-dockerd: `/etc/docker/daemon.json`, `exec-opts: ["native.cgroupdriver=..."]`; unset
//!   means systemd on a cgroup v2 host and cgroupfs on cgroup v1 (Docker 20.10 and later).
//!
//! The TOML files are read with a small line-based scanner (section headers, `key = value`,
//! dotted and quoted keys, comments, multi-line arrays), not a TOML parser: it is all these few
//! keys need. Asking the runtime over CRI would be more exact (the `RuntimeConfig` RPC reports the
//! cgroup driver, containerd 2.0+ and CRI-O 1.28+) but needs a gRPC client; not done here. An
//! endpoint that is none of the well-known sockets is an error asking for `--cgroup-driver`,
//! because we cannot know which configuration that runtime reads.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::{fs, io};

use crate::host::paths::Paths;
use crate::model::cgroup_driver::CgroupDriver;
use crate::model::exit_code::ExitCode;

/// A container runtime kaas-join knows how to find and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    CriO,
    CriDockerd,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "CRI-O",
            Runtime::CriDockerd => "cri-dockerd",
        }
    }
}

/// Well-known CRI endpoints, in the order they are tried (as kubeadm's `DetectCRISocket`; for
/// each runtime the first one present is used, so `/run` wins over the legacy `/var/run`, which
/// is usually a symlink to it).
pub const KNOWN_CRI_ENDPOINTS: &[(Runtime, &str)] = &[
    (
        Runtime::Containerd,
        "unix:///run/containerd/containerd.sock",
    ),
    (
        Runtime::Containerd,
        "unix:///var/run/containerd/containerd.sock",
    ),
    (Runtime::CriO, "unix:///run/crio/crio.sock"),
    (Runtime::CriO, "unix:///var/run/crio/crio.sock"),
    (Runtime::CriDockerd, "unix:///run/cri-dockerd.sock"),
    (Runtime::CriDockerd, "unix:///var/run/cri-dockerd.sock"),
];

const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
const CRIO_CONFIG: &str = "/etc/crio/crio.conf";
const CRIO_CONFIG_DIR: &str = "/etc/crio/crio.conf.d";
const DOCKER_DAEMON_JSON: &str = "/etc/docker/daemon.json";
/// Present only on a cgroup v2 (unified) hierarchy.
const CGROUP_V2_MARKER: &str = "/sys/fs/cgroup/cgroup.controllers";
/// How deep containerd `imports` may nest before we stop following them.
const MAX_IMPORT_DEPTH: usize = 8;

/// Why a fact about this machine could not be established. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "no container runtime socket found (looked for {}): install and start containerd or \
         CRI-O, or pass --cri-socket unix:///path/to/runtime.sock",
        searched.join(", ")
    )]
    NoCriSocket { searched: Vec<String> },
    #[error(
        "found the sockets of more than one container runtime ({}): pass --cri-socket with the \
         one kubelet should use",
        found.join(", ")
    )]
    MultipleCriSockets { found: Vec<String> },
    #[error(
        "cannot tell which cgroup driver the container runtime at {endpoint} uses (not a \
         well-known containerd, CRI-O or cri-dockerd socket): pass --cgroup-driver systemd or \
         --cgroup-driver cgroupfs, matching the runtime's configuration"
    )]
    UnknownRuntime { endpoint: String },
    #[error("cannot read {}: {source}; fix the file or pass --cgroup-driver", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{}:{line}: {key} = {value} is not {expected}; fix the file or pass --cgroup-driver",
        path.display()
    )]
    InvalidSetting {
        path: PathBuf,
        line: usize,
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("cannot parse {}: {message}; fix the file or pass --cgroup-driver", path.display())]
    Parse { path: PathBuf, message: String },
}

impl HostError {
    /// The documented exit code: always Usage (the runtime could not be told apart: the user must say which (--cri-socket, --cgroup-driver)).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

/// Finds the CRI endpoint like kubeadm's `DetectCRISocket`: the well-known sockets of
/// [`KNOWN_CRI_ENDPOINTS`] that exist under the root and are sockets. None is an error, and so
/// are sockets of more than one runtime (kubeadm refuses to guess, and so do we).
pub fn detect_cri_socket(paths: &Paths) -> Result<String, HostError> {
    let mut found: Vec<(Runtime, &str)> = Vec::new();
    for &(runtime, endpoint) in KNOWN_CRI_ENDPOINTS {
        if found.iter().any(|(r, _)| *r == runtime) {
            continue;
        }
        let node_path = endpoint.trim_start_matches("unix://");
        let is_socket = fs::metadata(paths.host(node_path))
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false);
        if is_socket {
            found.push((runtime, endpoint));
        }
    }
    match found.as_slice() {
        [] => Err(HostError::NoCriSocket {
            searched: KNOWN_CRI_ENDPOINTS
                .iter()
                .map(|(_, e)| e.to_string())
                .collect(),
        }),
        [(_, endpoint)] => Ok(endpoint.to_string()),
        many => Err(HostError::MultipleCriSockets {
            found: many
                .iter()
                .map(|(r, e)| format!("{} at {e}", r.name()))
                .collect(),
        }),
    }
}

/// The runtime behind a well-known endpoint (`unix://` URL or bare path), if it is one.
pub fn runtime_of_endpoint(endpoint: &str) -> Option<Runtime> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    KNOWN_CRI_ENDPOINTS
        .iter()
        .find(|(_, e)| e.trim_start_matches("unix://") == path)
        .map(|(r, _)| *r)
}

/// Determines the cgroup driver the runtime at `cri_endpoint` uses, from its configuration files
/// under the root (see the module doc), and says how: e.g. `containerd: SystemdCgroup = true for
/// runtime runc in /etc/containerd/config.toml`.
pub fn detect_cgroup_driver(
    paths: &Paths,
    cri_endpoint: &str,
) -> Result<(CgroupDriver, String), HostError> {
    match runtime_of_endpoint(cri_endpoint) {
        Some(Runtime::Containerd) => containerd_cgroup_driver(paths),
        Some(Runtime::CriO) => crio_cgroup_driver(paths),
        Some(Runtime::CriDockerd) => docker_cgroup_driver(paths),
        None => Err(HostError::UnknownRuntime {
            endpoint: cri_endpoint.to_owned(),
        }),
    }
}

/// One configuration file as read: the path on the node (for messages) and the real path.
struct ConfigFile {
    node_path: String,
    host_path: PathBuf,
    text: String,
}

/// Reads a file under the root; `Ok(None)` when it does not exist.
fn read_optional(paths: &Paths, node_path: &str) -> Result<Option<ConfigFile>, HostError> {
    let host_path = paths.host(node_path);
    match fs::read_to_string(&host_path) {
        Ok(text) => Ok(Some(ConfigFile {
            node_path: node_path.to_owned(),
            host_path,
            text,
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HostError::Read {
            path: host_path,
            source,
        }),
    }
}

fn containerd_cgroup_driver(paths: &Paths) -> Result<(CgroupDriver, String), HostError> {
    let Some(main) = read_optional(paths, CONTAINERD_CONFIG)? else {
        return Ok((
            CgroupDriver::Cgroupfs,
            format!("containerd: no {CONTAINERD_CONFIG}, containerd's default (cgroupfs)"),
        ));
    };
    let mut files = Vec::new();
    collect_containerd_files(paths, main, 0, &mut files)?;

    // (file index, assignment), in the order containerd applies them: later ones win.
    let assignments: Vec<(usize, Assignment)> = files
        .iter()
        .enumerate()
        .flat_map(|(i, f)| scan_toml(&f.text).into_iter().map(move |a| (i, a)))
        .collect();
    const CRI_PLUGINS: [&str; 3] = [
        "io.containerd.cri.v1.runtime",
        "io.containerd.grpc.v1.cri",
        "cri",
    ];
    let under_cri = |key: &[String], rest: &[&str]| {
        key.len() == rest.len() + 2
            && key[0] == "plugins"
            && CRI_PLUGINS.contains(&key[1].as_str())
            && key[2..].iter().zip(rest).all(|(a, b)| a == b)
    };

    let mut runtime = "runc".to_owned();
    for (i, a) in &assignments {
        if under_cri(&a.key, &["containerd", "default_runtime_name"]) {
            runtime = parse_toml_string(&a.value).ok_or_else(|| HostError::InvalidSetting {
                path: files[*i].host_path.clone(),
                line: a.line,
                key: "default_runtime_name".into(),
                value: a.value.clone(),
                expected: "a quoted runtime name",
            })?;
        }
    }
    let option_key = [
        "containerd",
        "runtimes",
        runtime.as_str(),
        "options",
        "SystemdCgroup",
    ];
    let setting = assignments
        .iter()
        .rev()
        .find(|(_, a)| under_cri(&a.key, &option_key));
    match setting {
        Some((i, a)) => {
            let file = &files[*i];
            let systemd = parse_toml_bool(&a.value).ok_or_else(|| HostError::InvalidSetting {
                path: file.host_path.clone(),
                line: a.line,
                key: "SystemdCgroup".into(),
                value: a.value.clone(),
                expected: "true or false",
            })?;
            let driver = if systemd {
                CgroupDriver::Systemd
            } else {
                CgroupDriver::Cgroupfs
            };
            Ok((
                driver,
                format!(
                    "containerd: SystemdCgroup = {systemd} for runtime {runtime} in {}",
                    file.node_path
                ),
            ))
        }
        None => {
            let read: Vec<&str> = files.iter().map(|f| f.node_path.as_str()).collect();
            Ok((
                CgroupDriver::Cgroupfs,
                format!(
                    "containerd: no SystemdCgroup setting for runtime {runtime} in {}, \
                     containerd's default (cgroupfs)",
                    read.join(", ")
                ),
            ))
        }
    }
}

/// Adds `file` and then, recursively, the files its top-level `imports` name.
fn collect_containerd_files(
    paths: &Paths,
    file: ConfigFile,
    depth: usize,
    out: &mut Vec<ConfigFile>,
) -> Result<(), HostError> {
    let imports: Vec<String> = scan_toml(&file.text)
        .into_iter()
        .filter(|a| a.key == ["imports"])
        .filter_map(|a| parse_toml_string_array(&a.value))
        .flatten()
        .collect();
    let base_dir = Path::new(&file.node_path)
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    out.push(file);
    if depth >= MAX_IMPORT_DEPTH {
        return Ok(());
    }
    for pattern in imports {
        let pattern = if pattern.starts_with('/') {
            pattern
        } else {
            base_dir.join(&pattern).to_string_lossy().into_owned()
        };
        for node_path in expand_glob(paths, &pattern) {
            if out.iter().any(|f| f.node_path == node_path) {
                continue;
            }
            if let Some(imported) = read_optional(paths, &node_path)? {
                collect_containerd_files(paths, imported, depth + 1, out)?;
            }
        }
    }
    Ok(())
}

/// Expands `*` and `?` in the last component of an absolute node path, sorted like Go's
/// `filepath.Glob`; a pattern without wildcards is returned as is.
fn expand_glob(paths: &Paths, pattern: &str) -> Vec<String> {
    let (dir, name) = match pattern.rsplit_once('/') {
        Some((d, n)) => (if d.is_empty() { "/" } else { d }, n),
        None => return vec![pattern.to_owned()],
    };
    if !name.contains(['*', '?']) {
        return vec![pattern.to_owned()];
    }
    let Ok(entries) = fs::read_dir(paths.host(dir)) else {
        return Vec::new();
    };
    let mut matches: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| glob_match(name.as_bytes(), n.as_bytes()))
        .map(|n| format!("{}/{n}", dir.trim_end_matches('/')))
        .collect();
    matches.sort();
    matches
}

/// `*` matches any run of characters, `?` one character; everything else literally.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| glob_match(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && glob_match(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && glob_match(rest, &name[1..]),
    }
}

fn crio_cgroup_driver(paths: &Paths) -> Result<(CgroupDriver, String), HostError> {
    let mut files = Vec::new();
    if let Some(f) = read_optional(paths, CRIO_CONFIG)? {
        files.push(f);
    }
    for node_path in expand_glob(paths, &format!("{CRIO_CONFIG_DIR}/*.conf")) {
        if let Some(f) = read_optional(paths, &node_path)? {
            files.push(f);
        }
    }
    let mut setting = None;
    for file in &files {
        for a in scan_toml(&file.text) {
            if a.key == ["crio", "runtime", "cgroup_manager"] {
                setting = Some((file, a));
            }
        }
    }
    let Some((file, a)) = setting else {
        return Ok((
            CgroupDriver::Systemd,
            "CRI-O: no cgroup_manager setting, CRI-O's default (systemd)".to_owned(),
        ));
    };
    let driver = match parse_toml_string(&a.value).as_deref() {
        Some("systemd") => CgroupDriver::Systemd,
        Some("cgroupfs") => CgroupDriver::Cgroupfs,
        _ => {
            return Err(HostError::InvalidSetting {
                path: file.host_path.clone(),
                line: a.line,
                key: "cgroup_manager".into(),
                value: a.value,
                expected: "\"systemd\" or \"cgroupfs\"",
            })
        }
    };
    Ok((
        driver,
        format!(
            "CRI-O: cgroup_manager = \"{}\" in {}",
            driver.as_str(),
            file.node_path
        ),
    ))
}

fn docker_cgroup_driver(paths: &Paths) -> Result<(CgroupDriver, String), HostError> {
    if let Some(file) = read_optional(paths, DOCKER_DAEMON_JSON)? {
        let json: serde_json::Value =
            serde_json::from_str(&file.text).map_err(|e| HostError::Parse {
                path: file.host_path.clone(),
                message: e.to_string(),
            })?;
        let opts = json
            .get("exec-opts")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str());
        let mut setting = None;
        for opt in opts {
            if let Some((k, v)) = opt.split_once('=') {
                if k.trim().eq_ignore_ascii_case("native.cgroupdriver") {
                    setting = Some(v.trim().to_owned());
                }
            }
        }
        if let Some(value) = setting {
            let driver = match value.as_str() {
                "systemd" => CgroupDriver::Systemd,
                "cgroupfs" => CgroupDriver::Cgroupfs,
                _ => {
                    return Err(HostError::InvalidSetting {
                        path: file.host_path,
                        line: 0,
                        key: "exec-opts native.cgroupdriver".into(),
                        value,
                        expected: "systemd or cgroupfs",
                    })
                }
            };
            return Ok((
                driver,
                format!(
                    "cri-dockerd: Docker exec-opts native.cgroupdriver={} in {DOCKER_DAEMON_JSON}",
                    driver.as_str()
                ),
            ));
        }
    }
    if paths.host(CGROUP_V2_MARKER).exists() {
        Ok((
            CgroupDriver::Systemd,
            "cri-dockerd: no native.cgroupdriver in Docker's daemon.json, Docker's default on \
             cgroup v2 (systemd)"
                .to_owned(),
        ))
    } else {
        Ok((
            CgroupDriver::Cgroupfs,
            "cri-dockerd: no native.cgroupdriver in Docker's daemon.json, Docker's default on \
             cgroup v1 (cgroupfs)"
                .to_owned(),
        ))
    }
}

/// One `key = value` line of a TOML file: the full key (table path + dotted key), the raw value
/// text and its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assignment {
    key: Vec<String>,
    value: String,
    line: usize,
}

/// Line-based TOML scan: tracks `[table]`/`[[array]]` headers and yields every assignment with
/// its full key. Multi-line arrays are joined into one value; multi-line strings are skipped;
/// lines it does not understand are ignored (they cannot set the keys we look for).
fn scan_toml(text: &str) -> Vec<Assignment> {
    let mut out = Vec::new();
    let mut table: Vec<String> = Vec::new();
    // An assignment whose array value continues on the next lines: (assignment, open brackets).
    let mut pending: Option<(Assignment, i32)> = None;
    let mut in_multiline_string: Option<&str> = None;

    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        if let Some(delim) = in_multiline_string {
            if raw.contains(delim) {
                in_multiline_string = None;
            }
            continue;
        }
        let line = strip_comment(raw).trim();
        if let Some((mut a, depth)) = pending.take() {
            a.value.push(' ');
            a.value.push_str(line);
            let depth = depth + bracket_delta(line);
            if depth > 0 {
                pending = Some((a, depth));
            } else {
                out.push(a);
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if let Some(inner) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            table = parse_key(inner).unwrap_or_else(|| vec!["\u{0}invalid".into()]);
            continue;
        }
        if let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = parse_key(inner).unwrap_or_else(|| vec!["\u{0}invalid".into()]);
            continue;
        }
        let Some(eq) = find_unquoted(line, '=') else {
            continue;
        };
        let Some(key) = parse_key(&line[..eq]) else {
            continue;
        };
        let value = line[eq + 1..].trim().to_owned();
        for delim in ["\"\"\"", "'''"] {
            if let Some(rest) = value.strip_prefix(delim) {
                if !rest.contains(delim) {
                    in_multiline_string = Some(delim);
                }
            }
        }
        let mut full = table.clone();
        full.extend(key);
        let a = Assignment {
            key: full,
            value,
            line: line_no,
        };
        let depth = bracket_delta(&a.value);
        if a.value.starts_with('[') && depth > 0 {
            pending = Some((a, depth));
        } else {
            out.push(a);
        }
    }
    if let Some((a, _)) = pending {
        out.push(a);
    }
    out
}

/// Calls `f` for every character of `s` outside quoted strings, with its byte index.
fn for_each_unquoted(s: &str, mut f: impl FnMut(usize, char) -> bool) {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None => {
                if !f(i, c) {
                    return;
                }
            }
        }
    }
}

fn find_unquoted(s: &str, needle: char) -> Option<usize> {
    let mut found = None;
    for_each_unquoted(s, |i, c| {
        if c == needle {
            found = Some(i);
            false
        } else {
            true
        }
    });
    found
}

fn strip_comment(line: &str) -> &str {
    match find_unquoted(line, '#') {
        Some(i) => &line[..i],
        None => line,
    }
}

fn bracket_delta(s: &str) -> i32 {
    let mut depth = 0;
    for_each_unquoted(s, |_, c| {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        true
    });
    depth
}

/// Parses a (possibly dotted, possibly quoted) TOML key into its parts.
fn parse_key(s: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut cuts = Vec::new();
    for_each_unquoted(s, |i, c| {
        if c == '.' {
            cuts.push(i);
        }
        true
    });
    cuts.push(s.len());
    for cut in cuts {
        let part = s[start..cut].trim();
        start = cut + 1;
        let parsed = if let Some(q) = part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            q.replace("\\\"", "\"").replace("\\\\", "\\")
        } else if let Some(q) = part.strip_prefix('\'').and_then(|p| p.strip_suffix('\'')) {
            q.to_owned()
        } else if !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            part.to_owned()
        } else {
            return None;
        };
        parts.push(parsed);
    }
    Some(parts)
}

fn parse_toml_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn parse_toml_string(value: &str) -> Option<String> {
    let v = value.trim();
    if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(s.replace("\\\"", "\"").replace("\\\\", "\\"))
    } else {
        v.strip_prefix('\'')
            .and_then(|s| s.strip_suffix('\''))
            .map(str::to_owned)
    }
}

fn parse_toml_string_array(value: &str) -> Option<Vec<String>> {
    let inner = value.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut items = Vec::new();
    let mut start = 0;
    let mut cuts = Vec::new();
    for_each_unquoted(inner, |i, c| {
        if c == ',' {
            cuts.push(i);
        }
        true
    });
    cuts.push(inner.len());
    for cut in cuts {
        let item = inner[start..cut].trim();
        start = cut + 1;
        if item.is_empty() {
            continue;
        }
        items.push(parse_toml_string(item)?);
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    struct Root {
        dir: tempfile::TempDir,
        // Keeps the sockets bound for the test's duration.
        _listeners: Vec<UnixListener>,
    }

    impl Root {
        fn new() -> Root {
            Root {
                dir: tempfile::tempdir().unwrap(),
                _listeners: Vec::new(),
            }
        }
        fn paths(&self) -> Paths {
            Paths::new(self.dir.path())
        }
        fn file(&self, node_path: &str, text: &str) {
            let p = self.dir.path().join(node_path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        fn socket(&mut self, node_path: &str) {
            let p = self.dir.path().join(node_path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            self._listeners.push(UnixListener::bind(p).unwrap());
        }
    }

    #[test]
    fn detects_containerd_socket() {
        let mut r = Root::new();
        r.socket("/run/containerd/containerd.sock");
        assert_eq!(
            detect_cri_socket(&r.paths()).unwrap(),
            "unix:///run/containerd/containerd.sock"
        );
    }

    #[test]
    fn detects_crio_under_var_run() {
        let mut r = Root::new();
        r.socket("/var/run/crio/crio.sock");
        assert_eq!(
            detect_cri_socket(&r.paths()).unwrap(),
            "unix:///var/run/crio/crio.sock"
        );
    }

    #[test]
    fn same_runtime_at_both_paths_is_one_runtime() {
        let mut r = Root::new();
        r.socket("/run/containerd/containerd.sock");
        r.socket("/var/run/containerd/containerd.sock");
        assert_eq!(
            detect_cri_socket(&r.paths()).unwrap(),
            "unix:///run/containerd/containerd.sock"
        );
    }

    #[test]
    fn no_socket_is_an_error_naming_the_fix() {
        let r = Root::new();
        // A regular file where the socket should be does not count.
        r.file("/run/containerd/containerd.sock", "");
        let e = detect_cri_socket(&r.paths()).unwrap_err();
        assert!(matches!(e, HostError::NoCriSocket { .. }));
        let msg = e.to_string();
        assert!(msg.contains("--cri-socket"), "{msg}");
        assert!(msg.contains("unix:///run/crio/crio.sock"), "{msg}");
    }

    #[test]
    fn two_runtimes_is_an_error_listing_them() {
        let mut r = Root::new();
        r.socket("/run/containerd/containerd.sock");
        r.socket("/var/run/cri-dockerd.sock");
        let e = detect_cri_socket(&r.paths()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, HostError::MultipleCriSockets { .. }));
        assert!(
            msg.contains("containerd at unix:///run/containerd/containerd.sock"),
            "{msg}"
        );
        assert!(
            msg.contains("cri-dockerd at unix:///var/run/cri-dockerd.sock"),
            "{msg}"
        );
        assert!(msg.contains("--cri-socket"), "{msg}");
    }

    const CONTAINERD: &str = "unix:///run/containerd/containerd.sock";

    #[test]
    fn containerd_without_config_is_cgroupfs() {
        let r = Root::new();
        let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
        assert_eq!(d, CgroupDriver::Cgroupfs);
        assert!(why.contains("no /etc/containerd/config.toml"), "{why}");
    }

    #[test]
    fn containerd_v2_config_systemd() {
        let r = Root::new();
        r.file(
            CONTAINERD_CONFIG,
            r#"version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.10" # comment
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # SystemdCgroup = false
        SystemdCgroup = true
"#,
        );
        let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
        assert_eq!(d, CgroupDriver::Systemd);
        assert_eq!(
            why,
            "containerd: SystemdCgroup = true for runtime runc in /etc/containerd/config.toml"
        );
    }

    #[test]
    fn containerd_v3_config_single_quotes() {
        let r = Root::new();
        r.file(
            CONTAINERD_CONFIG,
            "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = false\n",
        );
        let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
        assert_eq!(d, CgroupDriver::Cgroupfs);
        assert!(why.contains("SystemdCgroup = false"), "{why}");
    }

    #[test]
    fn containerd_unset_is_cgroupfs_default() {
        let r = Root::new();
        r.file(
            CONTAINERD_CONFIG,
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  BinaryName = \"\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.other.options]\n  SystemdCgroup = true\n",
        );
        let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
        assert_eq!(d, CgroupDriver::Cgroupfs);
        assert_eq!(
            why,
            "containerd: no SystemdCgroup setting for runtime runc in /etc/containerd/config.toml, \
             containerd's default (cgroupfs)"
        );
    }

    #[test]
    fn containerd_follows_default_runtime_name() {
        let r = Root::new();
        r.file(
            CONTAINERD_CONFIG,
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"nvidia\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia.options]\n  SystemdCgroup = true\n",
        );
        let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
        assert_eq!(d, CgroupDriver::Systemd);
        assert!(why.contains("runtime nvidia"), "{why}");
    }

    #[test]
    fn containerd_dotted_keys_and_v1_layout() {
        let r = Root::new();
        r.file(
            CONTAINERD_CONFIG,
            "[plugins.cri.containerd.runtimes.runc]\n  options.SystemdCgroup = true\n",
        );
        let (d, _) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
        assert_eq!(d, CgroupDriver::Systemd);
    }

    #[test]
    fn containerd_imports_override_main_file() {
        let r = Root::new();
        r.file(
            CONTAINERD_CONFIG,
            "version = 2\nimports = [\n  \"/etc/containerd/conf.d/*.toml\",\n  \"extra.toml\", # relative\n]\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = false\n",
        );
        r.file(
            "/etc/containerd/conf.d/10-systemd.toml",
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n",
        );
        r.file("/etc/containerd/conf.d/README", "SystemdCgroup = false\n");
        let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
        assert_eq!(d, CgroupDriver::Systemd);
        assert!(
            why.contains("/etc/containerd/conf.d/10-systemd.toml"),
            "{why}"
        );

        // A later import wins over an earlier one.
        r.file(
            "/etc/containerd/extra.toml",
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = false\n",
        );
        let (d, why) = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap();
        assert_eq!(d, CgroupDriver::Cgroupfs);
        assert!(why.contains("/etc/containerd/extra.toml"), "{why}");
    }

    #[test]
    fn containerd_invalid_value_is_an_error() {
        let r = Root::new();
        r.file(
            CONTAINERD_CONFIG,
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = \"yes\"\n",
        );
        let e = detect_cgroup_driver(&r.paths(), CONTAINERD).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(":2: SystemdCgroup = \"yes\""), "{msg}");
        assert!(msg.contains("--cgroup-driver"), "{msg}");
    }

    const CRIO: &str = "unix:///var/run/crio/crio.sock";

    #[test]
    fn crio_default_is_systemd() {
        let r = Root::new();
        r.file(
            CRIO_CONFIG,
            "[crio.runtime]\n# cgroup_manager = \"cgroupfs\"\n",
        );
        let (d, why) = detect_cgroup_driver(&r.paths(), CRIO).unwrap();
        assert_eq!(d, CgroupDriver::Systemd);
        assert!(why.contains("CRI-O's default (systemd)"), "{why}");
    }

    #[test]
    fn crio_drop_ins_override_in_order() {
        let r = Root::new();
        r.file(
            CRIO_CONFIG,
            "[crio.runtime]\ncgroup_manager = \"systemd\"\n",
        );
        r.file(
            "/etc/crio/crio.conf.d/10-a.conf",
            "[crio.runtime]\ncgroup_manager = \"systemd\"\n",
        );
        r.file(
            "/etc/crio/crio.conf.d/20-b.conf",
            "[crio]\n[crio.runtime]\n  cgroup_manager = 'cgroupfs'\n  conmon_cgroup = \"pod\"\n",
        );
        r.file(
            "/etc/crio/crio.conf.d/30-c.disabled",
            "[crio.runtime]\ncgroup_manager = \"systemd\"\n",
        );
        let (d, why) = detect_cgroup_driver(&r.paths(), "/run/crio/crio.sock").unwrap();
        assert_eq!(d, CgroupDriver::Cgroupfs);
        assert_eq!(
            why,
            "CRI-O: cgroup_manager = \"cgroupfs\" in /etc/crio/crio.conf.d/20-b.conf"
        );
    }

    #[test]
    fn crio_other_section_does_not_count() {
        let r = Root::new();
        r.file(CRIO_CONFIG, "[crio.image]\ncgroup_manager = \"cgroupfs\"\n");
        let (d, _) = detect_cgroup_driver(&r.paths(), CRIO).unwrap();
        assert_eq!(d, CgroupDriver::Systemd);
    }

    #[test]
    fn crio_invalid_value_is_an_error() {
        let r = Root::new();
        r.file(CRIO_CONFIG, "[crio.runtime]\ncgroup_manager = \"auto\"\n");
        assert!(matches!(
            detect_cgroup_driver(&r.paths(), CRIO),
            Err(HostError::InvalidSetting { .. })
        ));
    }

    #[test]
    fn cri_dockerd_reads_daemon_json_or_cgroup_version() {
        let ep = "unix:///var/run/cri-dockerd.sock";
        let r = Root::new();
        let (d, why) = detect_cgroup_driver(&r.paths(), ep).unwrap();
        assert_eq!(d, CgroupDriver::Cgroupfs);
        assert!(why.contains("cgroup v1"), "{why}");
        r.file(CGROUP_V2_MARKER, "cpu memory\n");
        let (d, _) = detect_cgroup_driver(&r.paths(), ep).unwrap();
        assert_eq!(d, CgroupDriver::Systemd);
        r.file(
            DOCKER_DAEMON_JSON,
            r#"{"exec-opts": ["native.cgroupdriver=cgroupfs"]}"#,
        );
        let (d, why) = detect_cgroup_driver(&r.paths(), ep).unwrap();
        assert_eq!(d, CgroupDriver::Cgroupfs);
        assert!(why.contains("native.cgroupdriver=cgroupfs"), "{why}");
    }

    #[test]
    fn unknown_endpoint_asks_for_flag() {
        let r = Root::new();
        let e = detect_cgroup_driver(&r.paths(), "unix:///run/k3s/containerd/containerd.sock")
            .unwrap_err();
        assert!(e.to_string().contains("--cgroup-driver"), "{e}");
    }

    #[test]
    fn toml_scanner_handles_quotes_comments_and_arrays() {
        let a = scan_toml(
            "a = \"x # not a comment\" # comment\n[t.\"q.k\"]\nb = [\n \"1\",\n \"2\" ]\nc = '''\nx = 1\n'''\nd = 4\n",
        );
        let keys: Vec<String> = a.iter().map(|a| a.key.join("|")).collect();
        assert_eq!(keys, ["a", "t|q.k|b", "t|q.k|c", "t|q.k|d"]);
        assert_eq!(a[0].value, "\"x # not a comment\"");
        assert_eq!(parse_toml_string_array(&a[1].value).unwrap(), ["1", "2"]);
        assert_eq!(a[3].line, 9);
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match(b"*.toml", b"a.toml"));
        assert!(glob_match(b"?0-*.conf", b"10-x.conf"));
        assert!(!glob_match(b"*.toml", b"a.toml.bak"));
        assert!(glob_match(b"*", b""));
    }
}
