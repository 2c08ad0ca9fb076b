//! The compute agent.
//!
//! An agent dials its orchestrator (one outbound WebSocket: works behind NAT), introduces
//! itself, and then runs what it is sent. It keeps its own durable ledger ([`shoal_store::ComputeStore`]):
//! every state change of an execution is stored together with the report that announces it, and
//! reports are re-sent after a reconnect until the orchestrator acknowledges them. So the agent
//! keeps working while the orchestrator is unreachable, and nothing it produced is lost.
//!
//! ```text
//!   link ──Run──► admit ──► runner ──► executor.run ──► report (Completed | Failed | Cancelled)
//!     ▲                        │ logs: file + live followers
//!     └──── Update reports ◄───┘ (stored first, then sent; replayed on reconnect)
//! ```

mod admission;
mod agent;
mod capacity;
mod config;
mod env;
mod health;
mod host_sample;
mod inbox;
mod inputs;
mod ledger;
mod lifecycle;
mod link;
mod logs;
mod node;
mod publish;
mod requests;
mod runner;
pub mod trust;
mod websocket;

pub use agent::{Agent, AgentError};
pub use config::{AllowedPath, ComputeConfig, DEFAULT_PREPARE_TIMEOUT, TransferPolicy};
pub use host_sample::HostRoots;
pub use inputs::s3::S3Location;
