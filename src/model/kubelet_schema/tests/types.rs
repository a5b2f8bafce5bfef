//! Each kind of field: what is accepted and what is refused, and the scalar parsers.

use super::{accepted, problem};
use crate::model::kubelet_schema::scalars::{
    parse_go_duration, parse_percent, parse_quantity, Sign,
};

#[test]
fn booleans_integers_and_floats() {
    accepted("enableServer: true\nfailSwapOn: false\n");
    assert_eq!(
        problem("enableServer: \"true\""),
        "`enableServer` is a string, expected a boolean (true or false)"
    );
    assert_eq!(
        problem("enableServer: 1"),
        "`enableServer` is the number 1, expected a boolean (true or false)"
    );
    assert_eq!(
        problem("maxPods: 50.5"),
        "`maxPods` is 50.5, expected an integer (int32): a whole number"
    );
    assert_eq!(
        problem("maxPods: 3000000000"),
        "`maxPods` is 3000000000, expected an integer (int32) from 0 to 2147483647"
    );
    assert!(problem("maxPods: -1").contains("from 0 to"));
    accepted("maxPods: 0\nport: 0\nhealthzPort: 0\nnodeStatusMaxImages: -1\n");
    assert!(problem("nodeStatusMaxImages: -2").contains("from -1 to"));
    assert!(problem("imageGCHighThresholdPercent: 101").contains("from 0 to 100"));
    assert!(problem("iptablesDropBit: 32").contains("from 0 to 31"));
    assert!(problem("containerLogMaxFiles: 1").contains("from 2 to"));
    assert!(problem("containerLogMaxWorkers: 0").contains("from 1 to"));
    assert!(problem("maxParallelImagePulls: 0").contains("from 1 to"));
    assert!(problem("tracing: {samplingRatePerMillion: 1000001}").contains("from 0 to 1000000"));
    accepted("podPidsLimit: -1\nmaxOpenFiles: 9000000000\n");
    accepted("userNamespaces: {idsPerPod: 131072}");
    assert_eq!(
        problem("userNamespaces: {idsPerPod: 65537}"),
        "`userNamespaces.idsPerPod` is 65537, expected a multiple of 65536 from 65536 to 4294901760"
    );
    assert!(problem("userNamespaces: {idsPerPod: 4294967296}").contains("multiple of 65536"));
    accepted("memoryThrottlingFactor: 0.9");
    accepted("memoryThrottlingFactor: 1");
    assert_eq!(
        problem("memoryThrottlingFactor: 0"),
        "`memoryThrottlingFactor` is 0, expected a number greater than 0 and at most 1"
    );
    assert!(problem("memoryThrottlingFactor: \"0.5\"").contains("expected a number"));
    assert_eq!(
        problem("runOnce: true"),
        "`runOnce` is true: kubelet v1.33 refuses runOnce mode (deprecated)"
    );
    accepted("runOnce: false");
}

#[test]
fn strings_enums_and_addresses() {
    assert_eq!(
        problem("staticPodPath: 5"),
        "`staticPodPath` is the number 5, expected a string (quote it, kubelet refuses a bare \
         number or boolean here)"
    );
    accepted("cgroupDriver: \"\"\nauthorization: {mode: \"\"}\n");
    assert_eq!(
        problem("authorization: {mode: webhook}"),
        "`authorization.mode` is not one of `AlwaysAllow`, `Webhook`; did you mean `Webhook`?"
    );
    assert_eq!(
        problem("cgroupDriver: 1"),
        "`cgroupDriver` is the number 1, expected one of `cgroupfs`, `systemd`"
    );
    // kubelet's memory manager spells its policies with capitals, the CPU manager without.
    assert!(problem("memoryManagerPolicy: none").contains("did you mean `None`?"));
    assert!(problem("cpuManagerPolicy: Static").contains("did you mean `static`?"));
    assert!(
        problem("memorySwap: {swapBehavior: UnlimitedSwap}").contains("`NoSwap`, `LimitedSwap`")
    );
    assert!(
        problem("enforceNodeAllocatable: [pods, system-reserved-compressible]")
            .starts_with("`enforceNodeAllocatable[1]` is not one of")
    );
    assert_eq!(
        problem("tlsCipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA265]"),
        "`tlsCipherSuites[0]` is not one of the 27 names kubelet accepts; did you mean \
         `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`?"
    );
    assert!(problem("tlsMinVersion: TLS12").contains("`VersionTLS12`"));
    accepted("clusterDNS: [10.96.0.10, \"fd00::a\"]");
    assert_eq!(
        problem("clusterDNS: [kube-dns]"),
        "`clusterDNS[0]` is not an IP address"
    );
    assert_eq!(
        problem("clusterDNS: 10.96.0.10"),
        "`clusterDNS` is a string, expected a list"
    );
    assert_eq!(
        problem("registerWithTaints: {key: a}"),
        "`registerWithTaints` is a mapping, expected a list"
    );
}

