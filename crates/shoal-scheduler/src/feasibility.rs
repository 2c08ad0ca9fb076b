//! Feasibility: can this node run this job now, and if not, why not.
//!
//! The checks are small functions run in a fixed order; the first that fails gives the node's
//! reason. The order is chosen so that the reason shown is the one an operator should act on
//! first, and so that a reason is *transient* (it may go away by itself: the node is busy or
//! away) only when nothing permanent stands in the way before it. A job fails at submission
//! only when every node's reason is permanent.

use shoal_types::time::rfc3339;
use shoal_types::{ConnectionStatus, Job, Membership, NodeId, NodeType, Resources, Task, selector};

use crate::{NodeRejection, NodeView};

/// The kind of a reason, so that messages can group them ("2 nodes busy").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Not a compute node, or not approved by an operator.
    NotApproved,
    /// An operator cordoned the node: no new work until `node uncordon`.
    Cordoned,
    /// The link is down.
    Disconnected,
    /// Engine, publisher or input type not offered.
    Unsupported,
    /// Labels do not satisfy the job's constraints.
    Constraint,
    /// The job needs more than the node has in total.
    TooLarge,
    /// The job fits the node, but not what is free right now.
    Busy,
    /// The node was ruled out for this piece of work by its history (it refused it before).
    Excluded,
}

/// Why one node was not chosen.
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub node_id: NodeId,
    pub kind: Kind,
    pub reason: String,
}

impl Rejection {
    pub fn new(node_id: NodeId, kind: Kind, reason: impl Into<String>) -> Self {
        Rejection {
            node_id,
            kind,
            reason: reason.into(),
        }
    }

    /// Whether the reason may go away without anyone changing the node or the job.
    ///
    /// A node waiting for approval is *not* transient: it takes an operator's action, like a
    /// missing label does, and a job that only such nodes could run should say so at once
    /// rather than wait silently (a job with a `QueueTimeout` still waits for the approval).
    pub fn transient(&self) -> bool {
        // A cordon is a maintenance window: work waits for the node to come back (as a
        // Kubernetes pod stays Pending), rather than failing at once.
        matches!(self.kind, Kind::Disconnected | Kind::Busy | Kind::Cordoned)
    }

    pub fn to_public(&self) -> NodeRejection {
        NodeRejection {
            node_id: self.node_id.clone(),
            reason: self.reason.clone(),
            transient: self.transient(),
        }
    }
}

/// What the question is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// May a new execution be placed on the node now?
    Place,
    /// May an execution already on the node keep running? Connection and free capacity do not
    /// matter here: a disconnected node keeps working, and the execution's own reservation is
    /// already out of the node's free capacity.
    Keep,
}

/// Runs the checks in order; the first failure is the node's reason.
pub(crate) fn check(
    node: &NodeView,
    job: &Job,
    request: &Resources,
    free: &Resources,
    purpose: Purpose,
) -> Result<(), Rejection> {
    static_checks(node, job, request, purpose)?;
    if purpose == Purpose::Place
        && let Err((kind, reason)) = free_capacity(request, free)
    {
        return Err(Rejection::new(node.id(), kind, reason));
    }
    Ok(())
}

/// [`check`] for placement without the free-capacity test: what holds for every piece of a
/// job's work alike, so a plan placing many pieces runs it once per node, not once per piece.
pub(crate) fn check_static(
    node: &NodeView,
    job: &Job,
    request: &Resources,
) -> Result<(), Rejection> {
    static_checks(node, job, request, Purpose::Place)
}

/// Where a live fleet query goes: every node that could run `job` (membership, engine,
/// labels), split into those connected now and those away, with why. It reserves nothing, so
/// capacity is not looked at.
pub fn reach(job: &Job, nodes: &[NodeView]) -> crate::Reach {
    let mut reach = crate::Reach::default();
    let nothing = Resources::default();
    for node in nodes {
        if static_checks(node, job, &nothing, Purpose::Keep).is_err() {
            continue;
        }
        match connected(node) {
            Ok(()) => reach.connected.push(node.id()),
            Err((kind, reason)) => reach
                .away
                .push(Rejection::new(node.id(), kind, reason).to_public()),
        }
    }
    reach
}

