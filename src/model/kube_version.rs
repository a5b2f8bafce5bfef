//! Kubernetes versions as `kubelet --version` and the API server's `/version` give them, and the
//! version skew policy between kubelet and kube-apiserver
//! (<https://kubernetes.io/releases/version-skew-policy/>, since Kubernetes 1.28): kubelet must
//! not be newer than kube-apiserver and may be at most [`MAX_KUBELET_MINOR_SKEW`] minor versions
//! older. One policy for every place that judges it: preflight's `KubeletVersion` check, the
//! `KubeletVersionSkew` condition `run` reports ([`crate::model::node_conditions`]) and the
//! checks of `kaas-join upgrade-kubelet`.
//!
//! Also here: [`VersionCheck`], what `run` last learnt of both versions (published with the
//! kubelet state, written to the run-status file).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// kubelet may be this many minor versions older than kube-apiserver, never newer.
pub const MAX_KUBELET_MINOR_SKEW: u64 = 3;

/// The policy in words, for messages.
pub const POLICY: &str = "kubelet may be up to 3 minor versions older than kube-apiserver, \
                          never newer";

/// A Kubernetes version, as `kubelet --version` and `/version` give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeVersion {
    pub major: u64,
    pub minor: u64,
    /// As written, e.g. `v1.31.2`.
    pub text: String,
}

impl KubeVersion {
    /// The first word shaped like `v1.31.2` (suffixes such as `-eks-1` kept in `text`); words
    /// end at white space and at JSON's punctuation, so `/version`'s body is searched as well.
    pub fn find(s: &str) -> Option<KubeVersion> {
        let separator = |c: char| c.is_whitespace() || matches!(c, '"' | ',' | ':' | '{' | '}');
        s.split(separator).find_map(|w| {
            let rest = w.strip_prefix('v')?;
            let mut parts = rest.split(|c: char| !c.is_ascii_digit());
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            Some(KubeVersion {
                major,
                minor,
                text: w.to_owned(),
            })
        })
    }

    /// `1.31`: the minor version a package or a download is named by.
    pub fn minor_version(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// The same major version, `by` minor versions older (saturating at `.0`).
    fn minors_older(&self, by: u64) -> String {
        format!("{}.{}", self.major, self.minor.saturating_sub(by))
    }
}

/// Where a kubelet version stands against kube-apiserver's under the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skew {
    /// kubelet is newer than kube-apiserver: outside the policy.
    KubeletNewer,
    /// More than [`MAX_KUBELET_MINOR_SKEW`] minor versions older (or an older major version):
    /// outside the policy.
    KubeletTooOld,
    /// Exactly [`MAX_KUBELET_MINOR_SKEW`] minor versions older: still supported, but the next
    /// control-plane upgrade puts it outside.
    AtLimit,
    /// Within the policy with room to spare: this many minor versions older (0 = the same).
    Within { minors_older: u64 },
}

impl Skew {
    /// `kubelet` against `server` (kube-apiserver).
    pub fn of(kubelet: &KubeVersion, server: &KubeVersion) -> Skew {
        if (kubelet.major, kubelet.minor) > (server.major, server.minor) {
            return Skew::KubeletNewer;
        }
        if kubelet.major != server.major {
            return Skew::KubeletTooOld;
        }
        match server.minor - kubelet.minor {
            n if n > MAX_KUBELET_MINOR_SKEW => Skew::KubeletTooOld,
            MAX_KUBELET_MINOR_SKEW => Skew::AtLimit,
            n => Skew::Within { minors_older: n },
        }
    }

    /// Within the policy (at its limit included).
    pub fn is_supported(self) -> bool {
        matches!(self, Skew::AtLimit | Skew::Within { .. })
    }
}

/// The kubelet minor versions the policy allows against `server`, e.g. `1.30 to 1.33`.
pub fn supported_range(server: &KubeVersion) -> String {
    format!(
        "{} to {}",
        server.minors_older(MAX_KUBELET_MINOR_SKEW),
        server.minor_version()
    )
}

/// What `kubelet` against `server` means, in one sentence with both versions and the policy
/// (`None` inside the policy with room to spare).
pub fn skew_problem(kubelet: &KubeVersion, server: &KubeVersion) -> Option<String> {
    let (k, s) = (&kubelet.text, &server.text);
    match Skew::of(kubelet, server) {
        Skew::KubeletNewer => Some(format!(
            "kubelet {k} is newer than kube-apiserver {s}: outside the version skew policy \
             ({POLICY}); use kubelet {} (the control plane is upgraded first)",
            supported_range(server)
        )),
        Skew::KubeletTooOld => Some(format!(
            "kubelet {k} is more than {MAX_KUBELET_MINOR_SKEW} minor versions older than \
             kube-apiserver {s}: outside the version skew policy ({POLICY}); upgrade kubelet to \
             {}",
            supported_range(server)
        )),
        Skew::AtLimit => Some(format!(
            "kubelet {k} is {MAX_KUBELET_MINOR_SKEW} minor versions older than kube-apiserver \
             {s}: the oldest the version skew policy allows ({POLICY}); the next control-plane \
             upgrade will put it outside the policy: upgrade kubelet first"
        )),
        Skew::Within { .. } => None,
    }
}

