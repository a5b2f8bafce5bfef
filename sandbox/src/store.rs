//! The object store: one global resourceVersion counter (like etcd's revision), the objects,
//! a bounded history of changes and the watch fan-out (a `tokio::sync::broadcast` channel).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::util;

/// How many changes a watch can resume from; older resourceVersions get 410 Expired.
pub(crate) const HISTORY: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    Csr,
    Node,
    ConfigMap,
    Event,
    Secret,
    Role,
    RoleBinding,
    ClusterRole,
    ClusterRoleBinding,
}

impl Kind {
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Csr => "CertificateSigningRequest",
            Kind::Node => "Node",
            Kind::ConfigMap => "ConfigMap",
            Kind::Event => "Event",
            Kind::Secret => "Secret",
            Kind::Role => "Role",
            Kind::RoleBinding => "RoleBinding",
            Kind::ClusterRole => "ClusterRole",
            Kind::ClusterRoleBinding => "ClusterRoleBinding",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Csr => "certificates.k8s.io/v1",
            Kind::Role | Kind::RoleBinding | Kind::ClusterRole | Kind::ClusterRoleBinding => {
                "rbac.authorization.k8s.io/v1"
            }
            _ => "v1",
        }
    }

    /// The RBAC kind served at `resource` (`roles`, `rolebindings`, ...).
    pub fn rbac(resource: &str) -> Option<Kind> {
        match resource {
            "roles" => Some(Kind::Role),
            "rolebindings" => Some(Kind::RoleBinding),
            "clusterroles" => Some(Kind::ClusterRole),
            "clusterrolebindings" => Some(Kind::ClusterRoleBinding),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ObjectMeta {
    pub name: String,
    #[serde(rename = "generateName", skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub uid: String,
    #[serde(rename = "resourceVersion")]
    pub resource_version: String,
    #[serde(rename = "creationTimestamp")]
    pub creation_timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ObjectMeta {
    /// Fresh metadata for a new object (uid and timestamp; the store sets resourceVersion).
    pub fn new(name: &str, namespace: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: name.to_string(),
            namespace: namespace.map(str::to_string),
            uid: util::uuid(),
            creation_timestamp: util::now(),
            ..ObjectMeta::default()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    #[serde(rename = "lastUpdateTime")]
    pub last_update_time: String,
    #[serde(rename = "lastTransitionTime")]
    pub last_transition_time: String,
}

impl Condition {
    pub fn new(type_: &str, reason: &str, message: &str) -> Condition {
        let now = util::now();
        Condition {
            type_: type_.into(),
            status: "True".into(),
            reason: reason.into(),
            message: message.into(),
            last_update_time: now.clone(),
            last_transition_time: now,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct CsrSpec {
    /// base64 of the PEM request, as JSON carries `[]byte`.
    pub request: String,
    #[serde(rename = "signerName")]
    pub signer_name: String,
    #[serde(rename = "expirationSeconds", skip_serializing_if = "Option::is_none")]
    pub expiration_seconds: Option<i64>,
    pub usages: Vec<String>,
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct CsrStatus {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Csr {
    pub metadata: ObjectMeta,
    pub spec: CsrSpec,
    pub status: CsrStatus,
    /// The DER of the PEM in `spec.request`, parsed once at creation.
    #[serde(skip)]
    pub request_der: Vec<u8>,
}

impl Csr {
    pub fn has_condition(&self, type_: &str) -> bool {
        self.status.conditions.iter().any(|c| c.type_ == type_)
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Node {
    pub metadata: ObjectMeta,
    pub spec: Value,
    pub status: Value,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConfigMap {
    pub metadata: ObjectMeta,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Event {
    pub metadata: ObjectMeta,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A Secret: `data` values are base64, as JSON carries `[]byte`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Secret {
    pub metadata: ObjectMeta,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    #[serde(rename = "type")]
    pub type_: String,
}

/// An object kept as its JSON fields besides metadata (Roles, RoleBindings, ClusterRoles,
/// ClusterRoleBindings: `rules`, `roleRef`, `subjects`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Generic {
    pub metadata: ObjectMeta,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub(crate) enum Obj {
    Csr(Csr),
    Node(Node),
    ConfigMap(ConfigMap),
    Event(Event),
    Secret(Secret),
    /// One of the RBAC kinds.
    Rbac(Kind, Generic),
}

/// Serializes an object with `kind` and `apiVersion` first, as the apiserver does for single
/// objects and watch events (list items carry neither).
#[derive(Serialize)]
struct Typed<'a, T: Serialize> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    #[serde(flatten)]
    object: &'a T,
}

fn to_json<T: Serialize>(kind: Option<Kind>, object: &T) -> String {
    let result = match kind {
        Some(k) => serde_json::to_string(&Typed {
            kind: k.kind(),
            api_version: k.api_version(),
            object,
        }),
        None => serde_json::to_string(object),
    };
    result.expect("stored objects always serialize")
}

impl Obj {
    pub fn kind(&self) -> Kind {
        match self {
            Obj::Csr(_) => Kind::Csr,
            Obj::Node(_) => Kind::Node,
            Obj::ConfigMap(_) => Kind::ConfigMap,
            Obj::Event(_) => Kind::Event,
            Obj::Secret(_) => Kind::Secret,
            Obj::Rbac(k, _) => *k,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Obj::Csr(o) => &o.metadata,
            Obj::Node(o) => &o.metadata,
            Obj::ConfigMap(o) => &o.metadata,
            Obj::Event(o) => &o.metadata,
            Obj::Secret(o) => &o.metadata,
            Obj::Rbac(_, o) => &o.metadata,
        }
    }

    pub(crate) fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Obj::Csr(o) => &mut o.metadata,
            Obj::Node(o) => &mut o.metadata,
            Obj::ConfigMap(o) => &mut o.metadata,
            Obj::Event(o) => &mut o.metadata,
            Obj::Secret(o) => &mut o.metadata,
            Obj::Rbac(_, o) => &mut o.metadata,
        }
    }

    fn encode(&self, kind: Option<Kind>) -> String {
        match self {
            Obj::Csr(o) => to_json(kind, o),
            Obj::Node(o) => to_json(kind, o),
            Obj::ConfigMap(o) => to_json(kind, o),
            Obj::Event(o) => to_json(kind, o),
            Obj::Secret(o) => to_json(kind, o),
            Obj::Rbac(_, o) => to_json(kind, o),
        }
    }

    /// The object as a GET or a watch event returns it.
    pub fn json(&self) -> String {
        self.encode(Some(self.kind()))
    }

    /// The object as a list item (no `kind`/`apiVersion`).
    pub fn item_json(&self) -> String {
        self.encode(None)
    }

    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json()).expect("stored objects are JSON")
    }
}

/// Which objects a list or watch selects: a kind, optionally a namespace and a name
/// (`fieldSelector=metadata.name=<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selector {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Selector {
    fn matches(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        self.kind == kind
            && self.namespace.as_deref().is_none_or(|n| n == namespace)
            && self.name.as_deref().is_none_or(|n| n == name)
    }
}

/// One committed change, as watchers see it.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub event_type: &'static str,
    /// The object (with kind/apiVersion) as JSON.
    pub json: String,
}

impl Change {
    pub fn watch_line(&self) -> String {
        format!(
            "{{\"type\":\"{}\",\"object\":{}}}\n",
            self.event_type, self.json
        )
    }

    pub fn matches(&self, sel: &Selector) -> bool {
        sel.matches(self.kind, &self.namespace, &self.name)
    }
}

type Key = (Kind, String, String);

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Obj>,
    history: VecDeque<Arc<Change>>,
    evicted_up_to: u64,
}

pub(crate) struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
}

/// A new watch: the events it must send first, then the live receiver.
pub(crate) struct Subscription {
    pub backlog: Vec<Arc<Change>>,
    pub live: broadcast::Receiver<Arc<Change>>,
    pub floor: u64,
}

fn key(kind: Kind, namespace: Option<&str>, name: &str) -> Key {
    (kind, namespace.unwrap_or("").to_string(), name.to_string())
}

impl Store {
    pub fn new(first_rv: u64) -> Store {
        Store {
            inner: Mutex::new(Inner {
                rv: first_rv,
                ..Inner::default()
            }),
            tx: broadcast::channel(HISTORY + 64).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn commit(&self, inner: &mut Inner, event_type: &'static str, obj: &Obj) -> Arc<Change> {
        let meta = obj.meta();
        let change = Arc::new(Change {
            rv: inner.rv,
            kind: obj.kind(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone(),
            event_type,
            json: obj.json(),
        });
        inner.history.push_back(change.clone());
        while inner.history.len() > HISTORY {
            if let Some(old) = inner.history.pop_front() {
                inner.evicted_up_to = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(change.clone());
        change
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Creates an object; `Err(())` if one of that kind, namespace and name exists.
    pub fn create(&self, mut obj: Obj) -> Result<Obj, ()> {
        let mut inner = self.lock();
        let k = key(
            obj.kind(),
            obj.meta().namespace.as_deref(),
            &obj.meta().name,
        );
        if inner.objects.contains_key(&k) {
            return Err(());
        }
        inner.rv += 1;
        obj.meta_mut().resource_version = inner.rv.to_string();
        self.commit(&mut inner, "ADDED", &obj);
        inner.objects.insert(k, obj.clone());
        Ok(obj)
    }

    /// Changes an object in place; `None` if it does not exist. `f` returns whether it changed
    /// anything (no change, no new resourceVersion, no event), or an error to pass on.
    pub fn update<E>(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Obj) -> Result<bool, E>,
    ) -> Option<Result<Obj, E>> {
        let mut inner = self.lock();
        let k = key(kind, namespace, name);
        let mut obj = inner.objects.get(&k)?.clone();
        match f(&mut obj) {
            Err(e) => Some(Err(e)),
            Ok(false) => Some(Ok(obj)),
            Ok(true) => {
                inner.rv += 1;
                obj.meta_mut().resource_version = inner.rv.to_string();
                self.commit(&mut inner, "MODIFIED", &obj);
                inner.objects.insert(k, obj.clone());
                Some(Ok(obj))
            }
        }
    }

    pub fn delete(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<Obj> {
        let mut inner = self.lock();
        let mut obj = inner.objects.remove(&key(kind, namespace, name))?;
        inner.rv += 1;
        obj.meta_mut().resource_version = inner.rv.to_string();
        self.commit(&mut inner, "DELETED", &obj);
        Some(obj)
    }

    pub fn get(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<Obj> {
        self.lock()
            .objects
            .get(&key(kind, namespace, name))
            .cloned()
    }

    /// The selected objects and the store's resourceVersion at that moment.
    pub fn list(&self, sel: &Selector) -> (Vec<Obj>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|((k, ns, n), _)| sel.matches(*k, ns, n))
            .map(|(_, o)| o.clone())
            .collect();
        (items, inner.rv)
    }

    /// Starts a watch from `from` (None or 0: the current state as synthetic ADDED events).
    /// `Err((requested, oldest))` when `from` is older than the kept history.
    pub fn subscribe(&self, sel: &Selector, from: Option<u64>) -> Result<Subscription, (u64, u64)> {
        let inner = self.lock();
        let live = self.tx.subscribe();
        let backlog = match from {
            None | Some(0) => inner
                .objects
                .iter()
                .filter(|((k, ns, n), _)| sel.matches(*k, ns, n))
                .map(|((k, ns, n), o)| {
                    Arc::new(Change {
                        rv: o.meta().resource_version.parse().unwrap_or(0),
                        kind: *k,
                        namespace: ns.clone(),
                        name: n.clone(),
                        event_type: "ADDED",
                        json: o.json(),
                    })
                })
                .collect(),
            Some(rv) => {
                if rv < inner.evicted_up_to {
                    return Err((rv, inner.evicted_up_to));
                }
                inner
                    .history
                    .iter()
                    .filter(|c| c.rv > rv && c.matches(sel))
                    .cloned()
                    .collect()
            }
        };
        Ok(Subscription {
            backlog,
            live,
            floor: inner.rv,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str) -> Obj {
        Obj::ConfigMap(ConfigMap {
            metadata: ObjectMeta::new(name, Some("ns")),
            data: BTreeMap::new(),
        })
    }

    #[test]
    fn resource_versions_and_history() {
        let store = Store::new(100);
        let sel = Selector {
            kind: Kind::ConfigMap,
            namespace: None,
            name: Some("a".into()),
        };
        store.create(cm("a")).unwrap();
        assert!(store.create(cm("a")).is_err());
        store.create(cm("b")).unwrap();
        let changed = store
            .update::<()>(Kind::ConfigMap, Some("ns"), "a", |_| Ok(true))
            .unwrap()
            .unwrap();
        assert_eq!(changed.meta().resource_version, "103");
        let sub = store.subscribe(&sel, Some(100)).unwrap();
        let types: Vec<_> = sub.backlog.iter().map(|c| c.event_type).collect();
        assert_eq!(types, ["ADDED", "MODIFIED"]);
        assert_eq!(sub.floor, 103);
        let sub = store.subscribe(&sel, None).unwrap();
        assert_eq!(sub.backlog.len(), 1);
        for i in 0..HISTORY + 5 {
            store.create(cm(&format!("x{i}"))).unwrap();
        }
        assert!(store.subscribe(&sel, Some(100)).is_err());
        let list = store.list(&Selector {
            kind: Kind::ConfigMap,
            namespace: Some("ns".into()),
            name: None,
        });
        assert_eq!(list.0.len(), HISTORY + 7);
    }
}
