//! containerd's cgroup driver: `SystemdCgroup` in the default runtime's options, from
//! `/etc/containerd/config.toml` and the files its `imports` name.

use std::fs;
use std::path::Path;

use super::toml_scan::{
    parse_toml_bool, parse_toml_string, parse_toml_string_array, scan_toml, Assignment,
};
use super::{read_optional, ConfigFile, FromFiles, HostError, CONTAINERD_CONFIG, MAX_IMPORT_DEPTH};
use crate::host::paths::Paths;
use crate::model::cgroup_driver::CgroupDriver;

pub(super) fn containerd_cgroup_driver(paths: &Paths) -> Result<FromFiles, HostError> {
    let Some(main) = read_optional(paths, CONTAINERD_CONFIG)? else {
        return Ok(FromFiles::unstated(
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
            Ok(FromFiles::stated(
                driver,
                format!(
                    "containerd: SystemdCgroup = {systemd} for runtime {runtime} in {}",
                    file.node_path
                ),
            ))
        }
        None => {
            let read: Vec<&str> = files.iter().map(|f| f.node_path.as_str()).collect();
            Ok(FromFiles::unstated(
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
pub(super) fn collect_containerd_files(
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
pub(super) fn expand_glob(paths: &Paths, pattern: &str) -> Vec<String> {
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
pub(super) fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| glob_match(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && glob_match(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && glob_match(rest, &name[1..]),
    }
}
