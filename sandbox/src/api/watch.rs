//! Lists and watches (Nodes, CertificateSigningRequests; the Secret list shares the list body).
//! A watch is a stream fed by a task: the backlog since `resourceVersion`, then live changes
//! from the store, until `timeoutSeconds`, an injected cut, a lagging receiver (410 Expired) or
//! the client going away. The watch faults of [`crate::faults`] act here.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::body::{base_response, json_response, status_response, Body};
use super::request::param;
use super::ApiRequest;
use crate::status::Status;
use crate::store::{Kind, Obj, Selector, Subscription};
use crate::Shared;

/// A watch without `timeoutSeconds` ends after this (the apiserver picks 30-60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// A `<Kind>List` body: `items` as the objects' list items, the store's resourceVersion.
pub(super) fn list_json<'a>(
    kind: Kind,
    rv: u64,
    items: impl IntoIterator<Item = &'a Obj>,
) -> String {
    let items: Vec<String> = items.into_iter().map(Obj::item_json).collect();
    format!(
        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"}},\"items\":[{}]}}",
        kind.kind(),
        kind.api_version(),
        items.join(",")
    )
}

/// A list or watch of a cluster-scoped kind, restricted to the field selector's name if any.
pub(super) fn list_or_watch(r: &ApiRequest, kind: Kind) -> Response<Body> {
    let selector = Selector {
        kind,
        namespace: None,
        name: r.attrs.selected_name.clone(),
    };
    if r.attrs.verb != "watch" {
        let (items, rv) = r.shared.store.list(&selector);
        return json_response(200, list_json(kind, rv, &items), r.pretty);
    }
    let watch = match WatchRequest::new(selector, &r.params) {
        Ok(watch) => watch,
        Err(status) => return status_response(&status, r.pretty),
    };
    let (tx, rx) = mpsc::channel(64);
    r.shared.spawn(run_watch(r.shared.clone(), watch, tx));
    base_response(200, "application/json", Body::Stream(rx))
}

struct WatchRequest {
    selector: Selector,
    from: Option<u64>,
    timeout: Duration,
    bookmarks: bool,
}

impl WatchRequest {
    /// From the query: `resourceVersion` (400 unless a number), `timeoutSeconds`,
    /// `allowWatchBookmarks`.
    fn new(selector: Selector, params: &[(String, String)]) -> Result<WatchRequest, Status> {
        let from = match param(params, "resourceVersion").filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                Status::bad_request(format!(
                    "resourceVersion: Invalid value: \"{v}\": must be a number"
                ))
            })?),
        };
        let timeout = param(params, "timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
        let bookmarks = matches!(param(params, "allowWatchBookmarks"), Some("true" | "1"));
        Ok(WatchRequest {
            selector,
            from,
            timeout,
            bookmarks,
        })
    }
}

fn error_line(status: &Status) -> Bytes {
    Bytes::from(format!(
        "{{\"type\":\"ERROR\",\"object\":{}}}\n",
        status.to_json()
    ))
}

/// A BOOKMARK: the object is the kind's empty object carrying only the resourceVersion, as Go
/// serializes it (recorded for CSRs: `200-csr-watch-bookmarks-before-timeout.jsonl`; other kinds
/// get the metadata part only).
fn bookmark_line(kind: Kind, rv: u64) -> Bytes {
    let rest = if kind == Kind::Csr {
        r#","spec":{"request":null,"signerName":""},"status":{}"#
    } else {
        ""
    };
    Bytes::from(format!(
        "{{\"type\":\"BOOKMARK\",\"object\":{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\",\"creationTimestamp\":null}}{rest}}}}}\n",
        kind.kind(),
        kind.api_version(),
    ))
}

/// When a watch that asked for them gets BOOKMARKs, as kube-apiserver's watch cache sends them
/// (fixtures `200-csr-watch-bookmark-before-timeout.jsonl`,
/// `200-csr-watch-bookmarks-before-timeout.jsonl`): once a minute, and 2 s before the timeout;
/// never as the stream ends. The real one sends them only now and then (its bookmark timer must
/// catch the watcher), sometimes a second one a second later; here always one, deterministic.
/// It carries the newest resourceVersion of the watched kind seen, matching or not.
struct Bookmarks {
    times: std::collections::VecDeque<Instant>,
    kind_rv: u64,
}

