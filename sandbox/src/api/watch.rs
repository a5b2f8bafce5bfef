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

/// The BOOKMARK a watch that asked for bookmarks gets when its timeout ends it.
fn bookmark_line(kind: Kind, rv: u64) -> Bytes {
    Bytes::from(format!(
        "{{\"type\":\"BOOKMARK\",\"object\":{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"}}}}}}\n",
        kind.kind(),
        kind.api_version(),
    ))
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
    for change in sub.backlog.drain(..) {
        if tx.send(Bytes::from(change.watch_line())).await.is_err()
            || crate::faults::spend_watch_event(&mut budget)
        {
            return;
        }
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                if w.bookmarks && !is_cut {
                    let rv = shared.store.resource_version();
                    let _ = tx.send(bookmark_line(w.selector.kind, rv)).await;
                }
                return;
            }
            changed = cut.changed() => {
                if changed.is_err() {
                    return;
                }
                (deadline, is_cut) = deadline_for(*cut.borrow_and_update());
            }
            received = sub.live.recv() => match received {
                Ok(change) => {
                    if change.rv > sub.floor
                        && change.matches(&w.selector)
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
