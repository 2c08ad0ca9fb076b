//! The web UI at `/ui`: server-rendered pages (askama templates in `templates/`, compiled into
//! the binary) with one small script for the live parts, served on the API port.
//!
//! Every page is a real, deep-linkable URL whose state is in its query string; JavaScript
//! only refreshes parts of it (`data-refresh`) and follows logs. Assets are embedded and every
//! answer carries `Content-Security-Policy: default-src 'self'`, so the UI makes no request
//! beyond the orchestrator. Pages pass the same gate as the API: a page needs the capability
//! of the API call behind it, a visitor without a session is sent to the login page, and a
//! write (Stop) is checked by the gate, not only hidden.

mod views;

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use shoal_store::JobFilter;

pub use views::{ExecutionRow, HistoryRow, JobRow, JobView, NodeRow, NodeView, RolloutView};

use crate::auth::{Capability, Principal, PrincipalKind, Resource, SESSION_COOKIE, SESSION_TTL};
use crate::error::ApiQuery;
use crate::{ApiError, AppState};

/// Jobs per page of the jobs list.
const PAGE_SIZE: usize = 50;

/// The UI's routes, under `/ui`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/jobs") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/jobs") }))
        .route("/ui/jobs", get(jobs))
        .route("/ui/jobs/{id}", get(job))
        .route("/ui/jobs/{id}/stop", post(stop))
        .route("/ui/jobs/{id}/promote", post(promote))
        .route("/ui/nodes/{id}", get(node))
        .route("/ui/nodes/{id}/action", post(node_action))
        .route("/ui/nodes", get(nodes))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/assets/ui.css", get(css))
        .route("/ui/assets/ui.js", get(js))
}

/// Adds the UI's security headers to `/ui` answers.
pub(crate) async fn headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let ui = req.uri().path().starts_with("/ui");
    let mut res = next.run(req).await;
    if ui {
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    res
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../assets/ui.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../assets/ui.js"),
    )
}

fn render(t: &impl Template) -> Result<Html<String>, ApiError> {
    t.render()
        .map(Html)
        .map_err(|e| ApiError::internal(format!("page could not be rendered: {e}")))
}

/// What the header shows about the visitor.
fn who(p: &Principal) -> (String, bool) {
    let can_logout = p.kind != PrincipalKind::Anonymous;
    (p.name.clone(), can_logout)
}

#[derive(Deserialize, Default)]
struct JobsQuery {
    #[serde(default)]
    state: String,
    #[serde(default, rename = "type")]
    job_type: String,
    #[serde(default)]
    page: Option<usize>,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    nav: &'static str,
    who: String,
    can_logout: bool,
    jobs: Vec<JobRow>,
    states: Vec<&'static str>,
    types: Vec<&'static str>,
    state: String,
    job_type: String,
    page: usize,
    more: bool,
    prev_link: String,
    next_link: String,
}

fn jobs_link(state: &str, job_type: &str, page: usize) -> String {
    let mut q = vec![format!("page={page}")];
    if !state.is_empty() {
        q.push(format!("state={state}"));
    }
    if !job_type.is_empty() {
        q.push(format!("type={job_type}"));
    }
    format!("/ui/jobs?{}", q.join("&"))
}

