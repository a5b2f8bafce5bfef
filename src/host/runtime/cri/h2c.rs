//! One gRPC unary call over a unix socket: HTTP/2 with prior knowledge (h2c), written by hand
//! because the crate's HTTP stack (reqwest, hyper without its `http2` feature) has no HTTP/2
//! and `h2` is not in the dependency tree.
//!
//! Just enough of RFC 9113 for one request on stream 1: the preface, our SETTINGS (windows large
//! enough that no WINDOW_UPDATE is needed for an answer of at most [`MAX_ANSWER`]), the request
//! headers as HPACK literals without Huffman coding (which every decoder must accept), one DATA
//! frame. The answer's DATA is collected; its headers are not decoded (that would need HPACK's
//! Huffman and dynamic table): a gRPC error comes as headers only, so "no message" is the error,
//! and the caller says which method the runtime did not answer. The peer's SETTINGS and PINGs
//! are acknowledged; RST_STREAM and GOAWAY end the call.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The largest answer accepted (a containerd Status with its config is a few KiB).
pub(super) const MAX_ANSWER: usize = 4 << 20;
/// Our flow-control windows: larger than any accepted answer, so none is ever exhausted.
const WINDOW: u32 = 8 << 20;
/// The largest frame a peer may send us (HTTP/2's default SETTINGS_MAX_FRAME_SIZE).
const MAX_FRAME: usize = 16 * 1024;
/// How long the runtime may take to say anything at all (see [`unary`]).
const FIRST_FRAME: Duration = Duration::from_secs(1);
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub(super) const DATA: u8 = 0x0;
pub(super) const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
pub(super) const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
pub(super) const WINDOW_UPDATE: u8 = 0x8;
pub(super) const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
pub(super) const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// One frame as read.
pub(super) struct Frame {
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) stream: u32,
    pub(super) payload: Vec<u8>,
}

/// Calls `method` (e.g. `/runtime.v1.RuntimeService/Status`) with the protobuf `request` on
/// the gRPC server at `socket`; returns the answer's protobuf message. The whole call must
/// finish within `timeout`.
pub(super) fn unary(
    socket: &Path,
    method: &str,
    request: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut conn = UnixStream::connect(socket)?;
    conn.set_write_timeout(Some(timeout))?;
    conn.write_all(PREFACE)?;
    let mut settings = Vec::new();
    settings.extend_from_slice(&[0x00, 0x02, 0, 0, 0, 0]); // ENABLE_PUSH = 0
    settings.extend_from_slice(&[0x00, 0x04]); // INITIAL_WINDOW_SIZE
    settings.extend_from_slice(&WINDOW.to_be_bytes());
    write_frame(&mut conn, SETTINGS, 0, 0, &settings)?;
    // The connection's window starts at 65 535 whatever SETTINGS say.
    write_frame(
        &mut conn,
        WINDOW_UPDATE,
        0,
        0,
        &(WINDOW - 65_535).to_be_bytes(),
    )?;
    let headers = header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]);
    write_frame(&mut conn, HEADERS, END_HEADERS, 1, &headers)?;
    write_frame(&mut conn, DATA, END_STREAM, 1, &grpc_message(request))?;
    // A gRPC server sends its SETTINGS as soon as it accepts: a socket that has not within
    // FIRST_FRAME (a listener nobody accepts on, a hung runtime) is not waited for any longer.
    let first = deadline.min(Instant::now() + FIRST_FRAME);
    let body = read_answer(&mut conn, first, deadline)?;
    grpc_unframe(&body)
}

