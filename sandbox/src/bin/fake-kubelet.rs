//! A stand-in kubelet for the supervisor tests: no Kubernetes, only the behaviour a supervisor
//! sees (output, healthz, exits, signals), chosen by environment variables:
//!
//! - `FAKE_KUBELET_MODE`: `serve` (default: serve healthz until SIGTERM, exit 0), `crash` (print
//!   kubelet-like errors on stderr, exit 1 after `FAKE_KUBELET_AFTER_MS`), `exit` (exit at once
//!   with `FAKE_KUBELET_EXIT_CODE`), `hang` (serve healthz for `FAKE_KUBELET_AFTER_MS`, then accept
//!   connections without ever answering, staying alive), `stubborn` (serve, and ignore SIGTERM).
//!   Every mode but `stubborn` exits 0 on SIGTERM.
//! - `FAKE_KUBELET_CONTROL=FILE`: the mode is read from FILE at each start (so a test can change
//!   it between restarts), and each start appends `<unix ms> <pid>` to `FILE.starts`.
//! - `FAKE_KUBELET_HEALTHZ=127.0.0.1:PORT`: where to serve `GET /healthz` (none when unset).
//! - `FAKE_KUBELET_AFTER_MS` (default 100), `FAKE_KUBELET_EXIT_CODE` (default 0).
//!
//! The first stdout line is `fake-kubelet args: <argv>`, so tests can check the command line.
//! `fake-kubelet --version` prints `Kubernetes v1.32.0` (or `FAKE_KUBELET_VERSION`, e.g.
//! `v1.29.3`; `none` prints no version, as a binary that is not kubelet) and exits, as kubelet
//! does.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{signal, SignalKind};

/// What `fake-kubelet --version` says: the sandbox's Kubernetes version (`/version`).
const FAKE_VERSION: &str = "v1.32.0";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // As kubelet: kaas-join's preflight asks this before a join. Not a start (nothing recorded).
    if args == ["--version"] {
        match env("FAKE_KUBELET_VERSION").as_deref() {
            Some("none") => println!("fake-kubelet: no version here"),
            Some(version) => println!("Kubernetes {version}"),
            None => println!("Kubernetes {FAKE_VERSION}"),
        }
        return ExitCode::SUCCESS;
    }
    println!("fake-kubelet args: {}", args.join(" "));
    let control = env("FAKE_KUBELET_CONTROL").map(PathBuf::from);
    let from_file = control.as_ref().and_then(|p| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    });
    let mode = from_file
        .or_else(|| env("FAKE_KUBELET_MODE"))
        .unwrap_or_else(|| "serve".to_owned());
    if let Some(p) = &control {
        let starts = format!("{}.starts", p.display());
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let line = format!("{ms} {}\n", std::process::id());
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&starts)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("fake-kubelet: cannot append to {starts}: {e}");
        }
    }
    let after = Duration::from_millis(
        env("FAKE_KUBELET_AFTER_MS")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(100),
    );
    println!("fake-kubelet mode {mode} pid {}", std::process::id());
    let _ = std::io::stdout().flush();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fake-kubelet: cannot start a runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(run(&mode, after));
    let _ = std::io::stdout().flush();
    ExitCode::from(code)
}

async fn run(mode: &str, after: Duration) -> u8 {
    // Before anything can be observed (healthz), so SIGTERM is never lost or fatal by default.
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fake-kubelet: cannot handle SIGTERM: {e}");
            return 2;
        }
    };
    let answering = Arc::new(AtomicBool::new(true));
    if matches!(mode, "serve" | "hang" | "stubborn") {
        if let Some(addr) = env("FAKE_KUBELET_HEALTHZ") {
            if let Err(e) = serve_healthz(&addr, answering.clone()) {
                eprintln!("fake-kubelet: cannot serve healthz on {addr}: {e}");
                return 2;
            }
        }
    }
    match mode {
        "serve" => {
            term.recv().await;
            println!("fake-kubelet: SIGTERM, shutting down");
            0
        }
        "crash" => {
            eprintln!(
                "I1127 07:30:00.000000 server.go:487] \"Kubelet version\" kubeletVersion=\"fake\""
            );
            eprintln!("E1127 07:30:00.100000 run.go:72] \"command failed\" err=\"failed to load kubelet config file\"");
            eprintln!("E1127 failed to run Kubelet: misconfiguration");
            tokio::select! {
                _ = tokio::time::sleep(after) => 1,
                _ = term.recv() => 0,
            }
        }
        "exit" => env("FAKE_KUBELET_EXIT_CODE")
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0),
        "hang" => {
            tokio::select! {
                _ = tokio::time::sleep(after) => {}
                _ = term.recv() => return 0,
            }
            answering.store(false, Ordering::SeqCst);
            eprintln!("fake-kubelet: hanging (healthz no longer answers)");
            term.recv().await;
            0
        }
        "stubborn" => loop {
            term.recv().await;
            eprintln!("fake-kubelet: ignoring SIGTERM");
        },
        other => {
            eprintln!("fake-kubelet: unknown mode {other:?}");
            2
        }
    }
}

/// Serves `GET /healthz` on `addr` from a thread; once `answering` is false, connections are
/// accepted and held open without an answer (a hung kubelet).
fn serve_healthz(addr: &str, answering: Arc<AtomicBool>) -> std::io::Result<()> {
    // The previous instance may still be releasing the port: retry a little.
    let deadline = Instant::now() + Duration::from_secs(3);
    let listener = loop {
        match TcpListener::bind(addr) {
            Ok(l) => break l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    };
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if answering.load(Ordering::SeqCst) {
                std::thread::spawn(move || answer(stream));
            } else {
                held.push(stream);
            }
        }
    });
    Ok(())
}

fn answer(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if path == "/healthz" {
        ("200 OK", "ok")
    } else {
        ("404 Not Found", "not found")
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}
