//! A typed client for the orchestrator's REST API.

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use shoal_types::answer::{QueryEvent, QueryRequest};
use shoal_types::{Execution, Job, JobHistory, NodeState, SpecConfig};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the address.
    #[error(
        "cannot reach the orchestrator at {url}: {message}; is `shoal devstack` or `shoal serve --orchestrator` running there? set --api-host/--api-port or SHOAL_API_HOST/SHOAL_API_PORT"
    )]
    Unreachable {
        /// The address tried.
        url: String,
        /// The transport error.
        message: String,
    },
    /// The orchestrator answered with an error.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The answer could not be read.
    #[error("unexpected answer from the orchestrator: {0}")]
    Decode(String),
}

/// A job with the extras `describe` asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobView {
    /// The job.
    pub job: Job,
    /// History, when requested.
    #[serde(default)]
    pub history: Option<Items<JobHistory>>,
    /// Executions, when requested.
    #[serde(default)]
    pub executions: Option<Items<Execution>>,
    /// Nodes not chosen, and why.
    #[serde(default)]
    pub placement: Vec<PlacementView>,
}

/// Why a node was not chosen.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlacementView {
    /// The node.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Why.
    pub reason: String,
}

/// A page of items.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Items<T> {
    /// The items.
    pub items: Vec<T>,
    /// Token for the next page; empty when there is none.
    #[serde(default)]
    pub next_token: String,
}

/// One log chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// 1 = stdout, 2 = stderr.
    pub stream: u8,
    /// The text.
    pub line: String,
}

/// A client for one orchestrator.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// The answer to a job submission.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The job's id (an update keeps the existing job's id).
    pub job_id: String,
    /// What the orchestrator wants the user to know, e.g. that an existing job was updated.
    pub warnings: Vec<String>,
}

impl Client {
    /// A client for `http://host:port`.
    pub fn new(host: &str, port: u16) -> Client {
        let host = if host == "0.0.0.0" { "127.0.0.1" } else { host };
        Client::from_url(&format!("http://{host}:{port}"))
    }

