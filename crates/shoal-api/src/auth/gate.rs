//! The one middleware every request passes: which capability the path needs, who the caller
//! is, whether it may, and the audit entry.
//!
//! The path map is Bacalhau's (`pkg/authz/capabilities.go`): the longest matching prefix
//! decides, `GET`/`HEAD` need `read:`, every other method `write:`, and a path mapped nowhere
//! needs `write:node`, so a new endpoint is closed until it is mapped. Shoal's own endpoints
//! map to its own capabilities (`/queries` to `query`, `/audit` to `admin`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Security;
use super::grant::{Capability, Resource};
use super::principal::Principal;
use super::session::cookie_token;
use crate::ApiError;

/// What a request needs before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Nothing: health, version, the auth method list, and the agent link (which checks its
    /// own join token).
    Open,
    /// Valid credentials (or the anonymous principal), no particular capability: `whoami`.
    Authenticated,
    /// This capability.
    Needs(Capability),
}

/// Paths anyone may call, as in Bacalhau, plus Shoal's health alias, the agent link, and the
/// web UI's login page and static files.
const OPEN: &[&str] = &[
    "/ui/login",
    "/ui/logout",
    "/ui/assets",
    "/api/v1/auth",
    "/api/v1/version",
    "/api/v1/agent/alive",
    "/api/v1/agent/version",
    "/api/v1/agent/authconfig",
    "/livez",
    shoal_transport::LINK_PATH,
];

/// The whoami endpoint: under the open `/api/v1/auth`, but it needs to know the caller.
pub const WHOAMI_PATH: &str = "/api/v1/auth/whoami";

/// `shoal auth can-i`: under the open `/api/v1/auth` too, and about the caller.
pub const CAN_I_PATH: &str = "/api/v1/auth/can-i";

/// Where Prometheus scrapes the orchestrator; needs `read:agent` unless metrics are public.
pub const METRICS_PATH: &str = "/metrics";

/// Where Prometheus scrapes fleet metrics (the nodes' host samples); the same access as
/// [`METRICS_PATH`].
pub const FLEET_METRICS_PATH: &str = "/metrics/fleet";

/// Fleet metrics as JSON (`shoal node top`); needs `read:agent`, like the Prometheus pages.
pub const FLEET_API_PATH: &str = "/api/v1/orchestrator/fleet/metrics";

