//! The conditions for each kubelet phase and probe result, their messages' bounds, and
//! `lastTransitionTime` across evaluations. The fixtures are shared with `node::health`'s unit
//! tests (events are judged on the same states).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::model::kube_version::{KubeVersion, VersionAnswer, VersionCheck};
use crate::model::kubelet_process::{ExitInfo, Healthz, KubeletPhase};

pub(crate) fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub(crate) const NOW: u64 = 1_800_000_000;

pub(crate) fn healthy_probes() -> Probes {
    Probes {
        runtime_endpoint: "unix:///run/containerd/containerd.sock".into(),
        runtime: Some(Ok(())),
        client_cert_path: "/var/lib/kubelet/pki/kubelet-client-current.pem".into(),
        kubelet_dir: "/var/lib/kubelet".into(),
        client_cert: Some(Ok(t(NOW + 300 * 86400))),
        client_cert_id: Some("abc".into()),
        client_cert_lifetime: Some(Duration::from_secs(365 * 86400)),
        clock_skew: Some(0.3),
        disk: Some(Ok(DiskSpace {
            mount_point: "/".into(),
            available: 50 << 30,
            total: 100 << 30,
        })),
        memory: Some(Ok(Memory {
            available: 20 << 30,
            total: 24 << 30,
        })),
        limits: Limits::default(),
    }
}

pub(crate) fn running() -> KubeletState {
    KubeletState {
        phase: KubeletPhase::Running,
        pid: Some(42),
        started_at: Some(t(NOW - 60)),
        healthz: Healthz {
            ok: Some(true),
            consecutive_failures: 0,
            last_error: None,
        },
        version: Some(versions("v1.32.0", "v1.32.1")),
        ..KubeletState::default()
    }
}

/// `run`'s version check with both versions known.
pub(crate) fn versions(kubelet: &str, server: &str) -> VersionCheck {
    let mut check = VersionCheck::pending("/usr/bin/kubelet");
    check.kubelet = VersionAnswer::Known(KubeVersion::find(kubelet).unwrap());
    check.server = VersionAnswer::Known(KubeVersion::find(server).unwrap());
    check.checked_at = Some(t(NOW));
    check
}

pub(crate) fn exit(lines: Vec<String>) -> ExitInfo {
    ExitInfo {
        code: Some(1),
        signal: None,
        description: "exited with code 1".into(),
        at: t(NOW - 1),
        last_lines: lines,
    }
}

pub(crate) fn find<'a>(cs: &'a [NodeCondition], type_: &str) -> &'a NodeCondition {
    cs.iter().find(|c| c.type_ == type_).unwrap()
}

#[test]
fn healthy_node_is_all_false_and_ours_only() {
    let cs = conditions(&running(), &healthy_probes(), t(NOW));
    let types: Vec<&str> = cs.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, OUR_CONDITIONS);
    for c in &cs {
        assert_eq!(c.status, "False", "{c:?}");
        assert_eq!(c.last_heartbeat_time, "2027-01-15T08:00:00Z");
        assert_eq!(c.last_transition_time, c.last_heartbeat_time);
        assert!(c.reason.chars().next().unwrap().is_ascii_uppercase());
        assert!(!c.reason.contains(' '));
    }
}

#[test]
fn never_a_kubelet_owned_condition() {
    for phase in KubeletPhase::ALL {
        for probes in [healthy_probes(), Probes::default()] {
            let k = KubeletState {
                phase,
                last_exit: Some(exit(vec!["x".into()])),
                ..KubeletState::default()
            };
            for c in conditions(&k, &probes, t(NOW)) {
                assert!(!KUBELET_OWNED.contains(&c.type_.as_str()), "{c:?}");
                assert!(OUR_CONDITIONS.contains(&c.type_.as_str()), "{c:?}");
            }
        }
    }
    // Even if one slipped in, the patch leaves it out.
    let mut cs = conditions(&running(), &healthy_probes(), t(NOW));
    cs.push(NodeCondition::new("Ready", "False", "X", "y".into(), "z"));
    let body = patch_body(&cs);
    let written = body["status"]["conditions"].as_array().unwrap();
    assert_eq!(written.len(), OUR_CONDITIONS.len());
    assert!(written.iter().all(|c| c["type"] != "Ready"));
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["status"]
    );
    assert_eq!(written[0]["lastHeartbeatTime"], "2027-01-15T08:00:00Z");
}

