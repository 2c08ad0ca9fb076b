//! The agent's one retry helper: exponential back-off on transient failures only.
//!
//! The schedule is the node's [`TransferPolicy`]: `attempts` tries, the first retry after
//! `backoff`, each later one after twice the previous delay (at most 30 s). Waits go through a
//! [`Pause`], which sleeps in the agent and records in tests, so tests check the real schedule
//! without waiting for it.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::TransferPolicy;

/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// An error the helper can classify: transient ones are retried, the rest end at once.
pub(crate) trait Retryable: Sized {
    /// Whether trying again may succeed (connection refused or reset, timeout, 408, 429, 5xx).
    fn is_transient(&self) -> bool;
    /// The error of the last attempt, once `attempts` were made and all failed.
    fn gave_up(self, attempts: u32) -> Self;
}

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

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Retryable for Failure {
    fn is_transient(&self) -> bool {
        self.transient
    }

    fn gave_up(self, attempts: u32) -> Self {
        Failure::transient(format!(
            "{} (gave up after {attempts} attempts)",
            self.message
        ))
    }
}

/// How the helper waits between attempts: a real sleep, or (in tests) a note of the delay
/// and no wait at all.
#[derive(Clone, Default)]
pub(crate) struct Pause {
    recorded: Option<Arc<Mutex<Vec<Duration>>>>,
}

impl Pause {
    /// Records every delay instead of sleeping.
    #[cfg(test)]
    pub fn recording() -> Self {
        Pause {
            recorded: Some(Arc::default()),
        }
    }

    /// The delays asked for so far (empty for a real pause).
    #[cfg(test)]
    pub fn waits(&self) -> Vec<Duration> {
        self.recorded
            .as_ref()
            .map(|r| r.lock().unwrap().clone())
            .unwrap_or_default()
    }

    async fn wait(&self, delay: Duration) {
        match &self.recorded {
            Some(r) => r.lock().unwrap().push(delay),
            None => tokio::time::sleep(delay).await,
        }
    }
}

/// Runs `attempt` (given the attempt number, from 1) until it succeeds, fails permanently, or
/// `policy.attempts` are used up. An exhausted retry returns the last error with
/// [`Retryable::gave_up`], which says how many attempts were made.
pub(crate) async fn with_backoff<T, E, F, Fut>(
    policy: &TransferPolicy,
    pause: &Pause,
    mut attempt: F,
) -> Result<T, E>
where
    E: Retryable + std::fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let attempts = policy.attempts.max(1);
    let mut delay = policy.backoff;
    for n in 1..=attempts {
        match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(e) if !e.is_transient() => return Err(e),
            Err(e) if n == attempts => return Err(e.gave_up(attempts)),
            Err(e) => {
                tracing::info!(attempt = n, error = %e, retry_in = ?delay, "transient transfer error; retrying");
                pause.wait(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[tokio::test]
    async fn transient_failures_are_retried_on_the_default_schedule_until_success() {
        let calls = AtomicU32::new(0);
        let pause = Pause::recording();
        let r = with_backoff(&TransferPolicy::default(), &pause, |n| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 4 {
                    Err(Failure::transient("503"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(pause.waits(), ms(&[500, 1000, 2000]));
    }

    #[tokio::test]
    async fn delays_double_up_to_thirty_seconds() {
        let pause = Pause::recording();
        let policy = TransferPolicy {
            attempts: 8,
            backoff: Duration::from_secs(4),
            ..TransferPolicy::default()
        };
        let r: Result<(), _> = with_backoff(&policy, &pause, |_| async {
            Err(Failure::transient("503"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(
            pause.waits(),
            ms(&[4000, 8000, 16000, 30000, 30000, 30000, 30000])
        );
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let pause = Pause::recording();
        let r: Result<(), _> = with_backoff(&TransferPolicy::default(), &pause, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Failure::permanent("404")) }
        })
        .await;
        assert_eq!(r.unwrap_err().message, "404");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(pause.waits().is_empty());
    }

    #[tokio::test]
    async fn exhausted_retries_say_how_many_attempts_were_made() {
        let r: Result<(), _> =
            with_backoff(&TransferPolicy::default(), &Pause::recording(), |_| async {
                Err(Failure::transient("503"))
            })
            .await;
        let f = r.unwrap_err();
        assert!(f.transient);
        assert_eq!(f.message, "503 (gave up after 4 attempts)");
    }
}
