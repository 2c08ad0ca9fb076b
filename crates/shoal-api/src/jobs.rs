//! `/api/v1/orchestrator/jobs/...`

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use shoal_orchestrator::{LogEvent, SubmitOptions};
use shoal_store::JobFilter;
use shoal_types::Job;
use shoal_types::spec::{self, SpecError};

use crate::auth::{AuditTarget, Capability, Principal};
use crate::error::ApiQuery;
use crate::{ApiError, AppState};

fn spec_error(e: SpecError) -> ApiError {
    ApiError::bad_request(format!("invalid job spec: {e}"))
}

/// The job `key` names, when `principal` may see it. A job of a namespace outside the
/// principal's scope is answered exactly as a job that does not exist, so its existence does
/// not leak.
pub(crate) async fn visible_job(
    s: &AppState,
    principal: &Principal,
    key: &str,
) -> Result<Option<Job>, ApiError> {
    if principal.namespaces.is_empty() {
        return Ok(None);
    }
    let job = s.orchestrator.job(key).await?;
    if principal.sees_namespace(&job.namespace) {
        Ok(Some(job))
    } else {
        Err(ApiError::not_found(format!(
            "job {key} not found; `shoal job list` shows the jobs this orchestrator knows"
        )))
    }
}

/// What submitting `job` needs beyond `write:job`: its namespace in the principal's scope, and
/// the `query` or `exec` capability for tasks on those engines (and `exec:shell` for a shell).
fn may_submit(principal: &Principal, job: &mut Job) -> Result<(), ApiError> {
    if job.namespace.is_empty()
        || (job.namespace == "default" && !principal.sees_namespace("default"))
    {
        job.namespace = principal.default_namespace().to_string();
    }
    if !principal.sees_namespace(&job.namespace) {
        return Err(ApiError::forbidden(format!(
            "user '{}' may not submit to namespace '{}'; it may use {}",
            principal.name,
            job.namespace,
            principal.namespaces.join(", ")
        )));
    }
    for task in &job.tasks {
        let needed = match task.engine.kind.to_ascii_lowercase().as_str() {
            "query" => Capability::Query,
            "exec" => Capability::Exec,
            _ => continue,
        };
        if !principal.can(needed) {
            return Err(ApiError::forbidden(format!(
                "user '{}' does not have the required capability '{needed}' (task {} uses the {} engine)",
                principal.name, task.name, task.engine.kind
            )));
        }
        let shell = task
            .engine
            .param("Shell")
            .is_some_and(|v| v.as_bool() == Some(true));
        if needed == Capability::Exec && shell && !principal.can(Capability::ExecShell) {
            return Err(ApiError::forbidden(format!(
                "user '{}' does not have the required capability 'exec:shell' (task {} runs its command through /bin/sh with Shell: true); run the program directly with Command and Arguments, or grant exec:shell",
                principal.name, task.name
            )));
        }
    }
    Ok(())
}

/// `PUT /jobs`: `{"Job": {...}, "Force": false}`.
pub(crate) async fn submit(
    State(s): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Json(body): Json<Value>,
) -> Result<(Extension<AuditTarget>, Json<Value>), ApiError> {
    let job_value = match &body {
        Value::Object(map) => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("job"))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                ApiError::bad_request("request body needs a \"Job\" object: {\"Job\": {...}}")
            })?,
        _ => {
            return Err(ApiError::bad_request(
                "request body must be a JSON object: {\"Job\": {...}}",
            ));
        }
    };
    let mut job = spec::read_job_value(job_value).map_err(spec_error)?;
    may_submit(&principal, &mut job)?;
    let job = spec::finish_job(job).map_err(spec_error)?;
    let force = match &body {
        Value::Object(map) => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("force"))
            .and_then(|(_, v)| v.as_bool())
            .unwrap_or(false),
        _ => false,
    };
    let outcome = s
        .orchestrator
        .submit_with(job, SubmitOptions { force })
        .await?;
    let warnings: Vec<String> = if outcome.version > 1 {
        vec![format!(
            "job {} updated to version {}: executions of older versions are replaced",
            outcome.job_id, outcome.version
        )]
    } else {
        vec![]
    };
    Ok((
        Extension(AuditTarget(outcome.job_id.clone())),
        Json(json!({ "JobID": outcome.job_id, "EvaluationID": "", "Warnings": warnings })),
    ))
}

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    namespace: Option<String>,
    limit: Option<usize>,
    next_token: Option<String>,
    #[serde(default, deserialize_with = "query_bool")]
    reverse: Option<bool>,
    /// Only scheduled jobs (parents); a Shoal extension.
    #[serde(default, deserialize_with = "query_bool")]
    scheduled: Option<bool>,
    /// Only the children of this scheduled job (id or name); a Shoal extension.
    parent: Option<String>,
}

