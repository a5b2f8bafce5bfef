//! The state the server, the controllers and the [`crate::Sandbox`] handle share: the
//! configuration, CA, object store, faults and bootstrap tokens, the request records, the
//! background tasks, and the authorization decision that combines the fixed kubeadm table
//! ([`crate::authz`]) with the stored RBAC objects ([`crate::rbac`]).

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::authz;
use crate::store::Store;
use crate::tokens::Token;
use crate::{approver, rbac, tls, ControlPlaneStyle, Faults, SandboxConfig};

/// One request as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The raw query string ("" when there is none).
    pub query: String,
    /// `anonymous`, `system:bootstrap:<id>`, `system:node:<name>` (any other user name from a
    /// CA-signed client certificate), or `unauthenticated` for a request answered 401.
    pub identity: String,
    /// The HTTP status; 0 when the connection was dropped by a fault.
    pub status: u16,
}

/// The request records kept (the oldest are dropped first).
const MAX_RECORDS: usize = 100_000;

/// State shared by the server, the controllers and the [`crate::Sandbox`] handle.
pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub url: String,
    pub ca: tls::Ca,
    pub store: Store,
    pub faults: Faults,
    pub kubeconfig: String,
    pub tokens: Mutex<BTreeMap<String, Token>>,
    /// Held across a re-signing's read of the tokens and its write of cluster-info, so that two
    /// at once cannot write an older set of signatures last.
    pub resigning: Mutex<()>,
    records: Mutex<VecDeque<RequestRecord>>,
    tasks: Mutex<JoinSet<()>>,
    runtime: tokio::runtime::Handle,
    pub approvers: Semaphore,
    /// [`SandboxConfig::certificate_lifetime`], as set now.
    pub certificate_lifetime: Mutex<Option<std::time::Duration>>,
}

/// Locks `m`, also after a panic elsewhere poisoned it (the state stays usable for the tests).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The state of a sandbox starting on the current tokio runtime: no tokens, no records.
    pub fn new(
        config: SandboxConfig,
        url: String,
        ca: tls::Ca,
        store: Store,
        kubeconfig: String,
    ) -> Shared {
        Shared {
            certificate_lifetime: Mutex::new(config.certificate_lifetime),
            config,
            url,
            ca,
            store,
            faults: Faults::default(),
            kubeconfig,
            tokens: Mutex::default(),
            resigning: Mutex::default(),
            records: Mutex::default(),
            tasks: Mutex::new(JoinSet::new()),
            runtime: tokio::runtime::Handle::current(),
            approvers: Semaphore::new(approver::WORKERS),
        }
    }

    /// Runs a background task that [`crate::Sandbox::shutdown`] (or dropping the sandbox) aborts.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(fut, &self.runtime);
    }

    /// Stops every background task (watch feeders, approvals, delayed signing).
    pub fn abort_tasks(&self) {
        lock(&self.tasks).abort_all();
    }

    pub fn record(&self, record: RequestRecord) {
        let mut records = lock(&self.records);
        if records.len() >= MAX_RECORDS {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// The requests recorded so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.records).iter().cloned().collect()
    }

    /// The authorization decision: the fixed kubeadm table, or in [`ControlPlaneStyle::Bare`]
    /// the stored RBAC objects (nodes still go through the Node authorizer's table).
    pub fn authorize(&self, user: &authz::User, attrs: &authz::Attrs) -> authz::Decision {
        if self.config.style == ControlPlaneStyle::Bare
            && user.node_name().is_none()
            && !user.in_group(authz::MASTERS)
        {
            return rbac::authorize(&self.store, user, attrs);
        }
        let nodeclient = self.nodeclient_group(user);
        authz::authorize(user, attrs, self.config.style, nodeclient.as_deref())
    }

    /// The requester's group bound to the nodeclient ClusterRole, if any.
    pub fn nodeclient_group(&self, user: &authz::User) -> Option<String> {
        if self.config.style == ControlPlaneStyle::Bare {
            return rbac::nodeclient_subject(&self.store, user);
        }
        let id = user.bootstrap_token_id()?;
        let tokens = lock(&self.tokens);
        let t = tokens.get(id)?;
        if t.expired() || !t.opts.can_nodeclient {
            return None;
        }
        Some(
            t.opts
                .groups
                .first()
                .cloned()
                .unwrap_or_else(|| authz::BOOTSTRAPPERS.to_string()),
        )
    }
}
