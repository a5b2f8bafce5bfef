//! Property tests for every parser of outside input: the bootstrap token, CA pins, PEM bundles,
//! detached JWS signatures, kubeconfigs (cluster-info's), the config file (through
//! `config::load`), watch events, the node key file, and the small value parsers (`--server`,
//! durations, node labels).
//!
//! Each parser gets arbitrary input (it must never panic, hang or allocate without bound) and
//! near-valid input (a valid value with one character replaced, inserted or deleted, or cut
//! short), checked against an independent model of what is valid where one is simple enough.
//! Valid values round-trip, and no error message ever shows a token secret given in the input.
//!
//! Cases per property: [`CASES`] (a few seconds for the whole file in a debug build), from a
//! fixed seed, so every run (CI's too) tries the same inputs. More and other inputs, e.g. before
//! a release: `PROPTEST_CASES=20000 PROPTEST_RNG_SEED=$RANDOM cargo test --release --test
//! properties` (the case count scales every property here; a failure prints the seed's shrunk
//! input, which then becomes a named regression test). A random draw found the unknown-kind echo
//! of a token (`unknown_kind_holding_the_token_is_not_echoed` in tests/config_file.rs). Deeper, coverage-guided fuzzing of the same parsers:
//! `fuzz/README.md`.
//!
//! The CSR status handling in `bootstrap` is private (`outcome`); it is covered by the join
//! tests against the sandbox, which serves real CSR objects, and by the `watch_event` property
//! (the events it reads) here.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

use kaas_join::config;
use kaas_join::k8s::bootstrap::{csr_name, NodeKey};
use kaas_join::k8s::client::WatchEvent;
use kaas_join::model::jws::{sign_detached, verify_detached, JwsError};
use kaas_join::model::kubeconfig;
use kaas_join::model::labels::parse_node_labels;
use kaas_join::model::pin::{certificates_from_pem, CaPin};
use kaas_join::model::token::BootstrapToken;

/// Cases per property (cheap parsers); the file and X.509 ones run a quarter of it.
const CASES: u32 = 256;

fn cases(n: u32) -> ProptestConfig {
    // PROPTEST_CASES, when set, scales every property.
    let n = match std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        Some(env) => (u64::from(env) * u64::from(n) / u64::from(CASES)).max(1) as u32,
        None => n,
    };
    let defaults = ProptestConfig::default();
    ProptestConfig {
        cases: n,
        // Failures print the shrunk input; no regression files are written into the tree.
        failure_persistence: None,
        // The same cases on every run, so CI cannot fail by the luck of a draw; a seed from
        // PROPTEST_RNG_SEED explores others (see the module docs).
        rng_seed: match std::env::var_os("PROPTEST_RNG_SEED") {
            Some(_) => defaults.rng_seed,
            None => RngSeed::Fixed(FIXED_SEED),
        },
        ..defaults
    }
}

/// The seed of the normal run (any value; changed only on purpose).
const FIXED_SEED: u64 = 0x6b61_6173_6a6f_696e;

// ---------------------------------------------------------------------------------------------
// Fixtures and strategies
// ---------------------------------------------------------------------------------------------

fn fixtures() -> PathBuf {
    common::fixtures::fixtures_dir()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The recorded token, cluster-info kubeconfig and its JWS (`tests/fixtures`).
fn recorded_cluster_info() -> (BootstrapToken, String, String) {
    let line = String::from_utf8(fixture("token-used.txt")).unwrap();
    let token = BootstrapToken::parse(line.split_whitespace().next().unwrap()).unwrap();
    let cm: serde_json::Value =
        serde_json::from_slice(&fixture("200-anonymous-get-cluster-info-signed.json")).unwrap();
    let kubeconfig = cm["data"]["kubeconfig"].as_str().unwrap().to_owned();
    let jws = cm["data"][format!("jws-kubeconfig-{}", token.id())]
        .as_str()
        .unwrap()
        .to_owned();
    (token, kubeconfig, jws)
}

fn valid_token() -> impl Strategy<Value = String> {
    "[a-z0-9]{6}\\.[a-z0-9]{16}"
}

/// Characters that matter to the parsers here, mixed with any `char`.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        any::<char>(),
        prop::sample::select(vec![
            '.', ':', '-', '_', '=', ',', '/', '\n', '\r', '\t', ' ', 'a', 'z', '0', '9', 'A', 'Z',
            'g', '"', '\'', '#', '[', ']', '{', '}', '&', '*', '!', '|', '>', '%', '@', '\0', 'é',
            '\u{feff}', '\u{85}', '\u{2028}',
        ]),
    ]
}

/// `base` with one edit: a character replaced or inserted, a run deleted, or the rest cut off.
fn mutated(base: String) -> impl Strategy<Value = String> {
    let chars: Vec<char> = base.chars().collect();
    let n = chars.len();
    (0..=n, 0u8..4, interesting_char(), 1usize..8).prop_map(move |(i, op, c, run)| {
        let mut v = chars.clone();
        match op {
            0 if i < n => v[i] = c,
            1 => v.insert(i, c),
            2 if i < n => {
                v.drain(i..(i + run).min(n));
            }
            _ => v.truncate(i),
        }
        v.into_iter().collect()
    })
}

