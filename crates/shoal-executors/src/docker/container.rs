//! The container an execution runs in: name, labels, mounts, limits and network, built from the
//! request as a plain value so that it can be checked without a daemon.
//!
//! Mirrors Bacalhau's `newDockerJobContainer` and `network.go`: inputs are bind mounts
//! (read-only unless asked), each result path is a writable bind mount of
//! `results_dir/<Name>`, memory is a hard limit with no extra swap, CPU is `NanoCPUs`, and the
//! network type picks the network mode.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, Mount, MountType, PortBinding,
};
use shoal_types::NetworkType;

use super::params::DockerParams;
use crate::{ExecutionRequest, ExecutorError};

/// Label set to `true` on every container Shoal starts, so that leftovers can be found.
pub const LABEL_MANAGED: &str = "shoal.managed";
/// Label holding the job id.
pub const LABEL_JOB_ID: &str = "shoal.job-id";
/// Label holding the execution id.
pub const LABEL_EXECUTION_ID: &str = "shoal.execution-id";
/// Label holding the id of the node whose agent started the container, when the executor was
/// given one; it keeps agents that share a daemon (devstack) out of each other's cleanup.
pub const LABEL_NODE_ID: &str = "shoal.node-id";

/// The container name for an execution: `shoal-<execution id>`, with characters Docker refuses
/// in names replaced by `-`.
pub fn container_name(execution_id: &str) -> String {
    let safe: String = execution_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("shoal-{safe}")
}

/// The labels put on an execution's container.
pub fn labels(request: &ExecutionRequest, node_id: Option<&str>) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_JOB_ID.to_string(), request.job_id.clone()),
        (LABEL_EXECUTION_ID.to_string(), request.execution_id.clone()),
        // Bacalhau's names, so that its tooling recognises the containers.
        ("bacalhau-jobID".to_string(), request.job_id.clone()),
        (
            "bacalhau-executionID".to_string(),
            request.execution_id.clone(),
        ),
    ]);
    if let Some(node) = node_id {
        labels.insert(LABEL_NODE_ID.to_string(), node.to_string());
    }
    labels
}