/// Why a node that passes [`check_static`] cannot take `request` with `free` left.
pub(crate) fn busy(node: &NodeView, request: &Resources, free: &Resources) -> Option<Rejection> {
    free_capacity(request, free)
        .err()
        .map(|(kind, reason)| Rejection::new(node.id(), kind, reason))
}

fn static_checks(
    node: &NodeView,
    job: &Job,
    request: &Resources,
    purpose: Purpose,
) -> Result<(), Rejection> {
    let reject = |(kind, reason): (Kind, String)| Rejection::new(node.id(), kind, reason);
    let task = job.tasks.first();
    // Membership first: an operator's decision about the node outweighs anything it offers,
    // and a node that may not receive work has nothing else worth reporting.
    approved(node).map_err(reject)?;
    // Connection before the static checks: what a disconnected node advertised may have
    // changed by the time it returns, so its absence is the reason that matters.
    if purpose == Purpose::Place {
        if node.state.cordoned {
            return Err(reject((
                Kind::Cordoned,
                format!(
                    "node cordoned by an operator; `shoal node uncordon {}` lets it take new work",
                    node.id()
                ),
            )));
        }
        connected(node).map_err(reject)?;
    }
    if let Some(task) = task {
        // Capabilities before labels: a missing engine is the most common and the most
        // specific answer to "why not this node", and Bacalhau users grep for its wording.
        engine(node, task).map_err(reject)?;
        publisher(node, task).map_err(reject)?;
        inputs(node, task).map_err(reject)?;
        // After the input types: a node that cannot stage `local` at all says so first.
        local_data(node, task).map_err(reject)?;
    }
    constraints(node, job).map_err(reject)?;
    // Total capacity before free capacity: only a job that could ever fit may wait for room.
    total_capacity(node, request).map_err(reject)
}

type Check = Result<(), (Kind, String)>;

fn approved(node: &NodeView) -> Check {
    if node.state.info.node_type != NodeType::Compute {
        return Err((
            Kind::NotApproved,
            "node is an orchestrator, not a compute node".into(),
        ));
    }
    match node.state.membership {
        Membership::Approved => Ok(()),
        other => Err((
            Kind::NotApproved,
            format!("node not approved (membership {other})"),
        )),
    }
}

fn connected(node: &NodeView) -> Check {
    if node.state.connection == ConnectionStatus::Connected {
        return Ok(());
    }
    let since = &node.state.connection_state.disconnected_since;
    let since = if since.is_empty() {
        rfc3339(node.last_seen)
    } else {
        since.clone()
    };
    Err((
        Kind::Disconnected,
        format!("node disconnected since {since}"),
    ))
}

fn engine(node: &NodeView, task: &Task) -> Check {
    let info = &node.state.info.compute_node_info;
    let kind = &task.engine.kind;
    if offers(&info.execution_engines, kind) {
        return Ok(());
    }
    // An engine the node knows but does not offer comes with the node's reason, which says
    // what to change on the node (`exec disabled (start the agent with --enable-exec)`): that
    // is the answer, not the list of engines it does offer.
    let reason = match info
        .unavailable_engines
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(kind))
    {
        Some((_, why)) => why.clone(),
        None => unsupported("", kind, &info.execution_engines),
    };
    Err((Kind::Unsupported, reason))
}

fn publisher(node: &NodeView, task: &Task) -> Check {
    let Some(publisher) = task
        .publisher
        .as_ref()
        .filter(|p| !p.kind.trim().is_empty())
    else {
        return Ok(());
    };
    let offered = &node.state.info.compute_node_info.publishers;
    if offers(offered, &publisher.kind) {
        return Ok(());
    }
    Err((
        Kind::Unsupported,
        unsupported("publisher ", &publisher.kind, offered),
    ))
}

