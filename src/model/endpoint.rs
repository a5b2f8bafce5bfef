//! Addresses given by the user or a server: the API server URL and the container runtime's
//! CRI endpoint, normalized so the rest of kaas-join compares and prints one form.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::model::labels;
use crate::model::shown::shown;

/// Port of a `https://host` server without one.
pub const DEFAULT_HTTPS_PORT: u16 = 443;

/// Normalizes an API server address to `https://host:port`: accepts `host:port`,
/// `[ipv6]:port` and `https://host[:port]` (443 by default). A bare host without a port is
/// refused, as kubeadm does; `http://` is refused (the API server only speaks TLS). The error
/// is a phrase following the value.
pub fn normalize_server(s: &str) -> Result<String, String> {
    normalize(s, false)
}

/// The `server` a cluster-info kubeconfig names, checked as [`normalize_server`] checks
/// `--server` (https, a host and port, no user info, query or fragment), except that a path
/// prefix is kept: an API server behind a proxy is served at `https://host/some/prefix`, and
/// every request then goes below it. Normalized to `https://host:port[/prefix]`.
pub fn normalize_cluster_server(s: &str) -> Result<String, String> {
    let s = s.trim();
    if !s.to_ascii_lowercase().starts_with("https://") {
        return Err("is not an https:// URL: the API server only speaks HTTPS".into());
    }
    normalize(s, true)
}

fn normalize(s: &str, path_allowed: bool) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("is empty: give host:port".into());
    }
    let (authority, default_port, prefix) = match s.split_once("://") {
        Some((scheme, rest)) => {
            check_scheme(scheme)?;
            let (authority, prefix) = split_path(rest, path_allowed)?;
            (authority, Some(DEFAULT_HTTPS_PORT), prefix)
        }
        None if s.contains('/') => {
            return Err("is not host:port (it contains '/'): give e.g. 10.0.0.5:6443".into())
        }
        None => (s, None, ""),
    };
    if authority.contains('@') {
        return Err("holds user info ('@'): give only host:port".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => ipv6_host(bracketed)?,
        None => named_or_ipv4_host(authority)?,
    };
    let port = port_of(port, default_port)?;
    Ok(format!("https://{host}:{port}{prefix}"))
}

/// Only `https://`: the API server speaks nothing else.
fn check_scheme(scheme: &str) -> Result<(), String> {
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" => Err(
            "uses http://: the API server only speaks HTTPS; use https://host[:port] or host:port"
                .into(),
        ),
        other => Err(format!(
            "has scheme {}://: use https://host[:port] or host:port",
            shown(other).trim_matches('"')
        )),
    }
}

/// The authority and the path prefix (without a trailing `/`) of what follows `https://`.
fn split_path(rest: &str, path_allowed: bool) -> Result<(&str, &str), String> {
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if path.contains(['?', '#']) {
        return Err("has a query or fragment: give only https://host[:port]".into());
    }
    let prefix = path.trim_end_matches('/');
    if !prefix.is_empty() && !path_allowed {
        return Err("has a path, query or fragment: give only https://host[:port]".into());
    }
    if prefix
        .split('/')
        .skip(1)
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err("has a path with empty, . or .. segments".into());
    }
    Ok((authority, prefix))
}

/// `[ipv6]` or `[ipv6]:port` (the text after `[`): the host in brackets, and the port text.
fn ipv6_host(bracketed: &str) -> Result<(String, Option<&str>), String> {
    let Some((inner, after)) = bracketed.split_once(']') else {
        return Err("has '[' without ']'".into());
    };
    let ip: Ipv6Addr = inner.parse().map_err(|_| {
        format!(
            "has {} in brackets, which is not an IPv6 address",
            shown(inner)
        )
    })?;
    let port = match after {
        "" => None,
        _ => Some(
            after
                .strip_prefix(':')
                .ok_or("has text after ']' that is not :port")?,
        ),
    };
    Ok((format!("[{ip}]"), port))
}

/// `host[:port]` with an IPv4 address or a DNS name (lowercased).
fn named_or_ipv4_host(authority: &str) -> Result<(String, Option<&str>), String> {
    if authority.matches(':').count() > 1 {
        return Err(if authority.parse::<Ipv6Addr>().is_ok() {
            format!("is an IPv6 address without brackets: write [{authority}]:6443")
        } else {
            "has more than one ':': give host:port, or [ipv6]:port".into()
        });
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err("has no host: give host:port".into());
    }
    let host = if let Ok(ip) = host.parse::<Ipv4Addr>() {
        ip.to_string()
    } else if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "has {}, which is not a valid IPv4 address",
            shown(host)
        ));
    } else {
        let lower = host.to_ascii_lowercase();
        labels::check_dns_subdomain(&lower)
            .map_err(|r| format!("has host name {}, which {r}", shown(host)))?;
        lower
    };
    Ok((host, port))
}

