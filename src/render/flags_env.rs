//! kubelet's `/var/lib/kubelet/kubeadm-flags.env`, as `kubeadm join` writes it
//! (`cmd/kubeadm/app/phases/kubelet/flags.go`): generated flags, replaced by same-named extra
//! args, sorted by name then value, joined and quoted with Go's `%q`. kubeadm's systemd drop-in
//! (and so `node::supervisor`'s command line) reads it as `KUBELET_KUBEADM_ARGS`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// What goes into `/var/lib/kubelet/kubeadm-flags.env`.
#[derive(Debug, Clone)]
pub struct KubeletFlags<'a> {
    pub cri_endpoint: &'a str,
    pub node_ip: Option<IpAddr>,
    /// Set when the node name differs from the hostname (else kubelet registers the wrong name).
    pub hostname_override: Option<&'a str>,
    pub node_labels: &'a BTreeMap<String, String>,
    /// `(name, value)` without the leading `--`; a name given here replaces the generated flag.
    pub extra_args: &'a [(String, String)],
}

/// Renders `KUBELET_KUBEADM_ARGS="..."\n` exactly as kubeadm does (`ArgumentsToCommand`: extra
/// args replace same-named generated ones; everything sorted by name, then value).
pub fn render_flags_env(flags: &KubeletFlags) -> String {
    let mut base: Vec<(String, String)> = vec![(
        "container-runtime-endpoint".into(),
        flags.cri_endpoint.to_owned(),
    )];
    if let Some(h) = flags.hostname_override {
        base.push(("hostname-override".into(), h.to_owned()));
    }
    if let Some(ip) = flags.node_ip {
        base.push(("node-ip".into(), ip.to_string()));
    }
    if !flags.node_labels.is_empty() {
        let labels: Vec<String> = flags
            .node_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        base.push(("node-labels".into(), labels.join(",")));
    }
    // Names are accepted with or without the leading dashes.
    let extra: Vec<(String, String)> = flags
        .extra_args
        .iter()
        .map(|(n, v)| (n.trim_start_matches('-').to_owned(), v.clone()))
        .collect();
    let mut args: Vec<(String, String)> = extra.clone();
    args.extend(
        base.into_iter()
            .filter(|(n, _)| !extra.iter().any(|(e, _)| e == n)),
    );
    args.sort();
    let joined: Vec<String> = args.iter().map(|(n, v)| format!("--{n}={v}")).collect();
    format!("KUBELET_KUBEADM_ARGS={}\n", go_quote(&joined.join(" ")))
}

/// Go's `strconv.Quote` (`%q`): what kubeadm uses for the env file.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || c == '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_sorted_overridden_and_quoted() {
        let labels = BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]);
        let extra = vec![
            ("--node-ip".to_string(), "10.0.0.5".to_string()),
            ("v".to_string(), "2".to_string()),
        ];
        let out = render_flags_env(&KubeletFlags {
            cri_endpoint: "unix:///run/containerd/containerd.sock",
            node_ip: Some("10.0.0.4".parse().unwrap()),
            hostname_override: None,
            node_labels: &labels,
            extra_args: &extra,
        });
        assert_eq!(
            out,
            "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock \
             --node-ip=10.0.0.5 --node-labels=a=1,b=2 --v=2\"\n"
        );
        assert_eq!(go_quote("a\"b\\c\td"), "\"a\\\"b\\\\c\\td\"");
    }
}
