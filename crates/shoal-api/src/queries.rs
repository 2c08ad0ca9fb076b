//! `/api/v1/orchestrator/queries`: fleet SQL (a Shoal extension of Bacalhau's API).
//!
//! - `POST /queries` with `{"Query": "SELECT ...", "Constraints": [...], "Nodes": [...],
//!   "Timeout": 60, "MaxRows": 1000, "Merge": "SELECT ... FROM results ..."}` asks every
//!   matching node now (a live query, not a job) and answers `{"QueryID": "q-..."}`.
//! - `GET /queries/{id}/stream` (WebSocket) sends one JSON text frame per event: `started`,
//!   then one `answer` per node as it replies, then `done` with the fleet coverage and the
//!   merge stage's answer, then a close frame. A finished query's events stay readable for
//!   ten minutes. Errors are `{"type":"error","message":"..."}`.

use axum::Json;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};
use shoal_orchestrator::QueryRequest;

use crate::{ApiError, AppState};

/// `POST /queries`.
pub(crate) async fn submit(
    State(s): State<AppState>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let request: QueryRequest = serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid query request: {e}; send {{\"Query\": \"SELECT ...\"}}"
        ))
    })?;
    let id = s.orchestrator.ask_query(&request).await?;
    Ok(Json(json!({ "QueryID": id })))
}

/// `GET /queries/{id}/stream` (WebSocket).
pub(crate) async fn stream(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| stream_answers(s, id, socket))
}

async fn stream_answers(s: AppState, id: String, mut socket: WebSocket) {
    let mut answers = match s.orchestrator.watch_query(&id).await {
        Ok(a) => a,
        Err(e) => {
            let frame = json!({ "type": "error", "message": e.to_string() }).to_string();
            let _ = socket.send(WsMessage::text(frame)).await;
            let _ = socket.send(WsMessage::Close(None)).await;
            return;
        }
    };
    // Not raced against reads from the socket: `next` may be running the merge stage,
    // and a client that leaves is noticed when a send fails.
    while let Some(ev) = answers.next().await {
        let frame = serde_json::to_string(&ev).unwrap_or_default();
        if socket.send(WsMessage::text(frame)).await.is_err() {
            return;
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
}