fn inputs(node: &NodeView, task: &Task) -> Check {
    let offered = &node.state.info.compute_node_info.storage_sources;
    for input in &task.input_sources {
        let kind = &input.source.kind;
        if !kind.trim().is_empty() && !offers(offered, kind) {
            return Err((Kind::Unsupported, unsupported("input ", kind, offered)));
        }
    }
    Ok(())
}

/// Data locality: a `local` input can only be read on a node whose advertised allow-list
/// covers its path (read-write when the job asks for it). Whether the path exists is checked
/// by the node at admission; a node that lacks it refuses and the work moves on.
fn local_data(node: &NodeView, task: &Task) -> Check {
    let allowed = &node.state.info.compute_node_info.allow_listed_local_paths;
    for input in &task.input_sources {
        if !(input.source.is("local") || input.source.is("localDirectory")) {
            continue;
        }
        let Some(path) = input.source.str_param("SourcePath") else {
            continue;
        };
        let rw = input
            .source
            .param("ReadWrite")
            .and_then(|v| {
                v.as_bool()
                    .or_else(|| v.as_str().map(|s| s.eq_ignore_ascii_case("true")))
            })
            .unwrap_or(false);
        let granted = allowed.iter().any(|a| {
            let (base, mode) = match a.rsplit_once(':') {
                Some((p, m @ ("ro" | "rw"))) => (p, m),
                _ => (a.as_str(), "ro"),
            };
            path_under(path, base) && (!rw || mode == "rw")
        });
        if !granted {
            let list = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            return Err((
                Kind::Unsupported,
                format!(
                    "does not have the data: {path}{} is not under its allow-listed paths ({list})",
                    if rw { " (read-write)" } else { "" }
                ),
            ));
        }
    }
    Ok(())
}

/// `path` is `base` or below it, comparing normalised components.
fn path_under(path: &str, base: &str) -> bool {
    fn norm(p: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for part in p.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    }
    path.starts_with('/') && norm(path).starts_with(&norm(base))
}

fn constraints(node: &NodeView, job: &Job) -> Check {
    match selector::first_mismatch(&job.constraints, &node.state.info.labels) {
        None => Ok(()),
        Some(why) => Err((Kind::Constraint, why)),
    }
}

fn total_capacity(node: &NodeView, request: &Resources) -> Check {
    let max = &node.state.info.compute_node_info.max_capacity;
    match request.shortfall(max) {
        None => Ok(()),
        Some((dim, need, have)) => Err((
            Kind::TooLarge,
            format!("job needs {need} {dim}, node has {have} in total"),
        )),
    }
}

fn free_capacity(request: &Resources, free: &Resources) -> Check {
    match request.shortfall(free) {
        None => Ok(()),
        Some((dim, need, have)) => {
            Err((Kind::Busy, format!("job needs {need} {dim}, {have} free")))
        }
    }
}

fn offers(offered: &[String], kind: &str) -> bool {
    offered.iter().any(|o| o.eq_ignore_ascii_case(kind))
}

/// Bacalhau's wording, which users and scripts look for: `does not support X, only a, b`.
fn unsupported(what: &str, kind: &str, offered: &[String]) -> String {
    if offered.is_empty() {
        format!("does not support {what}{kind}, only none")
    } else {
        format!("does not support {what}{kind}, only {}", offered.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::path_under;

    #[test]
    fn local_paths_match_their_grant_and_nothing_beside_it() {
        assert!(path_under("/data/set/a.csv", "/data"));
        assert!(path_under("/data", "/data/"));
        assert!(!path_under("/database", "/data"));
        assert!(!path_under("/data/../etc", "/data"));
        assert!(!path_under("data/x", "/data"));
    }
}
