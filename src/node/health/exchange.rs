//! One exchange with the API server, as the node: a job the reporter spawns so that its loop
//! never waits on the network. A job reads the Node first when the server's clock is not known
//! yet, then sends the status patch (`PATCH /api/v1/nodes/<name>/status`, strategic merge) and
//! the event requests that are due, and reports every answer in an [`Outcome`].

use crate::k8s::client::{ApiClient, ApiError};
use crate::model::node_conditions::{transitions_on_node, RecordedTransition};

use super::events::{EventResult, EventSend, EVENT_NAMESPACE};

/// Status patches and aggregating event patches merge (conditions by `type`).
const STRATEGIC_MERGE: &str = "application/strategic-merge-patch+json";

pub(super) struct Job {
    pub(super) client: ApiClient,
    pub(super) node: String,
    /// GET the Node first, for the server's clock (and the conditions already on it).
    pub(super) read_node: bool,
    /// The status patch ([`patch_body`](crate::model::node_conditions::patch_body)), if due.
    pub(super) patch: Option<serde_json::Value>,
    pub(super) events: Vec<EventSend>,
}

pub(super) struct Outcome {
    /// Reading the Node failed before the server's clock was learned.
    pub(super) date_error: Option<ApiError>,
    /// The server answered, but without a `Date` header (a proxy that strips it).
    pub(super) answered_without_date: bool,
    /// The conditions on the Node when the first exchange read it (what an earlier kaas-join
    /// wrote).
    pub(super) on_node: Option<Vec<RecordedTransition>>,
    pub(super) patch: Option<Result<(), ApiError>>,
    /// Each event request: the event's name, the count sent, the result.
    pub(super) events: Vec<(String, u32, EventResult)>,
}

/// Runs the job to its end (the reporter aborts it on shutdown; the client's timeout cuts a
/// request that hangs).
pub(super) async fn run_job(job: Job) -> Outcome {
    let mut out = Outcome {
        date_error: None,
        answered_without_date: false,
        on_node: None,
        patch: None,
        events: Vec::new(),
    };
    if job.read_node {
        // Our own Node (the node authorizer lets a node read it) rather than /version: the same
        // Date header, and the conditions an earlier kaas-join wrote, whose lastTransitionTime
        // a restart of kaas-join must not move. 404 (not registered yet) teaches the Date too.
        let result = job
            .client
            .get_bytes(&format!("/api/v1/nodes/{}", job.node))
            .await;
        if let Ok(body) = &result {
            out.on_node = Some(transitions_on_node(body));
        }
        if job.client.last_server_date().is_none() {
            match result {
                // Not reachable: nothing learned, retried with the backoff.
                Err(e) if e.status_code().is_none() => {
                    out.date_error = Some(e);
                    return out;
                }
                // kube-apiserver always sends Date; something in between stripped it. Go on
                // without the clock rather than asking again at once (a hot loop, FAULTS.md).
                _ => out.answered_without_date = true,
            }
        }
    }
    if let Some(body) = &job.patch {
        let path = format!("/api/v1/nodes/{}/status", job.node);
        let result = job
            .client
            .patch_json::<_, serde::de::IgnoredAny>(&path, STRATEGIC_MERGE, body)
            .await
            .map(|_| ());
        let down =
            matches!(&result, Err(e) if e.status_code().is_none_or(|c| c >= 500 || c == 429));
        out.patch = Some(result);
        if down {
            // The API server is not answering: the events would fail too.
            return out;
        }
    }
    for ev in job.events {
        let result = send_event(&job.client, &ev).await;
        out.events.push((ev.name, ev.count, result));
    }
    out
}

/// One event request: a create, or a PATCH that aggregates into the existing event.
async fn send_event(client: &ApiClient, ev: &EventSend) -> EventResult {
    let collection = format!("/api/v1/namespaces/{EVENT_NAMESPACE}/events");
    let result = if ev.create {
        client
            .post_json::<_, serde::de::IgnoredAny>(&collection, &ev.body)
            .await
    } else {
        client
            .patch_json::<_, serde::de::IgnoredAny>(
                &format!("{collection}/{}", ev.name),
                STRATEGIC_MERGE,
                &ev.body,
            )
            .await
    };
    match result {
        Ok(_) => EventResult::Sent,
        // A create whose answer was lost earlier: it exists, aggregate into it next time.
        Err(e) if ev.create && e.status_code() == Some(409) => EventResult::Exists,
        Err(e) if !ev.create && e.status_code() == Some(404) => EventResult::Gone,
        Err(e) => EventResult::Failed(e),
    }
}
