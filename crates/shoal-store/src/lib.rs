//! Durable state, in embedded SQLite (WAL mode).
//!
//! Two stores share one approach: [`OrchestratorStore`] keeps jobs, executions, history, nodes
//! and the per-node outbox of the agent link; [`ComputeStore`] keeps a node's own executions and
//! its outbox towards the orchestrator. Rows hold the Bacalhau-shaped JSON of each object plus
//! the few columns that queries filter on, so the wire format and the stored format never drift.
//!
//! The orchestrator also keeps executions' logs as nodes ship them ([`LogPiece`]).
//!
//! [`AuditLog`] is a third, append-only file: who did what, and whether it was allowed.
//!
//! Every mutation that must be atomic (an execution update together with the outbox message it
//! causes and the link sequence it consumed) happens inside one [`Tx`], committed once.

mod audit;
mod compute;
mod db;
mod enrolment;
mod logs;
mod orchestrator;
mod outbox;
mod rollouts;
mod schedules;

pub use audit::{AuditEntry, AuditFilter, AuditLog};
pub use compute::{ComputeStore, LocalExecution, LocalState, ORCHESTRATOR_PEER};
pub use db::{StoreError, Tx};
pub use enrolment::NodeKey;
pub use logs::{JOB_LOG_CAP, LogPiece};
pub use orchestrator::{JobFilter, OrchestratorStore, Reader, SharedReader};
pub use schedules::ScheduleMarks;
