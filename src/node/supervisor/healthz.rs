//! kubelet's healthz: where it listens ([`healthz_url`], from the KubeletConfiguration `join`
//! wrote), how it is asked (a minimal HTTP/1.0 client on loopback, bounded by a timeout), and
//! how often (sooner at the start, then every interval). The probe runs as a tokio task per
//! kubelet run and sends each result to `super::one_run`, which decides what a failure means.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{read_file_join_wrote, SupervisorError};
use crate::host::paths::{Paths, KUBELET_CONFIG};

/// kubelet's healthz URL from its KubeletConfiguration (`healthzBindAddress`, default
/// 127.0.0.1; `healthzPort`, default 10248, 0 = off → `None`). An unspecified bind address
/// (`0.0.0.0`, `::`) is probed on loopback.
pub fn healthz_url(paths: &Paths) -> Result<Option<String>, SupervisorError> {
    let path = paths.host(KUBELET_CONFIG);
    let text = read_file_join_wrote(&path)?;
    let invalid = |message: String| SupervisorError::Invalid {
        path: path.clone(),
        message,
    };
    let doc: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let port = match doc.get("healthzPort") {
        None | Some(serde_norway::Value::Null) => 10248,
        Some(v) => v
            .as_u64()
            .filter(|&p| p <= 65535)
            .ok_or_else(|| invalid(format!("healthzPort is not a port number: {v:?}")))?,
    };
    if port == 0 {
        return Ok(None);
    }
    let address = match doc.get("healthzBindAddress") {
        None | Some(serde_norway::Value::Null) => "127.0.0.1".to_owned(),
        Some(v) => v
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(format!("healthzBindAddress is not an address: {v:?}")))?
            .to_owned(),
    };
    let host = match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        Ok(std::net::IpAddr::V6(ip)) if ip.is_unspecified() => "[::1]".to_owned(),
        Ok(std::net::IpAddr::V4(ip)) => ip.to_string(),
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        Err(_) => address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    };
    Ok(Some(format!("http://{host}:{port}/healthz")))
}

/// `http://host:port/path` → ("host:port", "/path").
fn split_http_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return None;
    }
    let authority = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:80")
    } else {
        authority.to_owned()
    };
    Some((authority, path.to_owned()))
}

