//! The metrics endpoint: a minimal HTTP/1.1 server on tokio that answers `GET /metrics` (and
//! `HEAD`) with a scrape of [`Metrics`], 404 for any other path, 405 for other methods there,
//! 400 for what is not an HTTP/1.x request. One request per connection (`Connection: close`):
//! a scraper on loopback loses nothing by it, and the server keeps no idle connections.
//!
//! Bounded: at most [`MAX_CONNECTIONS`] at once (more are closed at once), a request head of at
//! most [`MAX_HEAD`] bytes within [`READ_TIMEOUT`], the answer written within [`WRITE_TIMEOUT`],
//! then at most [`LINGER_MAX`] bytes more read within [`LINGER`] before the close.
//! The endpoint is unauthenticated: [`start`] warns when the address is not loopback. When the
//! address cannot be bound (in use), it says so and tries again with a backoff, without
//! stopping `run`: the node's work matters more than its metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::exposition::CONTENT_TYPE;
use super::Metrics;
use crate::model::backoff::Backoff;

/// Connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 8;
/// The longest request head (request line and headers) read.
const MAX_HEAD: usize = 8 * 1024;
/// Time allowed for the request head to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the answer to be taken.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the answer, how long and how much of the client's further input is read and dropped.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_MAX: usize = 64 * 1024;
/// The longest wait between two tries to bind the address.
const BIND_RETRY_MAX: Duration = Duration::from_secs(60);

/// The running server; stops (its task is aborted) when dropped.
pub struct MetricsServer(tokio::task::JoinHandle<()>);

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `metrics` on `address` (see the module doc) until the returned server is dropped.
pub fn start(address: SocketAddr, metrics: Arc<Metrics>) -> MetricsServer {
    if !address.ip().is_loopback() {
        tracing::warn!(
            %address,
            "serving metrics on a non-loopback address: anyone who can reach it can read them (there is no authentication)"
        );
    }
    MetricsServer(tokio::spawn(serve(address, metrics)))
}

async fn serve(address: SocketAddr, metrics: Arc<Metrics>) {
    let (listener, retried) = bind(address).await;
    let bound = listener.local_addr().unwrap_or(address);
    if retried {
        // The failure was an error in the log: say as loudly that it is over.
        tracing::warn!("serving Prometheus metrics on http://{bound}/metrics after all");
    } else {
        tracing::info!("serving Prometheus metrics on http://{bound}/metrics");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and the like: do not spin on them.
                tracing::debug!("metrics: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            answer(stream, &metrics).await;
        });
    }
}

/// The listener, once `address` could be bound (tried again with a backoff until then), and
/// whether it took more than one try.
async fn bind(address: SocketAddr) -> (TcpListener, bool) {
    let mut retry = Backoff::new(Duration::from_secs(1), BIND_RETRY_MAX);
    let mut said = false;
    loop {
        match TcpListener::bind(address).await {
            Ok(listener) => return (listener, said),
            Err(e) => {
                let delay = retry.next_delay();
                if !said {
                    tracing::error!(
                        %address,
                        "cannot serve metrics: {e}; trying again (every {} s at most), or pick another address with --metrics-address",
                        BIND_RETRY_MAX.as_secs()
                    );
                    said = true;
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Reads one request and answers it; any failure just closes the connection.
async fn answer(mut stream: TcpStream, metrics: &Metrics) {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(Unreadable::TooLarge)) => Head::TooLarge,
        Ok(Err(Unreadable::Closed)) | Err(_) => return,
    };
    let response = respond(&head, metrics);
    let written = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await;
    if matches!(written, Ok(Ok(()))) {
        linger(&mut stream).await;
    }
}

/// Reads what the client still sends (a body, the rest of an oversized head), briefly and
/// boundedly, before the connection closes: closing with unread input makes the kernel send a
/// reset, which can destroy the answer before the client has read it.
async fn linger(stream: &mut TcpStream) {
    let _ = tokio::time::timeout(LINGER, async {
        let mut buf = [0u8; 1024];
        let mut left = LINGER_MAX;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// What the request asked, as far as the answer depends on it.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Request { method: String, path: String },
    Malformed,
    TooLarge,
}

enum Unreadable {
    Closed,
    TooLarge,
}

/// The request head, up to the blank line.
async fn read_head(stream: &mut TcpStream) -> Result<Head, Unreadable> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|_| Unreadable::Closed)?;
        if n == 0 {
            return Err(Unreadable::Closed);
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find_blank_line(&head) {
            return Ok(parse_head(&head[..end]));
        }
        if head.len() > MAX_HEAD {
            return Err(Unreadable::TooLarge);
        }
    }
}

fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| {
        // Bare LFs, which the HTTP/1.1 spec lets a server accept.
        bytes.windows(2).position(|w| w == b"\n\n")
    })
}

/// `METHOD SP request-target SP HTTP/1.x`; the headers are not needed (no request here has a
/// body worth reading: the connection closes after the answer).
fn parse_head(head: &[u8]) -> Head {
    let Ok(text) = std::str::from_utf8(head) else {
        return Head::Malformed;
    };
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty() && target.starts_with('/') && version.starts_with("HTTP/1.") =>
        {
            let path = target.split(['?', '#']).next().unwrap_or(target);
            Head::Request {
                method: method.to_owned(),
                path: path.to_owned(),
            }
        }
        _ => Head::Malformed,
    }
}