#[test]
fn kubelet_phases() {
    let probes = healthy_probes();
    let cond = |k: &KubeletState| find(&conditions(k, &probes, t(NOW)), KUBELET_UNHEALTHY).clone();
    let mut k = running();
    k.healthz = Healthz {
        ok: Some(false),
        consecutive_failures: 3,
        last_error: Some("connection refused".into()),
    };
    let c = cond(&k);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "KubeletHealthzFailing")
    );
    assert!(c.message.contains("connection refused"), "{}", c.message);
    // the failure count is not in the message: no write per healthz check
    k.healthz.consecutive_failures = 4;
    assert_eq!(cond(&k).message, c.message);

    let k = KubeletState {
        phase: KubeletPhase::BackingOff,
        restarts: 2,
        last_exit: Some(exit(vec![
            "E1127 failed to run Kubelet: misconfiguration".into()
        ])),
        ..KubeletState::default()
    };
    let c = cond(&k);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "KubeletNotRunning")
    );
    assert!(c.message.contains("exited with code 1"), "{}", c.message);
    assert!(c.message.contains("misconfiguration"), "{}", c.message);

    let k = KubeletState {
        phase: KubeletPhase::CrashLooping,
        restarts: 9,
        last_exit: Some(exit(vec![])),
        ..KubeletState::default()
    };
    assert_eq!(cond(&k).reason, "KubeletCrashLooping");
    let k = KubeletState {
        phase: KubeletPhase::Starting,
        last_exit: Some(exit(vec![])),
        ..KubeletState::default()
    };
    assert_eq!(
        (cond(&k).status, cond(&k).reason),
        ("True".into(), "KubeletRestarting".into())
    );
    let k = KubeletState {
        phase: KubeletPhase::Starting,
        ..KubeletState::default()
    };
    assert_eq!(
        (cond(&k).status, cond(&k).reason),
        ("False".into(), "KubeletStarting".into())
    );
    for (phase, reason) in [
        (KubeletPhase::CannotStart, "KubeletCannotStart"),
        (KubeletPhase::Conflict, "KubeletConflict"),
    ] {
        let k = KubeletState {
            phase,
            problem: Some("the fix is X".into()),
            ..KubeletState::default()
        };
        let c = cond(&k);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            ("True", reason, "the fix is X")
        );
    }
    // Not supervised (run --no-kubelet): healthz alone.
    let mut k = KubeletState::default();
    assert_eq!(
        (cond(&k).status, cond(&k).reason),
        ("Unknown".into(), "KubeletNotStarted".into())
    );
    k.healthz.ok = Some(true);
    assert_eq!(
        (cond(&k).status, cond(&k).reason),
        ("False".into(), "KubeletHealthy".into())
    );
    k.healthz.ok = Some(false);
    assert_eq!(
        (cond(&k).status, cond(&k).reason),
        ("True".into(), "KubeletHealthzFailing".into())
    );
}

#[test]
fn messages_are_bounded_and_keep_the_newest_lines() {
    let lines: Vec<String> = (0..200)
        .map(|i| format!("I1127 line number {i:03} of kubelet output, padded out"))
        .collect();
    let k = KubeletState {
        phase: KubeletPhase::BackingOff,
        last_exit: Some(exit(lines)),
        ..KubeletState::default()
    };
    let c = find(
        &conditions(&k, &healthy_probes(), t(NOW)),
        KUBELET_UNHEALTHY,
    )
    .clone();
    assert!(c.message.len() <= MAX_MESSAGE, "{}", c.message.len());
    assert!(
        c.message.len() > MAX_MESSAGE - 100,
        "uses the room: {}",
        c.message.len()
    );
    assert!(c.message.contains("line number 199"));
    assert!(!c.message.contains("line number 000"));
    assert!(c.message.contains("exited with code 1"));
    // one enormous line (multi-byte characters): its end is kept, cut on a char boundary
    let k = KubeletState {
        phase: KubeletPhase::BackingOff,
        last_exit: Some(exit(vec![format!("{}END", "é".repeat(3000))])),
        ..KubeletState::default()
    };
    let c = find(
        &conditions(&k, &healthy_probes(), t(NOW)),
        KUBELET_UNHEALTHY,
    )
    .clone();
    assert!(c.message.len() <= MAX_MESSAGE);
    assert!(c.message.ends_with("END"), "{}", c.message);
    let k = KubeletState {
        phase: KubeletPhase::CannotStart,
        problem: Some("x".repeat(5000)),
        ..KubeletState::default()
    };
    let c = find(
        &conditions(&k, &healthy_probes(), t(NOW)),
        KUBELET_UNHEALTHY,
    )
    .clone();
    assert_eq!(c.message.len(), MAX_MESSAGE);
    assert!(c.message.ends_with('…'));
}