/// The pages `--metrics-public` opens.
fn is_metrics_page(path: &str) -> bool {
    path == METRICS_PATH || path == FLEET_METRICS_PATH
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// What `method path` needs.
pub fn requirement(method: &Method, path: &str) -> Requirement {
    if path == WHOAMI_PATH || path == CAN_I_PATH {
        return Requirement::Authenticated;
    }
    if OPEN.iter().any(|p| under(path, p)) {
        return Requirement::Open;
    }
    let read = method == Method::GET || method == Method::HEAD;
    let access = |r: Resource| {
        Requirement::Needs(if read {
            Capability::Read(r)
        } else {
            Capability::Write(r)
        })
    };
    // The web UI's pages need what the API calls behind them need.
    if under(path, "/ui/nodes") {
        return access(Resource::Node);
    }
    if under(path, "/ui/query") {
        return Requirement::Needs(Capability::Query);
    }
    if under(path, "/ui") {
        return access(Resource::Job);
    }
    if under(path, "/api/v1/orchestrator/queries") {
        return Requirement::Needs(Capability::Query);
    }
    // A join token lets a machine into the fleet, so handing them out is an admin's call.
    if under(path, "/api/v1/orchestrator/audit") || under(path, "/api/v1/orchestrator/join-tokens")
    {
        return Requirement::Needs(Capability::Admin);
    }
    if under(path, "/api/v1/orchestrator/jobs") {
        return access(Resource::Job);
    }
    if under(path, "/api/v1/orchestrator/nodes") {
        return access(Resource::Node);
    }
    // Fleet metrics are what the agents report about their hosts.
    if under(path, "/api/v1/agent")
        || is_metrics_page(path)
        || under(path, "/api/v1/orchestrator/fleet")
    {
        return access(Resource::Agent);
    }
    Requirement::Needs(Capability::Write(Resource::Node))
}

/// The object a path is about, for the audit log: the id after `jobs/` or `nodes/`, else the
/// path itself. A handler may name a better one with an [`AuditTarget`] response extension.
fn target_of(path: &str) -> String {
    for collection in ["/api/v1/orchestrator/jobs/", "/api/v1/orchestrator/nodes/"] {
        if let Some(rest) = path.strip_prefix(collection)
            && let Some(id) = rest.split('/').next().filter(|s| !s.is_empty())
        {
            return id.to_string();
        }
    }
    path.to_string()
}

/// Set by a handler on its response to name what a write created or changed (e.g. the id of
/// a submitted job), when the path does not say.
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

/// The middleware: authenticate, authorize, run, audit.
pub(crate) async fn gate(
    State(security): State<Arc<Security>>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut need = requirement(&method, &path);
    if security.public_metrics && is_metrics_page(&path) {
        need = Requirement::Open;
    }
    if need == Requirement::Open {
        return next.run(req).await;
    }
    let credentials = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let action = match need {
        Requirement::Needs(c) => format!("{method} {path} ({c})"),
        _ => format!("{method} {path}"),
    };
    let ui = under(&path, "/ui");
    // A browser sends its session cookie instead of an Authorization header.
    let session = credentials
        .is_none()
        .then(|| {
            req.headers()
                .get(header::COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(cookie_token)
                .and_then(|t| security.sessions.get(t))
        })
        .flatten();
    let by_cookie = session.is_some();
    let principal: Arc<Principal> = match session
        .map(Ok)
        .unwrap_or_else(|| security.authenticator.authenticate(credentials.as_deref()))
    {
        Ok(p) => p,
        Err(_) if ui => return to_login(&path),
        Err(why) => {
            let error = ApiError::unauthorized(why.to_string());
            return refuse(
                &security,
                "unauthenticated",
                action,
                target_of(&path),
                error,
            )
            .await;
        }
    };
    let read = method == Method::GET || method == Method::HEAD;
    if by_cookie && !read && !same_origin(req.headers()) {
        // A cookie rides along with any cross-site form post; only the UI's own pages may
        // write with it.
        let error = ApiError::forbidden(
            "a write with a session cookie must come from this server's own pages (Origin does not match Host)",
        );
        return refuse(&security, &principal.name, action, target_of(&path), error).await;
    }
    if let Requirement::Needs(capability) = need
        && !principal.can(capability)
    {
        let error = ApiError::forbidden(format!(
            "user '{}' does not have the required capability '{capability}'",
            principal.name
        ));
        return refuse(&security, &principal.name, action, target_of(&path), error).await;
    }
    let audited = !read;
    req.extensions_mut().insert(principal.clone());
    let response = next.run(req).await;
    if audited {
        let target = response
            .extensions()
            .get::<AuditTarget>()
            .map(|t| t.0.clone())
            .unwrap_or_else(|| target_of(&path));
        let status = response.status();
        let denied = response.extensions().get::<crate::error::DeniedBecause>();
        let outcome = if status.is_success() {
            format!("allowed {}", status.as_u16())
        } else if let Some(why) = denied {
            format!("denied {}: {}", status.as_u16(), why.0)
        } else {
            format!("failed {}", status.as_u16())
        };
        if let Err(e) = security
            .audit
            .record(&principal.name, action, target, outcome)
            .await
        {
            // The call already happened; the client must not believe it was recorded.
            return ApiError::internal(format!(
                "the call was carried out but its audit entry could not be stored ({e}); check the orchestrator's data dir"
            ))
            .into_response();
        }
    }
    response
}

/// Where the web UI sends a visitor without a session.
fn to_login(path: &str) -> Response {
    let next: String = path
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "/-_.".contains(*c))
        .collect();
    axum::response::Redirect::to(&format!("/ui/login?next={next}")).into_response()
}

/// Whether `Origin` names the host the request was sent to (a browser always sends Origin on
/// a cross-site POST; a missing one is refused too).
fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        _ => false,
    }
}

