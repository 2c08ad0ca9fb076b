//! The life of an execution on this node: its states ([`LocalState`], kept in the ledger),
//! the moves between them, and how it ends.
//!
//! ```text
//!   Run ─admitted─► Accepted ──started──► Running ──completed──► Completed
//!    │               │   ▲                 │   ▲
//!    │               └───┘ progress        └───┘ publishing
//!    │               │                     │
//!    │               ├─cancelled───────────┼─cancelled─────────► Cancelled
//!    │               │                     │
//!    │               └─failed──────────────┴─failed────────────► Failed
//!    │                 interrupted           interrupted            ▲
//!    └─refused──────────────────────────────────────────────────────┘
//! ```
//!
//! - `admitted` / `refused`: admission's answer to a `Run` (`admission.rs`); refused ones are
//!   stored as `Failed` so that the same `Run` sent again is not admitted later.
//! - `progress`: a line of the engine's `Preparing` phase (image pull); the task has not
//!   started, so the execution stays `Accepted`.
//! - `publishing`: the task has exited and its results are being published; still `Running`.
//! - `interrupted`: the agent restarted while the execution had not ended; it cannot be
//!   resumed.
//! - Only an execution the engine ran can complete: whatever ends it before the engine starts
//!   (inputs that cannot be staged, a cancel, a failed image pull) is a failure or a cancel.
//! - `Completed`, `Cancelled` and `Failed` are final: no move leaves them.
//!
//! Every move is stored together with the report that announces it (`ledger.rs`); the
//! report's [`ComputeStateType`] is the orchestrator's name for the step.

use shoal_store::{LocalExecution, LocalState};
use shoal_transport::ExecutionReport;
use shoal_types::{ComputeStateType, Execution, RunOutput, SpecConfig};

/// What moves an execution, named as in the diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Admission took it.
    Admitted,
    /// Admission did not.
    Refused,
    /// A progress line of the `Preparing` phase.
    Progress,
    /// The engine started the task.
    Started,
    /// The task exited; its results are being published.
    Publishing,
    /// It ran to its end and its results are published.
    Completed,
    /// It was stopped on request.
    Cancelled,
    /// It ended without a result.
    Failed,
    /// The agent restarted before it ended.
    Interrupted,
}

impl Event {
    /// The state the event leads to.
    fn target(self) -> LocalState {
        match self {
            Event::Admitted | Event::Progress => LocalState::Accepted,
            Event::Started | Event::Publishing => LocalState::Running,
            Event::Completed => LocalState::Completed,
            Event::Cancelled => LocalState::Cancelled,
            Event::Refused | Event::Failed | Event::Interrupted => LocalState::Failed,
        }
    }
}

/// A move the diagram does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IllegalMove {
    /// Where the execution was; `None` when this node had no record of it.
    pub from: Option<LocalState>,
    /// What was asked of it.
    pub event: Event,
}

impl std::fmt::Display for IllegalMove {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.from {
            Some(state) => write!(f, "an execution in state {state:?}")?,
            None => write!(f, "an execution new to this node")?,
        }
        write!(f, " cannot move by {:?}", self.event)
    }
}

impl std::error::Error for IllegalMove {}

/// Where `event` takes an execution that is in state `from` (`None`: new to this node).
pub(crate) fn transition(
    from: Option<LocalState>,
    event: Event,
) -> Result<LocalState, IllegalMove> {
    use LocalState::{Accepted, Running};
    // The arrows of the diagram, grouped by the state they leave.
    let allowed = matches!(
        (from, event),
        (None, Event::Admitted | Event::Refused)
            | (Some(Accepted), Event::Progress | Event::Started)
            | (Some(Running), Event::Publishing | Event::Completed)
            | (
                Some(Accepted | Running),
                Event::Cancelled | Event::Failed | Event::Interrupted
            )
    );
    if allowed {
        Ok(event.target())
    } else {
        Err(IllegalMove { from, event })
    }
}

/// [`transition`] for the moves the agent itself makes, which are all in the diagram: one that
/// is not is a bug in the agent. It fails debug builds; a release build logs it and still
/// takes the event's state, so that the execution's end is recorded whatever the bug.
pub(crate) fn next(from: Option<LocalState>, event: Event) -> LocalState {
    transition(from, event).unwrap_or_else(|illegal| {
        debug_assert!(false, "{illegal}");
        tracing::error!(%illegal, "execution lifecycle broken; recorded anyway");
        event.target()
    })
}

