//! The orchestrator.
//!
//! One engine thread owns every state change ([`engine`]): job submissions, stops, messages from
//! nodes, node connections and timers arrive as commands, are applied inside one SQLite
//! transaction together with the scheduler's plan for each affected job, and only after the
//! commit are the resulting link messages sent. Nothing is sent that is not stored, and nothing
//! stored is forgotten: the per-node outbox is replayed when a node reconnects.
//!
//! API reads do not go through the engine: they use a separate read-only connection
//! ([`Orchestrator::reader`]), so a slow listing never delays scheduling.

mod config;
mod engine;
mod error;
mod evaluate;
mod handle;
mod link;
mod logs;
mod nodes;
pub mod query;
mod results;

pub use config::OrchestratorConfig;
pub use error::OrchestratorError;
pub use handle::{JobDetails, Orchestrator, Placement, SubmitOptions, SubmitOutcome};
pub use link::serve_link;
pub use logs::{LogEvent, LogStream};
pub use query::{QueryEvent, QueryRequest, QueryStream};
pub use results::{ResultEvent, ResultStream};
