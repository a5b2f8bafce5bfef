//! The issue's examples, paths, suggestions, lines, secrecy, and real configurations.
//! `types.rs`: every kind of field; `weakenings.rs`: the secure-default rules.

use serde::Deserialize as _;

use super::*;

mod types;
mod weakenings;

pub(super) fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap()
}

/// The problems of an overrides fragment given as YAML (no file: no lines).
pub(super) fn problems(fragment: &str) -> Vec<Problem> {
    match validate(&yaml(fragment), None) {
        Ok(w) => panic!("{fragment:?} was accepted (weakenings {w:?})"),
        Err(e) => e.problems,
    }
}

/// The one problem of `fragment`, as displayed.
pub(super) fn problem(fragment: &str) -> String {
    let all = problems(fragment);
    assert_eq!(all.len(), 1, "{fragment:?}: {all:?}");
    all[0].to_string()
}

pub(super) fn accepted(fragment: &str) -> Vec<Weakened> {
    validate(&yaml(fragment), None).unwrap_or_else(|e| panic!("{fragment:?} refused: {e}"))
}

/// Our config file's `kubelet:` section, checked with the file as source text.
fn in_own_file(text: &str) -> Result<Vec<Weakened>, SchemaError> {
    let file = yaml(text);
    validate(&file["kubelet"], Some(text))
}

#[test]
fn the_issues_examples_are_refused_with_path_line_and_reason() {
    let text =
        "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nkubelet:\n  maxPod: 50\n";
    let err = in_own_file(text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`maxPod` (line 4) is not a field kubelet v1.33 knows (KubeletConfiguration v1beta1); \
         did you mean `maxPods`?"
    );

    let text = "kubelet:\n  serializeImagePulls: false\n  maxPods: fifty\n";
    let err = in_own_file(text).unwrap_err();
    assert_eq!(
        err.problems,
        [Problem {
            path: "maxPods".into(),
            line: Some(3),
            message: "is a string, expected an integer (int32)".into(),
        }]
    );

    let text = "kubelet:\n  healthzPort: 99999\n";
    assert_eq!(
        in_own_file(text).unwrap_err().to_string(),
        "`healthzPort` (line 2) is 99999, expected an integer (int32) from 0 to 65535"
    );
    assert!(problem("oomScoreAdj: -1001").contains("from -1000 to 1000"));
    assert!(problem("port: 70000").contains("from 0 to 65535"));
}

#[test]
fn every_problem_is_listed_in_one_error() {
    let err = validate(
        &yaml("maxPod: 1\nmaxPods: x\nhealthzPort: -1\nauthentication: {webhok: {}}\n"),
        None,
    )
    .unwrap_err();
    let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        ["maxPod", "maxPods", "healthzPort", "authentication.webhok"]
    );
    let shown = err.to_string();
    assert!(
        shown.starts_with("has 4 problems:\n  - `maxPod` "),
        "{shown}"
    );

    // A hostile fragment gets a bounded list.
    let many: String = (0..500).map(|i| format!("field{i}: 1\n")).collect();
    let err = validate(&yaml(&many), None).unwrap_err();
    assert_eq!(err.problems.len(), check::MAX_PROBLEMS);
    assert_eq!(err.more, 500 - check::MAX_PROBLEMS);
    assert!(err.to_string().ends_with("\n  - and 480 more"), "{err}");
}

#[test]
fn nested_fields_are_named_by_their_path() {
    let text = "kubelet:\n  authentication:\n    anonymous:\n      enabled: false\n    webhok:\n      enabled: true\n";
    let err = in_own_file(text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`authentication.webhok` (line 5) is not a field kubelet v1.33 knows \
         (KubeletConfiguration v1beta1); did you mean `webhook`?"
    );
    assert_eq!(
        problem("authentication: {webhook: {cacheTTL: 5}}"),
        "`authentication.webhook.cacheTTL` is the number 5, expected a duration string like \
         `10s` or `1m30s` (quote it, kubelet refuses a bare number or boolean here)"
    );
    assert_eq!(
        problem("logging: {options: {json: {infoBufferSize: 1x}}}"),
        "`logging.options.json.infoBufferSize` is not a resource quantity (like `100m`, \
         `512Mi`, `2Gi` or `1.5`)"
    );
    assert_eq!(
        problem("evictionHard: {memory.availabe: 100Mi}"),
        "`evictionHard[memory.availabe]` is not a key kubelet accepts here: expected one of \
         `memory.available`, `nodefs.available`, `nodefs.inodesFree`, `imagefs.available`, \
         `imagefs.inodesFree`, `containerfs.available`, `containerfs.inodesFree`, \
         `allocatableMemory.available`, `pid.available`; did you mean `memory.available`?"
    );
    // A small struct lists its fields when nothing is near.
    assert_eq!(
        problem("memorySwap: {behaviour: NoSwap}"),
        "`memorySwap.behaviour` is not a field kubelet v1.33 knows (KubeletConfiguration \
         v1beta1); the fields here are `swapBehavior`"
    );
}

