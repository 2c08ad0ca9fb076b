//! `/api/v1/orchestrator/nodes/...` and `/api/v1/agent/node`.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use shoal_types::enrolment::{JoinTokenRequest, NewJoinToken};
use shoal_types::node::BuildVersionInfo;
use shoal_types::{NodeInfo, NodeType};

use crate::auth::AuditTarget;
use crate::{ApiError, AppState};

/// `GET /nodes`.
pub(crate) async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "Nodes": s.orchestrator.nodes().await?, "NextToken": "" }),
    ))
}

/// `GET /nodes/{id}` (id or unique prefix), with how the node enrolled (Shoal extension:
/// `Enrolment`, absent for nodes let in without a key).
pub(crate) async fn describe(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = s.orchestrator.node(&id).await?;
    let enrolment = s
        .orchestrator
        .node_enrolment(&node.info.node_id)
        .await?
        .map(|k| {
            json!({
                "TokenID": k.token_id,
                "EnrolledAt": k.enrolled_at,
                "RevokedAt": k.revoked_at,
            })
        });
    Ok(Json(json!({ "Node": node, "Enrolment": enrolment })))
}

/// `GET /join-tokens`: every join token, without secrets.
pub(crate) async fn join_tokens(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "Tokens": s.orchestrator.join_tokens().await? }),
    ))
}

/// `POST /join-tokens` `{"TTL": "1h", "Uses": 3, "Description": "rack 4"}`: a new join token;
/// the answer's `Secret` is the only copy.
pub(crate) async fn create_join_token(
    State(s): State<AppState>,
    Json(body): Json<JoinTokenRequest>,
) -> Result<(Extension<AuditTarget>, Json<NewJoinToken>), ApiError> {
    let created = s.orchestrator.create_join_token(body).await?;
    let target = AuditTarget(format!("join-token {}", created.token.id));
    Ok((Extension(target), Json(created)))
}

/// `DELETE /join-tokens/{id}`.
pub(crate) async fn delete_join_token(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    s.orchestrator.delete_join_token(&id).await?;
    Ok(Json(json!({ "Success": true, "Error": "" })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NodeAction {
    #[serde(default, alias = "nodeID", alias = "NodeId")]
    #[serde(rename = "NodeID")]
    node_id: String,
    #[serde(default)]
    action: String,
    /// Control-plane labels to set (Shoal extension).
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    /// Control-plane labels to remove (Shoal extension).
    #[serde(default)]
    remove_labels: Vec<String>,
}

/// `PUT /nodes/{id}` `{"Action": "approve" | "reject" | "revoke" | "delete"}`, or
/// `{"Labels": {"k": "v"}, "RemoveLabels": ["k2"]}` to change control-plane labels.
pub(crate) async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<NodeAction>,
) -> Result<Json<Value>, ApiError> {
    if body.action.is_empty() {
        if body.labels.is_empty() && body.remove_labels.is_empty() {
            return Err(ApiError::bad_request(
                "body needs Action (approve, reject, revoke, delete) or Labels/RemoveLabels",
            ));
        }
        s.orchestrator
            .node_labels(&id, body.labels, body.remove_labels)
            .await?;
        return Ok(Json(json!({ "Success": true, "Error": "" })));
    }
    s.orchestrator.node_action(&id, &body.action).await?;
    Ok(Json(json!({ "Success": true, "Error": "" })))
}

/// `POST /nodes` with the node id in the body, as Bacalhau's generated clients send it.
pub(crate) async fn update_legacy(
    State(s): State<AppState>,
    Json(body): Json<NodeAction>,
) -> Result<Json<Value>, ApiError> {
    if body.node_id.is_empty() {
        return Err(ApiError::bad_request("body needs NodeID and Action"));
    }
    s.orchestrator
        .node_action(&body.node_id, &body.action)
        .await?;
    Ok(Json(json!({ "Success": true, "Error": "" })))
}

/// `GET /agent/node`: this orchestrator's own node info.
pub(crate) async fn own_node(State(s): State<AppState>) -> Json<NodeInfo> {
    Json(NodeInfo {
        node_id: s.orchestrator.config().node_id.clone(),
        node_type: NodeType::Requester,
        version: BuildVersionInfo::current(),
        ..Default::default()
    })
}
