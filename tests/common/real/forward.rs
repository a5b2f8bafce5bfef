//! The API server's Service address, simulated: a TCP forwarder on a second loopback address
//! ([`super::pki::SERVICE_IP`]) to the API server, as kube-proxy forwards a Service's address to
//! its endpoints. The chart set-up names it in cluster-info, so a join must discover on the
//! API server's own address and then talk to this one, exactly as a hosted control plane's
//! nodes do. It counts the connections it forwarded, and can hold new ones (a test's way to
//! act between discovery and the rest of a join).
//!
//! Plain threads (one per connection direction), so it serves whatever runtime the test or
//! bench uses, and keeps serving while a test blocks on a child process.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// How long a held connection may wait before it is forwarded anyway (bounds a test's
/// mistake).
const HOLD_LIMIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Gate {
    held: Mutex<bool>,
    released: Condvar,
}

/// A running forwarder; dropping it stops accepting (open connections end with their peers).
pub struct Forwarder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    waiting: Arc<AtomicUsize>,
    gate: Arc<Gate>,
}

impl Forwarder {
    /// Listens on `listen` (port 0: any free one) and forwards every connection to `target`.
    pub fn start(listen: SocketAddr, target: SocketAddr) -> io::Result<Forwarder> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let fwd = Forwarder {
            addr,
            stop: Arc::default(),
            accepted: Arc::default(),
            waiting: Arc::default(),
            gate: Arc::default(),
        };
        let (stop, accepted, waiting, gate) = (
            fwd.stop.clone(),
            fwd.accepted.clone(),
            fwd.waiting.clone(),
            fwd.gate.clone(),
        );
        thread::Builder::new()
            .name(format!("forward-{addr}"))
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let (gate, waiting) = (gate.clone(), waiting.clone());
                    let _ = thread::Builder::new()
                        .name("forward-conn".into())
                        .spawn(move || {
                            let mut held = gate.held.lock().unwrap();
                            if *held {
                                waiting.fetch_add(1, Ordering::SeqCst);
                                held = gate
                                    .released
                                    .wait_timeout_while(held, HOLD_LIMIT, |held| *held)
                                    .unwrap()
                                    .0;
                                waiting.fetch_sub(1, Ordering::SeqCst);
                            }
                            drop(held);
                            if let Ok(upstream) = TcpStream::connect(target) {
                                pipe(conn, upstream);
                            }
                        });
                }
            })?;
        Ok(fwd)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections accepted and now held by [`Forwarder::hold`].
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// New connections wait (up to a minute) until [`Forwarder::release`].
    pub fn hold(&self) {
        *self.gate.held.lock().unwrap() = true;
    }

    pub fn release(&self) {
        *self.gate.held.lock().unwrap() = false;
        self.gate.released.notify_all();
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.release();
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies both ways until either side closes, then closes both.
fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let back = thread::spawn(move || {
        let (mut from, mut to) = (b2, a2);
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
    let (mut from, mut to) = (a, b);
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = back.join();
}
