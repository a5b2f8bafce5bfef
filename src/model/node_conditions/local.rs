//! The conditions judged on the local probes and the API server's clock: one function per
//! condition type. Messages hold no jittery numbers while nothing changes (no percentages in
//! the False messages), so a steady node is written only on the heartbeat.

use std::time::{Duration, SystemTime};

use crate::model::time::{human_duration, k8s_time};

use super::{reason, Probes, Verdict};

/// `ContainerRuntimeUnreachable`: whether the CRI socket accepted a connection.
pub(super) fn container_runtime(p: &Probes) -> Verdict {
    let endpoint = &p.runtime_endpoint;
    match &p.runtime {
        None => Verdict::unknown(
            reason::CONTAINER_RUNTIME_NOT_CHECKED,
            format!("the container runtime at {endpoint} has not been checked yet"),
        ),
        Some(Ok(())) => Verdict::fine(
            reason::CONTAINER_RUNTIME_REACHABLE,
            format!("the container runtime socket {endpoint} accepts connections"),
        ),
        Some(Err(e)) => Verdict::problem(
            reason::CONTAINER_RUNTIME_UNREACHABLE,
            format!("cannot connect to the container runtime socket {endpoint}: {e}; kubelet cannot run pods without it"),
        ),
    }
}

/// `ClientCertificateExpiring`: the client certificate's notAfter against `now` and the
/// warning period, cut to the last 10 % of the certificate's lifetime: kubelet rotates at
/// 70-90 % of it, so only past 90 % is a missing rotation a fact (a 2-day certificate is not
/// "expiring" the day it is issued).
pub(super) fn client_certificate(p: &Probes, now: SystemTime) -> Verdict {
    let not_after = match &p.client_cert {
        None => {
            return Verdict::unknown(
                reason::CLIENT_CERTIFICATE_NOT_CHECKED,
                "the node's client certificate has not been checked yet".to_string(),
            )
        }
        Some(Err(e)) => {
            return Verdict::problem(
                reason::CLIENT_CERTIFICATE_UNREADABLE,
                format!(
                    "cannot read the node's client certificate {}: {e}",
                    p.client_cert_path
                ),
            )
        }
        Some(Ok(not_after)) => *not_after,
    };
    match not_after.duration_since(now) {
        Err(_) => Verdict::problem(
            reason::CLIENT_CERTIFICATE_EXPIRED,
            format!(
                "the node's client certificate expired at {}; kubelet's rotation did not renew it (is certificate rotation approved for system:nodes?)",
                k8s_time(not_after)
            ),
        ),
        Ok(left) if left <= expiry_warning(p) => Verdict::problem(
            reason::CLIENT_CERTIFICATE_EXPIRING_SOON,
            format!(
                "the node's client certificate expires at {} (in {}); kubelet rotates it at about 70-90% of its lifetime, so rotation is not working (is certificate rotation approved for system:nodes?)",
                k8s_time(not_after),
                human_duration(left)
            ),
        ),
        Ok(_) => Verdict::fine(
            reason::CLIENT_CERTIFICATE_VALID,
            format!(
                "the node's client certificate is valid until {}",
                k8s_time(not_after)
            ),
        ),
    }
}

/// How long before notAfter an unrotated certificate is a problem.
fn expiry_warning(p: &Probes) -> Duration {
    let limit = p.limits.cert_expiry_warning;
    p.client_cert_lifetime
        .map_or(limit, |lifetime| limit.min(lifetime / 10))
}

/// `ClockSkew`: the estimated skew against the limit.
pub(super) fn clock_skew(p: &Probes) -> Verdict {
    let limit = p.limits.clock_skew_limit;
    match p.clock_skew {
        None => Verdict::unknown(
            reason::SERVER_TIME_UNKNOWN,
            "the API server's time is not known yet".to_string(),
        ),
        Some(skew) if skew.abs() > limit.as_secs_f64() => Verdict::problem(
            reason::CLOCK_SKEWED,
            format!(
                "this node's clock is about {} s {} the API server's (more than the {} s allowed); check NTP on the node",
                skew.abs().round(),
                if skew > 0.0 { "behind" } else { "ahead of" },
                limit.as_secs()
            ),
        ),
        Some(_) => Verdict::fine(
            reason::CLOCK_SYNCHRONIZED,
            format!(
                "this node's clock is within {} s of the API server's",
                limit.as_secs()
            ),
        ),
    }
}

/// `LowDiskSpace`: the free percentage of the filesystem holding kubelet's directory.
pub(super) fn low_disk_space(p: &Probes) -> Verdict {
    let min = p.limits.disk_free_min_percent;
    let dir = &p.kubelet_dir;
    match &p.disk {
        None => Verdict::unknown(
            reason::DISK_SPACE_UNKNOWN,
            format!("free space under {dir} has not been checked yet"),
        ),
        Some(Err(e)) => Verdict::unknown(
            reason::DISK_SPACE_UNKNOWN,
            format!("cannot tell the free space under {dir}: {e}"),
        ),
        Some(Ok(d)) if percent(d.available, d.total) < min => Verdict::problem(
            reason::LOW_DISK_SPACE,
            format!(
                "only {}% ({}) free on the filesystem at {} holding {dir}; the minimum is {min}%",
                percent(d.available, d.total).floor(),
                human_bytes(d.available),
                d.mount_point,
            ),
        ),
        Some(Ok(d)) => Verdict::fine(
            reason::DISK_SPACE_SUFFICIENT,
            format!(
                "the filesystem at {} holding {dir} has at least {min}% free",
                d.mount_point
            ),
        ),
    }
}

/// `LowMemory`: the available percentage of the machine's memory.
pub(super) fn low_memory(p: &Probes) -> Verdict {
    let min = p.limits.memory_available_min_percent;
    match &p.memory {
        None => Verdict::unknown(
            reason::MEMORY_UNKNOWN,
            "available memory has not been checked yet".to_string(),
        ),
        Some(Err(e)) => Verdict::unknown(
            reason::MEMORY_UNKNOWN,
            format!("cannot tell the available memory: {e}"),
        ),
        Some(Ok(m)) if percent(m.available, m.total) < min => Verdict::problem(
            reason::LOW_MEMORY,
            format!(
                "only {}% of memory ({} of {}) is available; the minimum is {min}%",
                percent(m.available, m.total).floor(),
                human_bytes(m.available),
                human_bytes(m.total)
            ),
        ),
        Some(Ok(_)) => Verdict::fine(
            reason::MEMORY_SUFFICIENT,
            format!("at least {min}% of memory is available"),
        ),
    }
}

/// `part` as a percentage of `total` (100 when `total` is 0: nothing to run out of).
fn percent(part: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        part as f64 * 100.0 / total as f64
    }
}

fn human_bytes(b: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    if b as f64 >= GIB {
        format!("{:.1} GiB", b as f64 / GIB)
    } else {
        format!("{:.0} MiB", b as f64 / MIB)
    }
}