/// A boolean query parameter as clients spell it: Go's `true`/`false`, Python's `True`/`False`
/// (the generated Python client sends those), `1`/`0`, or empty for unset.
fn query_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let s = String::deserialize(d)?;
    match s.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "true" | "1" => Ok(Some(true)),
        "false" | "0" => Ok(Some(false)),
        _ => Err(serde::de::Error::custom(format!(
            "{s:?} is not a boolean; use true or false"
        ))),
    }
}

/// `GET /jobs`.
pub(crate) async fn list(
    State(s): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    // A scoped principal lists its own namespaces only: one it names, or all of them.
    let namespace = match (
        q.namespace.filter(|n| !n.is_empty() && n != "*"),
        principal.namespaces.as_slice(),
    ) {
        (Some(n), _) if !principal.sees_namespace(&n) => {
            return Ok(Json(json!({ "Items": [], "NextToken": "" })));
        }
        (Some(n), _) => Some(n),
        (None, [only]) => Some(only.clone()),
        (None, _) => None,
    };
    let offset = match q.next_token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => t.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "next_token {t:?} is not a token this server issued"
            ))
        })?,
        None => 0,
    };
    let limit = q.limit.unwrap_or(0);
    let parent = match q.parent.filter(|p| !p.is_empty()) {
        Some(key) => match visible_job(&s, &principal, &key).await? {
            Some(job) => Some(job.id),
            // No namespace scope: every job is visible.
            None => Some(s.orchestrator.job(&key).await?.id),
        },
        None => None,
    };
    let jobs = s
        .orchestrator
        .list_jobs(JobFilter {
            namespace,
            limit: if limit == 0 { 0 } else { limit + 1 },
            offset,
            reverse: q.reverse.unwrap_or(false),
            scheduled: q.scheduled.unwrap_or(false),
            parent,
        })
        .await?;
    let jobs: Vec<Job> = jobs
        .into_iter()
        .filter(|j| principal.sees_namespace(&j.namespace))
        .collect();
    let more = limit > 0 && jobs.len() > limit;
    let items: Vec<_> = if more { jobs[..limit].to_vec() } else { jobs };
    let next = if more {
        (offset + limit).to_string()
    } else {
        String::new()
    };
    Ok(Json(json!({ "Items": items, "NextToken": next })))
}

#[derive(Deserialize, Default)]
pub(crate) struct DescribeQuery {
    include: Option<String>,
}

/// `GET /jobs/{id}?include=history,executions`.
pub(crate) async fn describe(
    State(s): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DescribeQuery>,
) -> Result<Json<Value>, ApiError> {
    visible_job(&s, &principal, &id).await?;
    let include = q.include.unwrap_or_default().to_ascii_lowercase();
    let d = s
        .orchestrator
        .job_details_with(
            &id,
            include.contains("history"),
            include.contains("executions"),
        )
        .await?;
    let mut body = json!({ "Job": d.job, "Placement": d.placement });
    if let Some(rollout) = &d.rollout {
        body["Rollout"] = json!(rollout);
    }
    if let Some(schedule) = &d.schedule {
        body["Schedule"] = json!(schedule);
    }
    if include.contains("history") {
        body["History"] = json!({ "Items": d.history, "NextToken": "" });
    }
    if include.contains("executions") {
        body["Executions"] = json!({ "Items": d.executions, "NextToken": "" });
    }
    Ok(Json(body))
}

/// `POST /jobs/{id}/run-now`: one run of a scheduled job now, outside its schedule (a Shoal
/// extension, Nomad's `periodic force`). Answers the child job's id.
pub(crate) async fn run_now(
    State(s): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    visible_job(&s, &principal, &id).await?;
    let child = s.orchestrator.run_now(&id).await?;
    Ok(Json(json!({ "JobID": child })))
}

#[derive(Deserialize, Default)]
pub(crate) struct StopBody {
    #[serde(alias = "Reason")]
    reason: Option<String>,
}

/// `DELETE /jobs/{id}` with an optional `{"reason": "..."}` body.
pub(crate) async fn stop(
    State(s): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<BTreeMap<String, String>>,
    body: Option<Json<StopBody>>,
) -> Result<Json<Value>, ApiError> {
    let reason = body
        .and_then(|b| b.0.reason)
        .or_else(|| q.get("reason").cloned())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "Stopped at user request".into());
    visible_job(&s, &principal, &id).await?;
    s.orchestrator.stop(&id, &reason).await?;
    Ok(Json(json!({ "EvaluationID": "" })))
}