/// `base` with up to three edits.
fn mutated_more(base: String) -> impl Strategy<Value = String> {
    mutated(base)
        .prop_flat_map(mutated)
        .prop_flat_map(|s| prop_oneof![Just(s.clone()), mutated(s)])
}

/// Whether `s` is a bootstrap token: kubeadm's `^[a-z0-9]{6}\.[a-z0-9]{16}$` after trimming.
fn token_model(s: &str) -> bool {
    let b = s.trim().as_bytes();
    b.len() == 23
        && b.iter().enumerate().all(|(i, &c)| {
            if i == 6 {
                c == b'.'
            } else {
                c.is_ascii_lowercase() || c.is_ascii_digit()
            }
        })
}

/// The secret-looking part of a token-ish input: everything after the first '.', trimmed.
fn secret_part(s: &str) -> Option<&str> {
    let (_, secret) = s.trim().split_once('.')?;
    let secret = secret.trim();
    // Short fragments could occur in any message by chance; 8 characters of [a-z0-9] cannot.
    // Only token characters: other text (say, a copy of an error message) is not a secret.
    let token_like = secret
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (secret.len() >= 8 && token_like).then_some(secret)
}

/// What kubeadm accepts as a pin: exactly one ':', format `sha256` in any case, 64 hex digits.
fn pin_model(s: &str) -> Option<[u8; 32]> {
    let mut parts = s.split(':');
    let (Some(format), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if !format.eq_ignore_ascii_case("sha256") || value.len() != 64 {
        return None;
    }
    if !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&value[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn pin_string() -> impl Strategy<Value = String> {
    (any::<[u8; 32]>(), any::<bool>(), any::<bool>()).prop_map(|(bytes, upper_fmt, upper_hex)| {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}:{}",
            if upper_fmt { "SHA256" } else { "sha256" },
            if upper_hex { hex.to_uppercase() } else { hex }
        )
    })
}

/// A JSON value of bounded depth and size.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // No floats: serde_json (without `float_roundtrip`) may change the last digit, and
        // Kubernetes objects carry quantities as strings.
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// token
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(CASES))]

    #[test]
    fn token_parse_matches_kubeadm_regex_on_any_string(s in any::<String>()) {
        let parsed = BootstrapToken::parse(&s);
        prop_assert_eq!(parsed.is_ok(), token_model(&s), "{:?}", s);
    }

    #[test]
    fn token_parse_matches_kubeadm_regex_near_valid(s in valid_token().prop_flat_map(mutated_more)) {
        let parsed = BootstrapToken::parse(&s);
        prop_assert_eq!(parsed.is_ok(), token_model(&s), "{:?}", s);
        if let Err(err) = parsed {
            let (shown, debug) = (err.to_string(), format!("{err:?}"));
            if let Some(secret) = secret_part(&s) {
                prop_assert!(!shown.contains(secret), "{} echoes {:?}", shown, secret);
                prop_assert!(!debug.contains(secret), "{} echoes {:?}", debug, secret);
            }
        }
    }

    #[test]
    fn valid_token_round_trips_and_hides_its_secret(
        t in valid_token(),
        before in "[ \t\n]{0,3}",
        after in "[ \t\r\n]{0,3}",
    ) {
        let token = BootstrapToken::parse(&format!("{before}{t}{after}")).unwrap();
        let bearer = token.bearer();
        prop_assert_eq!(bearer.as_str(), t.as_str());
        let (id, secret) = t.split_once('.').unwrap();
        prop_assert_eq!(token.id(), id);
        prop_assert_eq!(token.secret(), secret);
        for shown in [token.to_string(), format!("{token:?}"), format!("{:?}", token.clone())] {
            prop_assert!(!shown.contains(secret), "{}", shown);
            prop_assert!(shown.contains(id), "{}", shown);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CA pin
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(CASES))]

    #[test]
    fn pin_parse_matches_kubeadm_on_any_string(s in any::<String>()) {
        let parsed = s.parse::<CaPin>().ok().map(|p| *p.as_bytes());
        prop_assert_eq!(parsed, pin_model(&s), "{:?}", s);
    }

    #[test]
    fn pin_parse_matches_kubeadm_near_valid(s in pin_string().prop_flat_map(mutated_more)) {
        let parsed = s.parse::<CaPin>();
        prop_assert_eq!(parsed.as_ref().ok().map(|p| *p.as_bytes()), pin_model(&s), "{:?}", s);
        if let Err(err) = parsed {
            // Every refusal says how to get a correct pin.
            prop_assert!(err.to_string().contains("openssl dgst -sha256 -hex"), "{}", err);
        }
    }

    #[test]
    fn pin_display_parse_round_trip(s in pin_string()) {
        let pin: CaPin = s.parse().unwrap();
        let shown = pin.to_string();
        prop_assert_eq!(&shown, &s.to_lowercase());
        let again: CaPin = shown.parse().unwrap();
        prop_assert_eq!(&again, &pin);
        let debug = format!("{pin:?}");
        prop_assert!(debug.contains(&shown), "{}", debug);
    }
}

