//! The API server's audit log (JSON lines, policy in [`super::objects::AUDIT_POLICY`]): what
//! tests and benches count requests with. With the `RequestReceived` stage omitted each request
//! has one `ResponseComplete` event (long-running ones, watches, also a `ResponseStarted`), so
//! distinct `auditID`s are requests.

use std::collections::BTreeSet;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One audit event, the fields the counts need.
#[derive(Debug, Clone)]
pub struct Event {
    pub audit_id: String,
    pub stage: String,
    pub verb: String,
    pub uri: String,
    pub user: String,
    pub user_agent: String,
    pub code: u16,
    /// The whole event (request and response objects for CSRs and Nodes of joining nodes).
    pub raw: Value,
}

impl Event {
    fn parse(line: &str) -> Option<Event> {
        let raw: Value = serde_json::from_str(line).ok()?;
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Some(Event {
            audit_id: s(&raw["auditID"]),
            stage: s(&raw["stage"]),
            verb: s(&raw["verb"]),
            uri: s(&raw["requestURI"]),
            user: s(&raw["user"]["username"]),
            user_agent: s(&raw["userAgent"]),
            code: raw["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
            raw,
        })
    }

    /// `VERB uri -> code (user)`, for listings.
    pub fn line(&self) -> String {
        format!(
            "{} {} -> {} ({})",
            self.verb, self.uri, self.code, self.user
        )
    }
}

/// The audit log file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn new(path: &Path) -> AuditLog {
        AuditLog {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the log ends now: events after this offset are newer.
    pub fn offset(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// The complete lines written after `offset`, parsed.
    pub fn events_since(&self, offset: u64) -> Vec<Event> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let mut text = String::new();
        if file.seek(SeekFrom::Start(offset)).is_err() || file.read_to_string(&mut text).is_err() {
            return Vec::new();
        }
        // A line still being written has no newline yet: leave it for the next read.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().filter_map(Event::parse).collect()
    }
}

/// One event per request (the first seen of each `auditID`), in log order.
pub fn requests(events: &[Event]) -> Vec<&Event> {
    let mut seen = BTreeSet::new();
    events
        .iter()
        .filter(|e| seen.insert(e.audit_id.as_str()))
        .collect()
}

/// Whether `e` was made by a joining node: anonymous, a bootstrap token, or `system:node:<node>`
/// (the control plane's own components are admins or service accounts).
pub fn by_joining_node(e: &Event, node: &str) -> bool {
    e.user == "system:anonymous"
        || e.user.starts_with("system:bootstrap:")
        || e.user == format!("system:node:{node}")
}