/// `POST /jobs/{id}/promote` (Shoal): the rollout goes on past its canaries.
pub(crate) async fn promote(
    State(s): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    visible_job(&s, &principal, &id).await?;
    let job = s.orchestrator.promote(&id).await?;
    let d = s.orchestrator.job_details(&job.id).await?;
    Ok(Json(json!({ "Job": d.job, "Rollout": d.rollout })))
}

#[derive(Deserialize, Default)]
pub(crate) struct HistoryQuery {
    next_token: Option<String>,
    event_type: Option<String>,
    execution_id: Option<String>,
}

/// `GET /jobs/{id}/history`; `NextToken` keeps coming while the job runs, so clients long-poll.
pub(crate) async fn history(
    State(s): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let after = q
        .next_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let job = match visible_job(&s, &principal, &id).await? {
        Some(job) => job,
        None => s.orchestrator.job(&id).await?,
    };
    let all = s.orchestrator.history(&job.id, after).await?;
    let last = all.last().map(|h| h.seq_num).unwrap_or(after);
    let kind = q.event_type.unwrap_or_default().to_ascii_lowercase();
    let items: Vec<_> = all
        .into_iter()
        .filter(|h| match kind.as_str() {
            "job" => h.execution_id.is_empty(),
            "execution" => !h.execution_id.is_empty(),
            _ => true,
        })
        .filter(|h| {
            q.execution_id
                .as_deref()
                .is_none_or(|e| h.execution_id.starts_with(e))
        })
        .collect();
    let next = if job.state.state_type.is_terminal() && items.is_empty() {
        String::new()
    } else {
        last.to_string()
    };
    Ok(Json(json!({ "Items": items, "NextToken": next })))
}

/// `GET /jobs/{id}/executions`.
pub(crate) async fn executions(
    State(s): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    visible_job(&s, &principal, &id).await?;
    let items = s.orchestrator.executions(&id).await?;
    Ok(Json(json!({ "Items": items, "NextToken": "" })))
}

#[derive(Deserialize, Default)]
pub(crate) struct LogsQuery {
    execution_id: Option<String>,
    #[serde(default, deserialize_with = "query_bool")]
    follow: Option<bool>,
    /// Shoal: read the copy the orchestrator keeps, not the node's.
    #[serde(default, deserialize_with = "query_bool")]
    kept: Option<bool>,
}

/// `GET /jobs/{id}/logs` (WebSocket): frames `{"value":{"Type":1,"Line":"..."}}`, or
/// `{"error":"..."}`, then a close frame.
pub(crate) async fn logs(
    State(s): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(e) = visible_job(&s, &principal, &id).await {
        return e.into_response();
    }
    ws.on_upgrade(move |socket| stream_logs(s, id, q, socket))
}

async fn stream_logs(s: AppState, id: String, q: LogsQuery, mut socket: WebSocket) {
    let follow = q.follow.unwrap_or(false);
    let mut stream = match s
        .orchestrator
        .logs(
            &id,
            q.execution_id.as_deref(),
            follow,
            q.kept.unwrap_or(false),
        )
        .await
    {
        Ok(st) => st,
        Err(e) => {
            let _ = socket
                .send(WsMessage::text(
                    json!({ "error": e.to_string() }).to_string(),
                ))
                .await;
            let _ = socket.send(WsMessage::Close(None)).await;
            return;
        }
    };
    loop {
        tokio::select! {
            ev = stream.next() => match ev {
                Some(LogEvent::Line { stream, line }) => {
                    let frame = json!({ "value": { "Type": stream, "Line": line } }).to_string();
                    if socket.send(WsMessage::text(frame)).await.is_err() { return }
                }
                Some(LogEvent::End { error: Some(e) }) => {
                    let _ = socket.send(WsMessage::text(json!({ "error": e }).to_string())).await;
                    break;
                }
                Some(LogEvent::End { error: None }) | None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get(uri: &str) -> (StatusCode, serde_json::Value) {
        let dir = tempfile::tempdir().unwrap();
        let orch = shoal_orchestrator::Orchestrator::start(
            shoal_orchestrator::OrchestratorConfig::new(dir.path()),
        )
        .unwrap();
        let res = crate::router(orch, crate::Security::open())
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn list_accepts_python_style_booleans() {
        // bacalhau-apiclient (Python) sends `reverse=False`.
        let (status, body) = get("/api/v1/orchestrator/jobs?limit=5&reverse=False").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["Items"].is_array(), "{body}");
    }

    #[tokio::test]
    async fn a_bad_query_string_is_answered_in_bacalhaus_error_body() {
        let (status, body) = get("/api/v1/orchestrator/jobs?reverse=maybe").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["Code"], "BadRequest", "{body}");
        let message = body["Message"].as_str().unwrap();
        assert!(
            message.contains("\"maybe\" is not a boolean; use true or false"),
            "{message}"
        );
    }
}
