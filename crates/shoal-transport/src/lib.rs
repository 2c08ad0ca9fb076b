//! The agent link's vocabulary.
//!
//! A compute node dials `ws(s)://orchestrator/api/v1/agent/link` (one outbound connection, so it
//! works behind NAT and proxies) and both sides exchange [`Frame`]s as JSON text messages:
//!
//! ```text
//!  compute                                   orchestrator
//!     │── Hello{node info, applied_seq} ──────────►│   applied_seq: last orchestrator message
//!     │◄───────────── Welcome{applied_seq} ────────│   the node applied (and vice versa)
//!     │◄── Msg{seq, Run|Cancel} ── Ack{seq} ──────►│   both directions: persisted before send,
//!     │── Msg{seq, Update} ──► ◄── Ack{seq} ───────│   resent after reconnect until acked,
//!     │── Heartbeat{free, running, host sample} ──►│   applied once (seq dedupe)
//!     │◄── LogRequest / ──► LogLine, LogEnd ───────│   ephemeral: logs pulled over the link
//!     │◄── ResultRequest / ──► ResultStart,        │   ephemeral: a `local` result archive
//!     │    ResultChunk…, ResultEnd ◄── ResultAck ──│   pulled in chunks, at most
//!     │                                            │   RESULT_WINDOW chunks unacknowledged
//! ```
//!
//! Durable [`Message`]s carry work and its outcome; everything else is ephemeral. The frames are
//! plain serde types so that a second transport (NATS for very large fleets) can carry them
//! unchanged.
//!
//! | file | what |
//! |---|---|
//! | `lib.rs` | the vocabulary: [`Frame`], [`Message`], reports |
//! | `ledger.rs` | [`ledger`]: push, apply once, ack, replay, over a [`LedgerStore`] |
//! | `link.rs` | the [`Link`] seam a carrier plugs into, [`Outbound`], in-memory [`pair`]s |

pub mod ledger;
mod link;

pub use ledger::{LedgerStore, Pending};
pub use link::{Dialer, Link, LinkError, MemoryLink, Outbound, pair};

use serde::{Deserialize, Serialize};
use shoal_types::{
    Answer, ComputeStateType, Execution, HostSample, Job, NodeInfo, Resources, RunOutput,
    SpecConfig,
};

/// The link protocol version spoken by this build.
pub const PROTOCOL: &str = "shoal/v1";

/// The HTTP path the compute node dials.
pub const LINK_PATH: &str = "/api/v1/agent/link";

/// Read buffer of a link's WebSocket, on both ends. tungstenite's default (128 KiB) is
/// zero-filled before every read, so each small frame cost a 128 KiB `memset` and, as the
/// buffer was split off and grown again, fresh pages: a third of a 5,000-node rollout's CPU.
/// Link frames are small; a larger one (a query answer, a result chunk) grows the buffer for
/// that frame.
pub const LINK_READ_BUFFER: usize = 4 << 10;

/// Bytes per `ResultChunk` (before base64).
pub const RESULT_CHUNK: usize = 256 * 1024;

/// Chunks a node may send ahead of the orchestrator's `ResultAck`; bounds the memory a result
/// download holds in flight (`RESULT_CHUNK × RESULT_WINDOW`) whatever the archive's size.
pub const RESULT_WINDOW: u64 = 16;

