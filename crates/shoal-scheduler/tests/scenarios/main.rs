//! Scheduler scenarios: each test is a short story about one job on a small cluster.

mod batch;
mod daemon;
mod harness;
mod lifecycle;
mod ops;
mod props;
mod rollout_props;
mod rollouts;
mod service;
