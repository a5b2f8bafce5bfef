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

/// `url` probed once, within `timeout`.
async fn probe_url(
    url: &str,
    target: Option<&(String, String)>,
    timeout: Duration,
) -> Result<(), String> {
    match target {
        None => Err(format!("unsupported healthz URL {url:?} (only http://)")),
        Some((authority, path)) => tokio::time::timeout(timeout, probe_once(authority, path))
            .await
            .unwrap_or_else(|_| Err(format!("no answer from {url} within {timeout:?}"))),
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
    ProbeTask(tokio::spawn(async move {
        let target = split_http_url(&url);
        let probe = || probe_url(&url, target.as_ref(), timeout);
        probe_on_schedule(interval, results, probe).await;
    }))
}

/// Runs `probe` (the first at once) and sends each result; ends when the receiver is gone. Until
/// the first success the delay grows from [`FIRST_PROBE_DELAY`] to `interval`; after it, every
/// `interval`, counted from each probe's start.
async fn probe_on_schedule<F, P>(
    interval: Duration,
    results: mpsc::Sender<Result<(), String>>,
    mut probe: P,
) where
    P: FnMut() -> F,
    F: std::future::Future<Output = Result<(), String>>,
{
    let interval = interval.max(Duration::from_millis(1));
    let mut delay = FIRST_PROBE_DELAY.min(interval);
    let mut next = Instant::now();
    loop {
        tokio::time::sleep_until(next).await;
        let result = probe().await;
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
    /// after that the interval holds. On tokio's paused clock: the times are exact.
    #[tokio::test(start_paused = true)]
    async fn first_probes_come_quickly_then_every_interval() {
        let started = Instant::now();
        // kubelet binds its port 600 ms after the start.
        let probe = move || async move {
            if started.elapsed() >= Duration::from_millis(600) {
                Ok(())
            } else {
                Err("connection refused".to_owned())
            }
        };
        let (tx, mut rx) = mpsc::channel(8);
        let probing = tokio::spawn(probe_on_schedule(Duration::from_secs(10), tx, probe));
        let mut seen = Vec::new();
        for _ in 0..5 {
            let result = rx.recv().await.expect("the probe loop runs");
            seen.push((started.elapsed().as_millis(), result.is_ok()));
        }
        assert_eq!(
            seen,
            [
                (0, false),
                (250, false),
                (750, true),
                // Healthy: the full interval from then on (not back to the quick schedule).
                (10_750, true),
                (20_750, true),
            ]
        );
        drop(rx);
        // The receiver gone, the loop ends at its next send.
        tokio::time::timeout(Duration::from_secs(11), probing)
            .await
            .expect("the probe loop ends without a receiver")
            .unwrap();
    }

    /// The schedule counts from each probe's start; a probe slower than the delay is followed at
    /// once, never by a burst of the probes it missed; a failure after a success keeps the
    /// interval.
    #[tokio::test(start_paused = true)]
    async fn slow_probes_do_not_pile_up() {
        let started = Instant::now();
        let mut n = 0;
        let probe = move || {
            n += 1;
            let n = n;
            async move {
                match n {
                    // A hung kubelet: the probe takes its whole 2 s timeout.
                    1 => {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        Err("no answer".to_owned())
                    }
                    2 => Ok(()),
                    _ => {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Err("no answer".to_owned())
                    }
                }
            }
        };
        let (tx, mut rx) = mpsc::channel(8);
        let _probing = ProbeTask(tokio::spawn(probe_on_schedule(
            Duration::from_secs(1),
            tx,
            probe,
        )));
        let mut seen = Vec::new();
        for _ in 0..4 {
            let result = rx.recv().await.unwrap();
            seen.push((started.elapsed().as_millis(), result.is_ok()));
        }
        // Probe 1 ends at 2 s (due at 250 ms: the next starts at once), probe 2 passes at 2 s,
        // probes 3 and 4 start at 3 s and 4 s and end 300 ms later.
        assert_eq!(
            seen,
            [(2000, false), (2000, true), (3300, false), (4300, false)]
        );
    }

    /// One answer from a loopback server that reads the request and answers `response`.
    async fn probe_against(response: &'static [u8]) -> Result<(), String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let n = conn.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let _ = conn.write_all(response).await;
            request
        });
        let result = probe_once(&authority, "/healthz").await;
        let request = server.await.unwrap();
        assert!(
            request.starts_with(&format!("GET /healthz HTTP/1.0\r\nHost: {authority}\r\n")),
            "{request:?}"
        );
        result
    }

    #[tokio::test]
    async fn http_answers() {
        assert_eq!(probe_against(b"HTTP/1.1 200 OK\r\n\r\nok").await, Ok(()));
        assert_eq!(
            probe_against(b"HTTP/1.1 500 Internal Server Error\r\n\r\n").await,
            Err("healthz answered \"HTTP/1.1 500 Internal Server Error\"".to_owned())
        );
        assert_eq!(
            probe_against(b"SSH-2.0-OpenSSH\r\n").await,
            Err("healthz answered something that is not HTTP: \"SSH-2.0-OpenSSH\"".to_owned())
        );
        let closed = probe_against(b"").await.unwrap_err();
        assert!(
            closed.ends_with("closed the connection without an answer"),
            "{closed}"
        );
        // Nothing listening: a port that was free a moment ago.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused = probe_url(
            &format!("http://127.0.0.1:{port}/healthz"),
            Some(&(format!("127.0.0.1:{port}"), "/healthz".to_owned())),
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
        assert!(
            refused.starts_with(&format!("cannot connect to 127.0.0.1:{port}")),
            "{refused}"
        );
        // Listening but never answering (the backlog accepts the connection): the timeout.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = silent.local_addr().unwrap().to_string();
        let url = format!("http://{authority}/healthz");
        assert_eq!(
            probe_url(
                &url,
                Some(&(authority, "/healthz".to_owned())),
                Duration::from_millis(50)
            )
            .await,
            Err(format!("no answer from {url} within 50ms"))
        );
        drop(silent);
        assert_eq!(
            probe_url("https://x/healthz", None, Duration::from_secs(2)).await,
            Err("unsupported healthz URL \"https://x/healthz\" (only http://)".to_owned())
        );
    }
}