#[test]
fn probe_conditions() {
    let mut p = healthy_probes();
    p.runtime = Some(Err("No such file or directory (os error 2)".into()));
    p.client_cert = Some(Ok(t(NOW + 3 * 86400)));
    p.clock_skew = Some(-95.4);
    p.disk = Some(Ok(DiskSpace {
        mount_point: "/var".into(),
        available: 5 << 30,
        total: 100 << 30,
    }));
    p.memory = Some(Ok(Memory {
        available: 1 << 30,
        total: 24 << 30,
    }));
    let cs = conditions(&running(), &p, t(NOW));
    let r = |ty| {
        let c = find(&cs, ty);
        (c.status.clone(), c.reason.clone())
    };
    assert_eq!(
        r(CONTAINER_RUNTIME_UNREACHABLE),
        ("True".into(), "ContainerRuntimeUnreachable".into())
    );
    assert_eq!(
        r(CLIENT_CERTIFICATE_EXPIRING),
        ("True".into(), "ClientCertificateExpiringSoon".into())
    );
    assert!(find(&cs, CLIENT_CERTIFICATE_EXPIRING)
        .message
        .contains("in 3 days"));
    assert_eq!(r(CLOCK_SKEW), ("True".into(), "ClockSkewed".into()));
    assert!(
        find(&cs, CLOCK_SKEW).message.contains("95 s ahead of"),
        "{}",
        find(&cs, CLOCK_SKEW).message
    );
    assert_eq!(r(LOW_DISK_SPACE), ("True".into(), "LowDiskSpace".into()));
    assert!(find(&cs, LOW_DISK_SPACE).message.contains("only 5%"));
    assert_eq!(r(LOW_MEMORY), ("True".into(), "LowMemory".into()));
    p.client_cert = Some(Ok(t(NOW - 1)));
    p.clock_skew = Some(29.0);
    let cs = conditions(&running(), &p, t(NOW));
    assert_eq!(
        find(&cs, CLIENT_CERTIFICATE_EXPIRING).reason,
        "ClientCertificateExpired"
    );
    assert_eq!(find(&cs, CLOCK_SKEW).status, "False");
    let cs = conditions(&running(), &Probes::default(), t(NOW));
    // Judged on the probes: all but kubelet's health and its version (the kubelet state's).
    for ty in OUR_CONDITIONS[1..]
        .iter()
        .filter(|ty| **ty != KUBELET_VERSION_SKEW)
    {
        assert_eq!(find(&cs, ty).status, "Unknown", "{ty}");
    }
}

#[test]
fn transition_time_kept_while_status_unchanged() {
    let first = conditions(&running(), &healthy_probes(), t(NOW));
    let mut second = conditions(&running(), &healthy_probes(), t(NOW + 300));
    carry_transition_times(&mut second, &first);
    for c in &second {
        assert_eq!(c.last_transition_time, "2027-01-15T08:00:00Z");
        assert_eq!(c.last_heartbeat_time, "2027-01-15T08:05:00Z");
    }
    // kubelet fails: only its condition transitions; a changed message alone does not
    let k = KubeletState {
        phase: KubeletPhase::BackingOff,
        last_exit: Some(exit(vec![])),
        ..KubeletState::default()
    };
    let mut third = conditions(&k, &healthy_probes(), t(NOW + 400));
    carry_transition_times(&mut third, &second);
    assert_eq!(
        find(&third, KUBELET_UNHEALTHY).last_transition_time,
        "2027-01-15T08:06:40Z"
    );
    assert_eq!(
        find(&third, LOW_MEMORY).last_transition_time,
        "2027-01-15T08:00:00Z"
    );
    let k = KubeletState {
        phase: KubeletPhase::CrashLooping,
        last_exit: Some(exit(vec![])),
        ..KubeletState::default()
    };
    let mut fourth = conditions(&k, &healthy_probes(), t(NOW + 500));
    carry_transition_times(&mut fourth, &third);
    assert_eq!(
        find(&fourth, KUBELET_UNHEALTHY).last_transition_time,
        "2027-01-15T08:06:40Z"
    );
    assert_ne!(write_key(&fourth), write_key(&third));
}