/// One message on the link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum Frame {
    /// First frame from the node.
    Hello {
        /// What the node is and offers.
        node: Box<NodeInfo>,
        /// Highest orchestrator message sequence the node has applied.
        applied_seq: u64,
        /// The shared token or a join token (`<id>.<secret>`), when the orchestrator
        /// requires one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// The node's own key (generated once, kept in its data dir): enrols the node with a
        /// join token, and lets it back in once enrolled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node_key: Option<String>,
    },
    /// The orchestrator accepted the node.
    Welcome {
        /// Highest node message sequence the orchestrator has applied.
        applied_seq: u64,
    },
    /// The orchestrator refused the node; the link closes.
    Refused {
        /// Why, and what to do.
        reason: String,
    },
    /// A durable message.
    Msg {
        /// Its sequence number in the sender's stream.
        seq: u64,
        /// The message.
        msg: Message,
    },
    /// Everything up to `seq` was applied by the receiver.
    Ack {
        /// Highest applied sequence.
        seq: u64,
    },
    /// Liveness and capacity, from the node.
    Heartbeat {
        /// Capacity free on the node.
        available: Resources,
        /// Executions running now.
        running: u32,
        /// The host's load now, for fleet metrics. Absent from agents older than fleet metrics
        /// (and then the node has no sample), so both ends stay compatible.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sample: Option<Box<HostSample>>,
    },
    /// The orchestrator asks for an execution's logs.
    LogRequest {
        /// Correlates the replies.
        stream_id: u64,
        /// Which execution.
        execution_id: String,
        /// Keep streaming until the execution ends.
        follow: bool,
    },
    /// A log chunk.
    LogLine {
        /// Which request.
        stream_id: u64,
        /// 1 = stdout, 2 = stderr (Bacalhau's numbering).
        stream: u8,
        /// The text.
        line: String,
    },
    /// No more log chunks for this request.
    LogEnd {
        /// Which request.
        stream_id: u64,
        /// Set when the logs could not be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The orchestrator no longer wants a log stream.
    LogCancel {
        /// Which request.
        stream_id: u64,
    },
    /// The orchestrator asks for the archive the `local` publisher kept for an execution.
    ResultRequest {
        /// Correlates the replies.
        stream_id: u64,
        /// Which execution.
        execution_id: String,
    },
    /// The archive exists; chunks follow.
    ResultStart {
        /// Which request.
        stream_id: u64,
        /// Archive size in bytes.
        size: u64,
    },
    /// A piece of the archive.
    ResultChunk {
        /// Which request.
        stream_id: u64,
        /// Position of this chunk, from 0.
        index: u64,
        /// The bytes, base64 (standard alphabet, padded).
        data: String,
    },
    /// No more chunks; `error` says why when the archive could not be sent.
    ResultEnd {
        /// Which request.
        stream_id: u64,
        /// Why the archive could not be read, if it could not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The orchestrator consumed chunks up to `index`: the node may send up to
    /// `index + RESULT_WINDOW`.
    ResultAck {
        /// Which request.
        stream_id: u64,
        /// Highest chunk index consumed.
        index: u64,
    },
    /// The orchestrator no longer wants the archive.
    ResultCancel {
        /// Which request.
        stream_id: u64,
    },
    /// Fleet SQL: run one read-only statement over the host tables now and reply with
    /// [`Frame::QueryAnswer`]. Not durable: a live query asks the nodes that are connected,
    /// and a node that is away is counted unreachable, as Fleet's and Salt's live queries do.
    Query {
        /// Correlates the answer.
        query_id: String,
        /// The statement.
        sql: String,
        /// Most rows the node may return (its own limit applies too).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_rows: Option<u64>,
        /// Time limit in milliseconds (its own limit applies too).
        timeout_ms: u64,
        /// The engine to answer with: `query` (host tables; what agents that predate the
        /// field assume) or `analytics` (the node's data files).
        #[serde(default = "host_query_engine")]
        engine: String,
    },
    /// A node's answer to [`Frame::Query`]: the rows, or why there are none.
    QueryAnswer {
        /// Which query.
        query_id: String,
        /// The rows, when the statement ran.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer: Option<Answer>,
        /// Why the statement did not run (an SQL error, a limit, no query engine).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// The engine of a [`Frame::Query`] from an orchestrator that did not name one.
fn host_query_engine() -> String {
    "query".to_string()
}

/// A durable message: persisted before sending, applied exactly once in effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Message {
    /// Orchestrator → node: run this execution (the job is embedded).
    Run {
        /// The execution to run.
        execution: Box<Execution>,
    },
    /// Orchestrator → node: stop this execution.
    Cancel {
        /// Which execution.
        execution_id: String,
        /// Why.
        reason: String,
    },
    /// Node → orchestrator: an execution changed state.
    Update(ExecutionReport),
    /// Node → orchestrator: a piece of an execution's log, kept by the orchestrator so the
    /// logs outlive the node. Sent before the report that ends the execution.
    Logs(LogShipment),
}

/// Bytes of an execution's log file (before compression) per [`LogShipment`].
pub const LOG_SHIPMENT: usize = 1 << 20;

/// A piece of an execution's log file on the node (`logs.ndjson`: one `{"s":1|2,"l":text}`
/// object per output chunk), gzip-compressed and base64-encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogShipment {
    /// Which execution.
    pub execution_id: String,
    /// Its job.
    pub job_id: String,
    /// Where the piece starts in the node's log file; pieces are whole lines.
    pub offset: u64,
    /// The piece: gzip, then base64.
    pub data: String,
    /// The node kept more of the log than it ships: this is the last piece shipped.
    #[serde(default)]
    pub truncated: bool,
}

/// What a node reports about one of its executions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionReport {
    /// Which execution.
    pub execution_id: String,
    /// Its job.
    pub job_id: String,
    /// The new state.
    pub state: ComputeStateType,
    /// Why, in words.
    #[serde(default)]
    pub message: String,
    /// For failures: whether another node might succeed.
    #[serde(default)]
    pub retryable: bool,
    /// The task's output, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_output: Option<RunOutput>,
    /// Where results were published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<SpecConfig>,
}

/// [`Message::Run`] as it is serialised, built from borrowed parts: a daemon job placed on
/// thousands of nodes would otherwise clone its job into every message.
#[derive(Serialize)]
#[serde(tag = "kind")]
enum RunRef<'a> {
    Run { execution: ExecutionWithJob<'a> },
}

#[derive(Serialize)]
struct ExecutionWithJob<'a> {
    #[serde(flatten)]
    execution: &'a Execution,
    #[serde(rename = "Job")]
    job: &'a Job,
}

