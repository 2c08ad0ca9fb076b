//! Errors the orchestrator returns to API callers.

use shoal_store::StoreError;

/// Why an orchestrator request failed. Each variant maps to one Bacalhau error code.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// No job (or node, or execution) matches what was asked for.
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid; the message says how to fix it.
    #[error("{0}")]
    BadRequest(String),
    /// The request conflicts with the object's state (e.g. stopping a completed job).
    #[error("{0}")]
    Conflict(String),
    /// The orchestrator cannot serve the request now (node away, shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