// ---------------------------------------------------------------------------------------------
// PEM bundles (cluster-info's certificate-authority-data) and node keys
// ---------------------------------------------------------------------------------------------

fn ca_pem() -> String {
    String::from_utf8(fixture("ca.crt")).unwrap()
}

proptest! {
    #![proptest_config(cases(CASES / 4))]

    #[test]
    fn pem_bundle_never_panics_on_any_bytes(b in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = certificates_from_pem(&b);
    }

    #[test]
    fn pem_bundle_near_valid_yields_only_parseable_certificates(s in mutated_more(ca_pem())) {
        if let Ok(certs) = certificates_from_pem(s.as_bytes()) {
            prop_assert!(!certs.is_empty());
            for der in &certs {
                prop_assert!(CaPin::of_certificate_der(der).is_ok());
            }
        }
    }

    #[test]
    fn pem_certificate_block_of_random_der_is_refused(
        der in prop::collection::vec(any::<u8>(), 0..600),
        keep_header in any::<bool>(),
    ) {
        // A real DER SEQUENCE header in front, so the X.509 parser gets past the first byte.
        let mut body = if keep_header { vec![0x30, 0x82, 0x02, 0x00] } else { vec![] };
        body.extend_from_slice(&der);
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(&body)
        );
        prop_assert!(certificates_from_pem(pem.as_bytes()).is_err());
    }

    #[test]
    fn pem_bundle_keeps_every_certificate_in_order(
        n in 1usize..5,
        junk in prop::collection::vec("[ -~]{0,40}", 0..4),
    ) {
        let ca = ca_pem();
        let mut bundle = String::new();
        for (i, line) in junk.iter().enumerate() {
            // Text between blocks and blocks of other types are skipped.
            bundle.push_str(&format!("# {line}\n-----BEGIN PUBLIC KEY-----\nAAAA{i}\n-----END PUBLIC KEY-----\n"));
        }
        for _ in 0..n {
            bundle.push_str(&ca);
        }
        let certs = certificates_from_pem(bundle.as_bytes());
        // "AAAA0" is not base64: a broken non-certificate block is still an error.
        if junk.is_empty() {
            prop_assert_eq!(certs.unwrap().len(), n);
        } else {
            prop_assert!(certs.is_err());
        }
    }

    #[test]
    fn node_key_from_pem_never_panics(s in prop_oneof![any::<String>(), node_key_pem().prop_flat_map(mutated)]) {
        if let Ok(key) = NodeKey::from_pem(&s, "/var/lib/kaas-join/node-key.pem") {
            // Only a usable P-256 key is accepted.
            prop_assert!(!key.public_key_der().is_empty());
        }
    }
}

fn node_key_pem() -> impl Strategy<Value = String> {
    Just(NodeKey::generate().unwrap().pem().to_owned())
}

proptest! {
    #![proptest_config(cases(CASES))]

    #[test]
    fn csr_name_is_a_valid_object_name(der in prop::collection::vec(any::<u8>(), 0..128), node in ".{0,64}") {
        let name = csr_name(&der, &node);
        prop_assert_eq!(name.len(), "node-csr-".len() + 43);
        prop_assert!(name.starts_with("node-csr-"));
        prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert_eq!(name.clone(), csr_name(&der, &node));
    }
}

