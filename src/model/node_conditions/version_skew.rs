//! `KubeletVersionSkew`, from what `run` last learnt of the kubelet binary's version and
//! kube-apiserver's ([`VersionCheck`], published with the kubelet state), judged by the skew
//! policy of [`crate::model::kube_version`]: True outside it (both versions and the policy in
//! the message), False within it, False with [`reason::KUBELET_VERSION_SKEW_AT_LIMIT`] at its
//! limit (the next control-plane upgrade breaks it), Unknown while either version is unknown.

use crate::model::kube_version::{
    skew_problem, supported_range, Skew, VersionAnswer, VersionCheck, POLICY,
};

use super::{reason, Verdict};

/// Status, reason and message of `KubeletVersionSkew`.
pub(super) fn kubelet_version_skew(check: Option<&VersionCheck>) -> Verdict {
    let Some(check) = check else {
        return Verdict::unknown(
            reason::KUBELET_VERSION_NOT_CHECKED,
            "kubelet's version has not been checked against kube-apiserver's yet".into(),
        );
    };
    let (kubelet, server) = match (&check.kubelet, &check.server) {
        (VersionAnswer::Known(k), VersionAnswer::Known(s)) => (k, s),
        (VersionAnswer::Unknown(why), _) => {
            return Verdict::unknown(
                reason::KUBELET_VERSION_UNKNOWN,
                format!("cannot tell kubelet's version: {why}"),
            )
        }
        (_, VersionAnswer::Unknown(why)) => {
            return Verdict::unknown(
                reason::SERVER_VERSION_UNKNOWN,
                format!("cannot tell kube-apiserver's version: {why}"),
            )
        }
        _ => {
            return Verdict::unknown(
                reason::KUBELET_VERSION_NOT_CHECKED,
                "kubelet's version has not been checked against kube-apiserver's yet".into(),
            )
        }
    };
    let problem = || skew_problem(kubelet, server).unwrap_or_default();
    match Skew::of(kubelet, server) {
        Skew::KubeletNewer => Verdict::problem(reason::KUBELET_VERSION_TOO_NEW, problem()),
        Skew::KubeletTooOld => Verdict::problem(reason::KUBELET_VERSION_TOO_OLD, problem()),
        Skew::AtLimit => Verdict::fine(reason::KUBELET_VERSION_SKEW_AT_LIMIT, problem()),
        Skew::Within { .. } => Verdict::fine(
            reason::KUBELET_VERSION_SKEW_WITHIN_POLICY,
            format!(
                "kubelet {} and kube-apiserver {} are within the version skew policy ({POLICY}; \
                 kubelet {} is supported)",
                kubelet.text,
                server.text,
                supported_range(server)
            ),
        ),
    }
}