/// Builds the create request. The results folders named here must exist before the container
/// is created (bind mounts of missing paths fail); [`result_dirs`] lists them.
pub fn container_body(
    request: &ExecutionRequest,
    params: &DockerParams,
    node_id: Option<&str>,
) -> Result<ContainerCreateBody, ExecutorError> {
    let mut env: BTreeMap<String, String> = request.env.clone();
    for (name, value) in &params.env {
        env.insert(name.clone(), value.clone());
    }

    let mut mounts: Vec<Mount> = request
        .inputs
        .iter()
        .map(|input| Mount {
            typ: Some(MountType::BIND),
            source: Some(input.host_path.to_string_lossy().into_owned()),
            target: Some(input.target.clone()),
            read_only: Some(!input.read_write),
            ..Default::default()
        })
        .collect();
    for (host, path) in result_dirs(request)? {
        mounts.push(Mount {
            typ: Some(MountType::BIND),
            source: Some(host.to_string_lossy().into_owned()),
            target: Some(path),
            read_only: Some(false),
            ..Default::default()
        });
    }

    let memory = i64::try_from(request.resources.memory).unwrap_or(i64::MAX);
    let mut host_config = HostConfig {
        mounts: Some(mounts),
        ..Default::default()
    };
    if memory > 0 {
        host_config.memory = Some(memory);
        // Equal to the memory limit: no swap on top, so the limit is a real ceiling.
        host_config.memory_swap = Some(memory);
    }
    if request.resources.cpu > 0.0 {
        host_config.nano_cpus = Some((request.resources.cpu * 1e9).round() as i64);
    }
    if request.resources.gpu > 0 {
        host_config.device_requests = Some(vec![DeviceRequest {
            driver: Some("nvidia".to_string()),
            count: Some(i64::try_from(request.resources.gpu).unwrap_or(i64::MAX)),
            capabilities: Some(vec![vec!["gpu".to_string()]]),
            ..Default::default()
        }]);
    }

    let mut body = ContainerCreateBody {
        image: Some(params.image.clone()),
        env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels(request, node_id)),
        working_dir: params.working_directory.clone(),
        ..Default::default()
    };
    if !params.entrypoint.is_empty() {
        body.entrypoint = Some(params.entrypoint.clone());
    }
    if !params.parameters.is_empty() {
        body.cmd = Some(params.parameters.clone());
    }

    match request.network.kind {
        NetworkType::None => {
            host_config.network_mode = Some("none".to_string());
            body.network_disabled = Some(true);
        }
        NetworkType::Default => host_config.network_mode = Some("bridge".to_string()),
        NetworkType::Host | NetworkType::Full => {
            host_config.network_mode = Some("host".to_string());
            host_config.extra_hosts = Some(vec!["host.docker.internal:host-gateway".to_string()]);
        }
        NetworkType::Bridge => {
            host_config.network_mode = Some("bridge".to_string());
            let mut bindings = HashMap::new();
            let mut exposed = Vec::new();
            for port in &request.network.ports {
                let key = format!("{}/tcp", port.target);
                exposed.push(key.clone());
                let binding = PortBinding {
                    host_ip: Some(if port.host_network.is_empty() {
                        "0.0.0.0".to_string()
                    } else {
                        port.host_network.clone()
                    }),
                    // Empty asks the daemon to pick a free host port.
                    host_port: Some(if port.static_port == 0 {
                        String::new()
                    } else {
                        port.static_port.to_string()
                    }),
                };
                bindings
                    .entry(key)
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(binding);
            }
            host_config.port_bindings = Some(bindings);
            body.exposed_ports = Some(exposed);
        }
        NetworkType::Http => {
            return Err(ExecutorError::user(
                "docker engine: network type HTTP (domain allow-listing) is not supported on this node; use Network.Type Full, Bridge or None",
            ));
        }
    }

    body.host_config = Some(host_config);
    Ok(body)
}

