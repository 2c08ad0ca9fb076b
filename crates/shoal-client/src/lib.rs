//! A typed client for the orchestrator's REST API.

use std::sync::Arc;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use shoal_types::answer::{QueryEvent, QueryRequest};
use shoal_types::enrolment::{JoinToken, JoinTokenRequest, NewJoinToken};
use shoal_types::rollout::RolloutState;
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
    /// Where the rollout of the current version stands, for a job with a `Rollout`.
    #[serde(default)]
    pub rollout: Option<RolloutState>,
    /// A scheduled job's next and last tick and latest runs.
    #[serde(default)]
    pub schedule: Option<shoal_types::schedule::ScheduleStatus>,
}

/// Which jobs a listing selects beyond its page (Shoal extensions of `GET /jobs`).
#[derive(Debug, Clone, Default)]
pub struct JobsWhere {
    /// Only scheduled jobs (parents).
    pub scheduled: bool,
    /// Only the children of this scheduled job (id, prefix or name).
    pub parent: Option<String>,
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
    /// Whether the reason may pass by itself (busy, disconnected, cordoned).
    #[serde(default)]
    pub transient: bool,
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

/// How the client proves who it is, from the environment a Bacalhau user already has.
#[derive(Clone, Default)]
pub enum Credentials {
    /// No `Authorization` header (devstack, or a server that allows anonymous callers).
    #[default]
    None,
    /// `Authorization: Bearer <key>`.
    ApiKey(String),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// The username.
        username: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::ApiKey(_) => f.write_str("ApiKey(***)"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}:***)"),
        }
    }
}

impl Credentials {
    /// Reads `SHOAL_API_KEY` or `BACALHAU_API_KEY`, or a username and password from
    /// `SHOAL_API_USERNAME`/`SHOAL_API_PASSWORD` or `BACALHAU_API_USERNAME`/
    /// `BACALHAU_API_PASSWORD`. Setting both kinds, or half a pair, is an error that says so.
    pub fn from_env() -> Result<Credentials, String> {
        Credentials::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Credentials::from_env`] over any variable lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Credentials, String> {
        let first = |names: [&'static str; 2]| {
            names
                .into_iter()
                .find_map(|n| get(n).filter(|v| !v.is_empty()).map(|v| (n, v)))
        };
        let key = first(["SHOAL_API_KEY", "BACALHAU_API_KEY"]);
        let user = first(["SHOAL_API_USERNAME", "BACALHAU_API_USERNAME"]);
        let password = first(["SHOAL_API_PASSWORD", "BACALHAU_API_PASSWORD"]);
        match (key, user, password) {
            (Some((k, _)), Some((u, _)), _) | (Some((k, _)), _, Some((u, _))) => Err(format!(
                "both {k} and {u} are set; use an API key or a username and password, not both (unset one)"
            )),
            (Some((_, key)), None, None) => Ok(Credentials::ApiKey(key)),
            (None, Some((_, username)), Some((_, password))) => {
                Ok(Credentials::Basic { username, password })
            }
            (None, Some((u, _)), None) => Err(format!(
                "{u} is set but no password is; set BACALHAU_API_PASSWORD (or SHOAL_API_PASSWORD) too"
            )),
            (None, None, Some((p, _))) => Err(format!(
                "{p} is set but no username is; set BACALHAU_API_USERNAME (or SHOAL_API_USERNAME) too"
            )),
            (None, None, None) => Ok(Credentials::None),
        }
    }

    /// The `Authorization` header value, if any.
    fn header(&self) -> Option<String> {
        use base64::Engine;
        match self {
            Credentials::None => None,
            Credentials::ApiKey(k) => Some(format!("Bearer {k}")),
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
        }
    }
}

/// A client for one orchestrator.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    authorization: Option<reqwest::header::HeaderValue>,
    /// The one CA a `https://` orchestrator is trusted by, when given (its automatic CA).
    ca: Option<CaCert>,
}

/// A CA certificate the client trusts, in the forms reqwest and the WebSocket dial need.
#[derive(Clone)]
struct CaCert {
    http: reqwest::Certificate,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for CaCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaCert")
    }
}