/// One side's version as `run` last learnt it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VersionAnswer {
    /// Not asked yet.
    Pending,
    Known(KubeVersion),
    /// Asked, but no usable answer (why).
    Unknown(String),
}

/// The kubelet binary's version and kube-apiserver's, as `run` checked them last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionCheck {
    /// The binary asked (`run --kubelet`), for messages.
    pub binary: String,
    pub kubelet: VersionAnswer,
    pub server: VersionAnswer,
    /// When both were last asked (`None` before the first check).
    #[serde(
        with = "crate::model::kubelet_process::opt_unix_seconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub checked_at: Option<SystemTime>,
}

impl VersionCheck {
    /// Nothing asked yet about `binary`.
    pub fn pending(binary: impl Into<String>) -> VersionCheck {
        VersionCheck {
            binary: binary.into(),
            kubelet: VersionAnswer::Pending,
            server: VersionAnswer::Pending,
            checked_at: None,
        }
    }

    /// Both versions, when both are known.
    pub fn known(&self) -> Option<(&KubeVersion, &KubeVersion)> {
        match (&self.kubelet, &self.server) {
            (VersionAnswer::Known(k), VersionAnswer::Known(s)) => Some((k, s)),
            _ => None,
        }
    }

    /// The same answers (the time of the check aside).
    pub fn same_answers(&self, other: &VersionCheck) -> bool {
        self.binary == other.binary && self.kubelet == other.kubelet && self.server == other.server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::find(s).unwrap()
    }

    #[test]
    fn versions_parse() {
        let v = KubeVersion::find("Kubernetes v1.31.2\n").unwrap();
        assert_eq!((v.major, v.minor, v.text.as_str()), (1, 31, "v1.31.2"));
        let v = KubeVersion::find("v1.30.4-eks-a737599").unwrap();
        assert_eq!((v.major, v.minor), (1, 30));
        assert_eq!(v.minor_version(), "1.30");
        assert!(KubeVersion::find("Kubernetes vX").is_none());
        assert!(KubeVersion::find("").is_none());
        let json = r#"{"major":"1","gitVersion":"v1.33.3"}"#;
        assert_eq!(KubeVersion::find(json).unwrap().text, "v1.33.3");
    }

    #[test]
    fn the_policy() {
        let server = v("v1.33.1");
        assert_eq!(
            Skew::of(&v("v1.33.9"), &server),
            Skew::Within { minors_older: 0 }
        );
        assert_eq!(
            Skew::of(&v("v1.31.0"), &server),
            Skew::Within { minors_older: 2 }
        );
        assert_eq!(Skew::of(&v("v1.30.0"), &server), Skew::AtLimit);
        assert_eq!(Skew::of(&v("v1.29.5"), &server), Skew::KubeletTooOld);
        assert_eq!(Skew::of(&v("v1.34.0"), &server), Skew::KubeletNewer);
        assert_eq!(Skew::of(&v("v2.0.0"), &server), Skew::KubeletNewer);
        assert_eq!(Skew::of(&v("v0.33.0"), &server), Skew::KubeletTooOld);
        assert!(Skew::AtLimit.is_supported());
        assert!(!Skew::KubeletTooOld.is_supported());
        assert_eq!(supported_range(&server), "1.30 to 1.33");
        assert_eq!(supported_range(&v("v1.2.0")), "1.0 to 1.2");
    }

    #[test]
    fn problems_name_both_versions_and_the_policy() {
        let server = v("v1.33.1");
        assert_eq!(skew_problem(&v("v1.32.0"), &server), None);
        for kubelet in ["v1.34.0", "v1.29.0", "v1.30.0"] {
            let p = skew_problem(&v(kubelet), &server).unwrap();
            assert!(p.contains(kubelet) && p.contains("v1.33.1"), "{p}");
            assert!(p.contains(POLICY), "{p}");
        }
        assert!(skew_problem(&v("v1.30.0"), &server)
            .unwrap()
            .contains("the next control-plane upgrade will put it outside"));
    }

    #[test]
    fn a_check_serializes_for_the_status_file() {
        let mut check = VersionCheck::pending("/usr/bin/kubelet");
        assert!(check.known().is_none());
        check.kubelet = VersionAnswer::Known(v("v1.32.0"));
        check.server = VersionAnswer::Unknown("GET /version failed".into());
        let json = serde_json::to_value(&check).unwrap();
        assert_eq!(json["kubelet"]["known"]["text"], "v1.32.0");
        assert_eq!(json["server"]["unknown"], "GET /version failed");
        let back: VersionCheck = serde_json::from_value(json).unwrap();
        assert_eq!(back, check);
    }
}
