//! The engine's clock and the history entries it stamps with it.
//!
//! Everything that records a time (job and execution times, history events, timers, query
//! deadlines) reads it here, so there is one place that says what "now" is.

use std::time::SystemTime;

use shoal_types::time::{UnixNanos, rfc3339, to_unix_nanos};
use shoal_types::{Event, HistoryType, Job, JobHistory};

/// The current time in Unix nanoseconds.
pub(crate) fn now() -> UnixNanos {
    to_unix_nanos(SystemTime::now())
}

/// A history entry stamped now.
pub(crate) fn history(job: &Job, execution_id: Option<&str>, event: Event) -> JobHistory {
    JobHistory {
        seq_num: 0,
        kind: if execution_id.is_some() {
            HistoryType::ExecutionLevel
        } else {
            HistoryType::JobLevel
        },
        job_id: job.id.clone(),
        job_version: job.version,
        execution_id: execution_id.unwrap_or_default().to_string(),
        time: event.timestamp.clone(),
        event,
    }
}

/// An event stamped now.
pub(crate) fn event(topic: &str, message: impl Into<String>) -> Event {
    Event::new(topic, message, rfc3339(now()))
}
