//! `GET /metrics`: the orchestrator's metrics in Prometheus text format, plus the API's own
//! count of requests by route and status code; `GET /metrics/fleet` and
//! `GET /api/v1/orchestrator/fleet/metrics`: the nodes' host samples, grouped by a label, in
//! Prometheus text and in JSON.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shoal_orchestrator::metrics::Exposition;
use shoal_orchestrator::samples::DEFAULT_GROUP_LABEL;
use shoal_types::fleet::FleetReport;

use crate::error::ApiQuery;
use crate::{ApiError, AppState};

/// The Prometheus text format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Requests answered, by route template (`/api/v1/orchestrator/jobs/{id}`, never a concrete
/// id, so the series count is fixed) and status code.
#[derive(Debug, Default)]
pub struct HttpCounts(Mutex<BTreeMap<(String, u16), u64>>);

impl HttpCounts {
    fn add(&self, route: String, code: u16) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route, code))
            .or_default() += 1;
    }

    fn render(&self, out: &mut Exposition) {
        out.header(
            "shoal_http_requests_total",
            "counter",
            "API requests answered, by route template and status code.",
        );
        let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for ((route, code), n) in counts.iter() {
            out.sample(
                "shoal_http_requests_total",
                &[("route", route), ("code", &code.to_string())],
                *n as f64,
            );
        }
    }
}

/// Middleware: counts every answered request under its route template.
pub(crate) async fn count(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    s.http.add(route, response.status().as_u16());
    response
}

/// `GET /metrics`.
pub(crate) async fn render(State(s): State<AppState>) -> Result<Response, ApiError> {
    let mut out = Exposition::default();
    s.orchestrator.render_metrics(&mut out).await?;
    s.http.render(&mut out);
    out.gauge(
        "shoal_build_info",
        &format!(
            "Always 1; this build is shoal {}.",
            env!("CARGO_PKG_VERSION")
        ),
        1.0,
    );
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], out.finish()).into_response())
}

/// The query string of the fleet metrics: `?by=LABEL&per_node=true`.
#[derive(Debug, Deserialize)]
pub(crate) struct FleetQuery {
    /// The node label to group by (`region` when absent).
    by: Option<String>,
    /// Also each node's own sample (`true`/`false`).
    per_node: Option<String>,
}

impl FleetQuery {
    /// The label and the per-node switch, or a 400 naming the parameter and what it takes.
    fn parse(&self) -> Result<(&str, bool), ApiError> {
        let by = self.by.as_deref().unwrap_or(DEFAULT_GROUP_LABEL).trim();
        if by.is_empty() {
            return Err(ApiError::bad_request(format!(
                "by: give the node label to group by, e.g. by={DEFAULT_GROUP_LABEL} (or leave it out for {DEFAULT_GROUP_LABEL})"
            )));
        }
        let per_node = match self.per_node.as_deref().map(str::trim) {
            None | Some("false" | "0" | "") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "per_node: {other:?} is not true or false"
                )));
            }
        };
        Ok((by, per_node))
    }
}

/// `GET /metrics/fleet?by=LABEL&per_node=true`: fleet metrics in Prometheus text format.
pub(crate) async fn fleet(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<FleetQuery>,
) -> Result<Response, ApiError> {
    let (by, per_node) = q.parse()?;
    let mut out = Exposition::default();
    s.orchestrator
        .render_fleet_metrics(by, per_node, &mut out)
        .await?;
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], out.finish()).into_response())
}

/// `GET /api/v1/orchestrator/fleet/metrics?by=LABEL&per_node=true`: the same as JSON.
pub(crate) async fn fleet_json(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<FleetQuery>,
) -> Result<Json<FleetReport>, ApiError> {
    let (by, per_node) = q.parse()?;
    Ok(Json(s.orchestrator.fleet_metrics(by, per_node).await?))
}