/// Reads frames until stream 1 ends, the first by `first`, all by `deadline`; returns its DATA.
fn read_answer(conn: &mut UnixStream, first: Instant, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut by = first;
    loop {
        let left = by.saturating_duration_since(Instant::now());
        by = deadline;
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time"));
        }
        conn.set_read_timeout(Some(left))?;
        let frame = read_frame(conn).map_err(|e| match e.kind() {
            // What a read timeout on a socket is on Linux.
            io::ErrorKind::WouldBlock => {
                io::Error::new(io::ErrorKind::TimedOut, "no answer in time")
            }
            _ => e,
        })?;
        // Acknowledgements are best effort: a peer that has answered may close at once, and a
        // failed write then must not lose the answer already read.
        match frame.kind {
            SETTINGS if frame.flags & ACK == 0 => {
                let _ = write_frame(conn, SETTINGS, ACK, 0, &[]);
            }
            PING if frame.flags & ACK == 0 => {
                let _ = write_frame(conn, PING, ACK, 0, &frame.payload);
            }
            DATA if frame.stream == 1 => {
                body.extend_from_slice(unpad(&frame)?);
                if body.len() > MAX_ANSWER {
                    return Err(invalid(format!("answer larger than {MAX_ANSWER} bytes")));
                }
            }
            RST_STREAM if frame.stream == 1 => {
                return Err(invalid(format!(
                    "the runtime reset the stream (HTTP/2 error {})",
                    be_u32(&frame.payload)
                )))
            }
            GOAWAY => {
                return Err(invalid(format!(
                    "the runtime closed the connection (HTTP/2 error {})",
                    be_u32(frame.payload.get(4..).unwrap_or_default())
                )))
            }
            _ => {}
        }
        // HEADERS (response headers or trailers) and DATA can both end the stream.
        if frame.stream == 1
            && matches!(frame.kind, DATA | HEADERS)
            && frame.flags & END_STREAM != 0
        {
            return Ok(body);
        }
    }
}

/// The payload without its padding (DATA and HEADERS may be padded).
fn unpad(frame: &Frame) -> io::Result<&[u8]> {
    let p = &frame.payload;
    if frame.flags & PADDED == 0 {
        return Ok(p);
    }
    let pad = usize::from(*p.first().ok_or_else(|| invalid("empty padded frame"))?);
    let mut start = 1;
    if frame.kind == HEADERS && frame.flags & PRIORITY != 0 {
        start += 5;
    }
    p.get(start..p.len().saturating_sub(pad))
        .filter(|_| p.len() >= start + pad)
        .ok_or_else(|| invalid("padding longer than the frame"))
}

/// The one gRPC message of an answer: a 5-byte prefix (compressed flag, length) and the bytes.
fn grpc_unframe(body: &[u8]) -> io::Result<Vec<u8>> {
    let Some((prefix, rest)) = body.split_at_checked(5) else {
        return Err(invalid(
            "the runtime answered with no message (a gRPC error: the method may not be \
             implemented)",
        ));
    };
    if prefix[0] != 0 {
        return Err(invalid("the runtime answered with a compressed message"));
    }
    let len = be_u32(&prefix[1..]) as usize;
    rest.get(..len)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| invalid("the runtime's message is cut short"))
}

/// `message` with gRPC's 5-byte prefix (not compressed).
pub(super) fn grpc_message(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// An HPACK header block of literals without indexing, new names, no Huffman (RFC 7541 6.2.2).
pub(super) fn header_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.push(0x00);
        for s in [name, value] {
            hpack_int(&mut out, s.len(), 7);
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 5.1), the prefix's other bits zero.
fn hpack_int(out: &mut Vec<u8>, mut value: usize, n: u32) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(value as u8);
        return;
    }
    out.push(max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

pub(super) fn write_frame(
    w: &mut impl Write,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) -> io::Result<()> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut head = [0u8; 9];
    head[..3].copy_from_slice(&len[1..]);
    head[3] = kind;
    head[4] = flags;
    head[5..].copy_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    w.write_all(&head)?;
    w.write_all(payload)
}

pub(super) fn read_frame(r: &mut impl Read) -> io::Result<Frame> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head)?;
    let len = be_u32(&[0, head[0], head[1], head[2]]) as usize;
    if len > MAX_FRAME {
        return Err(invalid(format!(
            "a frame of {len} bytes (at most {MAX_FRAME})"
        )));
    }
    let mut payload = vec![0; len];
    r.read_exact(&mut payload)?;
    Ok(Frame {
        kind: head[3],
        flags: head[4],
        stream: be_u32(&head[5..]) & 0x7fff_ffff,
        payload,
    })
}

/// The first four bytes as a big-endian number (0 when fewer).
fn be_u32(b: &[u8]) -> u32 {
    b.get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}
