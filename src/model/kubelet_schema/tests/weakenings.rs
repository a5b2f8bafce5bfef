//! Every override that weakens a secure default is listed, once, with its reason; the
//! documented non-weakenings are not.

use super::{accepted, in_own_file};

/// The weakenings of a fragment as `path: value`.
fn weakened(fragment: &str) -> Vec<String> {
    accepted(fragment)
        .iter()
        .map(|w| format!("{}: {}", w.path, w.value))
        .collect()
}

#[test]
fn every_rule_fires() {
    let cases = [
        ("authentication: {anonymous: {enabled: true}}", "authentication.anonymous.enabled: true"),
        ("authentication: {webhook: {enabled: false}}", "authentication.webhook.enabled: false"),
        ("authentication: {x509: {clientCAFile: \"\"}}", "authentication.x509.clientCAFile: \"\""),
        ("authentication: {x509: {clientCAFile: null}}", "authentication.x509.clientCAFile: null"),
        ("authorization: {mode: AlwaysAllow}", "authorization.mode: AlwaysAllow"),
        ("readOnlyPort: 10255", "readOnlyPort: 10255"),
        ("rotateCertificates: false", "rotateCertificates: false"),
        ("rotateCertificates: null", "rotateCertificates: null (kubelet's default: false)"),
        ("serverTLSBootstrap: false", "serverTLSBootstrap: false"),
        (
            "featureGates: {RotateKubeletServerCertificate: false}",
            "featureGates.RotateKubeletServerCertificate: false",
        ),
        (
            "tlsCipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA]",
            "tlsCipherSuites: [TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA]",
        ),
        ("tlsMinVersion: VersionTLS10", "tlsMinVersion: VersionTLS10"),
        ("tlsMinVersion: VersionTLS11", "tlsMinVersion: VersionTLS11"),
        ("makeIPTablesUtilChains: false", "makeIPTablesUtilChains: false"),
        ("enableSystemLogQuery: true", "enableSystemLogQuery: true"),
    ];
    for (fragment, want) in cases {
        assert_eq!(weakened(fragment), [want], "{fragment}");
        let w = &accepted(fragment)[0];
        assert!(!w.reason.is_empty() && !w.reason.contains('\n'), "{w:?}");
    }
}

#[test]
fn the_issues_examples_warn_with_their_lines() {
    let text = "kubelet:\n  authentication:\n    anonymous:\n      enabled: true\n  authorization:\n    mode: AlwaysAllow\n  readOnlyPort: 10255\n";
    let shown: Vec<String> = in_own_file(text)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        [
            "kubelet override `authentication.anonymous.enabled: true` (line 4) weakens a secure \
             default: anonymous requests reach kubelet's API (CIS 4.2.1)",
            "kubelet override `authorization.mode: AlwaysAllow` (line 6) weakens a secure \
             default: every request that gets past authentication is allowed, without asking \
             the API server (SubjectAccessReview) (CIS 4.2.2)",
            "kubelet override `readOnlyPort: 10255` (line 7) weakens a secure default: opens \
             kubelet's read-only port, which serves pod and node data without authentication \
             or authorization (CIS 4.2.4)",
        ]
    );
}

#[test]
fn secure_values_and_kubelets_own_defaults_do_not_warn() {
    let fine = [
        "authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: /ca.crt}}",
        "authorization: {mode: Webhook}",
        "readOnlyPort: 0",
        "rotateCertificates: true\nserverTLSBootstrap: true\n",
        "featureGates: {RotateKubeletServerCertificate: true, NodeSwap: false}",
        "tlsCipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256]",
        "tlsMinVersion: VersionTLS12",
        "makeIPTablesUtilChains: true\nenableSystemLogQuery: false\n",
        // kubelet's defaults, not a protection switched off (see the module docs).
        "protectKernelDefaults: false\nseccompDefault: false\npodPidsLimit: -1\n",
        "streamingConnectionIdleTimeout: 0s\neventRecordQPS: 0\n",
        // null falls back to kubelet's v1beta1 defaults, which are the secure values here.
        "authentication: {anonymous: {enabled: null}, webhook: {enabled: null}}\nauthorization: {mode: null}\n",
        // Removing a whole section: the secure fields are put back when rendering.
        "authentication: null\nauthorization: null\nfeatureGates: null\n",
        "readOnlyPort: null",
    ];
    for fragment in fine {
        assert_eq!(weakened(fragment), Vec::<String>::new(), "{fragment}");
    }
}
