//! The sandbox against what a real v1.33.3 kube-apiserver answered where it used to differ
//! (`tests/fixtures/INDEX.md`, "Recorded from v1.33.3"; found by `tests/real_fidelity.rs`):
//! priority and fairness's 429, who may read kubeadm's ConfigMaps and Nodes, kubeadm's stored
//! RBAC objects, a Success Status's group, Event defaults, and when watches get BOOKMARKs.
//! Everything talks to 127.0.0.1 only; every wait is bounded.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use kaas_sandbox::{ControlPlaneStyle, Sandbox, SandboxConfig, TokenOptions};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

#[path = "../../tests/common/fixtures.rs"]
mod fixtures;
use fixtures::{fixture_json, fixture_text};

const CSR_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
/// The group the recordings' "other" token was in (bound only to system:node-bootstrapper).
const OTHER_GROUP: &str = "system:bootstrappers:kaas-test:no-autoapprove";

async fn start(style: ControlPlaneStyle) -> Sandbox {
    Sandbox::start(SandboxConfig {
        style,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts")
}

/// A client trusting the sandbox's CA, with the client certificate and key in `pair` if any.
fn client(sb: &Sandbox, pair: Option<&[u8]>) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(sb.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let tls = match pair {
        Some(pem) => {
            let chain = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(pem).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(20))
        .no_proxy()
        .build()
        .unwrap()
}

/// The sandbox's admin (system:masters), from the kubeconfig it hands out.
fn admin(sb: &Sandbox) -> reqwest::Client {
    let conf: Value = serde_norway::from_str(&sb.admin_kubeconfig()).unwrap();
    let user = &conf["users"][0]["user"];
    let data = |k: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(user[k].as_str().unwrap())
            .unwrap()
    };
    let mut pair = data("client-certificate-data");
    pair.extend(data("client-key-data"));
    client(sb, Some(&pair))
}

/// A node's client (`system:node:<node>`), its certificate signed by the sandbox's CA.
fn node(sb: &Sandbox, name: &str) -> reqwest::Client {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "system:nodes");
    dn.push(rcgen::DnType::CommonName, format!("system:node:{name}"));
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let pair = format!("{}{}", sb.sign_client_cert(&csr), key.serialize_pem());
    client(sb, Some(pair.as_bytes()))
}

async fn send(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// A recorded Status with the recording's token id and names replaced by ours.
fn recorded_status(name: &str, replace: &[(&str, &str)]) -> Value {
    let mut text = fixture_text(name);
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    json(&text)
}

/// The recording's token id in `text`'s `system:bootstrap:<id>`.
fn recorded_token_id(name: &str) -> String {
    let text = fixture_text(name);
    let at = text.find("system:bootstrap:").unwrap() + "system:bootstrap:".len();
    text[at..at + 6].to_string()
}

#[tokio::test]
async fn an_injected_429_is_priority_and_fairness_plain_text() {
    let sb = start(ControlPlaneStyle::Kubeadm).await;
    let path = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
    sb.faults().fail_next(path, 429, 1);
    let (status, headers, body) = send(client(&sb, None).get(format!("{}{path}", sb.url()))).await;
    assert_eq!(status, 429);
    assert_eq!(body, fixture_text("429-apf-anonymous-get-cluster-info.txt"));
    let recorded = fixture_text("429-apf-anonymous-get-cluster-info.headers");
    for header in ["content-type", "retry-after", "x-content-type-options"] {
        let line = recorded
            .lines()
            .find(|l| l.starts_with(&format!("{header}:")))
            .unwrap_or_else(|| panic!("{header} recorded"));
        let value = line.split_once(": ").unwrap().1;
        assert_eq!(
            headers.get(header).and_then(|v| v.to_str().ok()),
            Some(value),
            "{header}"
        );
    }
}

#[tokio::test]
async fn only_kubeadms_token_group_reads_its_configmaps_and_nodes() {
    let sb = start(ControlPlaneStyle::Kubeadm).await;
    let token = sb.create_token_with(TokenOptions {
        groups: vec![OTHER_GROUP.into()],
        can_nodeclient: false,
        ..TokenOptions::default()
    });
    let c = client(&sb, None);
    for (path, fixture, name) in [
        (
            "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
            "403-kubeadm-config-get-bootstrap-token-other-group.json",
            "kubeadm-config",
        ),
        (
            "/api/v1/nodes/fidelity-node-2",
            "403-node-get-bootstrap-token-other-group.json",
            "fidelity-node-2",
        ),
    ] {
        let (status, _, body) =
            send(c.get(format!("{}{path}", sb.url())).bearer_auth(&token)).await;
        let recorded_id = recorded_token_id(fixture);
        let expected = recorded_status(fixture, &[(&recorded_id, &token[..6])]);
        assert_eq!((status, json(&body)), (403, expected), "{name}");
    }
    // kubeadm's own group still reads both.
    let kubeadm = sb.create_token();
    for path in [
        "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        "/api/v1/nodes/fidelity-node-2",
    ] {
        let (status, _, body) =
            send(c.get(format!("{}{path}", sb.url())).bearer_auth(&kubeadm)).await;
        assert!(matches!(status, 200 | 404), "{path}: {status} {body}");
    }
}

#[tokio::test]
async fn a_chart_lets_no_token_read_nodes() {
    let sb = start(ControlPlaneStyle::Chart).await;
    let token = sb.create_token();
    let (status, _, body) = send(
        client(&sb, None)
            .get(format!("{}/api/v1/nodes/fidelity-node-2", sb.url()))
            .bearer_auth(&token),
    )
    .await;
    let fixture = "403-node-get-bootstrap-token-chart.json";
    let expected = recorded_status(fixture, &[(&recorded_token_id(fixture), &token[..6])]);
    assert_eq!((status, json(&body)), (403, expected));
}

#[tokio::test]
async fn kubeadms_rbac_objects_are_stored_and_deletes_name_their_group() {
    let sb = start(ControlPlaneStyle::Kubeadm).await;
    let admin = admin(&sb);
    let crb = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
    let (status, _, body) = send(admin.get(format!("{}{crb}/kubeadm:get-nodes", sb.url()))).await;
    let recorded = fixture_json("200-clusterrolebinding-get-kubeadm-get-nodes-admin.json");
    let ours = json(&body);
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys(&ours), keys(&recorded));
    // The sandbox tracks no field managers.
    let mut recorded_meta = keys(&recorded["metadata"]);
    recorded_meta.remove("managedFields");
    assert_eq!(keys(&ours["metadata"]), recorded_meta);
    assert_eq!(ours["roleRef"], recorded["roleRef"]);
    assert_eq!(ours["subjects"], recorded["subjects"]);
    // The rest of kubeadm's bootstrap RBAC, as `kaas-join cluster prepare --check` reads it.
    for path in [
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm:kubelet-bootstrap",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm:node-autoapprove-bootstrap",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm:node-autoapprove-certificate-rotation",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/kubeadm:get-nodes",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-public/roles/kubeadm:bootstrap-signer-clusterinfo",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-public/rolebindings/kubeadm:bootstrap-signer-clusterinfo",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles/kubeadm:nodes-kubeadm-config",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings/kubeadm:kubelet-config",
    ] {
        let (status, _, body) = send(admin.get(format!("{}{path}", sb.url()))).await;
        assert_eq!(status, 200, "{path}: {body}");
    }

    let (status, _, _) = send(admin.delete(format!("{}{crb}/kubeadm:get-nodes", sb.url()))).await;
    assert_eq!(status, 200);
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "kaas-fidelity"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-bootstrapper"},
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:bootstrappers:kaas-fidelity"}],
    });
    let (status, _, _) = send(admin.post(format!("{}{crb}", sb.url())).json(&binding)).await;
    assert_eq!(status, 201);
    let (status, _, body) = send(admin.delete(format!("{}{crb}/kaas-fidelity", sb.url()))).await;
    let recorded = fixture_json("200-clusterrolebinding-delete-admin.json");
    let ours = json(&body);
    assert_eq!(status, 200);
    assert_eq!(keys(&ours), keys(&recorded));
    assert_eq!(keys(&ours["details"]), keys(&recorded["details"]));
    for key in ["name", "group", "kind"] {
        assert_eq!(ours["details"][key], recorded["details"][key], "{key}");
    }

    // A chart's few bindings are stored too, and nothing of kubeadm's.
    let chart = start(ControlPlaneStyle::Chart).await;
    let admin = self::admin(&chart);
    let (status, _, _) = send(admin.get(format!(
        "{}{crb}/kaas-seed:node-autoapprove-bootstrap",
        chart.url()
    )))
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = send(admin.get(format!("{}{crb}/kubeadm:get-nodes", chart.url()))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn events_get_the_reporting_defaults() {
    let sb = start(ControlPlaneStyle::Kubeadm).await;
    let c = node(&sb, "fidelity-node-1");
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "fidelity-node-1.1", "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": "fidelity-node-1", "uid": "fidelity-node-1", "apiVersion": "v1"},
        "reason": "KaasJoinFidelity", "message": "a fidelity check", "type": "Normal",
        "source": {"component": "kaas-join", "host": "fidelity-node-1"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1,
    });
    let (status, _, body) = send(
        c.post(format!("{}/api/v1/namespaces/default/events", sb.url()))
            .json(&event),
    )
    .await;
    let recorded = fixture_json("201-event-create-default-ns-as-node-v1.33.json");
    let ours = json(&body);
    assert_eq!(status, 201, "{body}");
    assert_eq!(keys(&ours), keys(&recorded));
    for key in ["reportingComponent", "reportingInstance", "eventTime"] {
        assert_eq!(ours[key], recorded[key], "{key}");
    }
}

