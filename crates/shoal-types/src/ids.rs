//! Typed identifiers: `j-`, `e-` and `n-` followed by a UUID, as Bacalhau writes them.
//!
//! Ids are generated as UUIDv7 so that they sort by creation time in the store, while keeping
//! the standard UUID text form that Bacalhau clients expect. Any string is accepted when parsing
//! a node id, because Bacalhau lets operators name nodes (`serve --name`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An id that was not of the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} id {value:?} is not valid: expected {prefix}<uuid> or a unique prefix of one")]
pub struct IdError {
    kind: &'static str,
    prefix: &'static str,
    value: String,
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every generated id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7()))
            }

            /// Wraps a string that is already known to be an id of this kind.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// Parses an id typed by a user; it must carry this kind's prefix.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                if value.starts_with($prefix) && value.len() > $prefix.len() {
                    Ok(Self(value.to_string()))
                } else {
                    Err(IdError { kind: $kind, prefix: $prefix, value: value.to_string() })
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The short form shown in tables: prefix plus the first UUID group.
            pub fn short(&self) -> &str {
                short_form(&self.0, $prefix)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn short_form<'a>(id: &'a str, prefix: &str) -> &'a str {
    let Some(rest) = id.strip_prefix(prefix) else {
        return id;
    };
    match rest.find('-') {
        Some(dash) => &id[..prefix.len() + dash],
        None => id,
    }
}

typed_id!(
    /// Identifies a job (`j-<uuid>`).
    JobId, "j-", "job"
);
typed_id!(
    /// Identifies one execution of a job on one node (`e-<uuid>`).
    ExecutionId, "e-", "execution"
);
typed_id!(
    /// Identifies a node (`n-<uuid>`, or an operator-chosen name).
    NodeId, "n-", "node"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_sort_by_time() {
        let a = JobId::generate();
        let b = JobId::generate();
        assert!(a.as_str().starts_with("j-"));
        assert!(a < b, "v7 ids must sort in creation order");
    }

    #[test]
    fn short_form_is_prefix_plus_first_uuid_group() {
        let id = JobId::new("j-78faf114-1234-7000-8000-000000000000");
        assert_eq!(id.short(), "j-78faf114");
        assert_eq!(NodeId::new("edge-box").short(), "edge-box");
    }

    #[test]
    fn parse_rejects_wrong_prefix_with_a_clear_message() {
        let err = ExecutionId::parse("j-123").unwrap_err();
        assert_eq!(
            err.to_string(),
            "execution id \"j-123\" is not valid: expected e-<uuid> or a unique prefix of one"
        );
    }
}
