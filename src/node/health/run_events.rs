//! The events about what `run` itself does beside supervising: the `KubeletVersionSkew`
//! verdict changing (it is False at the limit, yet worth a Warning) and a kubelet upgrade
//! reaching a new phase. [`super::events`] asks these when the conditions or the kubelet state
//! change.

use super::events::EventType;
use crate::model::kubelet_upgrade::{UpgradePhase, UpgradeState};
use crate::model::node_conditions::{reason, status, NodeCondition};

/// A kubelet upgrade by `run`: swapped in and restarted, waiting for healthz.
pub const KUBELET_UPGRADE_STARTED: &str = "KubeletUpgradeStarted";
/// The new kubelet did not become healthy in time: the old binary is being put back.
pub const KUBELET_UPGRADE_ROLLING_BACK: &str = "KubeletUpgradeRollingBack";
/// The new kubelet is healthy.
pub const KUBELET_UPGRADED: &str = "KubeletUpgraded";
/// The old kubelet is back.
pub const KUBELET_UPGRADE_ROLLED_BACK: &str = "KubeletUpgradeRolledBack";
/// Not done (not kubelet, outside the skew policy, kubelet not supervised).
pub const KUBELET_UPGRADE_REFUSED: &str = "KubeletUpgradeRefused";
/// The swap or the rollback failed.
pub const KUBELET_UPGRADE_FAILED: &str = "KubeletUpgradeFailed";

/// `KubeletVersionSkew`'s event: on every change of its verdict once both versions are known
/// (Warning for True and for the limit, which is False but a warning), Normal when back within
/// the policy after one; nothing for a node within the policy from the start.
pub(super) fn version_skew_event(
    before: Option<&NodeCondition>,
    now: &NodeCondition,
) -> Option<(EventType, String, String)> {
    if now.status == status::UNKNOWN || before.is_some_and(|b| b.reason == now.reason) {
        return None;
    }
    let warning = now.is_problem() || now.reason == reason::KUBELET_VERSION_SKEW_AT_LIMIT;
    let after_a_warning =
        before.is_some_and(|b| b.is_problem() || b.reason == reason::KUBELET_VERSION_SKEW_AT_LIMIT);
    match (warning, after_a_warning) {
        (true, _) => Some((EventType::Warning, now.reason.clone(), now.message.clone())),
        (false, true) => Some((EventType::Normal, now.reason.clone(), now.message.clone())),
        (false, false) => None,
    }
}

/// A kubelet upgrade's event when it reaches a new phase.
pub(super) fn upgrade_event(
    old: Option<&UpgradeState>,
    new: Option<&UpgradeState>,
) -> Option<(EventType, &'static str, String)> {
    let new = new?;
    if old.is_some_and(|o| o.id == new.id && o.phase == new.phase) {
        return None;
    }
    let (type_, reason) = match new.phase {
        UpgradePhase::Started => (EventType::Normal, KUBELET_UPGRADE_STARTED),
        UpgradePhase::RollingBack => (EventType::Warning, KUBELET_UPGRADE_ROLLING_BACK),
        UpgradePhase::Upgraded => (EventType::Normal, KUBELET_UPGRADED),
        UpgradePhase::RolledBack => (EventType::Warning, KUBELET_UPGRADE_ROLLED_BACK),
        UpgradePhase::Refused => (EventType::Warning, KUBELET_UPGRADE_REFUSED),
        UpgradePhase::Failed => (EventType::Warning, KUBELET_UPGRADE_FAILED),
    };
    Some((type_, reason, new.message.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kubelet_process::KubeletState;
    use crate::model::node_conditions::conditions;
    use crate::model::node_conditions::tests::{healthy_probes, running, t, versions, NOW};
    use crate::node::health::events::condition_events;

    #[test]
    fn version_skew_changes_make_events() {
        let with = |kubelet: &str, server: &str| {
            let k = KubeletState {
                version: Some(versions(kubelet, server)),
                ..running()
            };
            conditions(&k, &healthy_probes(), t(NOW))
        };
        let unchecked = conditions(
            &KubeletState {
                version: None,
                ..running()
            },
            &healthy_probes(),
            t(NOW),
        );
        let within = with("v1.32.0", "v1.32.0");
        let reasons = |a: &[NodeCondition], b: &[NodeCondition]| -> Vec<(EventType, String)> {
            condition_events(a, b)
                .into_iter()
                .map(|(t, r, _)| (t, r))
                .collect()
        };
        assert!(
            reasons(&unchecked, &within).is_empty(),
            "fine from the start"
        );
        let too_new = with("v1.33.0", "v1.32.0");
        assert_eq!(
            reasons(&unchecked, &too_new),
            [(EventType::Warning, "KubeletVersionTooNew".to_string())]
        );
        let at_limit = with("v1.29.0", "v1.32.0");
        assert_eq!(
            reasons(&within, &at_limit),
            [(EventType::Warning, "KubeletVersionSkewAtLimit".to_string())]
        );
        assert_eq!(
            reasons(&at_limit, &within),
            [(
                EventType::Normal,
                "KubeletVersionSkewWithinPolicy".to_string()
            )]
        );
        assert!(reasons(&too_new, &too_new).is_empty());
    }

    #[test]
    fn each_upgrade_phase_is_one_event() {
        let step = |id: &str, phase| UpgradeState {
            id: id.into(),
            binary: "/opt/kubelet".into(),
            from: Some("v1.32.0".into()),
            to: Some("v1.32.1".into()),
            phase,
            message: format!("{phase:?}"),
            at: "2027-01-15T08:00:00Z".into(),
        };
        let started = step("a", UpgradePhase::Started);
        let back = step("a", UpgradePhase::RolledBack);
        assert_eq!(
            upgrade_event(None, Some(&started)).map(|e| (e.0, e.1)),
            Some((EventType::Normal, KUBELET_UPGRADE_STARTED))
        );
        assert!(upgrade_event(Some(&started), Some(&started)).is_none());
        assert_eq!(
            upgrade_event(Some(&started), Some(&back)).map(|e| (e.0, e.1)),
            Some((EventType::Warning, KUBELET_UPGRADE_ROLLED_BACK))
        );
        // The next upgrade's start is an event again, even after an identical phase.
        let next = step("b", UpgradePhase::RolledBack);
        assert!(upgrade_event(Some(&back), Some(&next)).is_some());
        assert!(upgrade_event(Some(&back), None).is_none());
    }
}
