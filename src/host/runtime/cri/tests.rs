//! The CRI client against a tiny HTTP/2 gRPC server on a unix socket in a temporary folder,
//! answering Status with containerd 1.6.20's recorded answer
//! (tests/fixtures/cri-status-containerd-1.6.pb) and RuntimeConfig as containerd 1.6 does:
//! headers only (grpc-status 12, unimplemented).

use std::io::Read as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread::JoinHandle;

use super::h2c::{
    grpc_message, header_block, read_frame, write_frame, DATA, END_HEADERS, END_STREAM, HEADERS,
    SETTINGS,
};
use super::*;
use crate::host::LinuxHost;

const CONTAINERD_1_6_STATUS: &[u8] =
    include_bytes!("../../../../tests/fixtures/cri-status-containerd-1.6.pb");
const PADDED: u8 = 0x8;
const PING: u8 = 0x6;

/// Serves `calls` connections on a socket in `dir`, each one call, then ends.
fn serve(dir: &Path, calls: usize) -> (PathBuf, JoinHandle<Vec<String>>) {
    let socket = dir.join("runtime.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        (0..calls)
            .map(|_| answer_one(listener.accept().unwrap().0))
            .collect()
    });
    (socket, server)
}

/// Reads one request, answers it as containerd 1.6 would; returns the method asked.
fn answer_one(mut conn: UnixStream) -> String {
    let mut preface = [0u8; 24];
    conn.read_exact(&mut preface).unwrap();
    assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    write_frame(&mut conn, SETTINGS, 0, 0, &[]).unwrap();
    let (mut block, mut request) = (Vec::new(), Vec::new());
    loop {
        let f = read_frame(&mut conn).unwrap();
        match f.kind {
            HEADERS => block.extend_from_slice(&f.payload),
            DATA => request.extend_from_slice(&f.payload),
            _ => {}
        }
        if f.stream == 1 && f.flags & END_STREAM != 0 {
            break;
        }
    }
    let block = String::from_utf8_lossy(&block).into_owned();
    let method = [RUNTIME_CONFIG, STATUS]
        .into_iter()
        .find(|m| block.contains(m))
        .expect("a CRI method in the request headers")
        .to_owned();
    write_frame(&mut conn, PING, 0, 0, &[7; 8]).unwrap();
    let headers = header_block(&[(":status", "200"), ("content-type", "application/grpc")]);
    if method == RUNTIME_CONFIG {
        let mut only = headers.clone();
        only.extend(header_block(&[("grpc-status", "12")]));
        write_frame(&mut conn, HEADERS, END_HEADERS | END_STREAM, 1, &only).unwrap();
        return method;
    }
    assert_eq!(
        request,
        grpc_message(STATUS_VERBOSE),
        "Status{{verbose: true}}"
    );
    write_frame(&mut conn, HEADERS, END_HEADERS, 1, &headers).unwrap();
    // In two DATA frames, the second padded, as a server may.
    let message = grpc_message(CONTAINERD_1_6_STATUS);
    let (first, second) = message.split_at(1000);
    write_frame(&mut conn, DATA, 0, 1, first).unwrap();
    let mut padded = vec![3];
    padded.extend_from_slice(second);
    padded.extend_from_slice(&[0, 0, 0]);
    write_frame(&mut conn, DATA, PADDED, 1, &padded).unwrap();
    let trailers = header_block(&[("grpc-status", "0")]);
    write_frame(&mut conn, HEADERS, END_HEADERS | END_STREAM, 1, &trailers).unwrap();
    method
}

#[test]
fn status_is_asked_over_http2_and_its_answer_comes_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, server) = serve(dir.path(), 1);
    let answer = unary(&socket, STATUS, STATUS_VERBOSE).unwrap();
    assert_eq!(answer, CONTAINERD_1_6_STATUS);
    assert_eq!(server.join().unwrap(), [STATUS]);
}

#[test]
fn containerd_1_6_is_asked_runtime_config_then_status() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, server) = serve(dir.path(), 2);
    let (driver, how) = ask_cgroup_driver(&LinuxHost, &socket).unwrap();
    assert_eq!(driver, CgroupDriver::Cgroupfs, "{how}");
    assert!(
        how.contains("SystemdCgroup = false for runtime runc"),
        "{how}"
    );
    assert_eq!(server.join().unwrap(), [RUNTIME_CONFIG, STATUS]);
}

#[test]
fn an_unimplemented_method_is_an_error_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, server) = serve(dir.path(), 1);
    let e = unary(&socket, RUNTIME_CONFIG, &[]).unwrap_err();
    assert!(e.to_string().contains("no message"), "{e}");
    server.join().unwrap();
}

