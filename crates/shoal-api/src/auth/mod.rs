//! Who may call the API, and the record of what they did.
//!
//! ```text
//!  request ──► gate ──► requirement(method, path)      (gate.rs: Bacalhau's path map)
//!                │        Open ─────────────────────────────────────────► handler
//!                ├──► Authenticator::authenticate(Authorization)  (users.rs)
//!                │        Basic user:pass (plain or bcrypt) | Bearer API key | anonymous
//!                │        failure ──► 401 "Request Unauthorized" + audit entry
//!                ├──► Principal::can(capability)               (principal.rs, grant.rs)
//!                │        no ──► 403 "Request Forbidden" + audit entry
//!                └──► handler (sees the Principal: namespace scope, engine grants)
//!                         write call ──► audit entry with its outcome (audit.rs)
//! ```
//!
//! One principal model covers users, API keys and anonymous callers; its grants are a superset
//! of Bacalhau's capability strings, so a Bacalhau `API.Auth.Users` block loads unchanged.

mod audit;
mod gate;
mod grant;
mod principal;
mod session;
mod users;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use serde::Deserialize;
use serde_json::{Value, json};
use shoal_store::AuditFilter;

pub use audit::Audit;
pub(crate) use gate::gate;
pub use gate::{
    AuditTarget, CAN_I_PATH, FLEET_API_PATH, FLEET_METRICS_PATH, METRICS_PATH, Requirement,
    WHOAMI_PATH, requirement,
};
pub use grant::{Capability, Grant, KNOWN_GRANTS, Resource};
pub use principal::{Principal, PrincipalKind};
pub use session::{SESSION_COOKIE, SESSION_TTL, Sessions, cookie_token};
pub use users::{
    AnonymousAccess, AuthFailure, Authenticator, CapabilityConfig, UserConfig, UsersConfigError,
};

use crate::error::ApiQuery;
use crate::{ApiError, AppState};

/// Everything the gate needs: who is who, and where their calls are recorded.
#[derive(Debug)]
pub struct Security {
    /// Credentials to principals.
    pub authenticator: Authenticator,
    /// The audit log.
    pub audit: Audit,
    /// Browser sessions of the web UI.
    pub sessions: Sessions,
    /// `/metrics` and `/metrics/fleet` answer without credentials (`--metrics-public`, for a
    /// Prometheus that sends none); otherwise they need `read:agent`.
    pub public_metrics: bool,
}

impl Security {
    /// Devstack's security: everybody may do everything, and the audit log lives in memory.
    pub fn open() -> Arc<Security> {
        Arc::new(Security {
            authenticator: Authenticator::open(),
            audit: Audit::in_memory(),
            sessions: Sessions::default(),
            public_metrics: true,
        })
    }
}

/// `GET /api/v1/auth/whoami`: the principal the request's credentials speak for.
pub(crate) async fn whoami(Extension(p): Extension<Arc<Principal>>) -> Json<Value> {
    Json(json!({ "Principal": *p }))
}

#[derive(Deserialize, Default)]
pub(crate) struct CanIQuery {
    capability: Option<String>,
    namespace: Option<String>,
}

/// `GET /api/v1/auth/can-i?capability=exec&namespace=ns`: whether the caller holds one
/// capability (and sees the namespace), with the reason when not. Answered by the same
/// grants the gate checks, so the answer is the server's, not a guess.
pub(crate) async fn can_i(
    Extension(p): Extension<Arc<Principal>>,
    ApiQuery(q): ApiQuery<CanIQuery>,
) -> Result<Json<Value>, ApiError> {
    let asked = q.capability.unwrap_or_default();
    let capability = match asked.parse::<Grant>() {
        Ok(Grant::Exactly(c)) => c,
        Ok(wide) => {
            return Err(ApiError::bad_request(format!(
                "{wide} is a set of capabilities; ask about one, e.g. exec, write:job or read:node"
            )));
        }
        Err(e) if asked.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "name the capability to check (?capability=exec); {e}"
            )));
        }
        Err(e) => return Err(ApiError::bad_request(e)),
    };
    let mut reason = String::new();
    if !p.can(capability) {
        let held: Vec<String> = p.grants.iter().map(ToString::to_string).collect();
        reason = format!(
            "user '{}' holds {}; {capability} is not among them",
            p.name,
            if held.is_empty() {
                "no grants".to_string()
            } else {
                held.join(", ")
            }
        );
    } else if let Some(ns) = q.namespace.as_deref().filter(|n| !n.is_empty())
        && !p.sees_namespace(ns)
    {
        reason = format!(
            "user '{}' may use namespace{} {}, not {ns}",
            p.name,
            if p.namespaces.len() == 1 { "" } else { "s" },
            p.namespaces.join(", ")
        );
    }
    Ok(Json(json!({
        "Allowed": reason.is_empty(),
        "Capability": capability.to_string(),
        "Principal": p.name,
        "Reason": reason,
    })))
}

#[derive(Deserialize, Default)]
pub(crate) struct AuditQuery {
    principal: Option<String>,
    limit: Option<usize>,
    /// Unix nanoseconds.
    since: Option<i64>,
}

/// `GET /api/v1/orchestrator/audit?principal=&since=&limit=`: newest first.
pub(crate) async fn list_audit(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let entries = s
        .security
        .audit
        .list(AuditFilter {
            principal: q.principal.filter(|p| !p.is_empty()),
            since: q.since,
            limit: q.limit.unwrap_or(100),
        })
        .await
        .map_err(|e| ApiError::internal(format!("cannot read the audit log: {e}")))?;
    Ok(Json(json!({ "Items": entries, "NextToken": "" })))
}