/// Moves a stored execution by `event`.
pub(crate) fn advance(local: &mut LocalExecution, event: Event) {
    local.state = next(Some(local.state), event);
}

/// How an execution ended, with what its report carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ended {
    /// The engine ran it to its end and its results are published.
    Completed {
        /// Exit code, output heads and the engine's answer.
        output: RunOutput,
        /// Where the results went, if they went anywhere.
        published: Option<SpecConfig>,
    },
    /// It ended without a result.
    Failed {
        /// What went wrong and what to do about it.
        message: String,
        /// Whether another node (or a later try) may succeed.
        retryable: bool,
        /// What the task printed, when it got as far as running.
        output: Option<RunOutput>,
    },
    /// It was stopped on request.
    Cancelled {
        /// When it was stopped (`execution cancelled while staging inputs`).
        message: &'static str,
    },
}

impl Ended {
    /// A failure before the task ran (no output).
    pub fn failed(message: impl Into<String>, retryable: bool) -> Ended {
        Ended::Failed {
            message: message.into(),
            retryable,
            output: None,
        }
    }

    /// A cancel.
    pub fn cancelled(message: &'static str) -> Ended {
        Ended::Cancelled { message }
    }

    /// The move into the final state.
    pub fn event(&self) -> Event {
        match self {
            Ended::Completed { .. } => Event::Completed,
            Ended::Failed { .. } => Event::Failed,
            Ended::Cancelled { .. } => Event::Cancelled,
        }
    }

    /// The report announcing the end of `execution`.
    pub fn into_report(self, execution: &Execution) -> ExecutionReport {
        match self {
            Ended::Completed { output, published } => {
                let mut r = report(execution, ComputeStateType::Completed, "", false);
                r.run_output = Some(output);
                r.published = published;
                r
            }
            Ended::Failed {
                message,
                retryable,
                output,
            } => {
                let mut r = report(execution, ComputeStateType::Failed, &message, retryable);
                r.run_output = output;
                r
            }
            Ended::Cancelled { message } => {
                report(execution, ComputeStateType::Cancelled, message, false)
            }
        }
    }
}

