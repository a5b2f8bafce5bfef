//! cri-dockerd's cgroup driver: Docker's `exec-opts` in `/etc/docker/daemon.json`, else the
//! cgroup version's default.

use super::{read_optional, FromFiles, HostError, CGROUP_V2_MARKER, DOCKER_DAEMON_JSON};
use crate::host::paths::Paths;
use crate::model::cgroup_driver::CgroupDriver;

pub(super) fn docker_cgroup_driver(paths: &Paths) -> Result<FromFiles, HostError> {
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
            return Ok(FromFiles::stated(
                driver,
                format!(
                    "cri-dockerd: Docker exec-opts native.cgroupdriver={} in {DOCKER_DAEMON_JSON}",
                    driver.as_str()
                ),
            ));
        }
    }
    if paths.host(CGROUP_V2_MARKER).exists() {
        Ok(FromFiles::unstated(
            CgroupDriver::Systemd,
            "cri-dockerd: no native.cgroupdriver in Docker's daemon.json, Docker's default on \
             cgroup v2 (systemd)"
                .to_owned(),
        ))
    } else {
        Ok(FromFiles::unstated(
            CgroupDriver::Cgroupfs,
            "cri-dockerd: no native.cgroupdriver in Docker's daemon.json, Docker's default on \
             cgroup v1 (cgroupfs)"
                .to_owned(),
        ))
    }
}
