//! KubeletConfiguration `kubelet.config.k8s.io/v1beta1` as of Kubernetes v1.33, as data: every
//! field by its JSON name with the type kubelet decodes it into and the range its validation
//! enforces (`pkg/kubelet/apis/config/validation`, `k8s.io/component-base` for `logging` and
//! `tracing`, `k8s.io/api/core/v1` for taints).
//!
//! A few conventions of the Go types decide what is accepted:
//! - Integer fields that kubelet defaults when zero (`port`, `maxPods`, `nodeLeaseDurationSeconds`
//!   ...) accept 0, which means "kubelet's default"; the ranges below are kubelet's other limits.
//! - A duration of `0s` means "kubelet's default" for most durations too; none may be negative.
//! - String enums accept `""` (unset: kubelet's default) unless noted.
//! - `map[string]string` fields (`kubeReserved`, `evictionHard` ...) need string values: kubelet
//!   refuses `cpu: 1` ("cannot unmarshal number ... of type string"), so does this table.
//!   `ResourceList` and `QuantityValue` fields take a bare number as well.
//!
//! Fields added after v1.33 (`tlsCurvePreferences`, `draManagerReconcilePeriod`,
//! `memoryReservationPolicy`, the `swap.available` signal ...) are left out: kubelet v1.33
//! would ignore them.

/// A field of a struct.
#[derive(Debug)]
pub(super) struct Field {
    /// The JSON name.
    pub name: &'static str,
    pub ty: Type,
    /// Must be given in every entry (list elements such as taints).
    pub required: bool,
}

