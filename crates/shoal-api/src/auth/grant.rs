//! Capabilities (what a request needs) and grants (what a principal holds).
//!
//! The strings are Bacalhau's (`read:job`, `write:node`, `*`, `read:*`, ...), so a Bacalhau
//! config's `Capabilities` load unchanged, plus Shoal's own: `query` (fleet SQL), `exec` (host
//! commands) and `admin` (the audit log). `write:x` does not imply `read:x`, as in Bacalhau;
//! `read:*`/`write:*` cover job, node and agent but none of Shoal's own; only `*` covers all.

use std::fmt;
use std::str::FromStr;

/// The objects Bacalhau's capabilities name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `/api/v1/orchestrator/jobs/...`
    Job,
    /// `/api/v1/orchestrator/nodes/...` (and, as in Bacalhau, any path not mapped elsewhere).
    Node,
    /// `/api/v1/agent/...`
    Agent,
}

/// What one request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Read a resource (`GET`).
    Read(Resource),
    /// Change a resource (every other method).
    Write(Resource),
    /// Ask the fleet in SQL (`shoal query`, jobs with the `query` engine).
    Query,
    /// Run host commands (jobs with the `exec` engine).
    Exec,
    /// Run host commands through a shell (`Shell: true` of the `exec` engine, `shoal exec
    /// --shell`), on top of [`Capability::Exec`]: a script is harder to review than a command.
    ExecShell,
    /// Read the audit log.
    Admin,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Job => "job",
            Resource::Node => "node",
            Resource::Agent => "agent",
        })
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::Read(r) => write!(f, "read:{r}"),
            Capability::Write(r) => write!(f, "write:{r}"),
            Capability::Query => f.write_str("query"),
            Capability::Exec => f.write_str("exec"),
            Capability::ExecShell => f.write_str("exec:shell"),
            Capability::Admin => f.write_str("admin"),
        }
    }
}

/// One entry of a principal's `Capabilities[].Actions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    /// `*`: everything, Shoal's own capabilities included.
    All,
    /// `read:*`: read job, node and agent.
    ReadAll,
    /// `write:*`: change job, node and agent.
    WriteAll,
    /// One capability, e.g. `write:job` or `exec`.
    Exactly(Capability),
}

impl Grant {
    /// Whether this grant covers `needed`.
    pub fn allows(self, needed: Capability) -> bool {
        match self {
            Grant::All => true,
            Grant::ReadAll => matches!(needed, Capability::Read(_)),
            Grant::WriteAll => matches!(needed, Capability::Write(_)),
            Grant::Exactly(c) => c == needed,
        }
    }
}

/// The grants a config may name, for error messages.
pub const KNOWN_GRANTS: &str = "*, read:*, write:*, read:job, write:job, read:node, write:node, read:agent, write:agent, query, exec, exec:shell, admin";

impl FromStr for Grant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let resource = |r: &str| match r {
            "job" => Some(Resource::Job),
            "node" => Some(Resource::Node),
            "agent" => Some(Resource::Agent),
            _ => None,
        };
        let t = s.trim().to_ascii_lowercase();
        let grant = match t.as_str() {
            "*" => Some(Grant::All),
            "read:*" => Some(Grant::ReadAll),
            "write:*" => Some(Grant::WriteAll),
            "query" => Some(Grant::Exactly(Capability::Query)),
            "exec" => Some(Grant::Exactly(Capability::Exec)),
            "exec:shell" => Some(Grant::Exactly(Capability::ExecShell)),
            "admin" => Some(Grant::Exactly(Capability::Admin)),
            _ => match t.split_once(':') {
                Some(("read", r)) => resource(r).map(|r| Grant::Exactly(Capability::Read(r))),
                Some(("write", r)) => resource(r).map(|r| Grant::Exactly(Capability::Write(r))),
                _ => None,
            },
        };
        grant.ok_or_else(|| format!("unknown capability {s:?}; known ones are {KNOWN_GRANTS}"))
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::All => f.write_str("*"),
            Grant::ReadAll => f.write_str("read:*"),
            Grant::WriteAll => f.write_str("write:*"),
            Grant::Exactly(c) => c.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> Grant {
        s.parse().unwrap()
    }

    #[test]
    fn bacalhau_strings_parse_and_print_back() {
        for s in [
            "*",
            "read:*",
            "write:*",
            "read:job",
            "write:job",
            "read:node",
            "write:agent",
            "query",
            "exec",
            "exec:shell",
            "admin",
        ] {
            assert_eq!(g(s).to_string(), s);
        }
        assert_eq!(g("Write:Job"), g("write:job"), "case does not matter");
    }

    #[test]
    fn write_does_not_imply_read_as_in_bacalhau() {
        assert!(!g("write:job").allows(Capability::Read(Resource::Job)));
        assert!(g("write:job").allows(Capability::Write(Resource::Job)));
        assert!(!g("write:job").allows(Capability::Write(Resource::Node)));
    }

    #[test]
    fn wildcards_cover_bacalhaus_resources_but_only_star_covers_exec() {
        assert!(g("read:*").allows(Capability::Read(Resource::Agent)));
        assert!(!g("read:*").allows(Capability::Write(Resource::Agent)));
        assert!(g("write:*").allows(Capability::Write(Resource::Node)));
        for own in [Capability::Query, Capability::Exec, Capability::Admin] {
            assert!(!g("read:*").allows(own));
            assert!(!g("write:*").allows(own));
            assert!(g("*").allows(own));
        }
        assert!(!g("query").allows(Capability::Exec));
    }

    #[test]
    fn an_unknown_capability_is_refused_with_the_known_ones() {
        let e = "write:jobs".parse::<Grant>().unwrap_err();
        assert!(e.contains("\"write:jobs\""), "{e}");
        assert!(e.contains("write:job,"), "{e}");
    }
}