// ---------------------------------------------------------------------------------------------
// Detached JWS
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(CASES))]

    #[test]
    fn jws_verify_never_panics_and_never_accepts_garbage(
        payload in prop::collection::vec(any::<u8>(), 0..256),
        jws in prop_oneof![any::<String>(), "[A-Za-z0-9_-]{0,60}\\.{1,3}[A-Za-z0-9_=-]{0,50}"],
        t in valid_token(),
    ) {
        let token = BootstrapToken::parse(&t).unwrap();
        let result = verify_detached(&payload, &jws, &token);
        prop_assert!(result.is_err());
        let err = result.unwrap_err();
        let (shown, debug) = (err.to_string(), format!("{err:?}"));
        prop_assert!(!shown.contains(token.secret()), "{}", shown);
        prop_assert!(!debug.contains(token.secret()), "{}", debug);
    }

    #[test]
    fn jws_sign_then_verify(payload in prop::collection::vec(any::<u8>(), 0..512), t in valid_token()) {
        let token = BootstrapToken::parse(&t).unwrap();
        let jws = sign_detached(&payload, &token);
        prop_assert_eq!(verify_detached(&payload, &jws, &token), Ok(()));
        prop_assert!(!jws.contains(token.secret()));
        // The header names the token id, so the bootstrapsigner's key is found by it.
        let header = URL_SAFE_NO_PAD.decode(jws.split('.').next().unwrap()).unwrap();
        prop_assert_eq!(header, format!(r#"{{"alg":"HS256","kid":"{}"}}"#, token.id()).into_bytes());
    }

    #[test]
    fn jws_any_payload_byte_change_is_mismatch(
        payload in prop::collection::vec(any::<u8>(), 1..512),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        t in valid_token(),
    ) {
        let token = BootstrapToken::parse(&t).unwrap();
        let jws = sign_detached(&payload, &token);
        let mut changed = payload.clone();
        changed[at.index(payload.len())] ^= flip;
        prop_assert_eq!(verify_detached(&changed, &jws, &token), Err(JwsError::Mismatch));
    }

    #[test]
    fn jws_any_signature_char_change_is_refused(
        payload in prop::collection::vec(any::<u8>(), 0..256),
        at in any::<prop::sample::Index>(),
        c in interesting_char(),
        t in valid_token(),
    ) {
        let token = BootstrapToken::parse(&t).unwrap();
        let jws = sign_detached(&payload, &token);
        let mut chars: Vec<char> = jws.chars().collect();
        let i = at.index(chars.len());
        prop_assume!(chars[i] != c);
        chars[i] = c;
        let forged: String = chars.into_iter().collect();
        // Also non-canonical base64 (the last character's unused bits): the whole string must
        // be the one we would sign.
        prop_assert!(verify_detached(&payload, &forged, &token).is_err(), "{}", forged);
    }

    #[test]
    fn jws_near_valid_signature_is_refused(
        edit in Just(()).prop_flat_map(|()| {
            let (_, kubeconfig, jws) = recorded_cluster_info();
            mutated_more(jws).prop_map(move |m| (kubeconfig.clone(), m))
        }),
    ) {
        let (token, _, jws) = recorded_cluster_info();
        let (kubeconfig, forged) = edit;
        let result = verify_detached(kubeconfig.as_bytes(), &forged, &token);
        prop_assert_eq!(result.is_ok(), forged == jws, "{}", forged);
    }

    #[test]
    fn jws_other_token_is_mismatch(payload in prop::collection::vec(any::<u8>(), 0..128), a in valid_token(), b in valid_token()) {
        prop_assume!(a != b);
        let (ta, tb) = (BootstrapToken::parse(&a).unwrap(), BootstrapToken::parse(&b).unwrap());
        let jws = sign_detached(&payload, &ta);
        prop_assert_eq!(verify_detached(&payload, &jws, &tb), Err(JwsError::Mismatch));
    }
}

#[test]
fn jws_recorded_signature_verifies() {
    let (token, kubeconfig, jws) = recorded_cluster_info();
    assert_eq!(verify_detached(kubeconfig.as_bytes(), &jws, &token), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// Kubeconfig (cluster-info's)
// ---------------------------------------------------------------------------------------------

fn cluster_info_kubeconfig() -> String {
    recorded_cluster_info().1
}

/// Parses and, when that works, takes the endpoint and writes the file back: nothing panics, a
/// returned endpoint is usable, and the YAML we would write reads back the same.
fn check_kubeconfig(s: &str) -> Result<(), TestCaseError> {
    let Ok(cfg) = kubeconfig::parse(s) else {
        return Ok(());
    };
    if let Ok(ep) = kubeconfig::cluster_endpoint(&cfg) {
        prop_assert!(ep
            .server
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://")));
        prop_assert!(certificates_from_pem(&ep.ca_pem).is_ok());
    }
    let yaml = cfg.to_yaml();
    let again = kubeconfig::parse(&yaml);
    prop_assert!(
        again.is_ok(),
        "our own YAML does not parse: {:?}\n{}",
        again,
        yaml
    );
    prop_assert!(
        again.unwrap() == cfg,
        "round trip changed the kubeconfig:\n{}",
        yaml
    );
    Ok(())
}

/// Small YAML documents built from kubeconfig-ish keys and values.
fn yamlish() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "apiVersion",
        "kind",
        "clusters",
        "contexts",
        "users",
        "current-context",
        "preferences",
        "cluster",
        "server",
        "certificate-authority-data",
        "name",
        "user",
        "token",
        "extensions",
        "x",
    ]);
    let value = prop_oneof![
        Just("null".to_owned()),
        Just("~".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("- a\n- b".to_owned()),
        Just("https://127.0.0.1:6443".to_owned()),
        Just("&a [1, 2]".to_owned()),
        Just("*a".to_owned()),
        Just("!!binary aGVsbG8=".to_owned()),
        Just("!custom {a: 1}".to_owned()),
        Just("{? [a, b]: c}".to_owned()),
        Just(".nan".to_owned()),
        Just("0x1F".to_owned()),
        Just("'quoted: ''x'''".to_owned()),
        "[ -~]{0,20}",
    ];
    let line = (0usize..4, key, value).prop_map(|(indent, k, v)| {
        let pad = "  ".repeat(indent);
        if v.contains('\n') {
            let v = v.replace('\n', &format!("\n{pad}  "));
            format!("{pad}{k}:\n{pad}  {v}")
        } else {
            format!("{pad}{k}: {v}")
        }
    });
    prop::collection::vec(
        prop_oneof![4 => line, 1 => Just("- name: c".to_owned()), 1 => Just("  cluster:".to_owned())],
        0..12,
    )
    .prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(cases(CASES))]

    #[test]
    fn kubeconfig_any_string(s in any::<String>()) {
        check_kubeconfig(&s)?;
    }

    #[test]
    fn kubeconfig_yamlish(s in yamlish()) {
        check_kubeconfig(&s)?;
    }

    #[test]
    fn kubeconfig_near_valid_cluster_info(s in mutated_more(cluster_info_kubeconfig())) {
        check_kubeconfig(&s)?;
    }

    #[test]
    fn kubelet_kubeconfig_round_trips_any_server(
        server in prop_oneof![any::<String>(), "https://[a-z0-9.-]{1,30}(:[0-9]{1,5})?", Just("null".to_owned()), Just("~".to_owned())],
        path in any::<String>(),
    ) {
        // join.rs writes kubelet.conf with the server named in cluster-info (outside input).
        let ca = fixture("ca.crt");
        let cfg = kubeconfig::kubelet_kubeconfig(&server, &ca, &path);
        let yaml = cfg.to_yaml();
        let again = kubeconfig::parse(&yaml);
        prop_assert!(again.is_ok(), "{:?}\n{}", again, yaml);
        prop_assert!(again.unwrap() == cfg, "round trip changed the kubeconfig:\n{}", yaml);
    }
}

#[test]
fn kubeconfig_deep_nesting_is_an_error_not_a_stack_overflow() {
    // Kept small: parse time grows quadratically with flow nesting (see the ignored test below).
    for depth in [200, 2_000] {
        for (open, close) in [("[", "]"), ("{a: ", "}")] {
            let s = format!("clusters: {}{}", open.repeat(depth), close.repeat(depth));
            assert!(kubeconfig::parse(&s).is_err());
        }
        // Block sequences nest by indentation.
        let s = (0..depth)
            .map(|i| format!("{}- ", " ".repeat(i * 2)))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(kubeconfig::parse(&s).is_err());
    }
}

/// 40 KB of nested flow sequences: serde_norway's parser takes time quadratic in the nesting
/// depth (about 5 s here in a debug build, 0.4 s in release; 160 KB takes 32 s in release, and
/// a 4 MiB body, our response cap, hours). Every YAML parser of outside input goes through it:
/// `kubeconfig::parse` (cluster-info, after the JWS check), `config::load` (the config file) and
/// the cluster's ConfigMaps.
#[test]
fn yaml_parsers_refuse_deep_flow_nesting_quickly() {
    let depth = 20_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let started = std::time::Instant::now();
    assert!(kubeconfig::parse(&format!("clusters: {nested}")).is_err());
    let kubeconfig_time = started.elapsed();
    let started = std::time::Instant::now();
    let body = format!(
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nkubelet: {{a: {nested}}}\n"
    );
    let (_dir, result) = load_config_body(body.as_bytes(), "abcdef.0123456789abcdef");
    let config_time = started.elapsed();
    assert!(result.is_err() || config_time < std::time::Duration::from_secs(1));
    assert!(
        kubeconfig_time < std::time::Duration::from_secs(1),
        "kubeconfig::parse took {kubeconfig_time:?} on {} bytes nested {depth} deep",
        nested.len() + 10
    );
    assert!(
        config_time < std::time::Duration::from_secs(1),
        "config::load took {config_time:?} on {} bytes nested {depth} deep",
        body.len()
    );
}

#[test]
fn kubeconfig_alias_bomb_is_bounded() {
    // "Billion laughs": each level refers to the one before ten times.
    let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        s.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    s.push_str("clusters: *a11\n");
    let started = std::time::Instant::now();
    assert!(kubeconfig::parse(&s).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

// ---------------------------------------------------------------------------------------------
// Watch events
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(CASES))]

    #[test]
    fn watch_event_any_line(line in prop_oneof![any::<String>(), mutated_more(r#"{"type":"MODIFIED","object":{"kind":"CertificateSigningRequest","status":{"conditions":[{"type":"Approved"}]}}}"#.to_owned())]) {
        let _ = serde_json::from_str::<WatchEvent>(&line);
        let _ = serde_json::from_slice::<WatchEvent>(line.as_bytes());
    }

    #[test]
    fn watch_event_any_bytes(b in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<WatchEvent>(&b);
    }

    #[test]
    fn watch_event_round_trip(kind in prop_oneof![Just("ADDED".to_owned()), Just("MODIFIED".to_owned()), Just("BOOKMARK".to_owned()), Just("ERROR".to_owned()), ".{0,10}"], object in json_value()) {
        let line = serde_json::json!({"type": kind, "object": object}).to_string();
        let ev: WatchEvent = serde_json::from_str(&line).unwrap();
        prop_assert_eq!(&ev.kind, &kind);
        prop_assert_eq!(&ev.object, &object);
    }
}

#[test]
fn watch_event_recorded_streams_and_deep_nesting() {
    for name in [
        "200-csr-watch-stream.jsonl",
        "200-node-watch-stream.jsonl",
        "200-watch-no-rv-WatchList-on-etcd34-504-error-event.jsonl",
    ] {
        let text = String::from_utf8(fixture(name)).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let ev: WatchEvent =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!ev.kind.is_empty());
        }
    }
    let deep = format!(
        r#"{{"type":"ADDED","object":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(serde_json::from_str::<WatchEvent>(&deep).is_err());
}

// ---------------------------------------------------------------------------------------------
// The config file, through config::load
// ---------------------------------------------------------------------------------------------

/// Writes `body` as the `--config` file (mode 0600) in a fresh directory and loads it with no
/// other flags than `--root` and `--cri-socket`. `$DIR` in the body is replaced by the directory,
/// which also holds a 0600 file `token` with `file_token`.
fn load_config_body(
    body: &[u8],
    file_token: &str,
) -> (
    tempfile::TempDir,
    Result<(config::JoinConfig, Vec<config::Warning>), config::ConfigError>,
) {
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    fs::write(&token_path, file_token).unwrap();
    fs::set_permissions(&token_path, fs::Permissions::from_mode(0o600)).unwrap();
    let dir_text = dir.path().display().to_string();
    let body = replace_bytes(body, b"$DIR", dir_text.as_bytes());
    let result = common::config_case::load_config_file(dir.path(), &body);
    (dir, result)
}

fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// BUG, see `config_file_token_where_a_map_belongs_is_not_shown`: a config file document that
/// does not deserialize is reported with serde's message, which quotes the offending scalar
/// (`invalid type: string "abcdef.0123456789abcdef", expected struct ...`). Until that is
/// fixed the random properties skip exactly those messages (or they would fail now and then);
/// set this to `false` when the ignored test passes.
const SKIP_KNOWN_SERDE_ECHO: bool = false;

fn is_known_serde_echo(e: &config::ConfigError) -> bool {
    SKIP_KNOWN_SERDE_ECHO
        && matches!(e, config::ConfigError::Document { message, .. }
            if ["invalid type: string", "invalid value: string", "unknown variant", "unknown field"]
                .iter()
                .any(|m| message.contains(m)))
}

/// Checks that nothing the loader says (error or warnings) contains `secret`.
fn assert_no_secret(
    result: &Result<(config::JoinConfig, Vec<config::Warning>), config::ConfigError>,
    secret: &str,
) -> Result<(), TestCaseError> {
    match result {
        Err(e) if is_known_serde_echo(e) => {}
        Err(e) => {
            let (shown, debug) = (e.to_string(), format!("{e:?}"));
            prop_assert!(!shown.contains(secret), "error shows the secret: {}", shown);
            prop_assert!(
                !debug.contains(secret),
                "error Debug shows the secret: {}",
                debug
            );
        }
        Ok((cfg, warnings)) => {
            for w in warnings {
                prop_assert!(!w.0.contains(secret), "warning shows the secret: {}", w);
            }
            let debug = format!("{cfg:?}");
            prop_assert!(
                !debug.contains(secret),
                "JoinConfig Debug shows the secret: {}",
                debug
            );
        }
    }
    Ok(())
}

/// A config file body: our format or kubeadm's, fields from a pool of valid and invalid values.
fn config_body(token: String) -> impl Strategy<Value = String> {
    let own = prop::sample::subsequence(
        vec![
            "servers: [\"10.0.0.5:6443\"]",
            "servers: 10.0.0.5:6443",
            "servers: [\"http://x\", \"[::1]:6443\", \"https://cp.example\"]",
            "caCertHashes: [\"sha256:9be846df48babcf115c32d5881b8dee2cfc5fd6d34664a10f3ca41dfafa6e8d4\"]",
            "caCertHashes: [\"sha256:zz\"]",
            "unsafeSkipCAVerification: true",
            "unsafeSkipCAVerification: yes",
            "tokenFile: $DIR/token",
            "tokenFile: $DIR/missing",
            "nodeName: worker-1",
            "nodeName: Worker_1",
            "nodeLabels: {team: a}",
            "nodeLabels: {node-role.kubernetes.io/x: \"\"}",
            "nodeIP: 10.0.0.7",
            "nodeIP: 10.0.0",
            "criSocket: /run/crio/crio.sock",
            "criSocket: tcp://x",
            "cgroupDriver: systemd",
            "cgroupDriver: other",
            "clusterDNS: [\"10.96.0.10\"]",
            "clusterDomain: cluster.local",
            "discoveryTimeout: 5m",
            "discoveryTimeout: 0",
            "tlsBootstrapTimeout: 99999999999999999999h",
            "kubeletExtraArgs: [{name: max-pods, value: \"50\"}, {name: node-ip, value: 10.0.0.9}]",
            "kubeletExtraArgs: [{name: node-labels, value: \"a=b,c\"}]",
            "kubelet: {maxPods: 50, cgroupDriver: cgroupfs, clusterDNS: [10.0.0.10]}",
            "kubelet: [1, 2]",
            "unknownField: 1",
        ],
        0..8,
    );
    let kubeadm = prop::sample::subsequence(
        vec![
            "  bootstrapToken:\n    apiServerEndpoint: 10.0.0.5:6443\n    caCertHashes: [\"sha256:9be846df48babcf115c32d5881b8dee2cfc5fd6d34664a10f3ca41dfafa6e8d4\"]",
            "  tlsBootstrapToken: abcdef.0000000000000000",
            "  file: {kubeConfigPath: /x}",
            "  timeout: 5m0s",
        ],
        0..4,
    );
    let kubeadm_tail = prop::sample::subsequence(
        vec![
            "nodeRegistration: {name: n1, criSocket: unix:///run/containerd/containerd.sock, taints: [{key: a, effect: NoSchedule}], kubeletExtraArgs: [{name: v, value: \"2\"}], ignorePreflightErrors: [all]}",
            "nodeRegistration: {taints: [{key: \"\", effect: Bad}]}",
            "controlPlane: {localAPIEndpoint: {advertiseAddress: 1.2.3.4}}",
            "timeouts: {discovery: 1m, tlsBootstrap: 2m}",
            "caCertPath: /etc/other/ca.crt",
            "dryRun: true",
            "skipPhases: [preflight]",
            "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 20",
            "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration",
            "---\napiVersion: v1\nkind: Pod",
            "---\n---\n",
        ],
        0..4,
    );
    let token_style = prop::sample::select(vec![0u8, 1, 2, 3]);
    (
        any::<bool>(),
        own,
        kubeadm,
        kubeadm_tail,
        token_style,
        any::<bool>(),
    )
        .prop_map(move |(is_kubeadm, own, kubeadm, tail, style, with_token)| {
            let quoted = |t: &str| match style {
                0 => t.to_owned(),
                1 => format!("\"{t}\""),
                2 => format!("'{t}'"),
                _ => format!("\"{t}\\n\""),
            };
            let mut body = String::new();
            if is_kubeadm {
                body.push_str(
                    "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n",
                );
                if with_token {
                    body.push_str(&format!(
                        "  bootstrapToken:\n    token: {}\n",
                        quoted(&token)
                    ));
                }
                for l in kubeadm {
                    body.push_str(l);
                    body.push('\n');
                }
                for l in tail {
                    body.push_str(l);
                    body.push('\n');
                }
            } else {
                body.push_str("apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\n");
                if with_token {
                    body.push_str(&format!("token: {}\n", quoted(&token)));
                }
                for l in own {
                    body.push_str(l);
                    body.push('\n');
                }
            }
            body
        })
}

proptest! {
    #![proptest_config(cases(CASES / 4))]

    #[test]
    fn config_file_any_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let (_dir, result) = load_config_body(&body, "abcdef.0123456789abcdef");
        assert_no_secret(&result, "0123456789abcdef")?;
    }

    #[test]
    fn config_file_yamlish(
        (token, body) in valid_token().prop_flat_map(|t| (Just(t.clone()), config_body(t))),
    ) {
        let secret = token.split_once('.').unwrap().1.to_owned();
        let (_dir, result) = load_config_body(body.as_bytes(), "zyxwvu.fedcba9876543210");
        assert_no_secret(&result, &secret)?;
        assert_no_secret(&result, "fedcba9876543210")?;
        if let Ok((cfg, _)) = &result {
            // The token used is one of those given (the body's, the token file's, or the pool's
            // tlsBootstrapToken).
            let bearer = cfg.token.bearer();
            prop_assert!(
                [token.as_str(), "zyxwvu.fedcba9876543210", "abcdef.0000000000000000"]
                    .contains(&bearer.as_str()),
                "{}",
                cfg.token
            );
        }
    }

    #[test]
    fn config_file_near_valid_token_never_shown(
        (token, body) in valid_token()
            .prop_flat_map(mutated)
            .prop_flat_map(|t| (Just(t.clone()), config_body(t))),
    ) {
        let (_dir, result) = load_config_body(body.as_bytes(), "zyxwvu.fedcba9876543210");
        if let Some(secret) = secret_part(&token) {
            // A YAML reading of a mutated token (e.g. with a '#') may legitimately cut it; only
            // what the token field could hold is secret.
            assert_no_secret(&result, secret)?;
        }
    }

    #[test]
    fn config_file_near_valid_body(body in config_body("abcdef.0123456789abcdef".to_owned()).prop_flat_map(mutated_more)) {
        let (_dir, result) = load_config_body(body.as_bytes(), "zyxwvu.fedcba9876543210");
        assert_no_secret(&result, "0123456789abcdef")?;
    }

    #[test]
    fn config_file_token_that_yaml_reads_as_a_number_is_not_shown(
        id in "[0-9]{6}",
        secret in "[0-9]{16}",
        exp in proptest::option::of("[0-9]{1,3}"),
        kubeadm in any::<bool>(),
    ) {
        // All-digit tokens are valid ([a-z0-9]) but plain YAML reads `123456.1234567890123456`
        // as a float (and `...e12` too); the message about it must not print the number.
        let secret = match &exp {
            Some(e) => format!("{}e{e}", &secret[..16 - 1 - e.len()]),
            None => secret,
        };
        let token = format!("{id}.{secret}");
        let body = if kubeadm {
            format!("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: {token}\n    apiServerEndpoint: 10.0.0.5:6443\n    unsafeSkipCAVerification: true\n")
        } else {
            format!("apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\ntoken: {token}\nservers: [\"10.0.0.5:6443\"]\nunsafeSkipCAVerification: true\n")
        };
        let (_dir, result) = load_config_body(body.as_bytes(), "zyxwvu.fedcba9876543210");
        // Neither the secret nor a long run of its digits (a float prints a prefix of them).
        assert_no_secret(&result, &secret)?;
        assert_no_secret(&result, &secret[..8])?;
        assert_no_secret(&result, &format!("{id}.{}", &secret[..4]))?;
    }
}

