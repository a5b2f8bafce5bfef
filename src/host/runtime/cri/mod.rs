//! Asking the container runtime itself, over CRI, which cgroup driver it uses: for when its
//! configuration files are not where we look (a containerd started with its own `--config`) or
//! say nothing.
//!
//! Two questions, the first the runtime answers wins:
//! - `RuntimeService/RuntimeConfig` (what kubelet v1.33 asks first): `linux.cgroup_driver`,
//!   answered by containerd 2.0+ and CRI-O 1.28+; containerd 1.x does not implement it.
//! - `RuntimeService/Status` with `verbose: true`: containerd puts its CRI configuration as JSON
//!   under the `config` key of the `info` map, where
//!   `containerd.runtimes.<containerd.defaultRuntimeName>.options.SystemdCgroup` is the driver
//!   (absent: false, containerd's default). CRI-O's `config` there holds only `sandboxImage`
//!   (server/runtime_status.go), so for CRI-O only RuntimeConfig tells.
//!
//! The call goes through [`Host::cri_unary`] (the machine's socket, a fake in tests); the wire
//! is [`h2c`], the answers are read by [`proto`]. Requests are encoded by hand: both are tiny.

pub(super) mod h2c;
mod proto;

use std::io;
use std::path::Path;
use std::time::Duration;

use proto::{fields, last, string_map, Value};

use crate::host::Host;
use crate::model::cgroup_driver::CgroupDriver;

pub const RUNTIME_CONFIG: &str = "/runtime.v1.RuntimeService/RuntimeConfig";
pub const STATUS: &str = "/runtime.v1.RuntimeService/Status";
/// `StatusRequest { verbose: true }`: field 1, varint 1.
pub const STATUS_VERBOSE: &[u8] = &[0x08, 0x01];
/// How long one call may take: a local runtime answers in milliseconds.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// One unary call on the runtime's socket: what [`crate::host::LinuxHost`] does for
/// [`Host::cri_unary`].
pub fn unary(socket: &Path, method: &str, request: &[u8]) -> io::Result<Vec<u8>> {
    h2c::unary(socket, method, request, CALL_TIMEOUT)
}

/// The cgroup driver the runtime at `socket` (a path on this machine) says it uses, and how it
/// said so; `Err` says why neither question was answered.
pub fn ask_cgroup_driver(
    machine: &dyn Host,
    socket: &Path,
) -> Result<(CgroupDriver, String), String> {
    let mut silent = false;
    let config_error = match machine.cri_unary(socket, RUNTIME_CONFIG, &[]) {
        Ok(answer) => match driver_from_runtime_config(&answer) {
            Ok(Some(driver)) => {
                return Ok((
                    driver,
                    format!("the runtime says {} (CRI RuntimeConfig)", driver.as_str()),
                ))
            }
            Ok(None) => "RuntimeConfig: no linux configuration in the answer".to_owned(),
            Err(e) => format!("RuntimeConfig: {e}"),
        },
        Err(e) => {
            // Not answering at all (or not there): a second question would fare no better.
            silent = matches!(
                e.kind(),
                io::ErrorKind::TimedOut
                    | io::ErrorKind::NotFound
                    | io::ErrorKind::ConnectionRefused
            );
            format!("RuntimeConfig: {e}")
        }
    };
    if silent {
        return Err(format!(
            "the runtime at {} did not answer ({config_error})",
            socket.display()
        ));
    }
    let status_error = match machine.cri_unary(socket, STATUS, STATUS_VERBOSE) {
        Ok(answer) => match driver_from_status(&answer) {
            Ok(found) => return Ok(found),
            Err(e) => format!("Status: {e}"),
        },
        Err(e) => format!("Status: {e}"),
    };
    Err(format!(
        "the runtime at {} did not tell ({config_error}; {status_error})",
        socket.display()
    ))
}

/// `RuntimeConfigResponse { linux: LinuxRuntimeConfiguration { cgroup_driver } }`: field 1,
/// then field 1, an enum where SYSTEMD is 0 (so absent inside a present `linux`) and CGROUPFS 1.
pub(super) fn driver_from_runtime_config(answer: &[u8]) -> Result<Option<CgroupDriver>, String> {
    let Some(Value::Bytes(linux)) = last(&fields(answer)?, 1) else {
        return Ok(None);
    };
    match last(&fields(linux)?, 1) {
        None | Some(Value::Varint(0)) => Ok(Some(CgroupDriver::Systemd)),
        Some(Value::Varint(1)) => Ok(Some(CgroupDriver::Cgroupfs)),
        Some(other) => Err(format!(
            "cgroup_driver {other:?} is not SYSTEMD or CGROUPFS"
        )),
    }
}

/// containerd's `SystemdCgroup` from a verbose `StatusResponse` (its `info`, field 2).
pub(super) fn driver_from_status(answer: &[u8]) -> Result<(CgroupDriver, String), String> {
    let info = string_map(answer, 2)?;
    let config = info
        .get("config")
        .ok_or("no config in the answer's info (not containerd?)")?;
    let config: serde_json::Value =
        serde_json::from_str(config).map_err(|e| format!("its config is not JSON: {e}"))?;
    let containerd = &config["containerd"];
    let runtime = containerd["defaultRuntimeName"]
        .as_str()
        .filter(|r| !r.is_empty())
        .unwrap_or("runc");
    let options = &containerd["runtimes"][runtime]["options"];
    if !containerd["runtimes"][runtime].is_object() {
        return Err(format!("its config has no runtime {runtime}"));
    }
    let systemd = match &options["SystemdCgroup"] {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(b) => Some(*b),
        other => return Err(format!("SystemdCgroup is {other}, not true or false")),
    };
    let driver = if systemd == Some(true) {
        CgroupDriver::Systemd
    } else {
        CgroupDriver::Cgroupfs
    };
    let said = match systemd {
        Some(b) => format!("SystemdCgroup = {b}"),
        None => "no SystemdCgroup, containerd's default (false)".to_owned(),
    };
    Ok((
        driver,
        format!("the running containerd says {said} for runtime {runtime} (CRI Status)"),
    ))
}

#[cfg(test)]
pub(super) mod tests;
