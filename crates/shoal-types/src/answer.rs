//! A structured answer: the rows an engine returns beside its logs (the `query` engine's
//! SQL result), carried in full to the orchestrator in the execution's [`RunOutput`].
//!
//! Logs stay what they are (a 2 KB head inline, the rest pulled from the node on demand);
//! an answer is data the orchestrator works with (fleet SQL streams it to clients and runs a
//! merge stage over it), so it travels whole. It is bounded by the node's guardrails (the
//! `query` engine's row and size limits): an answer over them is an error on the node, never
//! a truncated answer.
//!
//! Fleet SQL's wire types live here too: [`QueryRequest`] and the [`QueryEvent`]s a query
//! stream sends, shared by the orchestrator and its clients.
//!
//! [`RunOutput`]: crate::RunOutput

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::LabelSelectorRequirement;

/// Rows with named columns and what producing them cost.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Answer {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows; values in column order, typed JSON (numbers stay numbers, SQL `NULL` is `null`).
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Things the caller should know although the answer is complete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Wall-clock milliseconds the node spent producing it.
    #[serde(default)]
    pub wall_ms: u64,
}

/// A fleet query as the API receives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryRequest {
    /// One SELECT statement, SQLite dialect, over osquery's tables.
    pub query: String,
    /// Node label constraints (all nodes when empty).
    #[serde(default)]
    pub constraints: Vec<LabelSelectorRequirement>,
    /// Node ids to ask (all matching nodes when empty).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Seconds after which nodes that have not answered count as unreachable (default 60).
    #[serde(default)]
    pub timeout: u64,
    /// Row limit per node (the node's own limit when absent or higher).
    #[serde(default)]
    pub max_rows: Option<u64>,
    /// Second stage over the union of answers, as `SELECT ... FROM results ...`, or
    /// `auto`: the orchestrator splits an aggregate query into what nodes send (partial
    /// aggregates) and an exact merge of them.
    #[serde(default)]
    pub merge: Option<String>,
    /// The engine that answers on each node: `query` (host tables, the default) or
    /// `analytics` (SQL over the node's data files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// How a node's part of a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The node answered (possibly with no rows).
    Answered,
    /// The node could not answer: the query failed there (bad SQL, limit, refusal).
    Errored,
    /// The node did not answer before the timeout, or was lost.
    Unreachable,
}

/// One node's answer, as streamed to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeAnswer {
    /// The node.
    pub node_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Column names (answered only).
    #[serde(default)]
    pub columns: Vec<String>,
    /// Rows, typed JSON values in column order (answered only).
    #[serde(default)]
    pub rows: Vec<Vec<Json>>,
    /// Warnings the node gave with its answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Milliseconds the node spent answering.
    #[serde(default)]
    pub wall_ms: u64,
    /// Why there is no answer (errored and unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl NodeAnswer {
    /// An answer from `node_id` with no rows and no error yet.
    pub fn new(node_id: &str, outcome: Outcome) -> NodeAnswer {
        NodeAnswer {
            node_id: node_id.to_string(),
            outcome,
            columns: vec![],
            rows: vec![],
            warnings: vec![],
            wall_ms: 0,
            error: None,
        }
    }
}

/// The fleet coverage of a query, sent last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Nodes asked (matching at submission), including those not connected then.
    pub targeted: usize,
    /// Nodes that answered.
    pub answered: usize,
    /// Nodes where the query failed.
    pub errored: usize,
    /// Nodes that did not answer in time, were lost, or were disconnected at submission.
    pub unreachable: usize,
    /// Rows in all answers.
    pub rows: usize,
    /// Milliseconds from submission to the last answer.
    pub wall_ms: u64,
}

/// The merge stage's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeAnswer {
    /// The statement.
    pub sql: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Json>>,
    /// Why it failed, if it did (then `rows` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the answer may not be the fleet's exact one (an average of averages, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// How many nodes' answers it covers, of how many targeted.
    pub answered: usize,
    /// Nodes targeted.
    pub targeted: usize,
}

/// What a query stream yields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum QueryEvent {
    /// Sent first.
    Started {
        /// The query's id (`q-...`).
        query_id: String,
        /// The SQL.
        query: String,
        /// Nodes targeted: those asked plus matching nodes that are disconnected.
        targeted: usize,
    },
    /// One node's answer or failure.
    Answer(NodeAnswer),
    /// Sent last.
    Done {
        /// Coverage.
        coverage: Coverage,
        /// The merge stage, when one was asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        merge: Option<MergeAnswer>,
        /// The job's final state message.
        message: String,
    },
}