#[test]
fn lists_of_structs_are_checked_entry_by_entry() {
    let text = "kubelet:\n  registerWithTaints:\n  - key: a\n    effect: NoSchedule\n  - key: b\n    efect: NoSchedule\n  shutdownGracePeriodByPodPriority:\n  - {priority: 10, shutdownGracePeriodSeconds: 20}\n  - {priorty: 0, shutdownGracePeriodSeconds: 30}\n";
    let err = in_own_file(text).unwrap_err();
    let shown: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "`registerWithTaints[1].efect` (line 6) is not a field kubelet v1.33 knows \
             (KubeletConfiguration v1beta1); did you mean `effect`?",
            "`registerWithTaints[1]` (line 5) lacks `effect`, which kubelet requires",
            "`shutdownGracePeriodByPodPriority[1].priorty` (line 9) is not a field kubelet \
             v1.33 knows (KubeletConfiguration v1beta1); did you mean `priority`?",
        ]
    );
    assert_eq!(
        problem("registerWithTaints: [{key: a, effect: NoScheduel}]"),
        "`registerWithTaints[0].effect` is not one of `NoSchedule`, `PreferNoSchedule`, \
         `NoExecute`; did you mean `NoSchedule`?"
    );
    assert_eq!(
        problem("registerWithTaints: [{key: a, effect: NoSchedule, timeAdded: \"2025-01-01T00:00:00Z\"}]"),
        "`registerWithTaints[0].timeAdded` must not be set: kubelet refuses a taint with \
         timeAdded in its configuration"
    );
    assert_eq!(
        problem("reservedMemory: [{numaNode: 0, limits: {memory: 1Gi, cpu: 1}}]"),
        "`reservedMemory[0].limits[cpu]` is not a key kubelet accepts here: expected \
         `memory` or `hugepages-<size>`"
    );
    accepted("reservedMemory: [{numaNode: 0, limits: {memory: 1Gi, hugepages-2Mi: 512Mi}}]");
    assert_eq!(
        problem("clusterDNS: [10.96.0.10, null]"),
        "`clusterDNS[1]` is null: give a value or remove the entry"
    );
    assert_eq!(
        problem("logging: {vmodule: [{verbosity: 2}]}"),
        "`logging.vmodule[0]` lacks `filePattern`, which kubelet requires"
    );
}

#[test]
fn the_nearest_name_is_suggested_when_one_is_near() {
    let suggested = |fragment: &str| {
        let p = problem(fragment);
        p.split("did you mean `")
            .nth(1)
            .map(|s| s.trim_end_matches("`?").to_owned())
    };
    assert_eq!(suggested("maxPod: 1").as_deref(), Some("maxPods"));
    assert_eq!(suggested("MaxPods: 1").as_deref(), Some("maxPods"));
    assert_eq!(suggested("max_pods: 1").as_deref(), Some("maxPods"));
    assert_eq!(suggested("max-pods: 1").as_deref(), Some("maxPods"));
    assert_eq!(suggested("maxPdos: 1").as_deref(), Some("maxPods"));
    assert_eq!(suggested("healtzPort: 1").as_deref(), Some("healthzPort"));
    assert_eq!(
        suggested("evictionHardd: {}").as_deref(),
        Some("evictionHard")
    );
    assert_eq!(
        suggested("cgroupDriver: sytemd").as_deref(),
        Some("systemd")
    );
    assert_eq!(
        suggested("kubeReserved: {cpus: 100m}").as_deref(),
        Some("cpu")
    );
    // Nothing near: no guess.
    assert_eq!(suggested("colour: blue"), None);
    assert_eq!(suggested("maxP: 1"), None);
}

