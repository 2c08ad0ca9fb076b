//! Making sure an execution's image is on the node: used as is when present, pulled once when
//! not, and refused when it is built for another platform.
//!
//! A pull is tried once and its failure is final: nodes here often have no registry at all, and
//! retrying a missing image only delays the message that tells the user to load it.

use bollard::errors::Error as BollardError;
use bollard::models::ImageInspect;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;

use super::daemon::{Daemon, daemon_message, daemon_status};
use crate::ExecutorError;

/// Ensures `image` is present and runnable on the daemon's platform, pulling it if needed.
/// Pull progress goes to `progress`, one line per daemon message.
pub(super) async fn ensure_image(
    daemon: &Daemon,
    image: &str,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<(), ExecutorError> {
    let inspected = match daemon.docker.inspect_image(image).await {
        Ok(found) => found,
        Err(e) if daemon_status(&e) == Some(404) => {
            pull(daemon, image, progress).await?;
            daemon.docker.inspect_image(image).await.map_err(|e| {
                ExecutorError::transient(format!(
                    "image {image:?} was pulled but cannot be inspected: {}",
                    daemon_message(&e)
                ))
            })?
        }
        Err(e) => {
            return Err(ExecutorError::transient(format!(
                "image {image:?} could not be inspected on docker daemon {}: {}",
                daemon.info.host,
                daemon_message(&e)
            )));
        }
    };
    check_platform(daemon, image, &inspected)
}

/// Whether the daemon refused a container because its image is not on the node.
pub(super) fn is_missing(err: &BollardError) -> bool {
    daemon_status(err) == Some(404) && daemon_message(err).starts_with("No such image")
}

async fn pull(
    daemon: &Daemon,
    image: &str,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<(), ExecutorError> {
    let (from_image, tag) = pull_reference(image);
    let mut options = CreateImageOptionsBuilder::default().from_image(&from_image);
    if let Some(tag) = &tag {
        options = options.tag(tag);
    }
    let not_pulled = |cause: String| {
        ExecutorError::user(format!(
            "image {image:?} not found locally and could not be pulled: {cause}; build or load it on this node (docker load/import) or push it to a registry the node can reach"
        ))
    };
    let mut stream = daemon
        .docker
        .create_image(Some(options.build()), None, None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| not_pulled(daemon_message(&e)))?;
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            return Err(not_pulled(message));
        }
        let line = [
            info.id,
            info.status,
            info.progress_detail
                .and_then(|p| Some(format!("{}/{}", p.current?, p.total?))),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        if !line.is_empty() {
            progress(format!("pulling {image}: {line}"));
        }
    }
    Ok(())
}

/// Splits a reference for the pull API. Without a tag the API pulls every tag of the repository,
/// so a bare name means `latest`, as the docker CLI does.
fn pull_reference(image: &str) -> (String, Option<String>) {
    if image.contains('@') {
        return (image.to_string(), None);
    }
    let last_segment_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_segment_start..].rfind(':') {
        Some(i) => {
            let split = last_segment_start + i;
            (
                image[..split].to_string(),
                Some(image[split + 1..].to_string()),
            )
        }
        None => (image.to_string(), Some("latest".to_string())),
    }
}

fn check_platform(
    daemon: &Daemon,
    image: &str,
    inspected: &ImageInspect,
) -> Result<(), ExecutorError> {
    let os = inspected.os.as_deref().unwrap_or_default();
    let arch = inspected.architecture.as_deref().unwrap_or_default();
    let node = &daemon.info;
    // An image that does not say is given the benefit of the doubt.
    let os_differs = !os.is_empty() && !node.os.is_empty() && os != node.os;
    let arch_differs = !arch.is_empty() && !node.arch.is_empty() && arch != node.arch;
    if os_differs || arch_differs {
        // Another node of the right platform may run it, so this is not the user's final answer.
        return Err(ExecutorError::transient(format!(
            "image {image:?} is built for {os}/{arch} but this node runs {}; build or pull the image for {} (docker build --platform {}) or run the job on a {os}/{arch} node",
            node.platform(),
            node.platform(),
            node.platform(),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_pull_latest() {
        assert_eq!(
            pull_reference("busybox"),
            ("busybox".into(), Some("latest".into()))
        );
    }

    #[test]
    fn tags_are_split_after_the_last_slash() {
        assert_eq!(
            pull_reference("localhost:5000/org/app:1.2"),
            ("localhost:5000/org/app".into(), Some("1.2".into()))
        );
        assert_eq!(
            pull_reference("localhost:5000/app"),
            ("localhost:5000/app".into(), Some("latest".into()))
        );
    }

    #[test]
    fn digests_are_passed_whole() {
        let r = "ubuntu@sha256:abc";
        assert_eq!(pull_reference(r), (r.into(), None));
    }
}