/// What a field holds.
#[derive(Debug)]
pub(super) enum Type {
    Bool,
    /// `runOnce`: kubelet v1.33 refuses `true`; the phrase says why.
    FalseOnly(&'static str),
    Int(Int),
    /// A float64 greater than `above`, at most `max` (memoryThrottlingFactor).
    Float {
        above: f64,
        max: f64,
    },
    Str,
    /// One of `names`; `""` too when `unset_ok`.
    Enum {
        names: &'static [&'static str],
        unset_ok: bool,
    },
    /// An IP address (clusterDNS entries).
    Ip,
    Duration(Duration),
    /// `logging.flushFrequency`: a duration string, or an integer of nanoseconds.
    DurationOrNanos,
    /// A resource quantity string (`100m`, `1Gi`); `number_ok` when a bare number is fine too.
    Quantity {
        number_ok: bool,
    },
    /// An eviction threshold: a quantity or a percentage up to 100%.
    QuantityOrPercent,
    /// A whole percentage up to 100% (`qosReserved`).
    Percent,
    List(&'static Type),
    Map {
        keys: Keys,
        values: &'static Type,
    },
    Struct(&'static [Field]),
    /// A field of the Go type that kubelet refuses to see set; the phrase says why.
    Forbidden(&'static str),
}

/// An integer: its Go type and the values kubelet accepts.
#[derive(Debug)]
pub(super) struct Int {
    pub go_type: &'static str,
    pub min: i64,
    pub max: i64,
    /// 1, or the step the value must be a multiple of (`userNamespaces.idsPerPod`).
    pub multiple_of: i64,
}

/// A duration's range in nanoseconds; `zero_ok`: 0 is accepted below `min` (as "unset").
#[derive(Debug)]
pub(super) struct Duration {
    pub min: i128,
    pub max: i128,
    pub zero_ok: bool,
}

/// The keys a map accepts.
#[derive(Debug)]
pub(super) enum Keys {
    Any,
    OneOf(&'static [&'static str]),
    /// A check and what it wants, for the message.
    Matching(fn(&str) -> bool, &'static str),
}

const fn field(name: &'static str, ty: Type) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

const fn required(name: &'static str, ty: Type) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

const I32_MIN: i64 = i32::MIN as i64;
const I32_MAX: i64 = i32::MAX as i64;

const fn int32(min: i64, max: i64) -> Type {
    Type::Int(Int {
        go_type: "int32",
        min,
        max,
        multiple_of: 1,
    })
}

const fn int64(min: i64, max: i64) -> Type {
    Type::Int(Int {
        go_type: "int64",
        min,
        max,
        multiple_of: 1,
    })
}

/// klog's verbosity: a uint32 that must also fit an int32.
const VERBOSITY: Type = Type::Int(Int {
    go_type: "uint32",
    min: 0,
    max: I32_MAX,
    multiple_of: 1,
});

const PORT: Type = int32(0, 65535);
const NOT_NEGATIVE: Type = int32(0, I32_MAX);

const MS: i128 = 1_000_000;
const SECOND: i128 = 1_000 * MS;
const GO_MAX_DURATION: i128 = i64::MAX as i128;

/// Any duration that is not negative; 0 = kubelet's default.
const DURATION: Type = duration(0, GO_MAX_DURATION, true);

const fn duration(min: i128, max: i128, zero_ok: bool) -> Type {
    Type::Duration(Duration { min, max, zero_ok })
}

const fn one_of(names: &'static [&'static str]) -> Type {
    Type::Enum {
        names,
        unset_ok: true,
    }
}

const STRINGS: Type = Type::List(&Type::Str);

/// `kubeReserved`, `systemReserved`: kubelet reserves only these (`parseResourceList`), and
/// only as strings that are non-negative quantities.
const RESERVED: Type = Type::Map {
    keys: Keys::OneOf(&["cpu", "memory", "ephemeral-storage", "pid"]),
    values: &Type::Quantity { number_ok: false },
};

/// The eviction signals of kubelet v1.33 (`pkg/kubelet/eviction/api`).
const EVICTION_SIGNALS: Keys = Keys::OneOf(&[
    "memory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "containerfs.available",
    "containerfs.inodesFree",
    "allocatableMemory.available",
    "pid.available",
]);

const THRESHOLDS: Type = Type::Map {
    keys: EVICTION_SIGNALS,
    values: &Type::QuantityOrPercent,
};

/// The cipher suite names kubelet accepts (Go's `tls.CipherSuites()` and
/// `tls.InsecureCipherSuites()`, plus the two CHACHA20 aliases of component-base's
/// `cli/flag`), with whether each is strong: ECDHE key exchange (forward secrecy) and an AEAD
/// cipher, or a TLS 1.3 suite. The others (RSA key exchange, CBC, RC4, 3DES) are weak.
pub(super) const CIPHER_SUITES: &[(&str, bool)] = &[
    ("TLS_AES_128_GCM_SHA256", true),
    ("TLS_AES_256_GCM_SHA384", true),
    ("TLS_CHACHA20_POLY1305_SHA256", true),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", true),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", true),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", true),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", true),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", true),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", true),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", true),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", true),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", false),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", false),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", false),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", false),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", false),
    ("TLS_RSA_WITH_AES_256_CBC_SHA", false),
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", false),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", false),
    ("TLS_RSA_WITH_RC4_128_SHA", false),
    ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", false),
    ("TLS_RSA_WITH_AES_128_CBC_SHA256", false),
    ("TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", false),
    ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", false),
    ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", false),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", false),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", false),
];

const CIPHER_SUITE_NAMES: &[&str] = &{
    let mut names = [""; CIPHER_SUITES.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = CIPHER_SUITES[i].0;
        i += 1;
    }
    names
};

const AUTHENTICATION: &[Field] = &[
    field("x509", Type::Struct(&[field("clientCAFile", Type::Str)])),
    field(
        "webhook",
        Type::Struct(&[field("enabled", Type::Bool), field("cacheTTL", DURATION)]),
    ),
    field("anonymous", Type::Struct(&[field("enabled", Type::Bool)])),
];

