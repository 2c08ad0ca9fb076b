//! The HTTP surface of an orchestrator: Bacalhau's v1 REST API, so that its CLI users, scripts
//! and Python SDK work unchanged, plus the WebSocket endpoint that compute nodes dial.
//!
//! The whole app is [`router`]; [`serve`] runs it on an already-bound listener until a shutdown
//! future resolves, so tests bind port 0. Every request passes [`auth`]'s gate first: who is
//! calling, whether they may, and the audit entry.

pub mod auth;
mod error;
mod jobs;
mod link;
mod metrics;
mod nodes;
mod queries;
mod results;
pub mod tls;
pub mod ui;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::routing::{delete, get, post, put};
use shoal_orchestrator::Orchestrator;
use shoal_types::node::BuildVersionInfo;

pub use auth::Security;
pub use error::ApiError;

/// Whether `/api/v1/agent/alive` may say OK yet. A hybrid node (orchestrator and compute in
/// one process) is not alive until its own compute side has joined: a job submitted the
/// moment `alive` answers must find that node.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Alive from the start.
    pub fn ready() -> Self {
        Readiness(Arc::new(AtomicBool::new(true)))
    }

    /// Not alive until [`Readiness::set_ready`].
    pub fn starting() -> Self {
        Readiness(Arc::new(AtomicBool::new(false)))
    }

    /// From now on, alive.
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The orchestrator behind the API.
    pub orchestrator: Orchestrator,
    /// Who may call, and the audit log.
    pub security: Arc<Security>,
    /// Whether the node says it is alive.
    pub readiness: Readiness,
    /// Requests answered, for `/metrics`.
    pub http: Arc<metrics::HttpCounts>,
}

/// The full API, behind `security`'s gate ([`Security::open`] for devstack and tests that are
/// not about access control).
pub fn router(orchestrator: Orchestrator, security: Arc<Security>) -> Router {
    router_with(orchestrator, security, Readiness::ready())
}

/// [`router`] whose `alive` waits for `readiness`.
pub fn router_with(
    orchestrator: Orchestrator,
    security: Arc<Security>,
    readiness: Readiness,
) -> Router {
    let state = AppState {
        orchestrator,
        security: security.clone(),
        readiness,
        http: Arc::default(),
    };
    Router::new()
        .route(auth::WHOAMI_PATH, get(auth::whoami))
        .route(auth::CAN_I_PATH, get(auth::can_i))
        .route("/api/v1/orchestrator/audit", get(auth::list_audit))
        .route("/api/v1/agent/alive", get(alive))
        .route("/api/v1/agent/version", get(version))
        .route("/api/v1/agent/node", get(nodes::own_node))
        .route(shoal_transport::LINK_PATH, get(link::upgrade))
        .route(
            "/api/v1/orchestrator/jobs",
            put(jobs::submit).post(jobs::submit).get(jobs::list),
        )
        .route(
            "/api/v1/orchestrator/jobs/{id}",
            get(jobs::describe).delete(jobs::stop),
        )
        .route("/api/v1/orchestrator/jobs/{id}/history", get(jobs::history))
        .route(
            "/api/v1/orchestrator/jobs/{id}/promote",
            post(jobs::promote),
        )
        .route(
            "/api/v1/orchestrator/jobs/{id}/run-now",
            post(jobs::run_now),
        )
        .route(
            "/api/v1/orchestrator/jobs/{id}/executions",
            get(jobs::executions),
        )
        .route("/api/v1/orchestrator/jobs/{id}/results", get(results::list))
        .route(
            "/api/v1/orchestrator/jobs/{id}/results/{file}",
            get(results::download),
        )
        .route("/api/v1/orchestrator/jobs/{id}/logs", get(jobs::logs))
        .route("/api/v1/orchestrator/queries", post(queries::submit))
        .route(
            "/api/v1/orchestrator/queries/{id}/stream",
            get(queries::stream),
        )
        .route(
            "/api/v1/orchestrator/nodes",
            get(nodes::list).post(nodes::update_legacy),
        )
        .route(
            "/api/v1/orchestrator/join-tokens",
            get(nodes::join_tokens).post(nodes::create_join_token),
        )
        .route(
            "/api/v1/orchestrator/join-tokens/{id}",
            delete(nodes::delete_join_token),
        )
        .route(
            "/api/v1/orchestrator/nodes/{id}",
            get(nodes::describe).put(nodes::update),
        )
        .route("/livez", get(alive))
        .route(auth::METRICS_PATH, get(metrics::render))
        .route(auth::FLEET_METRICS_PATH, get(metrics::fleet))
        .route(auth::FLEET_API_PATH, get(metrics::fleet_json))
        .merge(ui::routes())
        .fallback(error::not_found)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count,
        ))
        .layer(axum::middleware::from_fn_with_state(security, auth::gate))
        .layer(axum::middleware::from_fn(ui::headers))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
///
/// Every accepted connection gets `TCP_NODELAY`: the API and the agent link exchange small
/// messages (a report, then an ack), and Nagle's algorithm with the peer's delayed ACK would
/// hold each second small write back by about 40 ms.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on an accepted connection");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn alive(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    if s.readiness.is_ready() {
        (
            axum::http::StatusCode::OK,
            axum::Json(serde_json::json!({ "Status": "OK" })),
        )
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "Status": "STARTING",
                "Message": "the node's own compute side has not joined yet; try again in a moment"
            })),
        )
    }
}

async fn version() -> axum::Json<BuildVersionInfo> {
    axum::Json(BuildVersionInfo::current())
}