/// The port given, else the scheme's default; kubeadm requires one for `host:port`.
fn port_of(port: Option<&str>, default: Option<u16>) -> Result<u16, String> {
    match (port, default) {
        (Some(p), _) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "has port {}; a port is a number from 1 to 65535",
                shown(p)
            )),
        },
        (None, Some(d)) => Ok(d),
        (None, None) => Err(
            "has no port: give host:port, e.g. 10.0.0.5:6443 (kubeadm requires a port), or \
             https://host for port 443"
                .into(),
        ),
    }
}

/// Normalizes a CRI endpoint: `unix:///abs/path` as is, a bare absolute path gets `unix://`
/// prepended (as kubeadm does). Other schemes are refused: kubelet on Linux talks to the runtime
/// over a unix socket.
pub fn normalize_cri_socket(s: &str) -> Result<String, &'static str> {
    let s = s.trim();
    if let Some(path) = s.strip_prefix("unix://") {
        if path.starts_with('/') {
            Ok(s.to_owned())
        } else {
            Err("has no absolute path after unix://")
        }
    } else if s.contains("://") {
        Err("uses a scheme other than unix://, which kubelet on Linux does not support")
    } else if s.starts_with('/') {
        Ok(format!("unix://{s}"))
    } else {
        Err("is neither a unix:// URL nor an absolute path")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_normalize() {
        let n = |s| normalize_server(s).unwrap();
        assert_eq!(n("10.0.0.5:6443"), "https://10.0.0.5:6443");
        assert_eq!(n("CP.Example.com:6443"), "https://cp.example.com:6443");
        assert_eq!(n("[fd00::1]:6443"), "https://[fd00::1]:6443");
        assert_eq!(n("https://10.0.0.5:6443"), "https://10.0.0.5:6443");
        assert_eq!(n("https://host"), "https://host:443");
        assert_eq!(n("HTTPS://host/"), "https://host:443");
        assert_eq!(n("https://[fd00::1]"), "https://[fd00::1]:443");
    }

    #[test]
    fn servers_refused_with_reason() {
        let e = |s| normalize_server(s).unwrap_err();
        assert!(e("10.0.0.5").contains("no port"));
        assert!(e("host").contains("kubeadm requires a port"));
        assert!(e("http://10.0.0.5:6443").contains("HTTPS"));
        assert!(e("ftp://h:1").contains("ftp://"));
        assert!(e("fd00::1").contains("brackets"));
        assert!(e("[fd00::1:6443").contains("']'"));
        assert!(e("[nothex]:6443").contains("IPv6"));
        assert!(e("10.0.0.5:0").contains("port"));
        assert!(e("10.0.0.5:65536").contains("port"));
        assert!(e("10.0.0.5:http").contains("port"));
        assert!(e("300.1.1.1:6443").contains("IPv4"));
        assert!(e("https://h/api").contains("path"));
        assert!(e("https://user@h").contains("user info"));
        assert!(e(":6443").contains("no host"));
        assert!(e("under_score:6443").contains("host name"));
        assert!(e("").contains("empty"));
    }

    #[test]
    fn cluster_info_servers_are_checked_like_server_flags_but_keep_a_path_prefix() {
        let n = |s| normalize_cluster_server(s);
        assert_eq!(n("https://10.0.0.5:6443").unwrap(), "https://10.0.0.5:6443");
        assert_eq!(n("https://CP.example/").unwrap(), "https://cp.example:443");
        assert_eq!(
            n("https://proxy.example/k8s/clusters/c-1/").unwrap(),
            "https://proxy.example:443/k8s/clusters/c-1"
        );
        for (bad, why) in [
            ("https://host:6443/x?y#z", "query or fragment"),
            ("https://host:6443/x#z", "query or fragment"),
            ("https://user:pass@host:6443", "user info"),
            ("http://host:6443", "https://"),
            ("10.0.0.5:6443", "https://"),
            ("https://host:6443/a/../b", ".."),
            ("https://host", ""),
        ] {
            match n(bad) {
                Err(e) => assert!(e.contains(why), "{bad}: {e}"),
                Ok(url) => assert_eq!(bad, "https://host", "{bad} accepted as {url}"),
            }
        }
    }

    #[test]
    fn cri_sockets_normalize() {
        assert_eq!(
            normalize_cri_socket("/run/x.sock").unwrap(),
            "unix:///run/x.sock"
        );
        assert_eq!(
            normalize_cri_socket("unix:///run/containerd/containerd.sock").unwrap(),
            "unix:///run/containerd/containerd.sock"
        );
        assert!(normalize_cri_socket("unix://run/x.sock").is_err());
        assert!(normalize_cri_socket("npipe:////./pipe/x").is_err());
        assert!(normalize_cri_socket("run/x.sock").is_err());
    }
}