/// `GET /ui/jobs?state=&type=&page=`: newest first, paged on the server.
async fn jobs(
    State(s): State<AppState>,
    Extension(p): Extension<Arc<Principal>>,
    ApiQuery(q): ApiQuery<JobsQuery>,
) -> Result<Html<String>, ApiError> {
    let page = q.page.unwrap_or(1).max(1);
    let filtered = !q.state.is_empty() || !q.job_type.is_empty() || !p.namespaces.is_empty();
    // Without filters the store pages; with them, the page is cut from the matching jobs.
    let (offset, limit) = if filtered {
        (0, 0)
    } else {
        ((page - 1) * PAGE_SIZE, PAGE_SIZE + 1)
    };
    let listed = s
        .orchestrator
        .list_jobs(JobFilter {
            namespace: None,
            limit,
            offset,
            reverse: true,
            ..JobFilter::default()
        })
        .await?;
    let matching: Vec<JobRow> = listed
        .iter()
        .filter(|j| p.sees_namespace(&j.namespace))
        .map(JobRow::of)
        .filter(|r| q.state.is_empty() || r.state.eq_ignore_ascii_case(&q.state))
        .filter(|r| q.job_type.is_empty() || r.job_type.eq_ignore_ascii_case(&q.job_type))
        .collect();
    let mut rows: Vec<JobRow> = if filtered {
        matching
            .into_iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE + 1)
            .collect()
    } else {
        matching
    };
    let more = rows.len() > PAGE_SIZE;
    rows.truncate(PAGE_SIZE);
    let (who, can_logout) = who(&p);
    render(&JobsPage {
        nav: "jobs",
        who,
        can_logout,
        jobs: rows,
        states: vec![
            "Pending",
            "Queued",
            "Running",
            "Completed",
            "Failed",
            "Stopped",
        ],
        types: vec!["batch", "ops", "daemon", "service"],
        prev_link: jobs_link(&q.state, &q.job_type, page.saturating_sub(1).max(1)),
        next_link: jobs_link(&q.state, &q.job_type, page + 1),
        state: q.state,
        job_type: q.job_type,
        page,
        more,
    })
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    nav: &'static str,
    who: String,
    can_logout: bool,
    v: JobView,
    can_write: bool,
}

/// `GET /ui/jobs/{id}`: the job, its executions, why nodes were not chosen, its history, its
/// live logs and its spec.
async fn job(
    State(s): State<AppState>,
    Extension(p): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    crate::jobs::visible_job(&s, &p, &id).await?;
    let d = s.orchestrator.job_details(&id).await?;
    let (who, can_logout) = who(&p);
    render(&JobPage {
        nav: "jobs",
        who,
        can_logout,
        v: JobView::of(&d),
        can_write: p.can(Capability::Write(Resource::Job)),
    })
}

/// `POST /ui/jobs/{id}/stop` (the gate has checked `write:job` and the Origin).
async fn stop(
    State(s): State<AppState>,
    Extension(p): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    crate::jobs::visible_job(&s, &p, &id).await?;
    let job = s
        .orchestrator
        .stop(&id, &format!("Stopped from the web UI by {}", p.name))
        .await?;
    Ok(Redirect::to(&format!("/ui/jobs/{}", job.id)).into_response())
}

/// `POST /ui/jobs/{id}/promote` (the gate has checked `write:job` and the Origin).
async fn promote(
    State(s): State<AppState>,
    Extension(p): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    crate::jobs::visible_job(&s, &p, &id).await?;
    let job = s.orchestrator.promote(&id).await?;
    Ok(Redirect::to(&format!("/ui/jobs/{}", job.id)).into_response())
}

#[derive(Template)]
#[template(path = "nodes.html")]
struct NodesPage {
    nav: &'static str,
    who: String,
    can_logout: bool,
    nodes: Vec<NodeRow>,
    connected: usize,
}

/// `GET /ui/nodes`.
async fn nodes(
    State(s): State<AppState>,
    Extension(p): Extension<Arc<Principal>>,
) -> Result<Html<String>, ApiError> {
    let nodes: Vec<NodeRow> = s
        .orchestrator
        .nodes()
        .await?
        .iter()
        .map(NodeRow::of)
        .collect();
    let connected = nodes.iter().filter(|n| n.connection == "CONNECTED").count();
    let (who, can_logout) = who(&p);
    render(&NodesPage {
        nav: "nodes",
        who,
        can_logout,
        nodes,
        connected,
    })
}