    /// A client for a base URL (`http://host:port`).
    pub fn from_url(url: &str) -> Client {
        Client {
            base: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            message: e.to_string(),
        })?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if !status.is_success() {
            let message = body
                .get("Message")
                .and_then(Value::as_str)
                .unwrap_or("request failed")
                .to_string();
            return Err(ClientError::Api {
                status: status.as_u16(),
                message,
            });
        }
        Ok(body)
    }

    fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ClientError> {
        serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string()))
    }

    fn u(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// The published results of a job's completed executions, in Bacalhau's shape
    /// (`urlDownload` for results kept on nodes, `s3` for results in a bucket).
    pub async fn results(&self, id: &str) -> Result<Vec<SpecConfig>, ClientError> {
        let v = self
            .call(
                self.http
                    .get(self.u(&format!("/orchestrator/jobs/{id}/results"))),
            )
            .await?;
        let page: Items<SpecConfig> = Self::decode(v)?;
        Ok(page.items)
    }

    /// Streams `url` (a result archive) into `dest`, calling `progress(done, total)` as bytes
    /// arrive. Returns the SHA-256 (hex) of what was written. A short body (the node dropped
    /// mid-way) is an error.
    pub async fn download(
        &self,
        url: &str,
        dest: &std::path::Path,
        mut progress: impl FnMut(u64, Option<u64>),
    ) -> Result<String, ClientError> {
        use sha2::Digest;
        use tokio::io::AsyncWriteExt;
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        let status = resp.status();
        if !status.is_success() {
            let body: Value = resp.json().await.unwrap_or_default();
            let message = body
                .get("Message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{url} answered {status}"));
            return Err(ClientError::Api {
                status: status.as_u16(),
                message,
            });
        }
        let total = resp.content_length();
        let io = |e: std::io::Error| {
            ClientError::Decode(format!("cannot write {}: {e}", dest.display()))
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut hasher = sha2::Sha256::new();
        let mut done = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                ClientError::Decode(format!("download of {url} broke after {done} bytes: {e}"))
            })?;
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
            done += chunk.len() as u64;
            progress(done, total);
        }
        file.flush().await.map_err(io)?;
        if let Some(t) = total
            && done != t
        {
            return Err(ClientError::Decode(format!(
                "download of {url} ended after {done} of {t} bytes"
            )));
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// Whether the orchestrator answers.
    pub async fn alive(&self) -> Result<(), ClientError> {
        self.call(self.http.get(self.u("/agent/alive")))
            .await
            .map(|_| ())
    }

    /// Submits a job; returns its id.
    pub async fn submit(&self, job: &Job) -> Result<String, ClientError> {
        Ok(self.submit_with(job, false).await?.job_id)
    }

    /// Submits a job; `force` submits a new version even when a job of the same name already
    /// has this spec. Returns the id and the orchestrator's warnings (e.g. "updated").
    pub async fn submit_with(&self, job: &Job, force: bool) -> Result<Submitted, ClientError> {
        let v = self
            .call(
                self.http
                    .put(self.u("/orchestrator/jobs"))
                    .json(&json!({ "Job": job, "Force": force })),
            )
            .await?;
        let job_id = v
            .get("JobID")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ClientError::Decode("no JobID in the answer".into()))?;
        let warnings = v
            .get("Warnings")
            .and_then(Value::as_array)
            .map(|w| {
                w.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Submitted { job_id, warnings })
    }

    /// A job, optionally with history and executions.
    pub async fn job(&self, id: &str, include: &str) -> Result<JobView, ClientError> {
        let v = self
            .call(
                self.http
                    .get(self.u(&format!("/orchestrator/jobs/{id}")))
                    .query(&[("include", include)]),
            )
            .await?;
        Self::decode(v)
    }

    /// A page of jobs.
    pub async fn list_jobs(
        &self,
        limit: usize,
        next_token: &str,
        reverse: bool,
    ) -> Result<Items<Job>, ClientError> {
        let q = [
            ("limit", limit.to_string()),
            ("next_token", next_token.to_string()),
            ("reverse", reverse.to_string()),
        ];
        Self::decode(
            self.call(self.http.get(self.u("/orchestrator/jobs")).query(&q))
                .await?,
        )
    }

    /// History after a token (empty for the start).
    pub async fn history(
        &self,
        id: &str,
        next_token: &str,
    ) -> Result<Items<JobHistory>, ClientError> {
        let req = self
            .http
            .get(self.u(&format!("/orchestrator/jobs/{id}/history")))
            .query(&[("next_token", next_token)]);
        Self::decode(self.call(req).await?)
    }

    /// A job's executions.
    pub async fn executions(&self, id: &str) -> Result<Vec<Execution>, ClientError> {
        let items: Items<Execution> = Self::decode(
            self.call(
                self.http
                    .get(self.u(&format!("/orchestrator/jobs/{id}/executions"))),
            )
            .await?,
        )?;
        Ok(items.items)
    }

    /// Stops a job.
    pub async fn stop(&self, id: &str, reason: &str) -> Result<(), ClientError> {
        self.call(
            self.http
                .delete(self.u(&format!("/orchestrator/jobs/{id}")))
                .json(&json!({ "reason": reason })),
        )
        .await
        .map(|_| ())
    }

    /// Every node.
    pub async fn nodes(&self) -> Result<Vec<NodeState>, ClientError> {
        let v = self
            .call(self.http.get(self.u("/orchestrator/nodes")))
            .await?;
        Self::decode(v.get("Nodes").cloned().unwrap_or(Value::Array(vec![])))
    }

    /// One node.
    pub async fn node(&self, id: &str) -> Result<NodeState, ClientError> {
        let v = self
            .call(self.http.get(self.u(&format!("/orchestrator/nodes/{id}"))))
            .await?;
        Self::decode(v.get("Node").cloned().unwrap_or(Value::Null))
    }

    /// Approves, rejects or deletes a node.
    pub async fn node_action(&self, id: &str, action: &str) -> Result<(), ClientError> {
        self.put_node(id, json!({ "Action": action, "NodeID": id }))
            .await
    }

    /// Sets and removes a node's control-plane labels.
    pub async fn node_labels(
        &self,
        id: &str,
        set: &std::collections::BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), ClientError> {
        self.put_node(id, json!({ "Labels": set, "RemoveLabels": remove }))
            .await
    }

    /// `PUT /orchestrator/nodes/{id}` with `body`; the answer carries nothing we need.
    async fn put_node(&self, id: &str, body: Value) -> Result<(), ClientError> {
        self.call(
            self.http
                .put(self.u(&format!("/orchestrator/nodes/{id}")))
                .json(&body),
        )
        .await
        .map(|_| ())
    }

    /// Streams a job's logs, calling `on_line` for each chunk, until the stream ends.
    pub async fn logs(
        &self,
        id: &str,
        execution_id: Option<&str>,
        follow: bool,
        mut on_line: impl FnMut(LogLine),
    ) -> Result<(), ClientError> {
        let ws_base = self
            .base
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1);
        let mut url = format!("{ws_base}/api/v1/orchestrator/jobs/{id}/logs?follow={follow}");
        if let Some(e) = execution_id {
            url.push_str(&format!("&execution_id={e}"));
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?;
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(WsMessage::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str())
                        .map_err(|e| ClientError::Decode(e.to_string()))?;
                    if let Some(err) = v.get("error").and_then(Value::as_str) {
                        return Err(ClientError::Api {
                            status: 0,
                            message: err.to_string(),
                        });
                    }
                    let value = &v["value"];
                    on_line(LogLine {
                        stream: value["Type"].as_u64().unwrap_or(1) as u8,
                        line: value["Line"].as_str().unwrap_or_default().to_string(),
                    });
                }
                Ok(WsMessage::Close(_)) => break,
                Ok(_) => {}
                Err(e) => return Err(ClientError::Decode(format!("log stream broke: {e}"))),
            }
        }
        Ok(())
    }

    /// Asks the fleet a question (a live query); returns the query id.
    pub async fn ask_query(&self, request: &QueryRequest) -> Result<String, ClientError> {
        let v = self
            .call(
                self.http
                    .post(self.u("/orchestrator/queries"))
                    .json(request),
            )
            .await?;
        v.get("QueryID")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ClientError::Decode("no QueryID in the answer".into()))
    }

    /// Streams a fleet query's events, calling `on_event` for each as nodes answer, until
    /// the `done` event (returned) or the stream breaks.
    pub async fn query_stream(
        &self,
        query_id: &str,
        mut on_event: impl FnMut(&QueryEvent),
    ) -> Result<QueryEvent, ClientError> {
        let ws_base = self
            .base
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1);
        let url = format!("{ws_base}/api/v1/orchestrator/queries/{query_id}/stream");
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?;
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(WsMessage::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str())
                        .map_err(|e| ClientError::Decode(e.to_string()))?;
                    if v["type"] == "error" {
                        return Err(ClientError::Api {
                            status: 0,
                            message: v["message"].as_str().unwrap_or("query failed").to_string(),
                        });
                    }
                    let ev: QueryEvent = serde_json::from_value(v)
                        .map_err(|e| ClientError::Decode(format!("query stream: {e}")))?;
                    on_event(&ev);
                    if matches!(ev, QueryEvent::Done { .. }) {
                        return Ok(ev);
                    }
                }
                Ok(WsMessage::Close(_)) => break,
                Ok(_) => {}
                Err(e) => return Err(ClientError::Decode(format!("query stream broke: {e}"))),
            }
        }
        Err(ClientError::Decode(
            "query stream ended before the fleet's answer was complete".into(),
        ))
    }
}