#[test]
fn durations() {
    accepted("syncFrequency: 1m30s\nfileCheckFrequency: 1.5h\nhttpCheckFrequency: 300ms\nvolumeStatsAggPeriod: \"0\"\nruntimeRequestTimeout: 0s\n");
    assert_eq!(
        problem("syncFrequency: 10"),
        "`syncFrequency` is the number 10, expected a duration string like `10s` or `1m30s` \
         (quote it, kubelet refuses a bare number or boolean here)"
    );
    assert_eq!(
        problem("syncFrequency: \"10\""),
        "`syncFrequency` is not a Go duration: it needs a unit after each number (ns, us, ms, \
         s, m, h); write it like `10s`, `1m30s` or `2h`"
    );
    assert!(problem("syncFrequency: 5d").contains("has a unit Go does not know"));
    assert_eq!(
        problem("syncFrequency: -5m"),
        "`syncFrequency` is negative, expected a duration of 0 or more"
    );
    assert_eq!(
        problem("cpuCFSQuotaPeriod: 2s"),
        "`cpuCFSQuotaPeriod` is 2s, expected from 1ms to 1s"
    );
    assert!(problem("cpuCFSQuotaPeriod: 0s").contains("is 0s, expected from 1ms to 1s"));
    accepted("cpuCFSQuotaPeriod: 50ms");
    assert_eq!(
        problem("crashLoopBackOff: {maxContainerRestartPeriod: 10m}"),
        "`crashLoopBackOff.maxContainerRestartPeriod` is 10m, expected from 1s to 5m"
    );
    assert_eq!(
        problem("shutdownGracePeriod: 500ms"),
        "`shutdownGracePeriod` is 500ms, expected 0 (kubelet's default) or at least 1s"
    );
    accepted("shutdownGracePeriod: 0s\nshutdownGracePeriodCriticalPods: 1s\n");
    assert!(problem("containerLogMonitorInterval: 2s").contains("expected at least 3s"));
    accepted("evictionSoftGracePeriod: {memory.available: 1m}");
    assert!(problem("evictionSoftGracePeriod: {memory.available: 60}").contains("duration string"));
    // logging.flushFrequency also takes nanoseconds, as kubeadm writes it.
    accepted("logging: {flushFrequency: 0}");
    accepted("logging: {flushFrequency: 5000000000}");
    accepted("logging: {flushFrequency: 5s}");
    assert!(problem("logging: {flushFrequency: -1}").contains("nanoseconds (0 or more)"));
}