const AUTHORIZATION: &[Field] = &[
    field("mode", one_of(&["AlwaysAllow", "Webhook"])),
    field(
        "webhook",
        Type::Struct(&[
            field("cacheAuthorizedTTL", DURATION),
            field("cacheUnauthorizedTTL", DURATION),
        ]),
    ),
];

/// `logging.options.text` and `.json` (component-base `OutputRoutingOptions`).
const OUTPUT_ROUTING: Type = Type::Struct(&[
    field("splitStream", Type::Bool),
    field("infoBufferSize", Type::Quantity { number_ok: true }),
]);

const LOGGING: &[Field] = &[
    field("format", one_of(&["text", "json"])),
    field("flushFrequency", Type::DurationOrNanos),
    field("verbosity", VERBOSITY),
    field(
        "vmodule",
        Type::List(&Type::Struct(&[
            required("filePattern", Type::Str),
            field("verbosity", VERBOSITY),
        ])),
    ),
    field(
        "options",
        Type::Struct(&[field("text", OUTPUT_ROUTING), field("json", OUTPUT_ROUTING)]),
    ),
];

/// `core/v1` Taint, as kubelet registers it.
const TAINT: &[Field] = &[
    required("key", Type::Str),
    field("value", Type::Str),
    required(
        "effect",
        Type::Enum {
            names: &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            unset_ok: false,
        },
    ),
    field(
        "timeAdded",
        Type::Forbidden("kubelet refuses a taint with timeAdded in its configuration"),
    ),
];

fn is_memory_resource(key: &str) -> bool {
    key == "memory"
        || key
            .strip_prefix("hugepages-")
            .is_some_and(|s| !s.is_empty())
}

