//! CRI-O's cgroup driver: `cgroup_manager` in `[crio.runtime]` of `/etc/crio/crio.conf` and
//! its drop-ins.

use super::containerd::expand_glob;
use super::toml_scan::{parse_toml_string, scan_toml};
use super::{read_optional, FromFiles, HostError, CRIO_CONFIG, CRIO_CONFIG_DIR};
use crate::host::paths::Paths;
use crate::model::cgroup_driver::CgroupDriver;

pub(super) fn crio_cgroup_driver(paths: &Paths) -> Result<FromFiles, HostError> {
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
        return Ok(FromFiles::unstated(
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
    Ok(FromFiles::stated(
        driver,
        format!(
            "CRI-O: cgroup_manager = \"{}\" in {}",
            driver.as_str(),
            file.node_path
        ),
    ))
}