/// A token written where kubeadm expects a map (`bootstrapToken: <token>` instead of
/// `bootstrapToken: {token: <token>}`, an easy mistake) is echoed in full by the error.
#[test]
fn config_file_token_where_a_map_belongs_is_not_shown() {
    for body in [
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken: abcdef.0123456789abcdef\n",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery: abcdef.0123456789abcdef\n",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token abcdef.0123456789abcdef\n",
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nservers: [\"10.0.0.5:6443\"]\nunsafeSkipCAVerification: abcdef.0123456789abcdef\n",
    ] {
        let (_dir, result) = load_config_body(body.as_bytes(), "zyxwvu.fedcba9876543210");
        let err = result.err().unwrap_or_else(|| panic!("accepted: {body}"));
        let shown = err.to_string();
        assert!(!shown.contains("0123456789abcdef"), "shows the secret: {shown}");
        assert!(!format!("{err:?}").contains("0123456789abcdef"), "{err:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Small value parsers: --server, durations, node labels
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(CASES))]

    #[test]
    fn server_normalization_is_idempotent(
        s in prop_oneof![
            any::<String>(),
            "(https://)?([a-z0-9.-]{1,20}|\\[[0-9a-f:]{2,20}\\]|[0-9]{1,3}(\\.[0-9]{1,3}){3})(:[0-9]{0,6})?/?",
            "(https?://)?[a-z0-9.-]{1,20}:[0-9]{1,5}".prop_flat_map(mutated),
        ],
    ) {
        if let Ok(url) = kaas_join::model::endpoint::normalize_server(&s) {
            prop_assert!(url.starts_with("https://"), "{}", url);
            prop_assert_eq!(kaas_join::model::endpoint::normalize_server(&url), Ok(url.clone()), "{:?}", s);
        }
    }

    #[test]
    fn duration_parse_any_string(s in prop_oneof![any::<String>(), "[0-9hms ]{0,24}", "[0-9]{1,25}(h|m|s|ms|us|)"]) {
        if let Ok(d) = kaas_join::model::duration::parse_duration(&s) {
            prop_assert!(!d.is_zero());
        }
    }

    #[test]
    fn duration_parse_sums_its_parts(h in 0u32..10_000, m in 0u32..10_000, sec in 0u32..10_000, ms in 0u32..10_000) {
        prop_assume!(h + m + sec + ms > 0);
        let d = kaas_join::model::duration::parse_duration(&format!("{h}h{m}m{sec}s{ms}ms")).unwrap();
        let want = std::time::Duration::from_secs(u64::from(h) * 3600 + u64::from(m) * 60 + u64::from(sec))
            + std::time::Duration::from_millis(u64::from(ms));
        prop_assert_eq!(d, want);
    }

    #[test]
    fn node_labels_parse_any_and_round_trip(
        specs in prop::collection::vec(prop_oneof![any::<String>(), "([a-z0-9./-]{1,20}(=[a-zA-Z0-9._-]{0,10})?,?){1,4}"], 0..4),
    ) {
        if let Ok(labels) = parse_node_labels(&specs) {
            let rendered = labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            let again = parse_node_labels(&[rendered]);
            prop_assert_eq!(again.as_ref().ok(), Some(&labels));
            let _: &BTreeMap<String, String> = &labels;
        }
    }
}