/// A report about an execution.
pub(crate) fn report(
    e: &Execution,
    state: ComputeStateType,
    message: &str,
    retryable: bool,
) -> ExecutionReport {
    ExecutionReport {
        execution_id: e.id.to_string(),
        job_id: e.job_id.to_string(),
        state,
        message: message.to_string(),
        retryable,
        run_output: None,
        published: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATES: [Option<LocalState>; 6] = [
        None,
        Some(LocalState::Accepted),
        Some(LocalState::Running),
        Some(LocalState::Completed),
        Some(LocalState::Failed),
        Some(LocalState::Cancelled),
    ];

    const EVENTS: [Event; 9] = [
        Event::Admitted,
        Event::Refused,
        Event::Progress,
        Event::Started,
        Event::Publishing,
        Event::Completed,
        Event::Cancelled,
        Event::Failed,
        Event::Interrupted,
    ];

    fn execution() -> Execution {
        serde_json::from_value(serde_json::json!({
            "ID": "e-1", "NodeID": "n-1", "JobID": "j-1",
            "DesiredState": {"StateType": 1}, "ComputeState": {"StateType": 1},
        }))
        .unwrap()
    }

    /// Every move the diagram draws, and nothing else.
    #[test]
    fn the_moves_allowed_are_exactly_those_in_the_diagram() {
        use LocalState::*;
        let drawn = [
            (None, Event::Admitted, Accepted),
            (None, Event::Refused, Failed),
            (Some(Accepted), Event::Progress, Accepted),
            (Some(Accepted), Event::Started, Running),
            (Some(Accepted), Event::Cancelled, Cancelled),
            (Some(Accepted), Event::Failed, Failed),
            (Some(Accepted), Event::Interrupted, Failed),
            (Some(Running), Event::Publishing, Running),
            (Some(Running), Event::Completed, Completed),
            (Some(Running), Event::Cancelled, Cancelled),
            (Some(Running), Event::Failed, Failed),
            (Some(Running), Event::Interrupted, Failed),
        ];
        for from in STATES {
            for event in EVENTS {
                let want = drawn
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to);
                assert_eq!(transition(from, event).ok(), want, "{from:?} by {event:?}");
            }
        }
    }

    #[test]
    fn an_execution_the_engine_never_started_cannot_complete() {
        assert_eq!(
            transition(Some(LocalState::Accepted), Event::Completed),
            Err(IllegalMove {
                from: Some(LocalState::Accepted),
                event: Event::Completed
            })
        );
    }

    #[test]
    fn no_move_leaves_a_final_state() {
        for from in [
            LocalState::Completed,
            LocalState::Failed,
            LocalState::Cancelled,
        ] {
            assert!(from.is_terminal());
            for event in EVENTS {
                assert!(
                    transition(Some(from), event).is_err(),
                    "{from:?} by {event:?}"
                );
            }
        }
    }

    #[test]
    fn a_run_sent_again_for_a_known_execution_is_not_admitted_twice() {
        for from in STATES.into_iter().flatten() {
            assert!(transition(Some(from), Event::Admitted).is_err(), "{from:?}");
            assert!(transition(Some(from), Event::Refused).is_err(), "{from:?}");
        }
    }

    #[test]
    fn a_refused_move_says_where_the_execution_was_and_what_was_asked() {
        let err = transition(Some(LocalState::Completed), Event::Started).unwrap_err();
        assert_eq!(
            err.to_string(),
            "an execution in state Completed cannot move by Started"
        );
        let err = transition(None, Event::Progress).unwrap_err();
        assert_eq!(
            err.to_string(),
            "an execution new to this node cannot move by Progress"
        );
    }

    #[test]
    fn each_end_moves_to_its_own_final_state() {
        let ends = [
            (
                Ended::Completed {
                    output: RunOutput::default(),
                    published: None,
                },
                LocalState::Completed,
            ),
            (Ended::failed("boom", true), LocalState::Failed),
            (
                Ended::cancelled("execution cancelled"),
                LocalState::Cancelled,
            ),
        ];
        for (ended, state) in ends {
            assert_eq!(
                transition(Some(LocalState::Running), ended.event()),
                Ok(state)
            );
        }
    }

    #[test]
    fn a_completed_end_reports_its_output_and_where_it_was_published() {
        let output = RunOutput {
            stdout: "hello\n".into(),
            exit_code: 3,
            ..Default::default()
        };
        let published = Some(SpecConfig::of("local"));
        let r = Ended::Completed {
            output: output.clone(),
            published: published.clone(),
        }
        .into_report(&execution());
        assert_eq!((r.execution_id.as_str(), r.job_id.as_str()), ("e-1", "j-1"));
        assert_eq!(r.state, ComputeStateType::Completed);
        assert_eq!((r.message.as_str(), r.retryable), ("", false));
        assert_eq!(r.run_output, Some(output));
        assert_eq!(r.published, published);
    }

    #[test]
    fn a_failed_end_reports_its_message_whether_to_retry_and_any_output() {
        let r = Ended::failed("inputs could not be staged", true).into_report(&execution());
        assert_eq!(r.state, ComputeStateType::Failed);
        assert_eq!(r.message, "inputs could not be staged");
        assert!(r.retryable);
        assert_eq!(r.run_output, None);

        let output = RunOutput {
            exit_code: -1,
            error_msg: "engine gone".into(),
            ..Default::default()
        };
        let r = Ended::Failed {
            message: "engine gone".into(),
            retryable: false,
            output: Some(output.clone()),
        }
        .into_report(&execution());
        assert!(!r.retryable);
        assert_eq!(r.run_output, Some(output));
        assert_eq!(r.published, None);
    }

    #[test]
    fn a_cancelled_end_is_reported_cancelled_and_never_retryable() {
        let r = Ended::cancelled("execution cancelled while preparing").into_report(&execution());
        assert_eq!(r.state, ComputeStateType::Cancelled);
        assert_eq!(r.message, "execution cancelled while preparing");
        assert!(!r.retryable);
        assert_eq!((r.run_output, r.published), (None, None));
    }
}