#[test]
fn a_restart_keeps_the_transition_times_on_the_node() {
    let node = serde_json::to_vec(&json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2027-01-01T00:00:00Z"},
        {"type": KUBELET_UNHEALTHY, "status": "False", "lastTransitionTime": "2027-01-02T00:00:00Z"},
        {"type": LOW_MEMORY, "status": "True", "lastTransitionTime": "2027-01-03T00:00:00Z"},
        {"type": CLOCK_SKEW, "status": "False"},
    ]}}))
    .unwrap();
    let on_node = transitions_on_node(&node);
    assert_eq!(on_node.len(), 3, "{on_node:?}");
    assert!(transitions_on_node(b"not json").is_empty());
    let mut cs = conditions(&running(), &healthy_probes(), t(NOW));
    adopt_transition_times(&mut cs, &on_node);
    // Same status there: kept. Another status (LowMemory was True): a transition, now.
    assert_eq!(
        find(&cs, KUBELET_UNHEALTHY).last_transition_time,
        "2027-01-02T00:00:00Z"
    );
    assert_eq!(
        find(&cs, LOW_MEMORY).last_transition_time,
        "2027-01-15T08:00:00Z"
    );
    assert_eq!(
        find(&cs, CLOCK_SKEW).last_transition_time,
        "2027-01-15T08:00:00Z"
    );
}

#[test]
fn messages_name_the_files_checked() {
    let mut p = healthy_probes();
    p.client_cert = Some(Err("permission denied".into()));
    p.disk = None;
    let cs = conditions(&running(), &p, t(NOW));
    assert_eq!(
        find(&cs, CLIENT_CERTIFICATE_EXPIRING).message,
        "cannot read the node's client certificate /var/lib/kubelet/pki/kubelet-client-current.pem: permission denied"
    );
    assert_eq!(
        find(&cs, LOW_DISK_SPACE).message,
        "free space under /var/lib/kubelet has not been checked yet"
    );
}

/// The real control plane in CI issues 2-day certificates (capped by its young CA): fresh, one
/// is not "expiring, rotation is not working"; past 90 % of its life without rotation it is.
#[test]
fn a_short_lived_certificate_is_judged_on_its_lifetime() {
    let mut p = healthy_probes();
    p.client_cert_lifetime = Some(Duration::from_secs(2 * 86400));
    p.client_cert = Some(Ok(t(NOW + 2 * 86400 - 60)));
    let cs = conditions(&running(), &p, t(NOW));
    assert_eq!(
        find(&cs, CLIENT_CERTIFICATE_EXPIRING).reason,
        "ClientCertificateValid"
    );
    p.client_cert = Some(Ok(t(NOW + 3 * 3600)));
    let cs = conditions(&running(), &p, t(NOW));
    assert_eq!(
        find(&cs, CLIENT_CERTIFICATE_EXPIRING).reason,
        "ClientCertificateExpiringSoon"
    );
    // Lifetime unknown: the fixed 7-day period, as before.
    p.client_cert_lifetime = None;
    p.client_cert = Some(Ok(t(NOW + 2 * 86400 - 60)));
    let cs = conditions(&running(), &p, t(NOW));
    assert_eq!(
        find(&cs, CLIENT_CERTIFICATE_EXPIRING).reason,
        "ClientCertificateExpiringSoon"
    );
}

#[test]
fn the_version_skew_condition_follows_the_policy() {
    let judged = |check: Option<VersionCheck>| {
        let k = KubeletState {
            version: check,
            ..running()
        };
        find(
            &conditions(&k, &healthy_probes(), t(NOW)),
            KUBELET_VERSION_SKEW,
        )
        .clone()
    };
    let c = judged(None);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("Unknown", "KubeletVersionNotChecked")
    );
    let mut unknown = versions("v1.32.0", "v1.32.0");
    unknown.server = VersionAnswer::Unknown("GET /version failed: refused".into());
    let c = judged(Some(unknown));
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("Unknown", "ServerVersionUnknown")
    );
    assert!(c.message.contains("refused"), "{c:?}");
    for (kubelet, status, reason) in [
        ("v1.33.0", "True", "KubeletVersionTooNew"),
        ("v1.28.4", "True", "KubeletVersionTooOld"),
        ("v1.29.0", "False", "KubeletVersionSkewAtLimit"),
        ("v1.31.2", "False", "KubeletVersionSkewWithinPolicy"),
    ] {
        let c = judged(Some(versions(kubelet, "v1.32.0")));
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            (status, reason),
            "{c:?}"
        );
        assert!(
            c.message.contains(kubelet) && c.message.contains("v1.32.0"),
            "{c:?}"
        );
    }
    let limit = judged(Some(versions("v1.29.0", "v1.32.0")));
    assert!(
        limit.message.contains("next control-plane upgrade"),
        "{limit:?}"
    );
    assert!(judged(Some(versions("v1.33.0", "v1.32.0")))
        .message
        .contains(crate::model::kube_version::POLICY));
}