impl Message {
    /// The JSON of `Message::Run` for `execution` with `job` embedded, as
    /// `serde_json::to_string(&Message::Run { .. })` would write it once the job was put in
    /// the execution, but without copying the job when the execution carries none yet.
    pub fn run_json(execution: &Execution, job: &Job) -> String {
        if execution.job.is_some() {
            // Flattened, it would write a second `Job` key: take the plain path.
            let mut with_job = execution.clone();
            with_job.job = Some(Box::new(job.clone()));
            let run = Message::Run {
                execution: Box::new(with_job),
            };
            return serde_json::to_string(&run).expect("messages always serialise");
        }
        let run = RunRef::Run {
            execution: ExecutionWithJob { execution, job },
        };
        serde_json::to_string(&run).expect("messages always serialise")
    }
}

impl Frame {
    /// Encodes a frame as JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("frames always serialise")
    }

    /// Encodes `Frame::Msg` from a message already serialised (the body kept in the outbox),
    /// without decoding and serialising the message again: the same text that
    /// [`Frame::encode`] writes for `Frame::Msg { seq, msg }`.
    pub fn encode_msg(seq: u64, msg_json: &str) -> String {
        format!(r#"{{"t":"Msg","seq":{seq},"msg":{msg_json}}}"#)
    }

    /// Decodes a frame; the error says what arrived.
    pub fn decode(text: &str) -> Result<Frame, String> {
        serde_json::from_str(text).map_err(|e| {
            let head: String = text.chars().take(80).collect();
            format!("malformed link frame ({e}): {head}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_as_json_text() {
        let f = Frame::Msg {
            seq: 7,
            msg: Message::Cancel {
                execution_id: "e-1".into(),
                reason: "stop".into(),
            },
        };
        assert_eq!(Frame::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn a_run_built_from_borrowed_parts_reads_back_as_the_run_message() {
        let job = shoal_types::spec::parse_job(
            "Name: agent\nType: daemon\nTasks:\n  - Name: t\n    Engine:\n      Type: noop\n",
        )
        .unwrap();
        let execution: Execution = serde_json::from_value(serde_json::json!({
            "ID": "e-1", "NodeID": "n-1", "JobID": "j-1", "JobVersion": 2,
            "DesiredState": {"StateType": 1}, "ComputeState": {"StateType": 1},
        }))
        .unwrap();
        let json = Message::run_json(&execution, &job);

        let mut with_job = execution.clone();
        with_job.job = Some(Box::new(job.clone()));
        let owned = Message::Run {
            execution: Box::new(with_job),
        };
        let read: Message = serde_json::from_str(&json).unwrap();
        assert_eq!(read, owned);
        // An execution that already carries a job gets the one given, once.
        let Message::Run { execution: carried } = &owned else {
            unreachable!()
        };
        let again: Message = serde_json::from_str(&Message::run_json(carried, &job)).unwrap();
        assert_eq!(again, owned);
        let as_value = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        assert_eq!(
            as_value(&json),
            as_value(&serde_json::to_string(&owned).unwrap())
        );
    }

    #[test]
    fn a_stored_message_encodes_as_its_frame_would() {
        let msg = Message::Cancel {
            execution_id: "e-1".into(),
            reason: "stop \"now\"".into(),
        };
        let body = serde_json::to_string(&msg).unwrap();
        let frame = Frame::Msg { seq: 42, msg };
        assert_eq!(Frame::encode_msg(42, &body), frame.encode());
        assert_eq!(Frame::decode(&Frame::encode_msg(42, &body)).unwrap(), frame);
    }

    #[test]
    fn a_heartbeat_without_a_sample_reads_as_before_and_one_with_a_sample_round_trips() {
        // What an agent older than fleet metrics sends.
        let old =
            r#"{"t":"Heartbeat","available":{"CPU":1.0,"Memory":0,"Disk":0,"GPU":0},"running":2}"#;
        let Frame::Heartbeat {
            running, sample, ..
        } = Frame::decode(old).unwrap()
        else {
            panic!("a heartbeat")
        };
        assert_eq!((running, sample), (2, None));
        let with = Frame::Heartbeat {
            available: Resources::default(),
            running: 0,
            sample: Some(Box::new(HostSample {
                cpu_percent: 37.5,
                temperature_c: Some(48.0),
                ..Default::default()
            })),
        };
        assert_eq!(Frame::decode(&with.encode()).unwrap(), with);
        let no_sample = Frame::Heartbeat {
            available: Resources::default(),
            running: 0,
            sample: None,
        };
        assert!(
            !no_sample.encode().contains("sample"),
            "an absent sample is not written"
        );
    }

    #[test]
    fn malformed_frames_are_reported_with_their_start() {
        let err = Frame::decode("{\"t\":\"Nope\"}").unwrap_err();
        assert!(err.starts_with("malformed link frame"), "{err}");
        assert!(err.contains("Nope"));
    }
}
