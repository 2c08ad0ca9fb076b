//! Live fleet queries: choosing the nodes a query reaches and sending it to them.

use std::sync::Arc;

use shoal_transport::Frame;
use shoal_types::Job;
use tokio::sync::Notify;

use crate::query::{NodeAnswer, Outcome, QueryRequest};
use crate::state::EngineState;

/// Opens a live fleet query and sends it to every connected node it reaches; the matching
/// nodes that are away count as unreachable at once.
pub(super) fn ask_fleet(
    st: &mut EngineState,
    query_id: &str,
    job: &Job,
    request: &QueryRequest,
) -> Arc<Notify> {
    let reach = shoal_scheduler::reach(job, st.views.get(&st.nodes));
    let asked: Vec<String> = reach.connected.iter().map(|n| n.to_string()).collect();
    let away = reach
        .away
        .iter()
        .map(|r| NodeAnswer {
            error: Some(format!("not asked: {}", r.reason)),
            ..NodeAnswer::new(r.node_id.as_str(), Outcome::Unreachable)
        })
        .collect();
    let all_in = st.queries.open(query_id, request, &asked, away);
    let timeout_ms = job.task().timeouts.total_timeout.saturating_mul(1000);
    for node in &asked {
        let frame = Frame::Query {
            query_id: query_id.to_string(),
            sql: request.query.trim().to_string(),
            max_rows: request.max_rows,
            timeout_ms,
            engine: job.task().engine.kind.clone(),
        };
        if !st.links.send(node, frame) {
            // Its link closed after the engine last heard of it: nothing will come back.
            st.queries.node_gone(node);
        }
    }
    all_in
}