#[derive(Template)]
#[template(path = "node.html")]
struct NodePage {
    nav: &'static str,
    who: String,
    can_logout: bool,
    v: NodeView,
    can_write: bool,
}

/// `GET /ui/nodes/{id}`: one node: state, labels, capacity, engines (and why some are not
/// offered), its policies, and the operator's actions for writers.
async fn node(
    State(s): State<AppState>,
    Extension(p): Extension<Arc<Principal>>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let n = s.orchestrator.node(&id).await?;
    let (who, can_logout) = who(&p);
    render(&NodePage {
        nav: "nodes",
        who,
        can_logout,
        v: NodeView::of(&n),
        can_write: p.can(Capability::Write(Resource::Node)),
    })
}

#[derive(Deserialize)]
struct NodeActionForm {
    action: String,
}

/// `POST /ui/nodes/{id}/action` with `action=approve|reject|cordon|drain|uncordon` (the gate
/// has checked `write:node` and the Origin).
async fn node_action(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<NodeActionForm>,
) -> Result<Response, ApiError> {
    const OFFERED: [&str; 5] = ["approve", "reject", "cordon", "drain", "uncordon"];
    if !OFFERED.contains(&form.action.as_str()) {
        return Err(ApiError::bad_request(format!(
            "the node page offers {}; {:?} is not one of them",
            OFFERED.join(", "),
            form.action
        )));
    }
    let n = s.orchestrator.node(&id).await?;
    s.orchestrator
        .node_action(&n.info.node_id, &form.action)
        .await?;
    Ok(Redirect::to(&format!("/ui/nodes/{}", n.info.node_id)).into_response())
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: &'static str,
    who: String,
    can_logout: bool,
    error: String,
    next: String,
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    #[serde(default)]
    next: String,
}

/// Only this server's own pages are places to go back to after logging in.
fn safe_next(next: &str) -> String {
    if next.starts_with("/ui/") && !next.starts_with("//") {
        next.to_string()
    } else {
        "/ui/jobs".to_string()
    }
}

async fn login_page(ApiQuery(q): ApiQuery<LoginQuery>) -> Result<Html<String>, ApiError> {
    render(&LoginPage {
        nav: "",
        who: String::new(),
        can_logout: false,
        error: String::new(),
        next: safe_next(&q.next),
    })
}

#[derive(Deserialize, Default)]
struct LoginForm {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// `POST /ui/login`: an API key or a username and password become a session cookie.
async fn login(State(s): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    use base64::Engine;
    let header = if !f.api_key.trim().is_empty() {
        format!("Bearer {}", f.api_key.trim())
    } else {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                f.username.trim(),
                f.password
            ))
        )
    };
    let next = safe_next(&f.next);
    match s.security.authenticator.authenticate(Some(&header)) {
        Ok(p) => {
            let _ = s
                .security
                .audit
                .record(
                    &p.name,
                    "POST /ui/login".into(),
                    "session".into(),
                    "allowed 303".into(),
                )
                .await;
            let token = s.security.sessions.create(p);
            let cookie = format!(
                "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                SESSION_TTL.as_secs()
            );
            (
                StatusCode::SEE_OTHER,
                [(header::SET_COOKIE, cookie), (header::LOCATION, next)],
            )
                .into_response()
        }
        Err(why) => {
            let _ = s
                .security
                .audit
                .record(
                    "unauthenticated",
                    "POST /ui/login".into(),
                    "session".into(),
                    format!("denied 401: {why}"),
                )
                .await;
            let page = render(&LoginPage {
                nav: "",
                who: String::new(),
                can_logout: false,
                error: format!("Not logged in: {why}."),
                next,
            });
            (StatusCode::UNAUTHORIZED, page).into_response()
        }
    }
}

/// `POST /ui/logout`.
async fn logout(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::cookie_token)
    {
        s.security.sessions.remove(token);
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, clear),
            (header::LOCATION, "/ui/login".to_string()),
        ],
    )
        .into_response()
}
