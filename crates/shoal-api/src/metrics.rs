//! `GET /metrics`: the orchestrator's metrics in Prometheus text format, plus the API's own
//! count of requests by route and status code.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shoal_orchestrator::metrics::Exposition;

use crate::{ApiError, AppState};

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
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out.finish(),
    )
        .into_response())
}