#[test]
fn lines_are_found_in_each_config_format() {
    // Flow style.
    let text = "kubelet: {maxPods: 10, readOnlyPort: 10255,\n  healthzPort: x}\n";
    assert_eq!(in_own_file(text).unwrap_err().problems[0].line, Some(2));

    // A KubeletConfiguration document after our JoinConfiguration: lines of the whole file.
    let text = "apiVersion: kaas-join.io/v1alpha1\nkind: JoinConfiguration\nservers: [\"10.0.0.5:6443\"]\n---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n# the cluster's is fine but for\nmaxPods: 50\nmaxPod: 50\n";
    let doc: Value = serde_norway::Deserializer::from_str(text)
        .nth(1)
        .map(|d| Value::deserialize(d).unwrap())
        .unwrap();
    let err = validate(&doc, Some(text)).unwrap_err();
    assert_eq!(err.problems[0].line, Some(9));

    // kubeadm's format: JoinConfiguration, then KubeletConfiguration (kind before or after).
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  name: n\n---\nauthentication:\n  x509:\n    clientCAFiel: /x\nkind: KubeletConfiguration\n";
    let doc: Value = serde_norway::Deserializer::from_str(text)
        .nth(1)
        .map(|d| Value::deserialize(d).unwrap())
        .unwrap();
    let err = validate(&doc, Some(text)).unwrap_err();
    assert_eq!(err.problems[0].path, "authentication.x509.clientCAFiel");
    assert_eq!(err.problems[0].line, Some(8));

    // List entries and map keys.
    let text = "kubelet:\n  clusterDNS:\n    - 10.96.0.10\n    - not-an-ip\n  kubeReserved:\n    memory: 1Gi\n    cpu: 1\n";
    let err = in_own_file(text).unwrap_err();
    let lines: Vec<Option<usize>> = err.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [Some(4), Some(7)], "{err}");

    // A fragment that is just the overrides is searched at its root.
    let text = "readOnlyPort: 0\nhealthzPort: true\n";
    let err = validate(&yaml(text), Some(text)).unwrap_err();
    assert_eq!(err.problems[0].line, Some(2));

    // Text that is no YAML (the loader refuses it first anyway) gives no line, quickly.
    for broken in ["kubelet: [\n", "kubelet:\n\t- x\n", "a: 'b\n---\nc: {\n"] {
        let err = validate(&yaml("maxPod: 1"), Some(broken)).unwrap_err();
        assert_eq!(err.problems[0].line, None, "{broken:?}");
    }

    // No file, or a field the text does not hold: no line, same message.
    let err = validate(&yaml("maxPod: 1"), Some("kubelet:\n  maxPods: 1\n")).unwrap_err();
    assert_eq!(err.problems[0].line, None);
    assert!(
        err.to_string().starts_with("`maxPod` is not a field"),
        "{err}"
    );
}

#[test]
fn strings_are_never_echoed() {
    const TOKEN: &str = "abcdef.0123456789abcdef";
    let fragments = [
        format!("maxPods: \"{TOKEN}\""),
        format!("cgroupDriver: \"{TOKEN}\""),
        format!("syncFrequency: \"{TOKEN}\""),
        format!("clusterDNS: [\"{TOKEN}\"]"),
        format!("kubeReserved: {{cpu: \"{TOKEN}\"}}"),
        format!("evictionHard: {{memory.available: \"{TOKEN}%\"}}"),
        format!("\"{TOKEN}\": 1"),
        format!("featureGates: {{\"{TOKEN}\": \"yes\"}}"),
        format!("kubeReserved: {{\"{TOKEN}\": 1Gi}}"),
        format!("staticPodURLHeader: {{Authorization: [\"Bearer {TOKEN}\", 7]}}"),
        format!("apiVersion: \"{TOKEN}\""),
        format!("tlsCipherSuites: [\"{TOKEN}\"]"),
    ];
    for fragment in fragments {
        let text = format!("kubelet:\n  {fragment}\n");
        let err = in_own_file(&text).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }
    assert_eq!(
        problem(&format!("\"{TOKEN}\": 1")),
        "`<name not shown>` is not a field kubelet v1.33 knows (KubeletConfiguration v1beta1)"
    );
}

#[test]
fn an_empty_fragment_and_the_type_header_are_fine() {
    assert_eq!(validate(&Value::Null, None), Ok(vec![]));
    assert_eq!(accepted("{}"), []);
    accepted("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n");
    assert_eq!(
        problem("apiVersion: kubelet.config.k8s.io/v1"),
        "`apiVersion` is not one of `kubelet.config.k8s.io/v1beta1`"
    );
    assert!(problem("kind: JoinConfiguration").starts_with("`kind` is not one of"));
    assert_eq!(
        validate(&yaml("[maxPods]"), None).unwrap_err().to_string(),
        "the kubelet configuration is a list, expected a mapping of KubeletConfiguration fields"
    );
    assert_eq!(
        problem("maxPods: !int 5"),
        "`maxPods` carries a YAML tag (`!...`), which kubelet does not read"
    );
    assert_eq!(
        problem("1: 5"),
        "the kubelet configuration has a key that is not a string"
    );
}

#[test]
fn null_removes_a_field_and_is_accepted() {
    accepted("maxPods: null\nauthentication: null\nevictionHard: {memory.available: null}\n");
}

/// The recorded cluster configurations are real kubelet v1.32 configurations: they fit.
#[test]
fn recorded_kubelet_configurations_fit_the_schema() {
    let written = crate::fixtures::fixture_text("kubeadm-join-trace/config.yaml");
    assert_eq!(validate(&yaml(&written), Some(&written)), Ok(vec![]));
    let configmap = crate::fixtures::fixture_json("200-kubelet-config-get-bootstrap-token.json");
    let published = configmap["data"]["kubelet"].as_str().unwrap();
    assert_eq!(validate(&yaml(published), Some(published)), Ok(vec![]));
}

/// A fragment that sets every top-level field to a valid value is accepted: the table and the
/// checks agree on each field.
#[test]
fn a_fragment_with_every_field_is_accepted() {
    let every = include_str!("every_field.yaml");
    let value = yaml(every);
    let names: Vec<&str> = value
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    let table: Vec<&str> = schema::KUBELET_CONFIGURATION
        .iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        names, table,
        "every_field.yaml lists the fields in the table's order"
    );
    let weakenings = validate(&value, Some(every)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(weakenings, []);
}
