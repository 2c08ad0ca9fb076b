//! The connection to the Docker daemon and the API version both sides speak.
//!
//! bollard asks for its newest API version in every URL. Daemons older than the client refuse
//! that with "client version X is too new. Maximum supported API version is Y" (Docker 20.10
//! answers 1.41), and bollard's own `negotiate_version` fails the same way because its `/version`
//! call is versioned too. So the first call is tried at bollard's version and, on that refusal,
//! the connection is rebuilt at the version the daemon names.

use bollard::errors::Error as BollardError;
use bollard::{API_DEFAULT_VERSION, ClientVersion, Docker};

/// Seconds bollard waits for a response's headers (not for streams such as logs).
const REQUEST_TIMEOUT_S: u64 = 120;

/// What the daemon says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerInfo {
    /// The address used (`unix:///var/run/docker.sock`, `tcp://...`).
    pub host: String,
    /// Daemon version (`20.10.24`).
    pub version: String,
    /// The API version this client speaks to it (`1.41`).
    pub api_version: String,
    /// The daemon's OS, as Docker names it (`linux`).
    pub os: String,
    /// The daemon's CPU architecture, as Docker names it (`amd64`, `arm64`).
    pub arch: String,
}

impl DockerInfo {
    /// `os/arch`, the form `docker --platform` takes.
    pub fn platform(&self) -> String {
        format!("{}/{}", self.os, self.arch)
    }
}

/// A connection that has answered once, at an API version the daemon accepts.
#[derive(Debug, Clone)]
pub(super) struct Daemon {
    pub docker: Docker,
    pub info: DockerInfo,
}

/// Checks that `host` is an address this client can use, without contacting it.
pub(super) fn check_address(host: &str) -> Result<(), String> {
    if host.starts_with("unix://") || host.starts_with("tcp://") || host.starts_with("http://") {
        Ok(())
    } else {
        Err(format!(
            "docker daemon address {host:?} is not supported; set DOCKER_HOST to unix:///path/to/docker.sock or tcp://host:port"
        ))
    }
}

/// Builds a client for `host`. For a unix socket bollard checks that the socket exists.
fn client(host: &str, version: &ClientVersion) -> Result<Docker, BollardError> {
    if host.starts_with("unix://") {
        Docker::connect_with_unix(host, REQUEST_TIMEOUT_S, version)
    } else {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_S, version)
    }
}

/// Connects and asks the daemon for its version, settling the API version on the way.
pub(super) async fn open(host: &str) -> Result<Daemon, String> {
    let unreachable = |e: BollardError| {
        format!(
            "docker daemon at {host} does not answer: {e}; start it, or set DOCKER_HOST to where it listens"
        )
    };
    check_address(host)?;
    let mut docker = client(host, API_DEFAULT_VERSION).map_err(unreachable)?;
    let version = match docker.version().await {
        Ok(v) => v,
        Err(BollardError::DockerResponseServerError {
            status_code: 400,
            message,
        }) => {
            let Some(max) = max_supported_version(&message) else {
                return Err(format!(
                    "docker daemon at {host} refused the client: {message}"
                ));
            };
            docker = client(host, &max).map_err(unreachable)?;
            docker.version().await.map_err(unreachable)?
        }
        Err(e) => return Err(unreachable(e)),
    };
    let api = docker.client_version();
    Ok(Daemon {
        docker,
        info: DockerInfo {
            host: host.to_string(),
            version: version.version.unwrap_or_default(),
            api_version: format!("{}.{}", api.major_version, api.minor_version),
            os: version.os.unwrap_or_default(),
            arch: version.arch.unwrap_or_default(),
        },
    })
}

/// Reads `Y` out of "client version X is too new. Maximum supported API version is Y".
fn max_supported_version(message: &str) -> Option<ClientVersion> {
    let tail = message.rsplit_once("Maximum supported API version is")?.1;
    let (major, minor) = tail.trim().trim_end_matches('.').split_once('.')?;
    Some(ClientVersion {
        major_version: major.trim().parse().ok()?,
        minor_version: minor.trim().parse().ok()?,
    })
}

/// The message of a daemon error without bollard's wrapping.
pub(super) fn daemon_message(err: &BollardError) -> String {
    match err {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The HTTP status of a daemon error, if it got that far.
pub(super) fn daemon_status(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_new_refusal_names_the_version_to_use() {
        let v = max_supported_version(
            "client version 1.53 is too new. Maximum supported API version is 1.41",
        )
        .unwrap();
        assert_eq!((v.major_version, v.minor_version), (1, 41));
    }

    #[test]
    fn other_refusals_name_no_version() {
        assert!(max_supported_version("page not found").is_none());
    }

    #[test]
    fn unsupported_address_says_what_to_set() {
        let err = check_address("ssh://box").unwrap_err();
        assert!(err.contains("DOCKER_HOST"), "{err}");
    }
}
