//! Live node state kept by the engine, and the registry of open link sessions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use shoal_scheduler::NodeView;
use shoal_transport::Outbound;
use shoal_types::time::UnixNanos;
use shoal_types::{Execution, NodeState, Resources};
use tokio::sync::mpsc::UnboundedSender;

/// One open link to a node.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Distinguishes a node's successive connections.
    pub id: u64,
    /// Frames to write to the node.
    pub tx: UnboundedSender<Outbound>,
}

/// Open sessions by node id, shared with the API handle (for log requests).
#[derive(Debug, Clone, Default)]
pub(crate) struct Links(Arc<Mutex<HashMap<String, Session>>>);

impl Links {
    pub fn insert(&self, node_id: &str, session: Session) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node_id.to_string(), session);
    }

    /// Removes the node's session if it is still `session_id` (a newer one may have replaced it).
    pub fn remove_if(&self, node_id: &str, session_id: Option<u64>) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(node_id) {
            Some(s) if session_id.is_none_or(|id| id == s.id) => {
                map.remove(node_id);
                true
            }
            _ => false,
        }
    }

    /// Sends a frame to a connected node; false when it is not connected.
    pub fn send(&self, node_id: &str, frame: impl Into<Outbound>) -> bool {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(node_id)
            .is_some_and(|s| s.tx.send(frame.into()).is_ok())
    }

    /// How many nodes have an open link.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_connected(&self, node_id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(node_id)
    }
}

/// What the engine knows about a node between store writes.
#[derive(Debug, Clone)]
pub(crate) struct LiveNode {
    pub state: NodeState,
    /// Last heartbeat or connection, Unix nanos.
    pub last_seen: UnixNanos,
    /// Resources reserved by non-terminal executions placed here.
    pub allocated: HashMap<String, Resources>,
}

impl LiveNode {
    pub fn new(state: NodeState, now: UnixNanos) -> Self {
        LiveNode {
            state,
            last_seen: now,
            allocated: HashMap::new(),
        }
    }

    pub fn free(&self) -> Resources {
        let used = self
            .allocated
            .values()
            .fold(Resources::default(), |acc, r| acc.add(r));
        self.state
            .info
            .compute_node_info
            .max_capacity
            .saturating_sub(&used)
    }

    /// Free capacity and the number of executions holding resources here.
    pub fn usage(&self) -> Usage {
        Usage {
            free: self.free(),
            executions: self.allocated.len() as u32,
        }
    }

    pub fn view(&self) -> NodeView {
        let mut state = self.state.clone();
        // Lets a job target nodes by id (fleet queries' `--node`).
        state.info.labels.insert(
            crate::query::NODE_ID_LABEL.to_string(),
            state.info.node_id.clone(),
        );
        NodeView {
            state,
            free: self.free(),
            last_seen: self.last_seen,
        }
    }
}

/// A node's capacity as the orchestrator accounts it: what its handshake offered minus what
/// non-terminal executions placed on it reserve. Placement uses the same figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    pub free: Resources,
    pub executions: u32,
}

/// The resources an execution reserves on its node while it is not terminal.
pub(crate) fn allocated(e: &Execution) -> Resources {
    e.allocated_resources
        .tasks
        .values()
        .fold(Resources::default(), |acc, r| acc.add(r))
}

/// Every known node.
pub(crate) type NodeTable = BTreeMap<String, LiveNode>;

/// The scheduler's view of every node, kept between evaluations.
///
/// Building it clones every node's state; evaluating a job after each batch of reports of a
/// fleet-wide query did that for 10,000 nodes per batch. Changes to one node's free capacity
/// or heartbeat patch its entry in place ([`NodeViews::refresh`]); a node joining, leaving or
/// changing membership drops the cache, rebuilt at the next evaluation.
#[derive(Debug, Default)]
pub(crate) struct NodeViews {
    views: Option<Vec<NodeView>>,
    index: HashMap<String, usize>,
}

impl NodeViews {
    /// Forgets the views (the set of nodes or their state changed).
    pub fn invalidate(&mut self) {
        self.views = None;
    }

    /// The views of `nodes`, built if needed.
    pub fn get(&mut self, nodes: &NodeTable) -> &[NodeView] {
        if self.views.is_none() {
            self.index = nodes
                .keys()
                .enumerate()
                .map(|(i, id)| (id.clone(), i))
                .collect();
            self.views = Some(nodes.values().map(LiveNode::view).collect());
        }
        self.views.as_deref().unwrap_or_default()
    }

    /// Replaces node `id`'s view after a change to its state (connection, labels), without
    /// rebuilding every other node's.
    pub fn replace(&mut self, nodes: &NodeTable, id: &str) {
        let (Some(views), Some(&i), Some(n)) = (&mut self.views, self.index.get(id), nodes.get(id))
        else {
            self.views = None;
            return;
        };
        views[i] = n.view();
    }

    /// Brings node `id`'s free capacity and last heartbeat up to date.
    pub fn refresh(&mut self, nodes: &NodeTable, id: &str) {
        let (Some(views), Some(&i), Some(n)) = (&mut self.views, self.index.get(id), nodes.get(id))
        else {
            return;
        };
        let v = &mut views[i];
        v.free = n.free();
        v.last_seen = n.last_seen;
        v.state
            .connection_state
            .last_heartbeat
            .clone_from(&n.state.connection_state.last_heartbeat);
    }
}
