use super::*;

fn condition(type_: &str, status: &str) -> NodeCondition {
    NodeCondition {
        type_: type_.into(),
        status: status.into(),
        last_heartbeat_time: String::new(),
        last_transition_time: String::new(),
        reason: "Whatever".into(),
        message: "node worker-1: a message".into(),
    }
}

/// The sample lines of `text` (no HELP/TYPE comments).
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

/// Before anything happened (while joining): every family is there, with the values of a
/// daemon that has done nothing yet; the ones that describe something not there yet have no
/// sample.
#[test]
fn a_fresh_registry() {
    let text = Metrics::default().render();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        samples(&text),
        [
            format!("kaas_join_build_info{{version=\"{version}\"}} 1").as_str(),
            "kaas_join_join_attempts_total 0",
            "kaas_join_kubelet_state{state=\"not-started\"} 1",
            "kaas_join_kubelet_state{state=\"starting\"} 0",
            "kaas_join_kubelet_state{state=\"running\"} 0",
            "kaas_join_kubelet_state{state=\"backing-off\"} 0",
            "kaas_join_kubelet_state{state=\"crash-looping\"} 0",
            "kaas_join_kubelet_state{state=\"cannot-start\"} 0",
            "kaas_join_kubelet_state{state=\"conflict\"} 0",
            "kaas_join_kubelet_state{state=\"stopped\"} 0",
            "kaas_join_kubelet_restarts_total 0",
            "kaas_join_kubelet_crash_loops_total 0",
            "kaas_join_kubelet_healthz_failures_total 0",
        ]
    );
    for family in [
        "kaas_join_join_duration_seconds gauge",
        "kaas_join_kubelet_start_time_seconds gauge",
        "kaas_join_kubelet_version_skew_minors gauge",
        "kaas_join_node_condition gauge",
        "kaas_join_node_status_last_write_timestamp_seconds gauge",
        "kaas_join_client_certificate_expiration_timestamp_seconds gauge",
        "kaas_join_api_requests_total counter",
    ] {
        assert!(text.contains(&format!("\n# TYPE {family}\n")), "{family}");
    }
}

