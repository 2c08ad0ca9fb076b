//! Test harness for Shoal: an in-process cluster and a partitionable link.
//!
//! [`Cluster::start`] runs a real orchestrator, its REST API on an ephemeral 127.0.0.1 port
//! and N real compute agents that dial it over WebSocket, each with its own data dir and
//! labels. Agents can be stopped and started again on their data dir, and with
//! [`ClusterConfig::with_link_proxies`] each one reaches the orchestrator through a
//! [`LinkProxy`] that tests cut, freeze and restore to simulate network partitions.
//!
//! ```no_run
//! # async fn demo() -> Result<(), shoal_testkit::ClusterError> {
//! use shoal_testkit::{Cluster, ClusterConfig};
//! let cluster = Cluster::start(ClusterConfig::new(3)).await?;
//! cluster.wait_for_nodes(3).await?;
//! let nodes = cluster.client().nodes().await;
//! # Ok(()) }
//! ```
//!
//! [`moto::Moto`] starts a real S3-compatible server (with or without authentication) for
//! tests of S3 inputs and publishers.
//!
//! Meant as a dev-dependency of other crates' tests and of the benchmarks.

mod cluster;
mod hold;
pub mod moto;
mod proxy;

pub use cluster::{Cluster, ClusterConfig, ClusterError, ExecutorsFn, LabelsFn};
pub use hold::HoldExecutor;
pub use proxy::{LinkProxy, ProxyMode};