/// The whole answer to `head`.
fn respond(head: &Head, metrics: &Metrics) -> Vec<u8> {
    match head {
        Head::Request { method, path } if path == "/metrics" => match method.as_str() {
            "GET" => response(
                "200 OK",
                CONTENT_TYPE,
                &[],
                metrics.render().as_bytes(),
                true,
            ),
            "HEAD" => response(
                "200 OK",
                CONTENT_TYPE,
                &[],
                metrics.render().as_bytes(),
                false,
            ),
            _ => response(
                "405 Method Not Allowed",
                "text/plain; charset=utf-8",
                &["Allow: GET, HEAD"],
                b"405 method not allowed: GET /metrics\n",
                true,
            ),
        },
        Head::Request { method, .. } => response(
            "404 Not Found",
            "text/plain; charset=utf-8",
            &[],
            b"404 page not found: the metrics are at /metrics\n",
            method != "HEAD",
        ),
        Head::Malformed => response(
            "400 Bad Request",
            "text/plain; charset=utf-8",
            &[],
            b"400 bad request\n",
            true,
        ),
        Head::TooLarge => response(
            "431 Request Header Fields Too Large",
            "text/plain; charset=utf-8",
            &[],
            b"431 request header fields too large\n",
            true,
        ),
    }
}

/// Status line, headers, and the body unless `with_body` is false (HEAD: the same headers).
fn response(
    status: &str,
    content_type: &str,
    extra: &[&str],
    body: &[u8],
    with_body: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for header in extra {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `request` to a server on a free loopback port and returns the whole answer.
    async fn exchange(request: &[u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let metrics = Arc::new(Metrics::default());
        let _server = start(address, metrics);
        let mut stream = loop {
            match TcpStream::connect(address).await {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8(answer).unwrap()
    }

    #[tokio::test]
    async fn get_metrics_is_a_scrape() {
        let answer = exchange(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n").await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(body.contains("\nkaas_join_build_info{version=\""), "{body}");
    }

    #[tokio::test]
    async fn head_has_the_headers_only() {
        let answer = exchange(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n").await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(!head.contains("Content-Length: 0\r\n"), "{head}");
        assert_eq!(body, "");
    }

    #[tokio::test]
    async fn elsewhere_is_404_and_other_methods_405() {
        let answer = exchange(b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
        let answer = exchange(b"GET /metricsx HTTP/1.1\n\n").await;
        assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
        let answer = exchange(b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi").await;
        assert!(
            answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\nAllow: GET, HEAD\r\n"), "{answer}");
    }

    #[tokio::test]
    async fn what_is_not_http_is_refused() {
        let answer = exchange(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 2 * MAX_HEAD));
        let answer = exchange(&huge).await;
        assert!(
            answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{answer}"
        );
    }

    #[test]
    fn request_lines() {
        let request = |method: &str, path: &str| Head::Request {
            method: method.into(),
            path: path.into(),
        };
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1"),
            request("GET", "/metrics")
        );
        assert_eq!(
            parse_head(b"GET /metrics?name[]=x HTTP/1.0\r\nHost: a"),
            request("GET", "/metrics")
        );
        assert_eq!(parse_head(b"GET /metrics HTTP/2"), Head::Malformed);
        assert_eq!(parse_head(b"GET  /metrics HTTP/1.1"), Head::Malformed);
        assert_eq!(
            parse_head(b"GET http://x/metrics HTTP/1.1"),
            Head::Malformed
        );
        assert_eq!(parse_head(b"\xff /metrics HTTP/1.1"), Head::Malformed);
    }

    /// An address in use is retried, not given up: the server answers once it is free.
    #[tokio::test]
    async fn an_address_in_use_is_tried_again() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let _server = start(address, Arc::new(Metrics::default()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(taken);
        let connected = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(mut s) = TcpStream::connect(address).await {
                    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
                    let mut answer = String::new();
                    s.read_to_string(&mut answer).await.unwrap();
                    return answer;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the server binds once the address is free");
        assert!(connected.starts_with("HTTP/1.1 200 OK\r\n"), "{connected}");
    }
}