impl Bookmarks {
    fn new(w: &WatchRequest, start: Instant, from_rv: u64) -> Bookmarks {
        let mut times = std::collections::VecDeque::new();
        let before_timeout = (start + w.timeout)
            .checked_sub(Duration::from_secs(2))
            .filter(|t| *t > start);
        if w.bookmarks {
            let last = before_timeout.unwrap_or(start);
            let mut t = start + Duration::from_secs(60);
            while t < last {
                times.push_back(t);
                t += Duration::from_secs(60);
            }
            times.extend(before_timeout);
        }
        Bookmarks {
            times,
            kind_rv: from_rv,
        }
    }

    fn next(&self) -> Option<Instant> {
        self.times.front().copied()
    }

    /// A change of any object went by.
    fn saw(&mut self, kind: Kind, change: &crate::store::Change) {
        if change.kind == kind {
            self.kind_rv = self.kind_rv.max(change.rv);
        }
    }

    /// The time has come: the resourceVersion to bookmark.
    fn due(&mut self) -> u64 {
        self.times.pop_front();
        self.kind_rv
    }
}

/// The store's changes since `w.from`, or (after sending the 410 Expired line) `None` when they
/// are no longer kept or an injected fault says so.
async fn subscribe(
    shared: &Shared,
    w: &WatchRequest,
    tx: &mpsc::Sender<Bytes>,
) -> Option<Subscription> {
    let current = shared.store.resource_version();
    if shared.faults.take_watch_expired() {
        let oldest = current.saturating_sub(1);
        let _ = tx
            .send(error_line(&Status::expired(
                w.from.unwrap_or(oldest),
                oldest,
            )))
            .await;
        return None;
    }
    match shared.store.subscribe(&w.selector, w.from) {
        Ok(sub) => Some(sub),
        Err((requested, oldest)) => {
            let _ = tx
                .send(error_line(&Status::expired(requested, oldest)))
                .await;
            None
        }
    }
}

/// Feeds one watch stream: the backlog, then live changes, until the timeout, a cut, a lagging
/// receiver (410 Expired) or the client going away.
async fn run_watch(shared: Arc<Shared>, w: WatchRequest, tx: mpsc::Sender<Bytes>) {
    let Some(mut sub) = subscribe(&shared, &w, &tx).await else {
        return;
    };
    let start = Instant::now();
    let mut cut = shared.faults.watch_cut();
    let deadline_for = |cut: Option<Duration>| match cut {
        Some(c) if c < w.timeout => (start + c, true),
        _ => (start + w.timeout, false),
    };
    let (mut deadline, mut is_cut) = deadline_for(*cut.borrow_and_update());
    let mut budget = shared.faults.watch_event_limit();
    if budget == Some(0) {
        return;
    }
    if let Some(garbage) = shared.faults.watch_garbage() {
        let body: &[u8] = match garbage {
            crate::faults::WatchGarbage::Lines => {
                b"<html><body>502 Bad Gateway</body></html>\nnot json either\n"
            }
            crate::faults::WatchGarbage::NoNewline => b"{\"type\":\"ADDED\",\"object\":{\"kind\"",
        };
        let _ = tx.send(Bytes::from_static(body)).await;
        return;
    }
    let mut bookmarks = Bookmarks::new(&w, start, w.from.unwrap_or(sub.floor));
    for change in sub.backlog.drain(..) {
        bookmarks.saw(w.selector.kind, &change);
        if tx.send(Bytes::from(change.watch_line())).await.is_err()
            || crate::faults::spend_watch_event(&mut budget)
        {
            return;
        }
    }
    loop {
        let bookmark_at = bookmarks.next();
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tokio::time::sleep_until(bookmark_at.unwrap_or(deadline)), if bookmark_at.is_some() => {
                let rv = bookmarks.due();
                if !is_cut && tx.send(bookmark_line(w.selector.kind, rv)).await.is_err() {
                    return;
                }
            }
            changed = cut.changed() => {
                if changed.is_err() {
                    return;
                }
                (deadline, is_cut) = deadline_for(*cut.borrow_and_update());
            }
            received = sub.live.recv() => match received {
                Ok(change) => {
                    let send = change.rv > sub.floor && change.matches(&w.selector);
                    bookmarks.saw(w.selector.kind, &change);
                    if send
                        && (tx.send(Bytes::from(change.watch_line())).await.is_err()
                            || crate::faults::spend_watch_event(&mut budget))
                    {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let now = shared.store.resource_version();
                    let _ = tx.send(error_line(&Status::expired(sub.floor, now))).await;
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = tx.closed() => return,
        }
    }
}