#[test]
fn no_runtime_and_a_silent_one_are_errors_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let e = ask_cgroup_driver(&LinuxHost, &dir.path().join("none.sock")).unwrap_err();
    // Not there: RuntimeConfig fails at once and Status is not asked.
    assert!(e.contains("did not answer") && !e.contains("Status"), "{e}");
    // Accepts and never answers.
    let socket = dir.path().join("silent.sock");
    let _listener = UnixListener::bind(&socket).unwrap();
    let started = std::time::Instant::now();
    let e = h2c::unary(&socket, STATUS, STATUS_VERBOSE, Duration::from_millis(200)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // With the full timeout, a runtime that says nothing at all is given up after a second,
    // and not asked twice.
    let started = std::time::Instant::now();
    let e = ask_cgroup_driver(&LinuxHost, &socket).unwrap_err();
    assert!(e.contains("did not answer"), "{e}");
    assert!(started.elapsed() < Duration::from_millis(2500), "{e}");
}

/// A StatusResponse whose info has `config` = `json`.
pub(in crate::host::runtime) fn status_with_config(json: &str) -> Vec<u8> {
    let mut entry = vec![0x0a, 6];
    entry.extend_from_slice(b"config");
    entry.push(0x12);
    push_len(&mut entry, json.len());
    entry.extend_from_slice(json.as_bytes());
    let mut out = vec![0x12];
    push_len(&mut out, entry.len());
    out.extend(entry);
    out
}

fn push_len(out: &mut Vec<u8>, mut len: usize) {
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
}

#[test]
fn the_default_runtimes_systemd_cgroup_is_read_from_the_status_config() {
    let (d, how) = driver_from_status(CONTAINERD_1_6_STATUS).unwrap();
    assert_eq!(d, CgroupDriver::Cgroupfs, "{how}");
    let json = r#"{"containerd":{"defaultRuntimeName":"crun","runtimes":{
        "runc":{"options":{"SystemdCgroup":false}},"crun":{"options":{"SystemdCgroup":true}}}}}"#;
    let (d, how) = driver_from_status(&status_with_config(json)).unwrap();
    assert_eq!(d, CgroupDriver::Systemd, "{how}");
    assert!(how.contains("runtime crun"), "{how}");
    let unset = r#"{"containerd":{"runtimes":{"runc":{"options":null}}}}"#;
    let (d, how) = driver_from_status(&status_with_config(unset)).unwrap();
    assert_eq!(d, CgroupDriver::Cgroupfs);
    assert!(how.contains("containerd's default"), "{how}");
    // CRI-O's config holds only the pause image: it does not tell.
    let crio = r#"{"sandboxImage":"registry.k8s.io/pause:3.10"}"#;
    assert!(driver_from_status(&status_with_config(crio)).is_err());
    let odd = r#"{"containerd":{"runtimes":{"runc":{"options":{"SystemdCgroup":"yes"}}}}}"#;
    assert!(driver_from_status(&status_with_config(odd)).is_err());
}

#[test]
fn runtime_config_answers_are_read_with_systemd_as_the_zero_value() {
    assert_eq!(driver_from_runtime_config(&[]).unwrap(), None);
    let systemd = [0x0a, 0x00];
    assert_eq!(
        driver_from_runtime_config(&systemd).unwrap(),
        Some(CgroupDriver::Systemd)
    );
    let cgroupfs = [0x0a, 0x02, 0x08, 0x01];
    assert_eq!(
        driver_from_runtime_config(&cgroupfs).unwrap(),
        Some(CgroupDriver::Cgroupfs)
    );
    assert!(driver_from_runtime_config(&[0x0a, 0x02, 0x08, 0x07]).is_err());
}

#[test]
fn a_cut_or_garbled_answer_is_an_error_never_a_panic() {
    for end in 0..CONTAINERD_1_6_STATUS.len() {
        let _ = driver_from_status(&CONTAINERD_1_6_STATUS[..end]);
        let _ = driver_from_runtime_config(&CONTAINERD_1_6_STATUS[..end]);
    }
    let mut garbled = CONTAINERD_1_6_STATUS.to_vec();
    for (i, b) in garbled.iter_mut().enumerate().step_by(97) {
        *b ^= (i as u8) | 1;
    }
    let _ = driver_from_status(&garbled);
    // A length beyond the message, a varint without end.
    assert!(proto::fields(&[0x12, 0x7f, 0x00]).is_err());
    assert!(proto::fields(&[0x08, 0xff, 0xff]).is_err());
}
