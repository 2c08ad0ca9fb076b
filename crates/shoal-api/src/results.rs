//! Job results: the Bacalhau-shaped results list, and the download of archives that the
//! `local` publisher keeps on nodes, relayed from the node over the agent link.

use axum::Json;
use axum::body::Body;
use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shoal_orchestrator::ResultEvent;
use shoal_types::{ComputeStateType, SpecConfig};

use crate::auth::Principal;
use crate::{ApiError, AppState};

/// `GET /jobs/{id}/results`: `{"Items": [SpecConfig], "NextToken": ""}` for completed
/// executions. A `local` result becomes a `urlDownload` of this server's download route, so any
/// Bacalhau-compatible client fetches it through the orchestrator, never from the node.
pub(crate) async fn list(
    State(s): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    crate::jobs::visible_job(&s, &principal, &id).await?;
    let job = s.orchestrator.job(&id).await?;
    let base = base_url(&headers);
    let items: Vec<SpecConfig> = s
        .orchestrator
        .executions(&job.id)
        .await?
        .into_iter()
        .filter(|e| e.compute_state.state_type == ComputeStateType::Completed)
        .filter_map(|e| {
            let published = e.published_result?;
            Some(if published.is("local") {
                let mut params = published.params.clone();
                params.insert(
                    "URL".into(),
                    json!(format!(
                        "{base}/api/v1/orchestrator/jobs/{}/results/{}.tar.gz",
                        job.id, e.id
                    )),
                );
                SpecConfig {
                    kind: "urlDownload".into(),
                    params,
                }
            } else {
                published
            })
        })
        .collect();
    Ok(Json(json!({ "Items": items, "NextToken": "" })))
}

/// The URL clients used to reach this server (`Host`, and `X-Forwarded-Proto` behind a proxy).
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// `GET /jobs/{id}/results/{execution}.tar.gz`: the execution's archive, streamed from its
/// node. A node that drops mid-way aborts the body, so the client sees a short download.
pub(crate) async fn download(
    State(s): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    crate::jobs::visible_job(&s, &principal, &id).await?;
    let execution = file.strip_suffix(".tar.gz").ok_or_else(|| {
        ApiError::bad_request(format!(
            "{file} is not a result archive name; ask for <execution id>.tar.gz"
        ))
    })?;
    let mut stream = s.orchestrator.result_archive(&id, execution).await?;
    let size = stream.size();
    let body = async_stream(move |tx| async move {
        while let Some(ev) = stream.next().await {
            match ev {
                ResultEvent::Chunk(b) => {
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
                ResultEvent::End { error: None } => return,
                ResultEvent::End { error: Some(e) } => {
                    let _ = tx.send(Err(std::io::Error::other(e))).await;
                    return;
                }
                ResultEvent::Start { .. } => {}
            }
        }
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/gzip".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// A body fed by a task through a small channel, so that reading stays paced by the client.
fn async_stream<F, Fut>(f: F) -> Body
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}