/// The top level of a KubeletConfiguration, in the order of the Go struct.
pub(super) const KUBELET_CONFIGURATION: &[Field] = &[
    field(
        "apiVersion",
        Type::Enum {
            names: &["kubelet.config.k8s.io/v1beta1"],
            unset_ok: false,
        },
    ),
    field(
        "kind",
        Type::Enum {
            names: &["KubeletConfiguration"],
            unset_ok: false,
        },
    ),
    field("enableServer", Type::Bool),
    field("staticPodPath", Type::Str),
    field("podLogsDir", Type::Str),
    field("syncFrequency", DURATION),
    field("fileCheckFrequency", DURATION),
    field("httpCheckFrequency", DURATION),
    field("staticPodURL", Type::Str),
    field(
        "staticPodURLHeader",
        Type::Map {
            keys: Keys::Any,
            values: &STRINGS,
        },
    ),
    field("address", Type::Str),
    field("port", PORT),
    field("readOnlyPort", PORT),
    field("tlsCertFile", Type::Str),
    field("tlsPrivateKeyFile", Type::Str),
    field(
        "tlsCipherSuites",
        Type::List(&Type::Enum {
            names: CIPHER_SUITE_NAMES,
            unset_ok: false,
        }),
    ),
    field(
        "tlsMinVersion",
        one_of(&[
            "VersionTLS10",
            "VersionTLS11",
            "VersionTLS12",
            "VersionTLS13",
        ]),
    ),
    field("rotateCertificates", Type::Bool),
    field("serverTLSBootstrap", Type::Bool),
    field("authentication", Type::Struct(AUTHENTICATION)),
    field("authorization", Type::Struct(AUTHORIZATION)),
    field("registryPullQPS", NOT_NEGATIVE),
    field("registryBurst", NOT_NEGATIVE),
    field(
        "imagePullCredentialsVerificationPolicy",
        one_of(&[
            "NeverVerify",
            "NeverVerifyPreloadedImages",
            "NeverVerifyAllowlistedImages",
            "AlwaysVerify",
        ]),
    ),
    field("preloadedImagesVerificationAllowlist", STRINGS),
    field("eventRecordQPS", NOT_NEGATIVE),
    field("eventBurst", NOT_NEGATIVE),
    field("enableDebuggingHandlers", Type::Bool),
    field("enableContentionProfiling", Type::Bool),
    field("healthzPort", PORT),
    field("healthzBindAddress", Type::Str),
    field("oomScoreAdj", int32(-1000, 1000)),
    field("clusterDomain", Type::Str),
    field("clusterDNS", Type::List(&Type::Ip)),
    field("streamingConnectionIdleTimeout", DURATION),
    field("nodeStatusUpdateFrequency", DURATION),
    field("nodeStatusReportFrequency", DURATION),
    field("nodeLeaseDurationSeconds", NOT_NEGATIVE),
    field("imageMinimumGCAge", DURATION),
    field("imageMaximumGCAge", DURATION),
    field("imageGCHighThresholdPercent", int32(0, 100)),
    field("imageGCLowThresholdPercent", int32(0, 100)),
    field("volumeStatsAggPeriod", DURATION),
    field("kubeletCgroups", Type::Str),
    field("systemCgroups", Type::Str),
    field("cgroupRoot", Type::Str),
    field("cgroupsPerQOS", Type::Bool),
    field("cgroupDriver", one_of(&["cgroupfs", "systemd"])),
    field("cpuManagerPolicy", one_of(&["none", "static"])),
    field("singleProcessOOMKill", Type::Bool),
    field(
        "cpuManagerPolicyOptions",
        Type::Map {
            keys: Keys::Any,
            values: &Type::Str,
        },
    ),
    field("cpuManagerReconcilePeriod", DURATION),
    field("memoryManagerPolicy", one_of(&["None", "Static"])),
    field(
        "topologyManagerPolicy",
        one_of(&["none", "best-effort", "restricted", "single-numa-node"]),
    ),
    field("topologyManagerScope", one_of(&["container", "pod"])),
    field(
        "topologyManagerPolicyOptions",
        Type::Map {
            keys: Keys::Any,
            values: &Type::Str,
        },
    ),
    field(
        "qosReserved",
        Type::Map {
            keys: Keys::OneOf(&["memory"]),
            values: &Type::Percent,
        },
    ),
    field("runtimeRequestTimeout", DURATION),
    field(
        "hairpinMode",
        one_of(&["promiscuous-bridge", "hairpin-veth", "none"]),
    ),
    field("maxPods", NOT_NEGATIVE),
    field("podCIDR", Type::Str),
    field("podPidsLimit", int64(i64::MIN, i64::MAX)),
    field("resolvConf", Type::Str),
    field(
        "runOnce",
        Type::FalseOnly("kubelet v1.33 refuses runOnce mode (deprecated)"),
    ),
    field("cpuCFSQuota", Type::Bool),
    field("cpuCFSQuotaPeriod", duration(MS, SECOND, false)),
    field("nodeStatusMaxImages", int32(-1, I32_MAX)),
    field("maxOpenFiles", int64(0, i64::MAX)),
    field("contentType", Type::Str),
    field("kubeAPIQPS", NOT_NEGATIVE),
    field("kubeAPIBurst", NOT_NEGATIVE),
    field("serializeImagePulls", Type::Bool),
    field("maxParallelImagePulls", int32(1, I32_MAX)),
    field("evictionHard", THRESHOLDS),
    field("evictionSoft", THRESHOLDS),
    field(
        "evictionSoftGracePeriod",
        Type::Map {
            keys: EVICTION_SIGNALS,
            values: &DURATION,
        },
    ),
    field("evictionPressureTransitionPeriod", DURATION),
    field("evictionMaxPodGracePeriod", int32(I32_MIN, I32_MAX)),
    field("evictionMinimumReclaim", THRESHOLDS),
    field("mergeDefaultEvictionSettings", Type::Bool),
    field("podsPerCore", NOT_NEGATIVE),
    field("enableControllerAttachDetach", Type::Bool),
    field("protectKernelDefaults", Type::Bool),
    field("makeIPTablesUtilChains", Type::Bool),
    field("iptablesMasqueradeBit", int32(0, 31)),
    field("iptablesDropBit", int32(0, 31)),
    field(
        "featureGates",
        Type::Map {
            keys: Keys::Any,
            values: &Type::Bool,
        },
    ),
    field("failSwapOn", Type::Bool),
    field(
        "memorySwap",
        Type::Struct(&[field("swapBehavior", one_of(&["NoSwap", "LimitedSwap"]))]),
    ),
    field("containerLogMaxSize", Type::Quantity { number_ok: false }),
    field("containerLogMaxFiles", int32(2, I32_MAX)),
    field("containerLogMaxWorkers", int32(1, I32_MAX)),
    field(
        "containerLogMonitorInterval",
        duration(3 * SECOND, GO_MAX_DURATION, false),
    ),
    field(
        "configMapAndSecretChangeDetectionStrategy",
        one_of(&["Get", "Cache", "Watch"]),
    ),
    field("systemReserved", RESERVED),
    field("kubeReserved", RESERVED),
    field("reservedSystemCPUs", Type::Str),
    field("showHiddenMetricsForVersion", Type::Str),
    field("systemReservedCgroup", Type::Str),
    field("kubeReservedCgroup", Type::Str),
    field(
        "enforceNodeAllocatable",
        Type::List(&Type::Enum {
            names: &["none", "pods", "system-reserved", "kube-reserved"],
            unset_ok: false,
        }),
    ),
    field("allowedUnsafeSysctls", STRINGS),
    field("volumePluginDir", Type::Str),
    field("providerID", Type::Str),
    field("kernelMemcgNotification", Type::Bool),
    field("logging", Type::Struct(LOGGING)),
    field("enableSystemLogHandler", Type::Bool),
    field("enableSystemLogQuery", Type::Bool),
    field(
        "shutdownGracePeriod",
        duration(SECOND, GO_MAX_DURATION, true),
    ),
    field(
        "shutdownGracePeriodCriticalPods",
        duration(SECOND, GO_MAX_DURATION, true),
    ),
    field(
        "shutdownGracePeriodByPodPriority",
        Type::List(&Type::Struct(&[
            field("priority", int32(I32_MIN, I32_MAX)),
            field("shutdownGracePeriodSeconds", int64(i64::MIN, i64::MAX)),
        ])),
    ),
    field(
        "crashLoopBackOff",
        Type::Struct(&[field(
            "maxContainerRestartPeriod",
            duration(SECOND, 300 * SECOND, false),
        )]),
    ),
    field(
        "reservedMemory",
        Type::List(&Type::Struct(&[
            required("numaNode", NOT_NEGATIVE),
            required(
                "limits",
                Type::Map {
                    keys: Keys::Matching(is_memory_resource, "`memory` or `hugepages-<size>`"),
                    values: &Type::Quantity { number_ok: true },
                },
            ),
        ])),
    ),
    field("enableProfilingHandler", Type::Bool),
    field("enableDebugFlagsHandler", Type::Bool),
    field("seccompDefault", Type::Bool),
    field(
        "memoryThrottlingFactor",
        Type::Float {
            above: 0.0,
            max: 1.0,
        },
    ),
    field("registerWithTaints", Type::List(&Type::Struct(TAINT))),
    field("registerNode", Type::Bool),
    field(
        "tracing",
        Type::Struct(&[
            field("endpoint", Type::Str),
            field("samplingRatePerMillion", int32(0, 1_000_000)),
        ]),
    ),
    field("localStorageCapacityIsolation", Type::Bool),
    field("containerRuntimeEndpoint", Type::Str),
    field("imageServiceEndpoint", Type::Str),
    field("failCgroupV1", Type::Bool),
    field(
        "userNamespaces",
        Type::Struct(&[field(
            "idsPerPod",
            Type::Int(Int {
                go_type: "int64",
                min: 65536,
                max: (1 << 32) - 65536,
                multiple_of: 65536,
            }),
        )]),
    ),
];
