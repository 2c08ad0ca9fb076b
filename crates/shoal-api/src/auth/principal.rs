//! Who a request speaks for.

use serde::Serialize;

use super::grant::{Capability, Grant};

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A username and password (`Authorization: Basic`).
    User,
    /// An API key (`Authorization: Bearer <key>`).
    ApiKey,
    /// No credentials, on a server that lets anonymous callers in.
    Anonymous,
}

/// One caller of the API, with what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Principal {
    /// How it authenticated.
    pub kind: PrincipalKind,
    /// The name errors and the audit log use: the user's `Alias`, else its `Username`, else
    /// `API key ending in ...XXXXX` (Bacalhau's naming, which its tests assert).
    pub name: String,
    /// What it holds.
    #[serde(serialize_with = "grant_strings")]
    pub grants: Vec<Grant>,
    /// The namespaces whose jobs it sees; empty means every namespace.
    pub namespaces: Vec<String>,
}

fn grant_strings<S: serde::Serializer>(grants: &[Grant], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(grants.iter().map(|g| g.to_string()))
}

impl Principal {
    /// An anonymous caller holding `grants`.
    pub fn anonymous(grants: Vec<Grant>) -> Self {
        Principal {
            kind: PrincipalKind::Anonymous,
            name: "anonymous".into(),
            grants,
            namespaces: vec![],
        }
    }

    /// Whether it may do what `needed` names.
    pub fn can(&self, needed: Capability) -> bool {
        self.grants.iter().any(|g| g.allows(needed))
    }

    /// Whether jobs of `namespace` exist for it. Jobs of other namespaces are answered as not
    /// found, so their existence does not leak.
    pub fn sees_namespace(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }

    /// The namespace a job submitted without one goes to: the principal's only namespace when
    /// it is scoped to exactly one, else Bacalhau's `default`.
    pub fn default_namespace(&self) -> &str {
        match self.namespaces.as_slice() {
            [only] => only,
            _ => "default",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::grant::Resource;

    #[test]
    fn a_scoped_principal_sees_only_its_namespaces_and_submits_into_its_only_one() {
        let mut p = Principal::anonymous(vec![Grant::All]);
        assert!(p.sees_namespace("anything"));
        assert_eq!(p.default_namespace(), "default");
        p.namespaces = vec!["team-a".into()];
        assert!(p.sees_namespace("team-a"));
        assert!(!p.sees_namespace("team-b"));
        assert_eq!(p.default_namespace(), "team-a");
    }

    #[test]
    fn a_principal_can_what_one_of_its_grants_allows() {
        let p = Principal::anonymous(vec![
            Grant::Exactly(Capability::Read(Resource::Job)),
            Grant::Exactly(Capability::Query),
        ]);
        assert!(p.can(Capability::Read(Resource::Job)));
        assert!(p.can(Capability::Query));
        assert!(!p.can(Capability::Write(Resource::Job)));
    }
}
