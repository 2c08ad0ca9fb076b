//! The orchestrator.
//!
//! One engine thread owns every state change (`engine/`): job submissions, stops, messages from
//! nodes, node connections and timers arrive as commands, are applied inside one SQLite
//! transaction together with the scheduler's plan for each affected job, and only after the
//! commit are the resulting link messages sent. Nothing is sent that is not stored, and nothing
//! stored is forgotten: the per-node outbox is replayed when a node reconnects.
//!
//! API reads do not go through the engine: they use a separate read-only connection (the
//! store's shared reader, behind [`Orchestrator::job`], [`Orchestrator::list_jobs`] and the
//! other getters), so a slow listing never delays scheduling.
//!
//! ```text
//!  API ──► Orchestrator (handle.rs) ──Command──► engine thread (engine/)
//!                │                                 │  one transaction per batch:
//!                │ reads: shared reader            │    jobs / membership / reports
//!                ▼                                 │    └─► evaluate.rs ─► shoal_scheduler::schedule
//!              store ◄─────────────────────────────┤  commit, then Outgoing::flush
//!                                                  ▼
//!  node ◄── link task (link.rs) ◄── Links ◄── frames (durable ones from the outbox)
//!  node ──► link task ──► Command (reports, acks, heartbeats) ──► engine
//!                    └──► logs / results / query registries (streams, never the engine)
//! ```
//!
//! # Module map
//!
//! Files import downward only: each file uses the ones listed above it, never one below.
//!
//! | file | holds |
//! |---|---|
//! | `error.rs` | [`OrchestratorError`] and the errors inside it |
//! | `config.rs` | [`OrchestratorConfig`] |
//! | `clock.rs` | `now()`, and the `event()` and `history()` entries stamped with it |
//! | `query/merge.rs` | a fleet query's coverage and merge stage (pure) |
//! | `query/registry.rs` | `LiveQueries` (open fleet queries) and [`QueryStream`] |
//! | `query/mod.rs` | [`query`]: the query as an ops job, and the task that ends a query |
//! | `nodes.rs` | `LiveNode`, `NodeViews` (the scheduler's view), `Links` (open sessions) |
//! | `streams.rs` | `StreamRegistry<E>`: streams a node serves over its link, by id |
//! | `samples.rs` | `FleetSamples` (each node's latest host sample) and the fleet report (pure) |
//! | `logs.rs`, `results.rs` | [`LogStream`], [`ResultStream`] and their registries |
//! | `command.rs` | `Command` (what the engine is asked), [`SubmitOutcome`], [`JobDetails`], … |
//! | `active.rs` | `ActiveJobs`: the engine's cache of jobs with work in flight |
//! | `state.rs` | `EngineState`, `Outgoing` (frames sent after commit), write-through writes |
//! | `evaluate.rs` | evaluating a job: schedule, then apply the plan |
//! | `engine/jobs.rs` | submit (with update by name) and stop |
//! | `engine/membership.rs` | connect, heartbeat, lost link, approve/reject/delete, labels |
//! | `engine/reports.rs` | messages from nodes: execution reports |
//! | `engine/fleet.rs` | sending a live fleet query to the nodes it reaches |
//! | `engine/mod.rs` | the engine loop: batching, group commit, `with_tx`, timers |
//! | `handle.rs` | [`Orchestrator`]: the public API the REST API and tests call |
//! | `link.rs` | [`serve_link`]: the orchestrator side of one node's link |

mod active;
mod clock;
mod command;
mod config;
mod engine;
pub mod error;
mod evaluate;
mod handle;
mod link;
mod logs;
pub mod metrics;
mod nodes;
pub mod query;
mod results;
pub mod samples;
mod state;
mod streams;

pub use command::{JobDetails, Placement, SubmitOptions, SubmitOutcome};
pub use config::OrchestratorConfig;
pub use error::OrchestratorError;
pub use handle::Orchestrator;
pub use link::serve_link;
pub use logs::{LogEvent, LogStream};
pub use query::{QueryEvent, QueryRequest, QueryStream};
pub use results::{ResultEvent, ResultStream};