/// One `GET` over HTTP/1.0: `Ok` on a 200 status line.
async fn probe_once(authority: &str, path: &str) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: kaas-join\r\nAccept: */*\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send to {authority}: {e}"))?;
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("cannot read from {authority}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(format!(
            "{authority} closed the connection without an answer"
        ));
    }
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/") => Ok(()),
        (Some(v), Some(_)) if v.starts_with("HTTP/") => Err(format!("healthz answered {line:?}")),
        _ => Err(format!(
            "healthz answered something that is not HTTP: {line:?}"
        )),
    }
}

/// The first healthz probes come sooner than `healthz_interval`: 250 ms after the start, then
/// doubling up to the interval, so a kubelet that binds its port within a second is `Running`
/// (and systemd hears READY=1) within a second, not at the next 10 s tick.
const FIRST_PROBE_DELAY: Duration = Duration::from_millis(250);

/// The probe task of one kubelet run; aborted when dropped, with the run it belongs to.
pub(super) struct ProbeTask(tokio::task::JoinHandle<()>);

impl Drop for ProbeTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts probing `url` (the first probe at once) and sending each result to `results`.
pub(super) fn start_probing(
    url: String,
    interval: Duration,
    timeout: Duration,
    results: mpsc::Sender<Result<(), String>>,
) -> ProbeTask {
    ProbeTask(tokio::spawn(probe_loop(url, interval, timeout, results)))
}

/// Probes (the first at once) and sends each result; ends when the receiver is gone. Until the
/// first success the delay grows from [`FIRST_PROBE_DELAY`] to `interval`; after it, every
/// `interval`.
async fn probe_loop(
    url: String,
    interval: Duration,
    timeout: Duration,
    results: mpsc::Sender<Result<(), String>>,
) {
    let target = split_http_url(&url);
    let interval = interval.max(Duration::from_millis(1));
    let mut delay = FIRST_PROBE_DELAY.min(interval);
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::time::sleep_until(next).await;
        let result = match &target {
            None => Err(format!("unsupported healthz URL {url:?} (only http://)")),
            Some((authority, path)) => tokio::time::timeout(timeout, probe_once(authority, path))
                .await
                .unwrap_or_else(|_| Err(format!("no answer from {url} within {timeout:?}"))),
        };
        if result.is_ok() {
            delay = interval;
        }
        // From the probe's start, as `interval` ticks did; never sooner than now.
        next = (next + delay).max(Instant::now());
        delay = (delay * 2).min(interval);
        if results.send(result).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_urls() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        assert!(matches!(
            healthz_url(&paths).unwrap_err(),
            SupervisorError::NotJoined { .. }
        ));
        std::fs::create_dir_all(paths.host(crate::host::paths::KUBELET_DIR)).unwrap();
        let cases = [
            (
                "kind: KubeletConfiguration\n",
                Some("http://127.0.0.1:10248/healthz"),
            ),
            ("healthzPort: 0\n", None),
            (
                "healthzBindAddress: 0.0.0.0\n",
                Some("http://127.0.0.1:10248/healthz"),
            ),
            (
                "healthzBindAddress: '::'\n",
                Some("http://[::1]:10248/healthz"),
            ),
            (
                "healthzBindAddress: fd00::5\nhealthzPort: 9999\n",
                Some("http://[fd00::5]:9999/healthz"),
            ),
        ];
        for (yaml, want) in cases {
            std::fs::write(paths.host(KUBELET_CONFIG), yaml).unwrap();
            assert_eq!(healthz_url(&paths).unwrap().as_deref(), want, "{yaml}");
        }
        std::fs::write(paths.host(KUBELET_CONFIG), "healthzPort: nope\n").unwrap();
        let err = healthz_url(&paths).unwrap_err().to_string();
        assert!(err.contains("healthzPort"), "{err}");
    }

    #[test]
    fn url_splitting() {
        assert_eq!(
            split_http_url("http://127.0.0.1:10248/healthz"),
            Some(("127.0.0.1:10248".into(), "/healthz".into()))
        );
        assert_eq!(
            split_http_url("http://[::1]:10248/healthz"),
            Some(("[::1]:10248".into(), "/healthz".into()))
        );
        assert_eq!(
            split_http_url("http://[::1]"),
            Some(("[::1]:80".into(), "/".into()))
        );
        assert_eq!(split_http_url("https://x/healthz"), None);
    }

    /// A kubelet that binds healthz a moment after it starts is seen as healthy within about a
    /// second (the first probes come 250 ms, 500 ms, 1 s... apart), not at the next 10 s tick;
    /// after that the interval holds.
    #[tokio::test]
    async fn first_probes_come_quickly_then_every_interval() {
        // A port that is free now and listened on 600 ms later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            // Bounded: the probes this test can see.
            for _ in 0..4 {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\n\r\nok").await;
            }
        });
        let (tx, mut rx) = mpsc::channel(8);
        let started = Instant::now();
        let probe = ProbeTask(tokio::spawn(probe_loop(
            format!("http://127.0.0.1:{port}/healthz"),
            Duration::from_secs(10),
            Duration::from_secs(2),
            tx,
        )));
        let mut failures = 0;
        let healthy_after = loop {
            let result = tokio::time::timeout(Duration::from_secs(15), rx.recv())
                .await
                .expect("a probe result within 15 s")
                .expect("the probe loop runs");
            match result {
                Ok(()) => break started.elapsed(),
                Err(_) => failures += 1,
            }
        };
        assert!(
            failures >= 1,
            "the first probe, at once, finds nothing listening"
        );
        // The old fixed 10 s tick would give 10 s here; the backoff schedule ~1.75 s at most.
        assert!(
            healthy_after < Duration::from_secs(5),
            "healthy only after {healthy_after:?}"
        );
        // Healthy: the next probe waits the full interval.
        assert!(
            tokio::time::timeout(Duration::from_secs(3), rx.recv())
                .await
                .is_err(),
            "after a success, probes come every interval"
        );
        drop(probe);
        server.abort();
    }
}