async fn refuse(
    security: &Security,
    principal: &str,
    action: String,
    target: String,
    error: ApiError,
) -> Response {
    let outcome = format!("denied {}: {}", error.status().as_u16(), error.reason());
    if let Err(e) = security
        .audit
        .record(principal, action, target, outcome)
        .await
    {
        tracing::error!(error = %e, "a refused call could not be audited");
    }
    error.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(method: Method, path: &str) -> Requirement {
        requirement(&method, path)
    }

    #[test]
    fn bacalhaus_open_paths_need_nothing() {
        for p in [
            "/api/v1/agent/alive",
            "/api/v1/agent/version",
            "/api/v1/agent/authconfig",
            "/api/v1/version",
            "/api/v1/auth",
            "/api/v1/auth/method",
            "/livez",
            shoal_transport::LINK_PATH,
        ] {
            assert_eq!(need(Method::GET, p), Requirement::Open, "{p}");
        }
    }

    #[test]
    fn the_longest_prefix_and_the_method_decide() {
        use Capability::*;
        assert_eq!(
            need(Method::GET, "/api/v1/orchestrator/jobs/j-1/logs"),
            Requirement::Needs(Read(Resource::Job))
        );
        assert_eq!(
            need(Method::PUT, "/api/v1/orchestrator/jobs"),
            Requirement::Needs(Write(Resource::Job))
        );
        assert_eq!(
            need(Method::DELETE, "/api/v1/orchestrator/jobs/j-1"),
            Requirement::Needs(Write(Resource::Job))
        );
        assert_eq!(
            need(Method::PUT, "/api/v1/orchestrator/nodes/n-1"),
            Requirement::Needs(Write(Resource::Node))
        );
        assert_eq!(
            need(Method::GET, "/api/v1/agent/node"),
            Requirement::Needs(Read(Resource::Agent))
        );
        assert_eq!(
            need(Method::POST, "/api/v1/orchestrator/queries"),
            Requirement::Needs(Query)
        );
        assert_eq!(
            need(Method::GET, "/api/v1/orchestrator/audit"),
            Requirement::Needs(Admin)
        );
        for method in [Method::GET, Method::POST, Method::DELETE] {
            assert_eq!(
                need(method, "/api/v1/orchestrator/join-tokens/t1"),
                Requirement::Needs(Admin),
                "reading join tokens needs admin too"
            );
        }
        for path in [METRICS_PATH, FLEET_METRICS_PATH, FLEET_API_PATH] {
            assert_eq!(
                need(Method::GET, path),
                Requirement::Needs(Read(Resource::Agent)),
                "{path}"
            );
        }
        assert_eq!(need(Method::GET, WHOAMI_PATH), Requirement::Authenticated);
        assert_eq!(need(Method::GET, CAN_I_PATH), Requirement::Authenticated);
    }

    #[test]
    fn a_path_mapped_nowhere_needs_write_node_and_prefixes_match_whole_segments() {
        assert_eq!(
            need(Method::GET, "/api/v1/something/new"),
            Requirement::Needs(Capability::Write(Resource::Node))
        );
        assert_eq!(
            need(Method::GET, "/api/v1/agent/alivex"),
            Requirement::Needs(Capability::Read(Resource::Agent)),
            "`alivex` is not under the open `alive`"
        );
        assert_eq!(
            need(Method::GET, "/api/v1/orchestrator/jobsx"),
            Requirement::Needs(Capability::Write(Resource::Node))
        );
    }

    #[test]
    fn the_audit_target_is_the_object_in_the_path() {
        assert_eq!(target_of("/api/v1/orchestrator/jobs/j-1/logs"), "j-1");
        assert_eq!(target_of("/api/v1/orchestrator/nodes/n-2"), "n-2");
        assert_eq!(
            target_of("/api/v1/orchestrator/jobs"),
            "/api/v1/orchestrator/jobs"
        );
    }
}
