//! Compares the sandbox's answers with the responses recorded from a real kube-apiserver and
//! kube-controller-manager (`tests/fixtures`), and tests the approver rules and the faults.
//! Every wait is bounded; everything talks to 127.0.0.1 only.

use std::collections::BTreeSet;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use kaas_sandbox::{
    sign_detached_jws, ApprovalMode, ControlPlaneStyle, Sandbox, SandboxConfig, TokenOptions,
};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tokio::time::Instant;

const CSR_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
const KUBELET_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

// ------------------------------------------------------------------------------------------
// helpers

#[path = "../../tests/common/fixtures.rs"]
mod fixtures;
#[path = "../../tests/common/wait.rs"]
mod wait;
use fixtures::fixture_text;
use wait::Wait;

fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(name))
        .unwrap_or_else(|e| panic!("fixture {name} is not JSON: {e}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// metadata keys, ignoring `managedFields` (the sandbox does not track field managers).
fn meta_keys(v: &Value) -> BTreeSet<String> {
    let mut k = keys(&v["metadata"]);
    k.remove("managedFields");
    k
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(
    ca_pem: &str,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let der = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .unwrap()
        .1
        .contents;
    roots.add(CertificateDer::from(der)).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    }
}

fn http(config: rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(Duration::from_secs(20))
        .no_proxy()
        .build()
        .unwrap()
}

fn client(sb: &Sandbox) -> reqwest::Client {
    http(tls_config(&sb.ca_pem(), None))
}

fn csr_pem(key: &KeyPair, orgs: &[&str], cn: &str, sans: Vec<SanType>) -> String {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.serialize_request(key).unwrap().pem().unwrap()
}

fn node_csr(node: &str) -> (KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let pem = csr_pem(
        &key,
        &["system:nodes"],
        &format!("system:node:{node}"),
        vec![],
    );
    (key, pem)
}

fn identity(
    cert_pem: &str,
    key: &KeyPair,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let der = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .unwrap()
        .1
        .contents;
    (
        vec![CertificateDer::from(der)],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// A client authenticating as `system:node:<node>` with a CA-signed certificate.
fn node_client(sb: &Sandbox, node: &str) -> reqwest::Client {
    let (key, csr) = node_csr(node);
    let cert = sb.sign_client_cert(&csr);
    http(tls_config(&sb.ca_pem(), Some(identity(&cert, &key))))
}

async fn start(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("sandbox starts")
}

async fn get(c: &reqwest::Client, url: String, token: Option<&str>) -> (u16, Value) {
    let mut req = c.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

fn csr_body(name: &str, pem: &str, signer: &str, usages: &[&str]) -> Value {
    json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": STANDARD.encode(pem), "signerName": signer, "usages": usages},
    })
}

async fn post_csr(sb: &Sandbox, c: &reqwest::Client, token: &str, body: &Value) -> (u16, Value) {
    send(
        c.post(format!("{}{CSR_PATH}", sb.url()))
            .bearer_auth(token)
            .json(body),
    )
    .await
}

/// Reads newline-delimited watch events until `max` events, the end of the stream or `limit`.
async fn read_watch(
    mut resp: reqwest::Response,
    max: usize,
    limit: Duration,
) -> (Vec<Value>, bool) {
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let mut ended = false;
    while events.len() < max {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Err(_) => break,
            Ok(Ok(Some(chunk))) => {
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    events.push(serde_json::from_slice(&line).expect("watch event is JSON"));
                }
            }
            Ok(Ok(None)) => {
                ended = true;
                break;
            }
            Ok(Err(e)) => panic!("watch stream failed: {e}"),
        }
    }
    (events, ended)
}

/// Waits (bounded: 2 s, every 10 ms) until the CSR satisfies `done`.
async fn wait_csr(sb: &Sandbox, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    Wait::new(
        format!("CSR {name} in the expected state"),
        Duration::from_secs(2),
    )
    .every(Duration::from_millis(10))
    .until(|| {
        let csr = sb
            .csrs()
            .into_iter()
            .find(|c| c["metadata"]["name"] == name);
        match csr {
            Some(csr) if done(&csr) => Ok(csr),
            other => Err(other),
        }
    })
    .await
}

fn conditions(csr: &Value) -> Vec<String> {
    csr["status"]["conditions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["type"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn kubeconfig_without(kubeconfig: &str) -> String {
    kubeconfig
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("certificate-authority-data:") {
                "    certificate-authority-data: <CA>"
            } else if l.trim_start().starts_with("server:") {
                "    server: <SERVER>"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ------------------------------------------------------------------------------------------
// discovery

#[test]
fn jws_matches_recorded_signature() {
    let token = fixture_text("token-used.txt");
    let token = token.split_whitespace().next().unwrap();
    let (id, secret) = token.split_once('.').unwrap();
    assert_eq!(id, "jjgm85");
    let ci = fixture("200-anonymous-get-cluster-info-signed.json");
    let kubeconfig = ci["data"]["kubeconfig"].as_str().unwrap();
    assert_eq!(
        sign_detached_jws(kubeconfig.as_bytes(), id, secret),
        ci["data"]["jws-kubeconfig-jjgm85"].as_str().unwrap()
    );
}

#[test]
fn kubeconfig_text_is_byte_exact() {
    let ci = fixture("200-anonymous-get-cluster-info-unsigned.json");
    let recorded = ci["data"]["kubeconfig"].as_str().unwrap();
    let ca_b64 = recorded
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap();
    let ca_pem = String::from_utf8(STANDARD.decode(ca_b64).unwrap()).unwrap();
    assert_eq!(
        kaas_sandbox::cluster_info_kubeconfig(&ca_pem, "https://127.0.0.1:6443"),
        recorded
    );
}

#[tokio::test]
async fn cluster_info_matches_recording() {
    let sb = start(SandboxConfig::default()).await;
    let c = client(&sb);
    let url = format!(
        "{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
        sb.url()
    );
    let (code, unsigned) = get(&c, url.clone(), None).await;
    assert_eq!(code, 200);
    let recorded_unsigned = fixture("200-anonymous-get-cluster-info-unsigned.json");
    assert_eq!(keys(&unsigned), keys(&recorded_unsigned));
    assert_eq!(meta_keys(&unsigned), meta_keys(&recorded_unsigned));
    assert_eq!(keys(&unsigned["data"]), keys(&recorded_unsigned["data"]));

    let token = sb.create_token();
    let (id, secret) = token.split_once('.').unwrap();
    let resp = c.get(url).send().await.unwrap();
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-cache, private");
    assert!(headers.contains_key("audit-id"));
    let signed: Value = resp.json().await.unwrap();
    let recorded = fixture("200-anonymous-get-cluster-info-signed.json");
    assert_eq!(keys(&signed), keys(&recorded));
    assert_eq!(meta_keys(&signed), meta_keys(&recorded));
    assert_eq!(
        keys(&signed["data"]),
        BTreeSet::from(["kubeconfig".to_string(), format!("jws-kubeconfig-{id}")])
    );
    let kubeconfig = signed["data"]["kubeconfig"].as_str().unwrap();
    assert_eq!(
        kubeconfig_without(kubeconfig),
        kubeconfig_without(recorded["data"]["kubeconfig"].as_str().unwrap())
    );
    assert!(kubeconfig.contains(&format!("server: {}\n", sb.url())));
    assert!(kubeconfig.contains(&STANDARD.encode(sb.ca_pem())));
    let jws = signed["data"][format!("jws-kubeconfig-{id}")]
        .as_str()
        .unwrap();
    assert_eq!(jws, sign_detached_jws(kubeconfig.as_bytes(), id, secret));
    let header = URL_SAFE_NO_PAD
        .decode(jws.split("..").next().unwrap())
        .unwrap();
    assert_eq!(
        header,
        format!("{{\"alg\":\"HS256\",\"kid\":\"{id}\"}}").as_bytes()
    );
    assert!(sb.ca_cert_hash().starts_with("sha256:") && sb.ca_cert_hash().len() == 71);

    // Expired and non-signing tokens sign nothing; a deleted token's signature disappears.
    sb.create_token_with(TokenOptions {
        expired: true,
        ..TokenOptions::default()
    });
    sb.create_token_with(TokenOptions {
        signing: false,
        ..TokenOptions::default()
    });
    let ci = c.get(format!(
        "{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
        sb.url()
    ));
    let data: Value = ci.send().await.unwrap().json().await.unwrap();
    assert_eq!(keys(&data["data"]).len(), 2);
    assert!(sb.delete_token(id));
    let (_, after) = get(
        &c,
        format!(
            "{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
            sb.url()
        ),
        None,
    )
    .await;
    assert_eq!(
        keys(&after["data"]),
        BTreeSet::from(["kubeconfig".to_string()])
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn jws_appears_after_delay_and_advertised_server() {
    let sb = start(SandboxConfig {
        jws_delay: Duration::from_millis(150),
        advertised_server: Some("https://10.1.2.3:443".into()),
        ..SandboxConfig::default()
    })
    .await;
    let c = client(&sb);
    let url = format!(
        "{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
        sb.url()
    );
    let token = sb.create_token();
    let (_, before) = get(&c, url.clone(), None).await;
    assert_eq!(
        keys(&before["data"]).len(),
        1,
        "signature must not be there yet"
    );
    assert!(before["data"]["kubeconfig"]
        .as_str()
        .unwrap()
        .contains("server: https://10.1.2.3:443\n"));
    let mut signed = false;
    for _ in 0..100 {
        let (_, now) = get(&c, url.clone(), None).await;
        if now["data"]
            .get(format!("jws-kubeconfig-{}", &token[..6]))
            .is_some()
        {
            signed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(signed, "jws-kubeconfig did not appear within 2 s");
}

// ------------------------------------------------------------------------------------------
// Status bodies

#[tokio::test]
async fn error_statuses_match_recordings() {
    let sb = start(SandboxConfig::default()).await;
    let c = client(&sb);
    let url = sb.url();

    let (code, body) = get(
        &c,
        format!("{url}/api/v1/namespaces/kube-public/configmaps/cluster-info"),
        Some("abcdef.0123456789abcdef"),
    )
    .await;
    assert_eq!(
        (code, &body),
        (401, &fixture("401-invalid-bearer-token.json"))
    );

    let (code, body) = get(&c, format!("{url}/api/v1/nodes"), None).await;
    assert_eq!(
        (code, &body),
        (403, &fixture("403-anonymous-list-nodes.json"))
    );

    let token = sb.create_token();
    let (code, body) = get(&c, format!("{url}{CSR_PATH}/does-not-exist"), Some(&token)).await;
    assert_eq!(
        (code, &body),
        (404, &fixture("404-csr-get-nonexistent.json"))
    );

    let node = node_client(&sb, "test-node-1");
    let (code, body) = get(&node, format!("{url}/api/v1/nodes/test-node-1"), None).await;
    assert_eq!(
        (code, &body),
        (404, &fixture("404-node-get-before-create.json"))
    );

    let (code, body) = get(
        &node,
        format!("{url}/api/v1/namespaces/kube-system/secrets"),
        None,
    )
    .await;
    assert_eq!((code, &body), (403, &fixture("403-node-list-secrets.json")));

    let create = fixture("request-node-create-body.json");
    let (code, _) = send(node.post(format!("{url}/api/v1/nodes")).json(&create)).await;
    assert_eq!(code, 201);
    let (code, body) = send(node.post(format!("{url}/api/v1/nodes")).json(&create)).await;
    assert_eq!(
        (code, &body),
        (409, &fixture("409-node-create-already-exists.json"))
    );

    let mut other = create.clone();
    other["metadata"]["name"] = json!("test-node-2");
    let (code, body) = send(node.post(format!("{url}/api/v1/nodes")).json(&other)).await;
    assert_eq!(
        (code, &body),
        (
            403,
            &fixture("403-node-create-other-node-noderestriction.json")
        )
    );

    let patch = fixture_text("request-node-status-patch-body.json");
    let (code, body) = send(
        node.patch(format!("{url}/api/v1/nodes/test-node-2/status"))
            .header("Content-Type", "application/strategic-merge-patch+json")
            .body(patch.clone()),
    )
    .await;
    assert_eq!(
        (code, &body),
        (
            404,
            &fixture("404-node-status-patch-other-nonexistent-node.json")
        )
    );

    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "x-test-node-1.18ebd1845d06eceb", "namespace": "kube-system"},
        "involvedObject": {"kind": "Node", "name": "test-node-1", "uid": "test-node-1", "apiVersion": "v1"},
        "reason": "X", "message": "x", "type": "Normal",
    });
    let (code, body) = send(
        node.post(format!("{url}/api/v1/namespaces/kube-system/events"))
            .json(&event),
    )
    .await;
    assert_eq!(
        (code, &body),
        (
            422,
            &fixture("422-event-create-namespace-mismatch-as-node.json")
        )
    );

    let (code, body) = send(
        c.post(format!("{url}/api/v1/nodes"))
            .bearer_auth(&token)
            .json(&create),
    )
    .await;
    let mut expected = fixture("403-bootstrap-token-create-node.json");
    let message = expected["message"]
        .as_str()
        .unwrap()
        .replace("abcdef", &token[..6]);
    expected["message"] = json!(message);
    assert_eq!((code, &body), (403, &expected));

    // A client certificate from another CA: 401, exactly as recorded.
    let other_ca = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (key, csr) = node_csr("test-node-1");
    let foreign = other_ca.sign_client_cert(&csr);
    let foreign_client = http(tls_config(&sb.ca_pem(), Some(identity(&foreign, &key))));
    let (code, body) = get(
        &foreign_client,
        format!("{url}/api/v1/nodes/test-node-1"),
        None,
    )
    .await;
    assert_eq!(
        (code, &body),
        (401, &fixture("401-client-cert-from-unknown-ca.json"))
    );

    let (code, body) = get(
        &c,
        format!("{url}/apis/nothing.example/v1/things"),
        Some(&token),
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        body["message"],
        "the server could not find the requested resource"
    );
    assert_eq!(body["details"], json!({}));

    let (code, body) = get(&c, format!("{url}/version"), None).await;
    assert_eq!((code, &body), (200, &fixture("200-version-anonymous.json")));

    // Pretty-printing for curl, like the apiserver (the fixtures were recorded with curl).
    let resp = c
        .get(format!("{url}/api/v1/nodes"))
        .header("User-Agent", "curl/8.0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.text().await.unwrap(),
        fixture_text("403-anonymous-list-nodes.json")
    );

    let identities: BTreeSet<String> = sb.requests().into_iter().map(|r| r.identity).collect();
    for who in ["anonymous", "system:node:test-node-1", "unauthenticated"] {
        assert!(
            identities.contains(who),
            "{who} missing from {identities:?}"
        );
    }
    assert!(identities.contains(&format!("system:bootstrap:{}", &token[..6])));
    other_ca.shutdown().await;
    sb.shutdown().await;
}

#[tokio::test]
async fn kubeadm_and_chart_configmaps() {
    let sb = start(SandboxConfig::default()).await;
    let c = client(&sb);
    let token = sb.create_token();
    for (name, fixture_name) in [
        (
            "kubeadm-config",
            "200-kubeadm-config-get-bootstrap-token.json",
        ),
        (
            "kubelet-config",
            "200-kubelet-config-get-bootstrap-token.json",
        ),
    ] {
        let url = format!(
            "{}/api/v1/namespaces/kube-system/configmaps/{name}",
            sb.url()
        );
        let (code, body) = get(&c, url.clone(), Some(&token)).await;
        let recorded = fixture(fixture_name);
        assert_eq!(code, 200);
        assert_eq!(keys(&body), keys(&recorded));
        assert_eq!(meta_keys(&body), meta_keys(&recorded));
        assert_eq!(keys(&body["data"]), keys(&recorded["data"]));
        if name == "kubelet-config" {
            assert_eq!(body["data"], recorded["data"]);
        } else {
            let ours = body["data"]["ClusterConfiguration"].as_str().unwrap();
            let theirs = recorded["data"]["ClusterConfiguration"].as_str().unwrap();
            let strip = |s: &str| {
                s.lines()
                    .filter(|l| !l.starts_with("controlPlaneEndpoint:"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(strip(ours), strip(theirs));
        }
        let (code, body) = get(&c, url, None).await;
        assert_eq!(code, 403);
        assert_eq!(body["message"], format!("configmaps \"{name}\" is forbidden: User \"system:anonymous\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-system\""));
    }
    let node = node_client(&sb, "test-node-1");
    let (code, _) = get(
        &node,
        format!(
            "{}/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
            sb.url()
        ),
        None,
    )
    .await;
    assert_eq!(code, 200);

    let chart = start(SandboxConfig {
        style: ControlPlaneStyle::Chart,
        ..SandboxConfig::default()
    })
    .await;
    let c = client(&chart);
    let token = chart.create_token();
    let id = &token[..6];
    let (code, body) = get(
        &c,
        format!(
            "{}/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
            chart.url()
        ),
        Some(&token),
    )
    .await;
    let mut expected = fixture("403-anonymous-get-cluster-info-before-rbac.json");
    expected["message"] = json!(format!("configmaps \"kubeadm-config\" is forbidden: User \"system:bootstrap:{id}\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-system\""));
    expected["details"]["name"] = json!("kubeadm-config");
    assert_eq!((code, &body), (403, &expected));
    let (code, _) = get(
        &c,
        format!(
            "{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
            chart.url()
        ),
        None,
    )
    .await;
    assert_eq!(code, 200);
}

// ------------------------------------------------------------------------------------------
// CSR lifecycle

#[tokio::test]
async fn csr_lifecycle_matches_recording() {
    let sb = start(SandboxConfig {
        approval: ApprovalMode::Auto {
            delay: Duration::from_millis(100),
        },
        ..SandboxConfig::default()
    })
    .await;
    let c = client(&sb);
    let token = sb.create_token();
    let id = &token[..6];
    let name = "node-csr-test-node-1";

    let watch = c
        .get(format!(
            "{}{CSR_PATH}?watch=true&fieldSelector=metadata.name%3D{name}&timeoutSeconds=5",
            sb.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);
    assert_eq!(watch.headers()["content-type"], "application/json");
    let reader = tokio::spawn(read_watch(watch, 3, Duration::from_secs(8)));

    let (_key, pem) = node_csr("test-node-1");
    let (code, created) = post_csr(
        &sb,
        &c,
        &token,
        &csr_body(
            name,
            &pem,
            KUBELET_SIGNER,
            &["digital signature", "client auth"],
        ),
    )
    .await;
    assert_eq!(code, 201);
    let recorded = fixture("201-csr-create-bootstrap-token.json");
    assert_eq!(keys(&created), keys(&recorded));
    assert_eq!(meta_keys(&created), meta_keys(&recorded));
    assert_eq!(keys(&created["spec"]), keys(&recorded["spec"]));
    assert_eq!(created["status"], json!({}));
    assert_eq!(
        created["spec"]["username"],
        format!("system:bootstrap:{id}")
    );
    assert_eq!(created["spec"]["groups"], recorded["spec"]["groups"]);
    assert_eq!(created["spec"]["usages"], recorded["spec"]["usages"]);

    let (events, _) = reader.await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let recorded_types: Vec<String> = fixture_text("200-csr-watch-stream.jsonl")
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, recorded_types);
    assert_eq!(types, ["ADDED", "MODIFIED", "MODIFIED"]);
    let rvs: Vec<u64> = events
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        rvs.windows(2).all(|w| w[0] < w[1]),
        "resourceVersions increase: {rvs:?}"
    );
    for (ours, line) in events
        .iter()
        .zip(fixture_text("200-csr-watch-stream.jsonl").lines())
    {
        let theirs: Value = serde_json::from_str(line).unwrap();
        assert_eq!(keys(ours), keys(&theirs));
        assert_eq!(keys(&ours["object"]), keys(&theirs["object"]));
        assert_eq!(
            keys(&ours["object"]["status"]),
            keys(&theirs["object"]["status"])
        );
    }

    let (code, issued) = get(&c, format!("{}{CSR_PATH}/{name}", sb.url()), Some(&token)).await;
    assert_eq!(code, 200);
    let recorded = fixture("200-csr-get-issued-bootstrap-token.json");
    assert_eq!(keys(&issued), keys(&recorded));
    assert_eq!(keys(&issued["status"]), keys(&recorded["status"]));
    let (ours, theirs) = (
        &issued["status"]["conditions"][0],
        &recorded["status"]["conditions"][0],
    );
    assert_eq!(keys(ours), keys(theirs));
    for k in ["type", "status", "reason", "message"] {
        assert_eq!(ours[k], theirs[k]);
    }
    let cert_pem = String::from_utf8(
        STANDARD
            .decode(issued["status"]["certificate"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let der = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .unwrap()
        .1
        .contents;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    let o: Vec<&str> = cert
        .subject()
        .iter_organization()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        (cn, o),
        (vec!["system:node:test-node-1"], vec!["system:nodes"])
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(cert.key_usage().unwrap().unwrap().value.digital_signature());
    let validity = cert.validity();
    let days = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86400;
    assert!((364..=366).contains(&days), "about a year: {days} days");
    let ca_der = x509_parser::pem::parse_x509_pem(sb.ca_pem().as_bytes())
        .unwrap()
        .1
        .contents;
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    cert.verify_signature(Some(ca.public_key()))
        .expect("issued by the sandbox CA");

    // list by name, then watch from the list's resourceVersion (kubelet's way)
    let (code, list) = get(
        &c,
        format!(
            "{}{CSR_PATH}?fieldSelector=metadata.name%3D{name}",
            sb.url()
        ),
        Some(&token),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        keys(&list),
        BTreeSet::from(["kind", "apiVersion", "metadata", "items"].map(String::from))
    );
    assert_eq!(list["kind"], "CertificateSigningRequestList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("kind").is_none());
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap();
    let watch = c
        .get(format!("{}{CSR_PATH}?allowWatchBookmarks=true&fieldSelector=metadata.name%3D{name}&resourceVersion={rv}&timeoutSeconds=1&watch=true", sb.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (events, ended) = read_watch(watch, 10, Duration::from_secs(5)).await;
    assert!(ended, "the watch ends at timeoutSeconds");
    // Nothing else changed: no BOOKMARK, not even at the end (200-csr-watch-timeout-no-bookmark.jsonl;
    // the bookmarks of a busier control plane are in tests/fidelity_v133.rs).
    assert_eq!(events, Vec::<Value>::new());

    // from the creation's resourceVersion - 1: the whole lifecycle again
    let first = rvs[0] - 1;
    let watch = c
        .get(format!("{}{CSR_PATH}?fieldSelector=metadata.name%3D{name}&resourceVersion={first}&watch=1&timeoutSeconds=1", sb.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (events, _) = read_watch(watch, 3, Duration::from_secs(5)).await;
    assert_eq!(events.len(), 3);

    // 409 AlreadyExists
    let (code, body) = post_csr(
        &sb,
        &c,
        &token,
        &csr_body(
            name,
            &pem,
            KUBELET_SIGNER,
            &["digital signature", "client auth"],
        ),
    )
    .await;
    assert_eq!(code, 409);
    let mut expected = fixture("409-node-create-already-exists.json");
    expected["message"] = json!(format!(
        "certificatesigningrequests.certificates.k8s.io \"{name}\" already exists"
    ));
    expected["details"] =
        json!({"name": name, "group": "certificates.k8s.io", "kind": "certificatesigningrequests"});
    assert_eq!(body, expected);

    // generateName
    let mut gen = csr_body(
        "",
        &pem,
        KUBELET_SIGNER,
        &["digital signature", "client auth"],
    );
    gen["metadata"] = json!({"generateName": "csr-"});
    let (code, body) = post_csr(&sb, &c, &token, &gen).await;
    assert_eq!(code, 201);
    assert!(body["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("csr-"));
    assert_eq!(body["metadata"]["generateName"], "csr-");

    // anonymous may not create CSRs
    let (code, _) = send(c.post(format!("{}{CSR_PATH}", sb.url())).json(&gen)).await;
    assert_eq!(code, 403);
    sb.shutdown().await;
}

#[tokio::test]
async fn csr_validation_rejects_bad_requests() {
    let sb = start(SandboxConfig::default()).await;
    let c = client(&sb);
    let token = sb.create_token();
    let (_key, pem) = node_csr("n1");
    let cases = [
        (
            csr_body("a", "not a pem", KUBELET_SIGNER, &["client auth"]),
            "spec.request",
        ),
        (csr_body("b", &pem, "", &["client auth"]), "spec.signerName"),
        (csr_body("c", &pem, KUBELET_SIGNER, &[]), "spec.usages"),
        (
            csr_body("d", &pem, KUBELET_SIGNER, &["client auth", "bogus"]),
            "spec.usages[1]",
        ),
        (
            csr_body("a/b", &pem, KUBELET_SIGNER, &["client auth"]),
            "metadata.name",
        ),
    ];
    for (body, field) in cases {
        let (code, status) = post_csr(&sb, &c, &token, &body).await;
        assert_eq!(code, 422, "{status}");
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(status["details"]["causes"][0]["field"], field, "{status}");
        assert_eq!(status["details"]["group"], "certificates.k8s.io");
    }
    // kubelet's own names are base64url (upper case, '_'): CSR names are not DNS-validated
    let (code, status) = post_csr(
        &sb,
        &c,
        &token,
        &csr_body(
            "node-csr-Sr7I_wB5Hm",
            &pem,
            KUBELET_SIGNER,
            &["client auth"],
        ),
    )
    .await;
    assert_eq!(code, 201, "{status}");
    // a tampered signature
    let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents;
    let mut tampered = der.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 0x55;
    let tampered_pem = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        STANDARD.encode(&tampered)
    );
    let (code, _) = post_csr(
        &sb,
        &c,
        &token,
        &csr_body("e", &tampered_pem, KUBELET_SIGNER, &["client auth"]),
    )
    .await;
    assert_eq!(code, 422);
    // Only the well-formed base64url-named request was stored.
    assert_eq!(sb.csrs().len(), 1);
}

// ------------------------------------------------------------------------------------------
// approver rules

#[tokio::test]
async fn approver_applies_the_real_rules() {
    let sb = start(SandboxConfig::default()).await;
    let c = client(&sb);
    let token = sb.create_token();
    let key = KeyPair::generate().unwrap();
    let good = csr_pem(&key, &["system:nodes"], "system:node:n1", vec![]);
    let pending = [
        (
            "wrong-usages",
            csr_body(
                "wrong-usages",
                &good,
                KUBELET_SIGNER,
                &[
                    "digital signature",
                    "key encipherment",
                    "client auth",
                    "server auth",
                ],
            ),
        ),
        (
            "only-client-auth",
            csr_body("only-client-auth", &good, KUBELET_SIGNER, &["client auth"]),
        ),
        (
            "extra-san",
            csr_body(
                "extra-san",
                &csr_pem(
                    &key,
                    &["system:nodes"],
                    "system:node:n1",
                    vec![SanType::DnsName("n1".try_into().unwrap())],
                ),
                KUBELET_SIGNER,
                &["digital signature", "client auth"],
            ),
        ),
        (
            "wrong-o",
            csr_body(
                "wrong-o",
                &csr_pem(&key, &["system:masters"], "system:node:n1", vec![]),
                KUBELET_SIGNER,
                &["digital signature", "client auth"],
            ),
        ),
        (
            "two-o",
            csr_body(
                "two-o",
                &csr_pem(&key, &["system:nodes", "extra"], "system:node:n1", vec![]),
                KUBELET_SIGNER,
                &["digital signature", "client auth"],
            ),
        ),
        (
            "wrong-cn",
            csr_body(
                "wrong-cn",
                &csr_pem(&key, &["system:nodes"], "n1", vec![]),
                KUBELET_SIGNER,
                &["digital signature", "client auth"],
            ),
        ),
        (
            "other-signer",
            csr_body(
                "other-signer",
                &good,
                "kubernetes.io/kube-apiserver-client",
                &["digital signature", "client auth"],
            ),
        ),
    ];
    for (_, body) in &pending {
        assert_eq!(post_csr(&sb, &c, &token, body).await.0, 201);
    }
    let no_nodeclient = sb.create_token_with(TokenOptions {
        can_nodeclient: false,
        ..TokenOptions::default()
    });
    let body = csr_body(
        "no-nodeclient",
        &good,
        KUBELET_SIGNER,
        &["digital signature", "client auth"],
    );
    assert_eq!(post_csr(&sb, &c, &no_nodeclient, &body).await.0, 201);
    let body = csr_body(
        "rsa-usages",
        &good,
        KUBELET_SIGNER,
        &["key encipherment", "digital signature", "client auth"],
    );
    assert_eq!(post_csr(&sb, &c, &token, &body).await.0, 201);

    wait_csr(&sb, "rsa-usages", |c| {
        c["status"]["certificate"].is_string()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for name in pending.iter().map(|(n, _)| *n).chain(["no-nodeclient"]) {
        let csr = sb
            .csrs()
            .into_iter()
            .find(|c| c["metadata"]["name"] == name)
            .unwrap();
        assert_eq!(csr["status"], json!({}), "{name} must stay Pending");
    }

    // selfnodeclient: a node renewing its own certificate is approved; for another name it is not.
    let node = node_client(&sb, "n1");
    let body = csr_body(
        "renew-n1",
        &good,
        KUBELET_SIGNER,
        &["digital signature", "client auth"],
    );
    assert_eq!(
        send(node.post(format!("{}{CSR_PATH}", sb.url())).json(&body))
            .await
            .0,
        201
    );
    let renewed = wait_csr(&sb, "renew-n1", |c| c["status"]["certificate"].is_string()).await;
    assert_eq!(renewed["spec"]["username"], "system:node:n1");
    assert_eq!(
        renewed["spec"]["groups"],
        json!(["system:nodes", "system:authenticated"])
    );
    let other = csr_pem(&key, &["system:nodes"], "system:node:n2", vec![]);
    let body = csr_body(
        "renew-n2",
        &other,
        KUBELET_SIGNER,
        &["digital signature", "client auth"],
    );
    assert_eq!(
        send(node.post(format!("{}{CSR_PATH}", sb.url())).json(&body))
            .await
            .0,
        201
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let csr = sb
        .csrs()
        .into_iter()
        .find(|c| c["metadata"]["name"] == "renew-n2")
        .unwrap();
    assert_eq!(csr["status"], json!({}));
}

#[tokio::test]
async fn deny_fail_and_never_modes() {
    for (mode, expected) in [
        (ApprovalMode::Deny, vec!["Denied"]),
        (ApprovalMode::Fail, vec!["Approved", "Failed"]),
        (ApprovalMode::Never, vec![]),
    ] {
        let sb = start(SandboxConfig {
            approval: mode,
            ..SandboxConfig::default()
        })
        .await;
        let c = client(&sb);
        let token = sb.create_token();
        let (_key, pem) = node_csr("n1");
        let body = csr_body(
            "x",
            &pem,
            KUBELET_SIGNER,
            &["digital signature", "client auth"],
        );
        assert_eq!(post_csr(&sb, &c, &token, &body).await.0, 201);
        let csr = if expected.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sb.csrs().pop().unwrap()
        } else {
            let n = expected.len();
            wait_csr(&sb, "x", |c| conditions(c).len() == n).await
        };
        assert_eq!(conditions(&csr), expected, "{mode:?}");
        assert!(csr["status"].get("certificate").is_none());
        if mode == ApprovalMode::Deny {
            assert_eq!(csr["status"]["conditions"][0]["reason"], "SandboxDenied");
            assert!(csr["status"]["conditions"][0]["message"].is_string());
        }
        sb.shutdown().await;
    }
}

#[tokio::test]
async fn ssar_matches_recordings() {
    let sb = start(SandboxConfig::default()).await;
    let c = client(&sb);
    let body = fixture("request-ssar-nodeclient-body.json");
    let url = format!(
        "{}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        sb.url()
    );
    for (opts, name) in [
        (
            TokenOptions::default(),
            "201-ssar-nodeclient-allowed-bootstrap-token.json",
        ),
        (
            TokenOptions {
                can_nodeclient: false,
                ..TokenOptions::default()
            },
            "201-ssar-nodeclient-denied-bootstrap-token.json",
        ),
    ] {
        let token = sb.create_token_with(opts);
        let (code, review) = send(c.post(&url).bearer_auth(&token).json(&body)).await;
        let recorded = fixture(name);
        assert_eq!(code, 201);
        assert_eq!(keys(&review), keys(&recorded));
        assert_eq!(review["metadata"]["creationTimestamp"], Value::Null);
        assert_eq!(review["spec"], recorded["spec"]);
        assert_eq!(review["status"], recorded["status"], "{name}");
    }
    let (code, _) = send(c.post(&url).json(&body)).await;
    assert_eq!(code, 403, "anonymous may not create SSARs");
}

// ------------------------------------------------------------------------------------------
// nodes and events

#[tokio::test]
async fn node_create_patch_and_events() {
    let sb = start(SandboxConfig::default()).await;
    let url = sb.url();
    let node = node_client(&sb, "test-node-1");
    let (code, created) = send(
        node.post(format!("{url}/api/v1/nodes"))
            .json(&fixture("request-node-create-body.json")),
    )
    .await;
    assert_eq!(code, 201);
    let recorded = fixture("201-node-create-as-node.json");
    assert_eq!(keys(&created), keys(&recorded));
    assert_eq!(meta_keys(&created), meta_keys(&recorded));
    assert_eq!(created["spec"], recorded["spec"]);
    assert_eq!(created["status"], recorded["status"]);
    assert_eq!(
        created["metadata"]["labels"],
        recorded["metadata"]["labels"]
    );

    let (code, patched) = send(
        node.patch(format!("{url}/api/v1/nodes/test-node-1/status"))
            .header("Content-Type", "application/strategic-merge-patch+json")
            .body(fixture_text("request-node-status-patch-body.json")),
    )
    .await;
    assert_eq!(code, 200);
    let recorded = fixture("200-node-status-patch-strategic-merge.json");
    assert_eq!(patched["status"], recorded["status"]);
    assert_ne!(
        patched["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    // a later patch of one condition merges by type
    let patch = json!({"status": {"conditions": [{"type": "KaasJoinProblem", "status": "True", "reason": "Broken", "message": "x"}, {"type": "Ready", "status": "False"}]}});
    let (code, patched) = send(
        node.patch(format!("{url}/api/v1/nodes/test-node-1/status"))
            .header("Content-Type", "application/strategic-merge-patch+json")
            .json(&patch),
    )
    .await;
    assert_eq!(code, 200);
    let conds = patched["status"]["conditions"].as_array().unwrap();
    assert_eq!(conds.len(), 5);
    assert_eq!(
        conds.iter().find(|c| c["type"] == "Ready").unwrap()["status"],
        "False"
    );
    assert_eq!(
        conds.iter().find(|c| c["type"] == "Ready").unwrap()["reason"],
        "KubeletReady"
    );

    let other = node_client(&sb, "test-node-2");
    let (code, body) = send(
        other
            .patch(format!("{url}/api/v1/nodes/test-node-1/status"))
            .header("Content-Type", "application/strategic-merge-patch+json")
            .json(&patch),
    )
    .await;
    let mut expected = fixture("403-node-status-patch-other-node-noderestriction.json");
    expected["message"] = json!("nodes \"test-node-1\" is forbidden: node \"test-node-2\" is not allowed to modify node \"test-node-1\"");
    expected["details"]["name"] = json!("test-node-1");
    assert_eq!((code, &body), (403, &expected));

    let (code, body) = send(
        node.patch(format!("{url}/api/v1/nodes/test-node-1"))
            .header("Content-Type", "application/strategic-merge-patch+json")
            .json(&json!({"metadata": {"labels": {"node-restriction.kubernetes.io/foo": "bar"}}})),
    )
    .await;
    assert_eq!(
        (code, &body),
        (403, &fixture("403-node-patch-own-restricted-label.json"))
    );

    let (code, got) = get(&node, format!("{url}/api/v1/nodes/test-node-1"), None).await;
    assert_eq!(code, 200);
    assert_eq!(got["status"]["conditions"].as_array().unwrap().len(), 5);
    assert_eq!(
        sb.node("test-node-1").unwrap()["metadata"]["name"],
        "test-node-1"
    );
    let (code, _) = get(&other, format!("{url}/api/v1/nodes/test-node-1"), None).await;
    assert_eq!(code, 403, "a node reads only its own Node");
    let token = sb.create_token();
    let (code, got) = get(
        &client(&sb),
        format!("{url}/api/v1/nodes/test-node-1"),
        Some(&token),
    )
    .await;
    assert_eq!(code, 200);
    let recorded = fixture("200-node-get-with-bootstrap-token.json");
    assert_eq!(keys(&got), keys(&recorded));

    let (code, event) = send(
        node.post(format!("{url}/api/v1/namespaces/default/events"))
            .json(&fixture("request-event-create-body.json")),
    )
    .await;
    assert_eq!(code, 201);
    let recorded = fixture("201-event-create-default-ns-as-node.json");
    assert_eq!(keys(&event), keys(&recorded));
    assert_eq!(meta_keys(&event), meta_keys(&recorded));
    for k in [
        "involvedObject",
        "reason",
        "message",
        "source",
        "count",
        "type",
        "eventTime",
        "reportingComponent",
    ] {
        assert_eq!(event[k], recorded[k], "{k}");
    }

    // add_node / node() helpers and the node watch (ADDED, MODIFIED)
    sb.add_node("ready-1", true);
    let ready = sb.node("ready-1").unwrap();
    assert_eq!(ready["status"]["conditions"][0]["status"], "True");
    let watcher = node_client(&sb, "ready-1");
    let resp = watcher
        .get(format!(
            "{url}/api/v1/nodes?watch=true&fieldSelector=metadata.name%3Dready-1&timeoutSeconds=2"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let reader = tokio::spawn(read_watch(resp, 2, Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    sb.add_node("ready-1", false);
    let (events, _) = reader.await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED"]);
    assert_eq!(
        events[1]["object"]["status"]["conditions"][0]["status"],
        "False"
    );
}

// ------------------------------------------------------------------------------------------
// watch errors and faults

#[tokio::test]
async fn too_old_resource_version_is_expired() {
    let sb = start(SandboxConfig::default()).await;
    let c = client(&sb);
    let token = sb.create_token();
    for i in 0..1005 {
        sb.add_node(&format!("n{i}"), true);
    }
    let resp = c
        .get(format!(
            "{}{CSR_PATH}?watch=true&resourceVersion=5&timeoutSeconds=5",
            sb.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (events, ended) = read_watch(resp, 5, Duration::from_secs(5)).await;
    assert!(ended);
    assert_eq!(events.len(), 1);
    let obj = &events[0]["object"];
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(
        keys(obj),
        BTreeSet::from(
            [
                "kind",
                "apiVersion",
                "metadata",
                "status",
                "message",
                "reason",
                "code"
            ]
            .map(String::from)
        )
    );
    assert_eq!(
        (obj["code"].as_u64(), obj["reason"].as_str()),
        (Some(410), Some("Expired"))
    );
    assert!(obj["message"]
        .as_str()
        .unwrap()
        .starts_with("too old resource version: 5 ("));
}

#[tokio::test]
async fn faults_fail_drop_delay_and_cut() {
    let sb = start(SandboxConfig::default()).await;
    let c = client(&sb);
    let token = sb.create_token();
    let faults = sb.faults();
    let ci = format!(
        "{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
        sb.url()
    );

    faults.fail_next("/api/v1/namespaces/kube-public", 503, 2);
    for _ in 0..2 {
        let resp = c.get(&ci).send().await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after"], "1");
        let status: Value = resp.json().await.unwrap();
        assert_eq!(status["reason"], "ServiceUnavailable");
        assert_eq!(status["code"], 503);
    }
    assert_eq!(c.get(&ci).send().await.unwrap().status(), 200);

    faults.drop_connections("/api/v1/namespaces/kube-public", 1);
    assert!(
        c.get(&ci).send().await.is_err(),
        "the connection is closed without a response"
    );
    assert_eq!(c.get(&ci).send().await.unwrap().status(), 200);
    assert!(sb.requests().iter().any(|r| r.status == 0));

    // A delay long enough to tell apart from scheduling noise on a loaded machine.
    faults.delay("/api/v1/namespaces/kube-public", Duration::from_secs(1));
    let t = Instant::now();
    assert_eq!(c.get(&ci).send().await.unwrap().status(), 200);
    assert!(t.elapsed() >= Duration::from_secs(1));
    faults.clear();
    let t = Instant::now();
    c.get(&ci).send().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));

    // cut: an open watch with timeoutSeconds=30 ends cleanly soon after the cut is set
    let resp = c
        .get(format!(
            "{}{CSR_PATH}?watch=true&timeoutSeconds=30&allowWatchBookmarks=true",
            sb.url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(read_watch(resp, 10, Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    faults.cut_watches_after(Duration::from_millis(300));
    let (events, ended) = reader.await.unwrap();
    assert!(ended && events.is_empty(), "{events:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
    faults.clear();

    faults.watch_error_expired_next(1);
    let url = format!(
        "{}{CSR_PATH}?watch=true&resourceVersion=1&timeoutSeconds=1",
        sb.url()
    );
    let resp = c.get(&url).bearer_auth(&token).send().await.unwrap();
    let (events, ended) = read_watch(resp, 5, Duration::from_secs(5)).await;
    assert!(ended);
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    let resp = c.get(&url).bearer_auth(&token).send().await.unwrap();
    let (events, ended) = read_watch(resp, 5, Duration::from_secs(5)).await;
    assert!(
        ended && events.is_empty(),
        "only the next watch is affected: {events:?}"
    );

    // oversize bodies are refused
    let huge = vec![b'a'; (1 << 20) + 10];
    let resp = c
        .post(format!("{}{CSR_PATH}", sb.url()))
        .bearer_auth(&token)
        .body(huge)
        .send()
        .await;
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), 413);
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn expired_and_non_auth_tokens_are_unauthorized() {
    let sb = start(SandboxConfig::default()).await;
    let c = client(&sb);
    let url = format!(
        "{}/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        sb.url()
    );
    for opts in [
        TokenOptions {
            expired: true,
            ..TokenOptions::default()
        },
        TokenOptions {
            auth: false,
            ..TokenOptions::default()
        },
    ] {
        let token = sb.create_token_with(opts);
        let (code, body) = get(&c, url.clone(), Some(&token)).await;
        assert_eq!(
            (code, &body),
            (401, &fixture("401-invalid-bearer-token.json"))
        );
    }
    let token = sb.create_token();
    assert!(regex_like_token(&token), "{token}");
    let wrong = format!("{}{}", &token[..7], "0000000000000000");
    assert_eq!(get(&c, url, Some(&wrong)).await.0, 401);
}

fn regex_like_token(t: &str) -> bool {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    matches!(t.split_once('.'), Some((a, b)) if ok(a, 6) && ok(b, 16))
}