#[test]
fn what_happened_is_scraped() {
    let metrics = Arc::new(Metrics::default());
    let at = UNIX_EPOCH + Duration::from_millis(1_751_000_000_250);
    let (kubelet_tx, kubelet_rx) = watch::channel(KubeletState::default());
    let (conditions_tx, conditions_rx) = watch::channel(vec![
        condition("KubeletUnhealthy", "True"),
        condition("LowMemory", "False"),
    ]);
    metrics.show_kubelet(kubelet_rx);
    metrics.show_conditions(conditions_rx, |c: &Vec<NodeCondition>| c.as_slice());
    metrics.join_attempted();
    metrics.join_attempted();
    metrics.joined(Duration::from_millis(1500));
    metrics.kubelet_healthz_failed();
    metrics.kubelet_crash_loop_began();
    metrics.status_written(at);
    metrics.client_certificate_expires(Some(UNIX_EPOCH + Duration::from_secs(1_782_000_000)));
    let counter = metrics.request_counter();
    let observer: &dyn ApiObserver = metrics.as_ref();
    observer.answered(ApiCall::of("PATCH", "/api/v1/nodes/n/status"), Some(200));
    observer.answered(ApiCall::of("PATCH", "/api/v1/nodes/n/status"), Some(200));
    observer.answered(ApiCall::of("PATCH", "/api/v1/nodes/n/status"), None);
    observer.answered(ApiCall::of("GET", "/api/v1/nodes/n"), Some(404));
    kubelet_tx.send_modify(|k| {
        k.phase = KubeletPhase::Running;
        k.pid = Some(42);
        k.started_at = Some(UNIX_EPOCH + Duration::from_secs(1_751_000_000));
        k.version = Some(crate::model::node_conditions::tests::versions(
            "v1.29.3", "v1.32.0",
        ));
    });
    for _ in 0..3 {
        metrics.kubelet_restarted();
    }
    let text = metrics.render();
    let lines = samples(&text);
    for want in [
        "kaas_join_join_attempts_total 2",
        "kaas_join_join_duration_seconds 1.5",
        "kaas_join_kubelet_state{state=\"not-started\"} 0",
        "kaas_join_kubelet_state{state=\"running\"} 1",
        "kaas_join_kubelet_start_time_seconds 1751000000",
        "kaas_join_kubelet_restarts_total 3",
        "kaas_join_kubelet_crash_loops_total 1",
        "kaas_join_kubelet_healthz_failures_total 1",
        "kaas_join_kubelet_version_skew_minors 3",
        "kaas_join_node_condition{type=\"KubeletUnhealthy\",status=\"True\"} 1",
        "kaas_join_node_condition{type=\"KubeletUnhealthy\",status=\"False\"} 0",
        "kaas_join_node_condition{type=\"KubeletUnhealthy\",status=\"Unknown\"} 0",
        "kaas_join_node_condition{type=\"LowMemory\",status=\"False\"} 1",
        "kaas_join_node_status_last_write_timestamp_seconds 1751000000.25",
        "kaas_join_client_certificate_expiration_timestamp_seconds 1782000000",
        "kaas_join_api_requests_total{call=\"node_get\",code=\"404\"} 1",
        "kaas_join_api_requests_total{call=\"node_status_patch\",code=\"200\"} 2",
        "kaas_join_api_requests_total{call=\"node_status_patch\",code=\"<error>\"} 1",
    ] {
        assert!(lines.contains(&want), "{want} not in\n{text}");
    }
    // The views are read at each scrape.
    conditions_tx.send_modify(|c| c[0].status = "False".into());
    kubelet_tx.send_modify(|k| {
        k.phase = KubeletPhase::BackingOff;
        k.pid = None;
    });
    let text = metrics.render();
    let lines = samples(&text);
    assert!(
        lines.contains(&"kaas_join_node_condition{type=\"KubeletUnhealthy\",status=\"False\"} 1")
    );
    assert!(lines.contains(&"kaas_join_kubelet_state{state=\"backing-off\"} 1"));
    assert!(
        !text.contains("\nkaas_join_kubelet_start_time_seconds "),
        "{text}"
    );
    // Supervising afresh (after a lost identity) gives a new channel: the counts go on.
    let (_again_tx, again_rx) = watch::channel(KubeletState::default());
    metrics.show_kubelet(again_rx);
    let text = metrics.render();
    assert!(
        samples(&text).contains(&"kaas_join_kubelet_restarts_total 3"),
        "{text}"
    );
    assert!(samples(&text).contains(&"kaas_join_kubelet_state{state=\"not-started\"} 1"));
    // No message, reason or node name becomes a label value.
    assert!(
        !text.contains("worker-1") && !text.contains("Whatever"),
        "{text}"
    );
    // The counter given to API clients reports here (its own count is unchanged in meaning).
    assert_eq!(counter.get(), 0);
}

/// The run-status file and `kaas-join status` spell the phases so; so does the metric.
#[test]
fn phase_names_are_the_status_files() {
    for phase in KubeletPhase::ALL {
        let json = serde_json::to_value(phase).unwrap();
        assert_eq!(json.as_str(), Some(phase_name(phase)), "{phase:?}");
    }
}

/// Every family has HELP and TYPE, every counter ends in `_total`, every sample belongs to the
/// family announced before it.
#[test]
fn the_exposition_is_well_formed() {
    let metrics = Metrics::default();
    metrics.joined(Duration::from_secs(2));
    metrics.status_written(SystemTime::now());
    let text = metrics.render();
    let mut family = String::new();
    let mut helped = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            family = rest.split(' ').next().unwrap().to_owned();
            helped = true;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(helped && name == family, "{line}");
            assert!(kind == "gauge" || kind == "counter", "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            assert!(name.starts_with("kaas_join_"), "{line}");
            helped = false;
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, family, "{line}");
        }
    }
}