/// For each result path: the host folder (`results_dir/<Name>`) and the path inside the task.
pub fn result_dirs(
    request: &ExecutionRequest,
) -> Result<Vec<(std::path::PathBuf, String)>, ExecutorError> {
    request
        .result_paths
        .iter()
        .map(|result| {
            let name = result.name.as_str();
            // The name becomes a folder under results_dir; anything that could climb out of it
            // is refused.
            if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                return Err(ExecutorError::user(format!(
                    "result path {name:?}: the name must be a plain folder name without '/'; rename it, e.g. outputs"
                )));
            }
            if !result.path.starts_with('/') {
                return Err(ExecutorError::user(format!(
                    "result path {name}: path {:?} is not absolute; write it like /outputs",
                    result.path
                )));
            }
            Ok((request.results_dir.join(name), result.path.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use shoal_types::{JobType, Network, Port, Resources, ResultPath, SpecConfig};

    use super::*;
    use crate::PreparedInput;

    fn request() -> ExecutionRequest {
        ExecutionRequest {
            job_id: "j-1".into(),
            execution_id: "e-1".into(),
            job_type: JobType::Batch,
            engine: SpecConfig::of("docker"),
            env: BTreeMap::from([("A".into(), "task".into()), ("B".into(), "task".into())]),
            inputs: vec![PreparedInput {
                host_path: PathBuf::from("/staged/in"),
                target: "/inputs".into(),
                read_write: false,
            }],
            results_dir: PathBuf::from("/results"),
            result_paths: vec![ResultPath {
                name: "out".into(),
                path: "/outputs".into(),
            }],
            resources: Resources {
                cpu: 0.5,
                memory: 64 << 20,
                disk: 0,
                gpu: 0,
            },
            network: Network::default(),
            timeout: None,
        }
    }

    fn params() -> DockerParams {
        DockerParams {
            image: "busybox".into(),
            env: vec![("B".into(), "param".into())],
            ..Default::default()
        }
    }

    #[test]
    fn engine_environment_overrides_task_environment() {
        let body = container_body(&request(), &params(), None).unwrap();
        assert_eq!(body.env.unwrap(), ["A=task", "B=param"]);
    }

    #[test]
    fn inputs_are_read_only_and_results_writable() {
        let body = container_body(&request(), &params(), None).unwrap();
        let mounts = body.host_config.unwrap().mounts.unwrap();
        assert_eq!(mounts[0].source.as_deref(), Some("/staged/in"));
        assert_eq!(mounts[0].read_only, Some(true));
        assert_eq!(mounts[1].source.as_deref(), Some("/results/out"));
        assert_eq!(mounts[1].target.as_deref(), Some("/outputs"));
        assert_eq!(mounts[1].read_only, Some(false));
    }

    #[test]
    fn limits_become_memory_without_swap_and_nano_cpus() {
        let host = container_body(&request(), &params(), None)
            .unwrap()
            .host_config
            .unwrap();
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.memory_swap, Some(64 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
    }

    #[test]
    fn zero_limits_are_left_unset() {
        let mut req = request();
        req.resources = Resources::default();
        let host = container_body(&req, &params(), None)
            .unwrap()
            .host_config
            .unwrap();
        assert_eq!(
            (host.memory, host.nano_cpus, host.device_requests),
            (None, None, None)
        );
    }

    #[test]
    fn network_types_pick_the_network_mode() {
        let mode = |kind| {
            let mut req = request();
            req.network.kind = kind;
            container_body(&req, &params(), None)
                .unwrap()
                .host_config
                .unwrap()
                .network_mode
                .unwrap()
        };
        assert_eq!(mode(NetworkType::None), "none");
        assert_eq!(mode(NetworkType::Default), "bridge");
        assert_eq!(mode(NetworkType::Host), "host");
        assert_eq!(mode(NetworkType::Full), "host");
        assert_eq!(mode(NetworkType::Bridge), "bridge");
    }

    #[test]
    fn bridge_ports_bind_static_host_ports_to_targets() {
        let mut req = request();
        req.network = Network {
            kind: NetworkType::Bridge,
            domains: vec![],
            ports: vec![Port {
                name: "web".into(),
                static_port: 8080,
                target: 80,
                host_network: String::new(),
            }],
        };
        let body = container_body(&req, &params(), None).unwrap();
        assert_eq!(body.exposed_ports.unwrap(), ["80/tcp"]);
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let b = &bindings["80/tcp"].as_ref().unwrap()[0];
        assert_eq!(b.host_port.as_deref(), Some("8080"));
    }

    #[test]
    fn http_network_is_refused_with_a_fix() {
        let mut req = request();
        req.network.kind = NetworkType::Http;
        let err = container_body(&req, &params(), None).unwrap_err();
        assert!(err.to_string().contains("HTTP"), "{err}");
    }

    #[test]
    fn result_name_that_climbs_out_is_refused() {
        let mut req = request();
        req.result_paths[0].name = "../etc".into();
        assert!(container_body(&req, &params(), None).is_err());
    }

    #[test]
    fn every_container_is_labelled_with_its_execution() {
        let labels = container_body(&request(), &params(), None)
            .unwrap()
            .labels
            .unwrap();
        assert_eq!(labels[LABEL_MANAGED], "true");
        assert_eq!(labels[LABEL_EXECUTION_ID], "e-1");
        assert_eq!(labels[LABEL_JOB_ID], "j-1");
    }

    #[test]
    fn node_label_is_set_only_when_the_executor_has_a_node() {
        let labels = container_body(&request(), &params(), Some("n-1"))
            .unwrap()
            .labels
            .unwrap();
        assert_eq!(labels[LABEL_NODE_ID], "n-1");
        let labels = container_body(&request(), &params(), None)
            .unwrap()
            .labels
            .unwrap();
        assert!(!labels.contains_key(LABEL_NODE_ID));
    }

    #[test]
    fn container_names_replace_characters_docker_refuses() {
        assert_eq!(container_name("e-1/2 3"), "shoal-e-1-2-3");
    }
}
