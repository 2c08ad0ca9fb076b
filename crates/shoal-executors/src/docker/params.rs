//! The `docker` engine's parameters, read once from the user's `{Type, Params}`.
//!
//! Keys follow Bacalhau (`pkg/models/types.go`) and are matched case-insensitively: `Image`
//! (required), `Entrypoint` and `Parameters` (lists of strings), `EnvironmentVariables`
//! (`"K=V"` strings) and `WorkingDirectory` (absolute).

use serde_json::Value;
use shoal_types::SpecConfig;

use crate::ExecutorError;
use crate::params::{string_list, working_directory};

/// The parameters of one `docker` task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerParams {
    /// Image reference as written (`ubuntu:24.04`, `ghcr.io/org/app@sha256:...`).
    pub image: String,
    /// Overrides the image's entrypoint when not empty.
    pub entrypoint: Vec<String>,
    /// Arguments, passed as the container's command.
    pub parameters: Vec<String>,
    /// Extra environment, as `(name, value)` pairs in the order written.
    pub env: Vec<(String, String)>,
    /// Working directory inside the container, if set.
    pub working_directory: Option<String>,
}

impl DockerParams {
    /// Reads and checks the params; errors name the parameter and say how to fix it.
    pub fn parse(engine: &SpecConfig) -> Result<DockerParams, ExecutorError> {
        let image = match engine.param("Image") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(ExecutorError::user(
                    "docker engine: parameter Image is missing; set Engine.Params.Image to an image reference such as ubuntu:24.04",
                ));
            }
            Some(other) => {
                return Err(ExecutorError::user(format!(
                    "docker engine: parameter Image must be a string, got {other}; write it like Image: ubuntu:24.04"
                )));
            }
        };
        let env = string_list(engine, "docker", "EnvironmentVariables", "[\"KEY=value\"]")?
            .into_iter()
            .map(|entry| match entry.split_once('=') {
                Some((name, value)) if !name.is_empty() => {
                    Ok((name.to_string(), value.to_string()))
                }
                _ => Err(ExecutorError::user(format!(
                    "docker engine: EnvironmentVariables entry {entry:?} is not NAME=VALUE; write it like GREETING=hello"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let working_directory = working_directory(engine, "docker", "/work")?;
        Ok(DockerParams {
            image,
            entrypoint: string_list(engine, "docker", "Entrypoint", "[\"/bin/sh\", \"-c\"]")?,
            parameters: string_list(engine, "docker", "Parameters", "[\"a\", \"b\"]")?,
            env,
            working_directory,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(params: Value) -> SpecConfig {
        serde_json::from_value(json!({ "Type": "docker", "Params": params })).unwrap()
    }

    #[test]
    fn params_are_read_case_insensitively() {
        let p = DockerParams::parse(&spec(json!({
            "image": "busybox:1",
            "ENTRYPOINT": ["sh", "-c"],
            "parameters": ["echo", 1, true],
            "environmentvariables": ["A=1", "B=x=y"],
            "workingDirectory": "/work",
        })))
        .unwrap();
        assert_eq!(p.image, "busybox:1");
        assert_eq!(p.entrypoint, ["sh", "-c"]);
        assert_eq!(p.parameters, ["echo", "1", "true"]);
        assert_eq!(
            p.env,
            [("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert_eq!(p.working_directory.as_deref(), Some("/work"));
    }

    #[test]
    fn missing_image_is_a_user_error_naming_the_parameter() {
        let err = DockerParams::parse(&spec(json!({ "Parameters": ["x"] }))).unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("Image"), "{err}");
    }

    #[test]
    fn environment_entry_without_equals_is_refused() {
        let err = DockerParams::parse(&spec(
            json!({ "Image": "a", "EnvironmentVariables": ["NOPE"] }),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("\"NOPE\""), "{err}");
    }

    #[test]
    fn relative_working_directory_is_refused() {
        let err = DockerParams::parse(&spec(json!({ "Image": "a", "WorkingDirectory": "work" })))
            .unwrap_err();
        assert!(err.to_string().contains("WorkingDirectory"), "{err}");
    }

    #[test]
    fn entrypoint_that_is_a_string_is_refused() {
        let err =
            DockerParams::parse(&spec(json!({ "Image": "a", "Entrypoint": "sh -c" }))).unwrap_err();
        assert!(err.to_string().contains("Entrypoint"), "{err}");
    }
}