/// The answer to a job submission.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The job's id (an update keeps the existing job's id).
    pub job_id: String,
    /// What the orchestrator wants the user to know, e.g. that an existing job was updated.
    pub warnings: Vec<String>,
}

/// The text of a Bacalhau error body: its message, the reason behind a 401/403, and its hint
/// (`Request Forbidden: user 'x' does not have ... (Check if user have access ...)`).
fn error_message(body: &Value) -> String {
    let mut message = body
        .get("Message")
        .and_then(Value::as_str)
        .unwrap_or("request failed")
        .to_string();
    if let Some(reason) = body.pointer("/Details/Reason").and_then(Value::as_str) {
        message.push_str(": ");
        message.push_str(reason);
    }
    if let Some(hint) = body.get("Hint").and_then(Value::as_str) {
        message.push_str(&format!(" ({hint})"));
    }
    message
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
            authorization: None,
            ca: None,
        }
    }

    /// The same client, sending `credentials` with every request and WebSocket dial.
    pub fn with_credentials(mut self, credentials: &Credentials) -> Client {
        self.authorization = credentials.header().and_then(|h| {
            let mut v = reqwest::header::HeaderValue::from_str(&h).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        self.rebuild()
    }

    /// The same client, trusting the CA certificate in `pem` (and only it) for `https://`
    /// and `wss://`: an orchestrator's automatic CA (`orchestrator/tls/ca.pem`).
    pub fn with_ca_cert(mut self, pem: &[u8]) -> Result<Client, ClientError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let bad = |e: String| {
            ClientError::Decode(format!(
                "the CA certificate is not usable: {e}; give the PEM file the orchestrator printed (orchestrator/tls/ca.pem)"
            ))
        };
        let http = reqwest::Certificate::from_pem(pem).map_err(|e| bad(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(pem) {
            roots
                .add(der.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        self.ca = Some(CaCert {
            http,
            tls: Arc::new(tls),
        });
        Ok(self.rebuild())
    }

    fn rebuild(mut self) -> Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(v) = &self.authorization {
            headers.insert(reqwest::header::AUTHORIZATION, v.clone());
        }
        let mut builder = reqwest::Client::builder().default_headers(headers);
        if let Some(ca) = &self.ca {
            builder = builder.tls_certs_only([ca.http.clone()]);
        }
        self.http = builder.build().unwrap_or_default();
        self
    }

    /// Opens a WebSocket to `path` (under the base URL), with the client's credentials.
    async fn dial(
        &self,
        path: &str,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        ClientError,
    > {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let ws_base = self
            .base
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1);
        let mut request = format!("{ws_base}{path}")
            .into_client_request()
            .map_err(|e| ClientError::Decode(format!("bad WebSocket URL: {e}")))?;
        if let Some(v) = &self.authorization {
            request
                .headers_mut()
                .insert(reqwest::header::AUTHORIZATION, v.clone());
        }
        let connector = self
            .ca
            .as_ref()
            .map(|ca| tokio_tungstenite::Connector::Rustls(ca.tls.clone()));
        match tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
            .await
        {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body: Value = response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or_default();
                Err(ClientError::Api {
                    status,
                    message: error_message(&body),
                })
            }
            Err(e) => Err(ClientError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            }),
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
            return Err(ClientError::Api {
                status: status.as_u16(),
                message: error_message(&body),
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
        self.list_jobs_where(limit, next_token, reverse, &JobsWhere::default())
            .await
    }

    /// A page of the jobs that `filter` selects.
    pub async fn list_jobs_where(
        &self,
        limit: usize,
        next_token: &str,
        reverse: bool,
        filter: &JobsWhere,
    ) -> Result<Items<Job>, ClientError> {
        let mut q = vec![
            ("limit", limit.to_string()),
            ("next_token", next_token.to_string()),
            ("reverse", reverse.to_string()),
        ];
        if filter.scheduled {
            q.push(("scheduled", "true".into()));
        }
        if let Some(parent) = &filter.parent {
            q.push(("parent", parent.clone()));
        }
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

    /// Runs a scheduled job once now, outside its schedule; answers the child job's id.
    pub async fn run_now(&self, id: &str) -> Result<String, ClientError> {
        let v = self
            .call(
                self.http
                    .post(self.u(&format!("/orchestrator/jobs/{id}/run-now")))
                    .json(&json!({})),
            )
            .await?;
        Ok(v.get("JobID")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
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

    /// Promotes a job whose rollout waits after its canaries; returns the rollout's state.
    pub async fn promote(&self, id: &str) -> Result<Option<RolloutState>, ClientError> {
        let v = self
            .call(
                self.http
                    .post(self.u(&format!("/orchestrator/jobs/{id}/promote")))
                    .json(&json!({})),
            )
            .await?;
        Self::decode(v.get("Rollout").cloned().unwrap_or(Value::Null))
    }

    /// Every node.
    pub async fn nodes(&self) -> Result<Vec<NodeState>, ClientError> {
        let v = self
            .call(self.http.get(self.u("/orchestrator/nodes")))
            .await?;
        Self::decode(v.get("Nodes").cloned().unwrap_or(Value::Array(vec![])))
    }

    /// Fleet metrics: the connected nodes' latest host samples grouped by the node label `by`
    /// (`None`: the orchestrator's default, `region`), and each node's own sample when
    /// `per_node`.
    pub async fn fleet_metrics(
        &self,
        by: Option<&str>,
        per_node: bool,
    ) -> Result<shoal_types::fleet::FleetReport, ClientError> {
        let mut query = vec![("per_node", per_node.to_string())];
        if let Some(by) = by {
            query.push(("by", by.to_string()));
        }
        let v = self
            .call(
                self.http
                    .get(self.u("/orchestrator/fleet/metrics"))
                    .query(&query),
            )
            .await?;
        Self::decode(v)
    }

    /// One node.
    pub async fn node(&self, id: &str) -> Result<NodeState, ClientError> {
        Ok(self.node_details(id).await?.0)
    }

    /// One node, and how it enrolled (`{"TokenID", "EnrolledAt", "RevokedAt"}`; `Null` when
    /// it was let in without a key).
    pub async fn node_details(&self, id: &str) -> Result<(NodeState, Value), ClientError> {
        let v = self
            .call(self.http.get(self.u(&format!("/orchestrator/nodes/{id}"))))
            .await?;
        let node = Self::decode(v.get("Node").cloned().unwrap_or(Value::Null))?;
        Ok((node, v.get("Enrolment").cloned().unwrap_or(Value::Null)))
    }

    /// Creates a join token; the answer's `Secret` is the only copy.
    pub async fn create_join_token(
        &self,
        request: &JoinTokenRequest,
    ) -> Result<NewJoinToken, ClientError> {
        let v = self
            .call(
                self.http
                    .post(self.u("/orchestrator/join-tokens"))
                    .json(request),
            )
            .await?;
        Self::decode(v)
    }

    /// Every join token, without secrets.
    pub async fn join_tokens(&self) -> Result<Vec<JoinToken>, ClientError> {
        let v = self
            .call(self.http.get(self.u("/orchestrator/join-tokens")))
            .await?;
        Self::decode(v.get("Tokens").cloned().unwrap_or(Value::Array(vec![])))
    }

    /// Deletes a join token.
    pub async fn delete_join_token(&self, id: &str) -> Result<(), ClientError> {
        self.call(
            self.http
                .delete(self.u(&format!("/orchestrator/join-tokens/{id}"))),
        )
        .await
        .map(|_| ())
    }

    /// Approves, rejects, revokes or deletes a node.
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

    /// Streams a job's logs, calling `on_line` for each chunk, until the stream ends. `kept`
    /// reads the copy the orchestrator keeps instead of the node's.
    pub async fn logs(
        &self,
        id: &str,
        execution_id: Option<&str>,
        follow: bool,
        kept: bool,
        mut on_line: impl FnMut(LogLine),
    ) -> Result<(), ClientError> {
        let mut path = format!("/api/v1/orchestrator/jobs/{id}/logs?follow={follow}");
        if kept {
            path.push_str("&kept=true");
        }
        if let Some(e) = execution_id {
            path.push_str(&format!("&execution_id={e}"));
        }
        let mut ws = self.dial(&path).await?;
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

    /// Who the orchestrator takes this client's credentials for: `{"Kind", "Name", "Grants",
    /// "Namespaces"}`.
    pub async fn whoami(&self) -> Result<Value, ClientError> {
        let v = self.call(self.http.get(self.u("/auth/whoami"))).await?;
        Ok(v.get("Principal").cloned().unwrap_or_default())
    }

    /// Whether the caller holds `capability` (e.g. `exec`, `write:job`), and sees `namespace`
    /// when one is given: the server's `{Allowed, Capability, Principal, Reason}`.
    pub async fn can_i(
        &self,
        capability: &str,
        namespace: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut query = vec![("capability", capability)];
        if let Some(ns) = namespace {
            query.push(("namespace", ns));
        }
        self.call(self.http.get(self.u("/auth/can-i")).query(&query))
            .await
    }

    /// The audit log, newest first: entries of `principal` (all when `None`), at most `limit`.
    pub async fn audit(
        &self,
        principal: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Value>, ClientError> {
        let mut q = vec![("limit", limit.to_string())];
        if let Some(p) = principal {
            q.push(("principal", p.to_string()));
        }
        let v = self
            .call(self.http.get(self.u("/orchestrator/audit")).query(&q))
            .await?;
        Ok(Self::decode::<Items<Value>>(v)?.items)
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
        let mut ws = self
            .dial(&format!("/api/v1/orchestrator/queries/{query_id}/stream"))
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(vars: &[(&str, &str)]) -> Result<Credentials, String> {
        Credentials::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn bacalhaus_variables_give_credentials_and_shoals_take_precedence() {
        assert!(matches!(creds(&[]), Ok(Credentials::None)));
        assert!(
            matches!(creds(&[("BACALHAU_API_KEY", "k1")]), Ok(Credentials::ApiKey(k)) if k == "k1")
        );
        assert!(matches!(
            creds(&[("SHOAL_API_KEY", "k2"), ("BACALHAU_API_KEY", "k1")]),
            Ok(Credentials::ApiKey(k)) if k == "k2"
        ));
        assert!(matches!(
            creds(&[("BACALHAU_API_USERNAME", "u"), ("BACALHAU_API_PASSWORD", "p")]),
            Ok(Credentials::Basic { username, password }) if username == "u" && password == "p"
        ));
    }

    #[test]
    fn both_kinds_or_half_a_pair_is_an_error_that_says_what_to_unset_or_set() {
        let e = creds(&[("BACALHAU_API_KEY", "k"), ("BACALHAU_API_USERNAME", "u")]).unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = creds(&[("BACALHAU_API_USERNAME", "u")]).unwrap_err();
        assert!(e.contains("set BACALHAU_API_PASSWORD"), "{e}");
        let e = creds(&[("BACALHAU_API_PASSWORD", "p")]).unwrap_err();
        assert!(e.contains("set BACALHAU_API_USERNAME"), "{e}");
    }

    #[test]
    fn a_401_body_reads_as_its_message_reason_and_hint() {
        let body = json!({
            "Message": "Request Forbidden",
            "Hint": "Check if user have access to this resource. Event has been recorded.",
            "Details": {"Reason": "user 'x' does not have the required capability 'write:job'"}
        });
        assert_eq!(
            error_message(&body),
            "Request Forbidden: user 'x' does not have the required capability 'write:job' (Check if user have access to this resource. Event has been recorded.)"
        );
    }

    #[test]
    fn credentials_never_show_in_a_debug_print() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::ApiKey("k-secret".into())).contains("k-secret"));
    }
}
