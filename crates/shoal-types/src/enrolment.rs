//! Node enrolment: join tokens that let a new compute node in once, and the per-node keys they
//! are traded for.
//!
//! A join token reads `<id>.<secret>`. The orchestrator keeps only the secret's SHA-256, with an
//! expiry and an optional number of uses. A node presents the token together with its own node
//! key (32 random bytes it generated and keeps in its data dir) on its first connect; the
//! orchestrator checks the token, spends one use and stores the hash of the node key. From then
//! on the node key alone lets that node in, so expiring or deleting join tokens leaves enrolled
//! nodes alone, and revoking one node's key leaves the others alone.

use serde::{Deserialize, Serialize};

/// A join token as the orchestrator lists it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinToken {
    /// The public half of `<id>.<secret>`.
    #[serde(rename = "ID")]
    pub id: String,
    /// When it was created (Unix nanoseconds).
    pub created_at: i64,
    /// When it stops letting nodes in (Unix nanoseconds).
    pub expires_at: i64,
    /// Nodes it may still enrol; `None` = any number until it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses_left: Option<u32>,
    /// What the operator wrote it for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The answer to creating a join token: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewJoinToken {
    /// The stored token.
    pub token: JoinToken,
    /// `<id>.<secret>`, to give to `shoal serve --compute --token`.
    pub secret: String,
}

/// What to create a join token with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JoinTokenRequest {
    /// How long it lets nodes in, as a Go duration (`24h`); empty = 24 hours.
    #[serde(rename = "TTL")]
    pub ttl: String,
    /// How many nodes it may enrol; `None` = any number until it expires.
    pub uses: Option<u32>,
    /// A note for operators.
    pub description: String,
}

/// Splits `<id>.<secret>`; `None` when the text has no dot or an empty half (then it may be a
/// shared token from `--token`).
pub fn split_join_token(text: &str) -> Option<(&str, &str)> {
    let (id, secret) = text.split_once('.')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// A fresh random secret: 32 hex characters from the operating system's generator, twice.
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_token_splits_at_its_first_dot_and_a_shared_token_does_not_split() {
        assert_eq!(split_join_token("ab12.s3cret"), Some(("ab12", "s3cret")));
        assert_eq!(split_join_token("ab12.s3.cret"), Some(("ab12", "s3.cret")));
        assert_eq!(split_join_token("0123456789abcdef"), None);
        assert_eq!(split_join_token(".secret"), None);
        assert_eq!(split_join_token("id."), None);
    }

    #[test]
    fn secrets_are_long_and_different_each_time() {
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