/// A CSR for `name` made with `token`; its resourceVersion.
async fn create_csr(sb: &Sandbox, token: &str, name: &str) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "system:nodes");
    dn.push(rcgen::DnType::CommonName, format!("system:node:{name}"));
    params.distinguished_name = dn;
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let body = json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": format!("node-csr-{name}")},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(pem),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
        },
    });
    let (status, _, text) = send(
        client(sb, None)
            .post(format!("{}{CSR_PATH}", sb.url()))
            .bearer_auth(token)
            .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    json(&text)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A watch's events, read until the server ends it at its timeout.
async fn watch(sb: &Sandbox, token: &str, name: &str, rv: &str, seconds: u64) -> Vec<Value> {
    let mut resp = client(sb, None)
        .get(format!("{}{CSR_PATH}?fieldSelector=metadata.name%3Dnode-csr-{name}&watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds={seconds}", sb.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds + 10);
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => buf.extend_from_slice(&chunk),
            Ok(Ok(None)) => break,
            other => panic!("the watch did not end at its timeout: {other:?}"),
        }
    }
    String::from_utf8(buf).unwrap().lines().map(json).collect()
}

#[tokio::test]
async fn a_bookmark_comes_two_seconds_before_the_timeout_never_at_the_end() {
    let sb = start(ControlPlaneStyle::Kubeadm).await;
    let token = sb.create_token();
    let types = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    };

    // As recorded: approval and issue, a BOOKMARK 2 s before the end, then the end.
    let rv = create_csr(&sb, &token, "quiet").await;
    let started = tokio::time::Instant::now();
    let events = watch(&sb, &token, "quiet", &rv, 4).await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "ended at its timeout"
    );
    let recorded: Vec<Value> = fixture_text("200-csr-watch-bookmark-before-timeout.jsonl")
        .lines()
        .map(json)
        .collect();
    assert_eq!(types(&events), types(&recorded));
    let (ours, theirs) = (&events[2]["object"], &recorded[2]["object"]);
    assert_eq!(keys(ours), keys(theirs));
    assert_eq!(keys(&ours["metadata"]), keys(&theirs["metadata"]));
    for key in ["spec", "status"] {
        assert_eq!(ours[key], theirs[key], "{key}");
    }
    assert_eq!(ours["metadata"]["creationTimestamp"], Value::Null);
    assert_eq!(
        ours["metadata"]["resourceVersion"], events[1]["object"]["metadata"]["resourceVersion"],
        "nothing else changed: the last event's version"
    );

    // Another CSR changes meanwhile: the bookmark carries its newer resourceVersion.
    let rv = create_csr(&sb, &token, "busy").await;
    let other_token = sb.create_token();
    let (events, other_rv) = tokio::join!(watch(&sb, &token, "busy", &rv, 4), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        create_csr(&sb, &other_token, "other").await
    });
    assert_eq!(types(&events), types(&recorded), "{events:#?}");
    let bookmarked: u64 = events[2]["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(bookmarked >= other_rv.parse().unwrap(), "{events:#?}");

    // Too short for one (2 s before a 1 s timeout is before it started).
    let rv = create_csr(&sb, &token, "short").await;
    let events = watch(&sb, &token, "short", &rv, 1).await;
    assert!(
        events.iter().all(|e| e["type"] != "BOOKMARK"),
        "{events:#?}"
    );
}
