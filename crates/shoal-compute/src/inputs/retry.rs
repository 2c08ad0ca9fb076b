//! The agent's one retry helper: exponential back-off on transient failures only.

use std::future::Future;
use std::time::Duration;

use crate::config::TransferPolicy;

/// How one attempt failed.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Whether trying again may succeed (connection refused, 5xx, timeout).
    pub transient: bool,
    /// What happened, naming the object.
    pub message: String,
}

impl Failure {
    pub fn transient(message: impl Into<String>) -> Self {
        Failure {
            transient: true,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Failure {
            transient: false,
            message: message.into(),
        }
    }
}

/// Runs `attempt` until it succeeds, fails permanently, or `policy.attempts` are used up.
/// The delay doubles from `policy.backoff` after each transient failure. The returned failure
/// of an exhausted retry says how many attempts were made.
pub(crate) async fn with_backoff<T, F, Fut>(
    policy: &TransferPolicy,
    mut attempt: F,
) -> Result<T, Failure>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let attempts = policy.attempts.max(1);
    let mut delay = policy.backoff;
    for n in 1..=attempts {
        match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(f) if !f.transient => return Err(f),
            Err(f) if n == attempts => {
                return Err(Failure::transient(format!(
                    "{} (gave up after {attempts} attempts)",
                    f.message
                )));
            }
            Err(f) => {
                tracing::info!(attempt = n, error = %f.message, retry_in = ?delay, "transient transfer error; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> TransferPolicy {
        TransferPolicy {
            attempts: 3,
            backoff: Duration::from_millis(1),
            ..TransferPolicy::default()
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let r = with_backoff(&policy(), |n| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    Err(Failure::transient("503"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = with_backoff(&policy(), |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Failure::permanent("404")) }
        })
        .await;
        assert_eq!(r.unwrap_err().message, "404");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn exhausted_retries_say_how_many_attempts_were_made() {
        let r: Result<(), _> =
            with_backoff(&policy(), |_| async { Err(Failure::transient("503")) }).await;
        let f = r.unwrap_err();
        assert!(f.transient);
        assert_eq!(f.message, "503 (gave up after 3 attempts)");
    }
}
