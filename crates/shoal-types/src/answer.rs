//! A structured answer: the rows an engine returns beside its logs (the `query` engine's
//! SQL result), carried in full to the orchestrator in the execution's [`RunOutput`].
//!
//! Logs stay what they are (a 2 KB head inline, the rest pulled from the node on demand);
//! an answer is data the orchestrator works with (fleet SQL streams it to clients and runs a
//! merge stage over it), so it travels whole. It is bounded by the node's guardrails (the
//! `query` engine's row and size limits): an answer over them is an error on the node, never
//! a truncated answer.
//!
//! [`RunOutput`]: crate::RunOutput

use serde::{Deserialize, Serialize};

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
