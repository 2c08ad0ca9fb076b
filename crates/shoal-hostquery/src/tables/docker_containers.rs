//! `docker_containers`: one row per container of the local Docker daemon (running or not),
//! read from the Docker Engine API on its Unix socket (`DOCKER_HOST` when it names a
//! `unix://` socket, else `/var/run/docker.sock`), as osquery does.
//!
//! Where Docker does not run (no socket, or nothing answers) the table is empty and the
//! query succeeds: "which hosts run container X" must not fail on hosts without Docker.
//! The namespace columns are the inode numbers of `/proc/<pid>/ns/*` of running containers.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `docker_containers` table.
pub struct DockerContainers;

const NAMESPACES: &[&str] = &["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"];

impl HostTable for DockerContainers {
    const NAME: &'static str = "docker_containers";
    const COLUMNS: &'static [Column] = &[
        Column::text("id").index(),
        Column::text("name").index(),
        Column::text("image"),
        Column::text("image_id"),
        Column::text("command"),
        Column::bigint("created"),
        Column::text("state"),
        Column::text("status"),
        Column::bigint("pid"),
        Column::text("path"),
        Column::text("config_entrypoint"),
        Column::text("started_at"),
        Column::text("finished_at"),
        Column::integer("privileged"),
        Column::text("security_options"),
        Column::text("env_variables"),
        Column::integer("readonly_rootfs"),
        Column::text("cgroup_namespace"),
        Column::text("ipc_namespace"),
        Column::text("mnt_namespace"),
        Column::text("net_namespace"),
        Column::text("pid_namespace"),
        Column::text("user_namespace"),
        Column::text("uts_namespace"),
    ];

    fn rows(&self, cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let docker = Docker::local(cx);
        let Some(list) = docker.get("/containers/json?all=1") else {
            return Ok(Vec::new());
        };
        let ids = cx.constraints.texts("id");
        let names = cx.constraints.texts("name");
        let mut rows = Vec::new();
        for c in list.as_array().into_iter().flatten() {
            cx.check_deadline()?;
            let id = str_of(&c["Id"]);
            let name = c["Names"]
                .as_array()
                .and_then(|n| n.first())
                .map(str_of)
                .unwrap_or_default();
            if ids.as_ref().is_some_and(|w| !w.contains(&id))
                || names.as_ref().is_some_and(|w| !w.contains(&name))
            {
                continue;
            }
            // A container removed between the listing and here is simply left out.
            let Some(inspect) = docker.get(&format!("/containers/{id}/json")) else {
                continue;
            };
            let state = &inspect["State"];
            let host = &inspect["HostConfig"];
            let pid = state["Pid"].as_i64().unwrap_or(0);
            let mut row: Row = vec![
                id.into(),
                name.into(),
                str_of(&c["Image"]).into(),
                str_of(&c["ImageID"]).into(),
                str_of(&c["Command"]).into(),
                c["Created"].as_i64().unwrap_or(0).into(),
                str_of(&c["State"]).into(),
                str_of(&c["Status"]).into(),
                pid.into(),
                str_of(&inspect["Path"]).into(),
                joined(&inspect["Config"]["Entrypoint"]).into(),
                str_of(&state["StartedAt"]).into(),
                str_of(&state["FinishedAt"]).into(),
                host["Privileged"].as_bool().unwrap_or(false).into(),
                joined(&host["SecurityOpt"]).into(),
                joined(&inspect["Config"]["Env"]).into(),
                host["ReadonlyRootfs"].as_bool().unwrap_or(false).into(),
            ];
            for ns in NAMESPACES {
                row.push(namespace(pid, ns).into());
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

fn str_of(v: &Json) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// A JSON string list as osquery joins it (`", "`); a lone string as is.
fn joined(v: &Json) -> String {
    match v {
        Json::Array(items) => items.iter().map(str_of).collect::<Vec<_>>().join(", "),
        Json::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// The inode of a process's namespace (`net:[4026531992]` → `4026531992`).
fn namespace(pid: i64, ns: &str) -> String {
    if pid <= 0 {
        return String::new();
    }
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .ok()
        .and_then(|t| {
            let t = t.to_string_lossy().into_owned();
            let start = t.find('[')? + 1;
            let end = t.rfind(']')?;
            t.get(start..end).map(str::to_string)
        })
        .unwrap_or_default()
}

/// A minimal Docker Engine API client: `GET` over the Unix socket, HTTP/1.0 so the body is
/// never chunked and ends when the daemon closes the connection.
struct Docker {
    socket: String,
    deadline: Instant,
}

impl Docker {
    fn local(cx: &ScanContext<'_>) -> Docker {
        let socket = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
            .unwrap_or_else(|| "/var/run/docker.sock".to_string());
        // Each request is bounded so a hung daemon cannot hold the query past its limit.
        let cap = Instant::now() + Duration::from_secs(10);
        Docker {
            socket,
            deadline: cx.deadline().map_or(cap, |d| d.min(cap)),
        }
    }

    /// The JSON body of a `200 OK` answer; `None` when the daemon is absent or says no.
    fn get(&self, path: &str) -> Option<Json> {
        let left = self.deadline.checked_duration_since(Instant::now())?;
        let mut s = UnixStream::connect(&self.socket).ok()?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        s.set_write_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]);
        let status = head.lines().next()?.split_whitespace().nth(1)?;
        if status != "200" {
            tracing::debug!(path, status, "docker API answered with an error");
            return None;
        }
        serde_json::from_slice(&raw[split + 4..]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_joined_as_osquery_does() {
        assert_eq!(joined(&serde_json::json!(["sh", "-c"])), "sh, -c");
        assert_eq!(joined(&Json::Null), "");
    }

    #[test]
    fn namespaces_of_a_running_process_are_inode_numbers() {
        let ns = namespace(i64::from(std::process::id()), "net");
        assert!(ns.parse::<u64>().is_ok(), "{ns}");
        assert_eq!(namespace(0, "net"), "");
    }

    #[test]
    fn a_missing_daemon_socket_gives_no_answer_rather_than_an_error() {
        let d = Docker {
            socket: "/nonexistent/docker.sock".into(),
            deadline: Instant::now() + Duration::from_secs(1),
        };
        assert_eq!(d.get("/containers/json"), None);
    }
}
