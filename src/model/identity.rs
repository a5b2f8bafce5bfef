//! Whether the node's identity, kubelet's client certificate (`system:node:<name>`), still
//! holds: the rule that tells an expired or rejected certificate, and the words `run`, `join`
//! and `status` say it in. Pure: the certificate's notAfter and the API server's 401 answers
//! are measured elsewhere (the health reporter) and handed in as [`IdentitySeen`].
//!
//! # The rule
//!
//! The identity is lost when either
//!
//! - the certificate's notAfter has passed on this machine's clock ([`IdentityLoss::Expired`]), or
//! - the API server answered the node's own requests 401 Unauthorized persistently: at least
//!   [`REJECTIONS`] times in a row, the first of them at least [`REJECTION_SPAN`] before now, with
//!   no accepted request in between ([`IdentityLoss::Rejected`]). One 401 is not enough: a load
//!   balancer in front of a restarting API server, or a CA rotation in progress, answers a few.
//!   (A 401 once notAfter has passed needs no streak: that is `Expired` already.)
//!
//! A 403 is not a lost identity (the node is known, only not allowed): it never counts.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How many consecutive 401 answers make a rejected identity (with [`REJECTION_SPAN`]).
pub const REJECTIONS: u32 = 3;
/// How long the 401 answers must have lasted at least.
pub const REJECTION_SPAN: Duration = Duration::from_secs(30);

/// The provider's commands that mint a new bootstrap token, as the messages name them.
pub const MINT_COMMAND: &str =
    "`kaas-join token create --ticket` (or `kubeadm token create --print-join-command`)";

/// A streak of 401 answers to the node's own requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unauthorized {
    /// Consecutive 401 answers.
    pub count: u32,
    /// The first of them (wall clock).
    #[serde(with = "crate::model::kubelet_process::unix_seconds")]
    pub since: SystemTime,
}

/// What the health reporter has seen of the node's identity, published for `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySeen {
    /// The client certificate's notAfter, when its file could be read.
    #[serde(
        default,
        with = "crate::model::time::opt_unix_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_after: Option<SystemTime>,
    /// The current streak of 401 answers (none since the last accepted request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unauthorized: Option<Unauthorized>,
}

/// Why the node's identity is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum IdentityLoss {
    /// The client certificate's notAfter (RFC 3339) has passed.
    #[serde(rename_all = "camelCase")]
    Expired { not_after: String },
    /// The API server keeps answering 401: `count` times since `since` (RFC 3339).
    #[serde(rename_all = "camelCase")]
    Rejected { count: u32, since: String },
}

impl IdentitySeen {
    /// The rule of the module docs, at `now`.
    pub fn judge(&self, now: SystemTime) -> Option<IdentityLoss> {
        if let Some(not_after) = self.not_after.filter(|t| *t <= now) {
            return Some(IdentityLoss::Expired {
                not_after: rfc3339(not_after),
            });
        }
        let streak = self.unauthorized?;
        let lasted = now.duration_since(streak.since).unwrap_or_default();
        (streak.count >= REJECTIONS && lasted >= REJECTION_SPAN).then(|| IdentityLoss::Rejected {
            count: streak.count,
            since: rfc3339(streak.since),
        })
    }
}

impl IdentityLoss {
    /// What happened, for people: "kubelet's client certificate expired at <time>".
    pub fn what(&self) -> String {
        match self {
            IdentityLoss::Expired { not_after } => {
                format!("kubelet's client certificate expired at {not_after}")
            }
            IdentityLoss::Rejected { count, since } => format!(
                "the API server rejected kubelet's client certificate (401 Unauthorized, {count} times in a row since {since}: revoked, or the cluster CA was rotated)"
            ),
        }
    }
}

/// How to fix a lost identity: mint a token and put it at `token_place` (where `run` and `join`
/// read it, e.g. "the token file /etc/kaas-join/token").
pub fn advice(token_place: &str) -> String {
    format!(
        "mint a new bootstrap token with {MINT_COMMAND} and put it in {token_place}; the node then joins again as itself"
    )
}

/// The expiry of the first certificate in a PEM (kubelet's file holds the certificate, then the
/// key).
pub fn certificate_not_after(pem: &[u8]) -> Result<SystemTime, String> {
    let ders = crate::model::pin::certificates_from_pem(pem).map_err(|e| e.to_string())?;
    let (_, cert) = x509_parser::parse_x509_certificate(&ders[0])
        .map_err(|e| format!("not a certificate: {e}"))?;
    let seconds = cert.validity().not_after.timestamp().max(0) as u64;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// `t` in RFC 3339, UTC, whole seconds.
pub fn rfc3339(t: SystemTime) -> String {
    let seconds = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    time::OffsetDateTime::from_unix_timestamp(seconds as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_secs(1_800_000_000);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + T0 + Duration::from_secs(secs)
    }

    fn streak(count: u32, since: u64) -> IdentitySeen {
        IdentitySeen {
            not_after: Some(at(10_000)),
            unauthorized: Some(Unauthorized {
                count,
                since: at(since),
            }),
        }
    }

    #[test]
    fn an_expired_certificate_is_lost_at_once() {
        let seen = IdentitySeen {
            not_after: Some(at(100)),
            unauthorized: None,
        };
        assert_eq!(seen.judge(at(99)), None);
        let lost = seen.judge(at(100)).unwrap();
        assert_eq!(
            lost,
            IdentityLoss::Expired {
                not_after: "2027-01-15T08:01:40Z".into()
            }
        );
        assert_eq!(
            lost.what(),
            "kubelet's client certificate expired at 2027-01-15T08:01:40Z"
        );
    }

    #[test]
    fn rejections_count_only_when_persistent() {
        // Three 401s, but within 30 s: not yet.
        assert_eq!(streak(3, 0).judge(at(29)), None);
        // Two 401s over a minute: not yet.
        assert_eq!(streak(2, 0).judge(at(60)), None);
        let lost = streak(3, 0).judge(at(30)).unwrap();
        assert!(matches!(lost, IdentityLoss::Rejected { count: 3, .. }));
        assert!(
            lost.what().contains("401 Unauthorized, 3 times"),
            "{}",
            lost.what()
        );
        // Nothing seen yet (no certificate file, no answer): nothing lost.
        assert_eq!(IdentitySeen::default().judge(at(0)), None);
    }

    #[test]
    fn the_advice_names_the_commands_and_the_place() {
        let text = advice("the token file /etc/kaas-join/token");
        assert!(text.contains("kaas-join token create --ticket"), "{text}");
        assert!(
            text.contains("kubeadm token create --print-join-command"),
            "{text}"
        );
        assert!(text.contains("/etc/kaas-join/token"), "{text}");
    }

    #[test]
    fn losses_round_trip_through_json() {
        let lost = IdentityLoss::Rejected {
            count: 4,
            since: "2027-01-15T08:00:00Z".into(),
        };
        let json = serde_json::to_value(&lost).unwrap();
        assert_eq!(json["reason"], "rejected");
        assert_eq!(serde_json::from_value::<IdentityLoss>(json).unwrap(), lost);
        let seen = streak(1, 5);
        let text = serde_json::to_string(&seen).unwrap();
        assert_eq!(serde_json::from_str::<IdentitySeen>(&text).unwrap(), seen);
    }
}
