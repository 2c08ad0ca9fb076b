//! The `exec` engine's parameters, read once from the user's `{Type, Params}`.
//!
//! Keys are Bacalhau-style and matched case-insensitively: `Command` (required), `Arguments`
//! (a list of strings), `User`, `WorkingDirectory` (absolute), `Shell` (a boolean) and `Files`
//! (placed before the command runs; see [`super::files`]). Any
//! other key is refused by name: a misspelt `Argument` silently ignored would run a different
//! command than the one the user wrote.

use serde_json::Value;
use shoal_types::SpecConfig;

use super::files::FileSpec;
use crate::ExecutorError;
use crate::params::{kind_of, string_list, working_directory};

/// The parameter names the engine reads, in the order the documentation lists them.
pub const KNOWN_PARAMS: [&str; 6] = [
    "Command",
    "Arguments",
    "User",
    "WorkingDirectory",
    "Shell",
    "Files",
];

/// What one `exec` task asks the node to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecParams {
    /// The program: an absolute path, or a bare name looked up in the engine's fixed `PATH`
    /// on the node. With [`shell`](Self::shell), the script given to `/bin/sh -c`.
    pub command: String,
    /// Arguments after the program, passed as they are (no shell splitting or expansion).
    pub arguments: Vec<String>,
    /// The user to run as; `None` runs as the node's default exec user (`nobody`).
    pub user: Option<String>,
    /// The working directory on the node (absolute); `None` runs in `/`.
    pub working_directory: Option<String>,
    /// Run [`command`](Self::command) as a script with `/bin/sh -c`.
    pub shell: bool,
    /// Files placed on the node before the command runs.
    pub files: Vec<FileSpec>,
}

impl ExecParams {
    /// Reads and checks the params; errors name the parameter and say how to fix it.
    pub fn parse(engine: &SpecConfig) -> Result<ExecParams, ExecutorError> {
        if let Some(unknown) = engine
            .params
            .keys()
            .find(|k| !KNOWN_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(k)))
        {
            return Err(ExecutorError::user(format!(
                "exec engine: unknown parameter {unknown}; the known ones are {}",
                KNOWN_PARAMS.join(", ")
            )));
        }
        let command = match engine.param("Command") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(ExecutorError::user(
                    "exec engine: parameter Command is missing; set Engine.Params.Command to the program's absolute path, e.g. Command: /usr/bin/systemctl",
                ));
            }
            Some(other) => {
                return Err(ExecutorError::user(format!(
                    "exec engine: parameter Command must be a string, got {}; write it like Command: /usr/bin/systemctl and put arguments in Arguments",
                    kind_of(other)
                )));
            }
        };
        let shell = match engine.param("Shell") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(ExecutorError::user(format!(
                    "exec engine: parameter Shell must be true or false, got {}",
                    kind_of(other)
                )));
            }
        };
        let arguments = string_list(engine, "exec", "Arguments", "[\"restart\", \"nginx\"]")?;
        if shell && !arguments.is_empty() {
            return Err(ExecutorError::user(
                "exec engine: Arguments cannot be used with Shell: true; write the whole command line into Command, which /bin/sh -c runs",
            ));
        }
        if !shell && command.contains('/') && !command.starts_with('/') {
            return Err(ExecutorError::user(format!(
                "exec engine: Command {command:?} is a relative path; give the absolute path (e.g. /usr/bin/systemctl) or a bare program name"
            )));
        }
        let user = match engine.param("User") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(other) => {
                return Err(ExecutorError::user(format!(
                    "exec engine: parameter User must be a user name, got {}; write it like User: www-data",
                    kind_of(other)
                )));
            }
        };
        let working_directory = working_directory(engine, "exec", "WorkingDirectory: /srv/app")?;
        Ok(ExecParams {
            command,
            arguments,
            user,
            working_directory,
            shell,
            files: super::files::parse(engine)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(params: Value) -> SpecConfig {
        serde_json::from_value(json!({ "Type": "exec", "Params": params })).unwrap()
    }

    fn error(params: Value) -> String {
        ExecParams::parse(&spec(params)).unwrap_err().to_string()
    }

    #[test]
    fn bacalhau_style_keys_are_read_in_any_case() {
        let p = ExecParams::parse(&spec(json!({
            "command": "/usr/bin/systemctl",
            "ARGUMENTS": ["restart", "nginx", 2],
            "User": "www-data",
            "workingDirectory": "/srv",
            "shell": false,
        })))
        .unwrap();
        assert_eq!(
            p,
            ExecParams {
                command: "/usr/bin/systemctl".into(),
                arguments: vec!["restart".into(), "nginx".into(), "2".into()],
                user: Some("www-data".into()),
                working_directory: Some("/srv".into()),
                shell: false,
                files: Vec::new(),
            }
        );
    }

    #[test]
    fn an_unknown_parameter_is_refused_by_name() {
        let err = error(json!({"Command": "/bin/echo", "Argument": ["x"]}));
        assert!(
            err.starts_with("exec engine: unknown parameter Argument;"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_command_names_the_parameter() {
        assert!(error(json!({"Arguments": ["x"]})).contains("parameter Command is missing"));
    }

    #[test]
    fn a_relative_command_path_is_refused_but_a_bare_name_is_kept() {
        assert!(error(json!({"Command": "bin/echo"})).contains("relative path"));
        let p = ExecParams::parse(&spec(json!({"Command": "echo"}))).unwrap();
        assert_eq!(p.command, "echo");
    }

    #[test]
    fn arguments_with_a_shell_are_refused() {
        let err = error(json!({"Command": "echo $1", "Shell": true, "Arguments": ["x"]}));
        assert!(
            err.contains("Arguments cannot be used with Shell: true"),
            "{err}"
        );
    }

    #[test]
    fn shell_must_be_a_boolean() {
        assert!(error(json!({"Command": "/bin/true", "Shell": "yes"})).contains("Shell must be"));
    }

    #[test]
    fn a_relative_working_directory_is_refused() {
        let err = error(json!({"Command": "/bin/true", "WorkingDirectory": "srv"}));
        assert!(
            err.contains("WorkingDirectory must be an absolute path"),
            "{err}"
        );
    }
}