#[test]
fn quantities_and_percentages() {
    accepted("kubeReserved: {cpu: 100m, memory: 1Gi, ephemeral-storage: 10G, pid: \"100\"}");
    assert_eq!(
        problem("kubeReserved: {cpu: 1}"),
        "`kubeReserved[cpu]` is the number 1, expected a quantity string like `100m`, `512Mi` \
         or `10%` (quote it, kubelet refuses a bare number or boolean here)"
    );
    assert_eq!(
        problem("systemReserved: {memory: \"-1Gi\"}"),
        "`systemReserved[memory]` is negative, expected a quantity of 0 or more"
    );
    assert_eq!(
        problem("kubeReserved: {gpu: \"1\"}"),
        "`kubeReserved[gpu]` is not a key kubelet accepts here: expected one of `cpu`, \
         `memory`, `ephemeral-storage`, `pid`"
    );
    assert!(problem("containerLogMaxSize: 10MB").contains("is not a resource quantity"));
    accepted("containerLogMaxSize: 10M");
    accepted("logging: {options: {text: {infoBufferSize: 1024}}}");
    accepted(
        "evictionHard: {memory.available: 7.5%, nodefs.available: \"0%\", imagefs.available: 15Gi}",
    );
    assert_eq!(
        problem("evictionHard: {memory.available: 150%}"),
        "`evictionHard[memory.available]` is a percentage above 100%"
    );
    assert!(problem("evictionHard: {memory.available: 10 %}").contains("is not a percentage"));
    accepted("qosReserved: {memory: 50%}");
    assert_eq!(
        problem("qosReserved: {memory: 50.5%}"),
        "`qosReserved[memory]` is not a whole percentage (like `50%`)"
    );
    assert!(problem("qosReserved: {cpu: 50%}").contains("expected one of `memory`"));
    assert_eq!(
        problem("featureGates: {NodeSwap: \"true\"}"),
        "`featureGates[NodeSwap]` is a string, expected a boolean (true or false)"
    );
    assert_eq!(
        problem("cpuManagerPolicyOptions: {full-pcpus-only: true}"),
        "`cpuManagerPolicyOptions[full-pcpus-only]` is the boolean true, expected a string \
         (quote it, kubelet refuses a bare number or boolean here)"
    );
}

#[test]
fn go_durations_parse_as_go_does() {
    let ns = |s| parse_go_duration(s).unwrap();
    assert_eq!(ns("0"), 0);
    assert_eq!(ns("-0"), 0);
    assert_eq!(ns("1ns"), 1);
    assert_eq!(ns("1.5us"), 1_500);
    assert_eq!(ns("2µs"), 2_000);
    assert_eq!(ns("300ms"), 300_000_000);
    assert_eq!(ns("1m30s"), 90_000_000_000);
    assert_eq!(ns("1.5h"), 5_400_000_000_000);
    assert_eq!(ns(".5s"), 500_000_000);
    assert_eq!(ns("5.s"), 5_000_000_000);
    assert_eq!(ns("+2h45m"), 9_900_000_000_000);
    assert_eq!(ns("-1m"), -60_000_000_000);
    assert_eq!(ns("0.000000001s"), 1);
    assert_eq!(ns("2562047h"), 2_562_047 * 3_600_000_000_000);
    for bad in [
        "", "-", "10", "s", ".s", "1 s", "1s ", "5d", "1h-5m", "2562048h", "1e3s",
    ] {
        assert!(parse_go_duration(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn quantities_and_percentages_parse_as_kubelet_does() {
    for good in [
        "0", "1", "100m", "1.5", ".5", "5.", "1Gi", "512Mi", "1e3", "1E-2", "+1k", "10M",
    ] {
        assert_eq!(parse_quantity(good), Ok(Sign::NotNegative), "{good}");
    }
    assert_eq!(parse_quantity("-1Gi"), Ok(Sign::Negative));
    assert_eq!(parse_quantity("-0"), Ok(Sign::NotNegative));
    for bad in ["", "Gi", "1GB", "1 Gi", "1.2.3", "1e", "1ki", "one", "0x10"] {
        assert!(parse_quantity(bad).is_err(), "{bad:?} accepted");
    }
    assert!(parse_percent("10%", false).is_ok());
    assert!(parse_percent("7.5%", false).is_ok());
    assert!(parse_percent("100%", true).is_ok());
    for bad in ["10", "%", "-1%", "101%", "1e1%"] {
        assert!(parse_percent(bad, false).is_err(), "{bad:?} accepted");
    }
    assert!(parse_percent("7.5%", true).is_err());
}
