//! Users in Bacalhau's config shape (`API.Auth.Users`) and the [`Authenticator`] built from
//! them: one lookup from an `Authorization` header to a [`Principal`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::grant::Grant;
use super::principal::{Principal, PrincipalKind};

/// Bacalhau's limits (`pkg/authz/entry_point_authorizer.go`), so a config Bacalhau refuses is
/// refused here too, with the same wording.
const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 10..=255;
const API_KEY_LEN: std::ops::RangeInclusive<usize> = 20..=255;
const USERNAME_MAX: usize = 100;

/// One entry of `API.Auth.Users`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UserConfig {
    /// The name errors and the audit log show.
    #[serde(default)]
    pub alias: Option<String>,
    /// For basic auth: letters and digits, matched case-insensitively.
    #[serde(default)]
    pub username: Option<String>,
    /// For basic auth: the password, or its bcrypt hash (`$2a$...`, from
    /// `shoal auth hash-password` or `bacalhau auth hash-password`).
    #[serde(default)]
    pub password: Option<SecretString>,
    /// For bearer auth: the API key.
    #[serde(default, rename = "APIKey")]
    pub api_key: Option<SecretString>,
    /// What the user may do.
    #[serde(default)]
    pub capabilities: Vec<CapabilityConfig>,
    /// Shoal's extension: the namespaces whose jobs the user sees (all when empty).
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// One `Capabilities` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CapabilityConfig {
    /// Capability strings, e.g. `read:job`, `write:*`, `exec`.
    #[serde(default)]
    pub actions: Vec<String>,
}

/// What anonymous callers (no `Authorization` header) may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnonymousAccess {
    /// Nothing: every protected call needs credentials (the default outside devstack).
    None,
    /// Read jobs, nodes and agent info (`read:*`).
    Read,
    /// Read and change jobs, nodes and agent info (`read:*`, `write:*`): what Bacalhau's
    /// Python SDK, which sends no credentials, needs. Not fleet SQL, host commands or audit.
    Write,
    /// Everything (`*`): devstack, where the whole cluster is one process on one machine.
    All,
}

impl AnonymousAccess {
    fn grants(self) -> Option<Vec<Grant>> {
        match self {
            AnonymousAccess::None => None,
            AnonymousAccess::Read => Some(vec![Grant::ReadAll]),
            AnonymousAccess::Write => Some(vec![Grant::ReadAll, Grant::WriteAll]),
            AnonymousAccess::All => Some(vec![Grant::All]),
        }
    }
}

/// A config the authenticator cannot be built from. The messages follow Bacalhau's.
#[derive(Debug, thiserror::Error)]
#[error("API.Auth.Users: {0}; fix the config file and start again")]
pub struct UsersConfigError(String);

/// Why a request's credentials were not accepted (answered 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No `Authorization` header on a server that lets no anonymous caller in.
    #[error(
        "missing authorization header; set SHOAL_API_KEY (or BACALHAU_API_KEY), or BACALHAU_API_USERNAME and BACALHAU_API_PASSWORD"
    )]
    Missing,
    /// A scheme other than Basic or Bearer.
    #[error("unsupported authentication method; use `Authorization: Basic ...` or `Bearer ...`")]
    Unsupported,
    /// Basic credentials that are not base64 of `user:password`.
    #[error("failed to decode basic auth credentials: {0}")]
    Malformed(String),
    /// A username or password, or an API key, that matches no user.
    #[error("invalid {0} credentials")]
    Invalid(&'static str),
    /// A JWT, which needs an OAuth2 provider this server does not have.
    #[error(
        "this orchestrator has no OAuth2 provider configured (API.Auth.Oauth2), so it cannot check a JWT; use an API key or a username and password"
    )]
    JwtUnsupported,
}

struct BasicUser {
    password: SecretString,
    bcrypt: bool,
    principal: Arc<Principal>,
}

/// Turns an `Authorization` header into a [`Principal`].
pub struct Authenticator {
    basic: HashMap<String, BasicUser>,
    /// SHA-256 of each API key: the map never holds a key itself, and a lookup by digest leaks
    /// nothing about the keys through timing.
    keys: HashMap<[u8; 32], Arc<Principal>>,
    anonymous: Option<Arc<Principal>>,
    /// Digests of (username, password, stored hash) triples bcrypt already accepted: a bcrypt
    /// check costs tens of milliseconds, and a CLI sends the same credentials on every call.
    bcrypt_ok: Mutex<HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.basic.len())
            .field("api_keys", &self.keys.len())
            .field("anonymous", &self.anonymous.as_ref().map(|p| &p.grants))
            .finish()
    }
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Bacalhau's name for a user: alias, else username, else the key's last five characters.
fn identify(u: &UserConfig) -> String {
    if let Some(a) = u.alias.as_deref().filter(|a| !a.is_empty()) {
        return a.to_string();
    }
    if let Some(n) = u.username.as_deref().filter(|n| !n.is_empty()) {
        return n.to_string();
    }
    if let Some(k) = &u.api_key {
        let k = k.expose_secret();
        let chars: Vec<char> = k.chars().collect();
        if chars.len() > 5 {
            let tail: String = chars[chars.len() - 5..].iter().collect();
            return format!("API key ending in ...{tail}");
        }
        return "API key (too short)".to_string();
    }
    "unknown user".to_string()
}

fn is_bcrypt(s: &str) -> bool {
    s.len() == 60 && ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p))
}

fn is_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    let json = |p: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v.is_object())
    };
    parts.len() == 3 && json(parts[0]) && json(parts[1])
}

impl Authenticator {
    /// An authenticator that lets everybody do everything: devstack.
    pub fn open() -> Self {
        Authenticator::new(&[], AnonymousAccess::All, None).expect("no users to validate")
    }

    /// Builds the authenticator from the config's users, the anonymous policy and the
    /// orchestrator's own admin key (granted `*`). Refuses a config Bacalhau would refuse: a
    /// user with both or neither method, a bad username, a password or key of the wrong length,
    /// no capabilities, an unknown capability, or a duplicate alias, username or key.
    pub fn new(
        users: &[UserConfig],
        anonymous: AnonymousAccess,
        admin_key: Option<&SecretString>,
    ) -> Result<Self, UsersConfigError> {
        let mut auth = Authenticator {
            basic: HashMap::new(),
            keys: HashMap::new(),
            anonymous: anonymous
                .grants()
                .map(|g| Arc::new(Principal::anonymous(g))),
            bcrypt_ok: Mutex::new(HashSet::new()),
        };
        let mut aliases = HashSet::new();
        for u in users {
            let id = identify(u);
            let err = |m: String| UsersConfigError(m);
            let has_basic =
                u.username.as_deref().is_some_and(|n| !n.is_empty()) || u.password.is_some();
            let has_key = u.api_key.is_some();
            if has_basic && has_key {
                return Err(err(format!(
                    "user '{id}' has both username/password and API key, must have only one authentication method"
                )));
            }
            if !has_basic && !has_key {
                return Err(err(format!(
                    "user '{id}' has neither username/password nor API key, must have one authentication method"
                )));
            }
            if let Some(alias) = u.alias.as_deref().filter(|a| !a.is_empty())
                && !aliases.insert(alias.to_lowercase())
            {
                return Err(err(format!(
                    "duplicate alias detected: '{alias}' (aliases are case-insensitive)"
                )));
            }
            let mut grants = Vec::new();
            for action in u.capabilities.iter().flat_map(|c| &c.actions) {
                grants.push(
                    action
                        .parse::<Grant>()
                        .map_err(|e| err(format!("user '{id}': {e}")))?,
                );
            }
            if grants.is_empty() {
                return Err(err(format!(
                    "user '{id}' has no capabilities defined, must have at least one capability"
                )));
            }
            let kind = if has_key {
                PrincipalKind::ApiKey
            } else {
                PrincipalKind::User
            };
            let principal = Arc::new(Principal {
                kind,
                name: id.clone(),
                grants,
                namespaces: u.namespaces.clone(),
            });
            if let Some(key) = &u.api_key {
                let k = key.expose_secret();
                if !API_KEY_LEN.contains(&k.len()) {
                    return Err(err(format!(
                        "API key for user '{id}' must be {} to {} characters long",
                        API_KEY_LEN.start(),
                        API_KEY_LEN.end()
                    )));
                }
                if auth
                    .keys
                    .insert(digest(&[k.as_bytes()]), principal)
                    .is_some()
                {
                    return Err(err(format!("duplicate API key detected for user '{id}'")));
                }
                continue;
            }
            let name = u.username.clone().unwrap_or_default();
            if name.trim().is_empty() {
                return Err(err(format!("username for user '{id}' should not be empty")));
            }
            if name.len() > USERNAME_MAX {
                return Err(err(format!(
                    "username for user '{id}' exceeds maximum length of {USERNAME_MAX} characters"
                )));
            }
            if !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(err(format!(
                    "username for user '{id}' must contain only alphanumeric characters (a-z, A-Z, 0-9)"
                )));
            }
            let Some(password) = u.password.clone() else {
                return Err(err(format!(
                    "user '{id}' has a username but no password; add Password (plain or a bcrypt hash)"
                )));
            };
            let bcrypt = is_bcrypt(password.expose_secret());
            let len = password.expose_secret().len();
            if !bcrypt && len < *PASSWORD_LEN.start() {
                return Err(err(format!(
                    "password for user '{id}' is too short, minimum length is {} characters",
                    PASSWORD_LEN.start()
                )));
            }
            if len > *PASSWORD_LEN.end() {
                return Err(err(format!(
                    "password for user '{id}' exceeds maximum length of {} characters",
                    PASSWORD_LEN.end()
                )));
            }
            let user = BasicUser {
                password,
                bcrypt,
                principal,
            };
            if auth.basic.insert(name.to_lowercase(), user).is_some() {
                return Err(err(format!(
                    "duplicate username detected: '{name}' (usernames are case-insensitive)"
                )));
            }
        }
        if let Some(key) = admin_key {
            auth.keys.insert(
                digest(&[key.expose_secret().as_bytes()]),
                Arc::new(Principal {
                    kind: PrincipalKind::ApiKey,
                    name: "admin".into(),
                    grants: vec![Grant::All],
                    namespaces: vec![],
                }),
            );
        }
        Ok(auth)
    }

    /// Whether a caller without credentials gets anything at all.
    pub fn anonymous(&self) -> Option<&Arc<Principal>> {
        self.anonymous.as_ref()
    }

    /// The principal an `Authorization` header value speaks for; `None` (no header) is the
    /// anonymous principal where the server allows one.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Arc<Principal>, AuthFailure> {
        let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
            return self.anonymous.clone().ok_or(AuthFailure::Missing);
        };
        if let Some(encoded) = header.strip_prefix("Basic ") {
            return self.basic(encoded.trim());
        }
        if let Some(token) = header.strip_prefix("Bearer ") {
            let token = token.trim();
            if is_jwt(token) {
                return Err(AuthFailure::JwtUnsupported);
            }
            return self
                .keys
                .get(&digest(&[token.as_bytes()]))
                .cloned()
                .ok_or(AuthFailure::Invalid("API key"));
        }
        Err(AuthFailure::Unsupported)
    }

    fn basic(&self, encoded: &str) -> Result<Arc<Principal>, AuthFailure> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| AuthFailure::Malformed(e.to_string()))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| AuthFailure::Malformed("credentials are not UTF-8".into()))?;
        let (name, password) = text
            .split_once(':')
            .ok_or_else(|| AuthFailure::Malformed("expected base64 of username:password".into()))?;
        let user = self
            .basic
            .get(&name.to_lowercase())
            .ok_or(AuthFailure::Invalid("basic auth"))?;
        let stored = user.password.expose_secret();
        let ok = if user.bcrypt {
            let seen = digest(&[name.as_bytes(), password.as_bytes(), stored.as_bytes()]);
            let mut cache = self.bcrypt_ok.lock().unwrap_or_else(|p| p.into_inner());
            if cache.contains(&seen) {
                true
            } else if bcrypt::verify(password, stored).unwrap_or(false) {
                if cache.len() >= 1024 {
                    cache.clear();
                }
                cache.insert(seen);
                true
            } else {
                false
            }
        } else {
            bool::from(password.as_bytes().ct_eq(stored.as_bytes()))
        };
        if ok {
            Ok(user.principal.clone())
        } else {
            Err(AuthFailure::Invalid("basic auth"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(alias: &str, username: &str, password: &str, actions: &[&str]) -> UserConfig {
        UserConfig {
            alias: Some(alias.into()).filter(|a: &String| !a.is_empty()),
            username: Some(username.into()),
            password: Some(SecretString::from(password.to_string())),
            capabilities: vec![CapabilityConfig {
                actions: actions.iter().map(|s| s.to_string()).collect(),
            }],
            ..Default::default()
        }
    }

    fn key(alias: &str, key: &str, actions: &[&str]) -> UserConfig {
        UserConfig {
            alias: Some(alias.into()).filter(|a: &String| !a.is_empty()),
            api_key: Some(SecretString::from(key.to_string())),
            capabilities: vec![CapabilityConfig {
                actions: actions.iter().map(|s| s.to_string()).collect(),
            }],
            ..Default::default()
        }
    }

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    fn refused(users: &[UserConfig]) -> String {
        Authenticator::new(users, AnonymousAccess::None, None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn users_are_named_by_alias_then_username_then_the_keys_last_five_characters() {
        let auth = Authenticator::new(
            &[
                user("snoopy", "snoopyusername", "snoopypassword", &["read:job"]),
                user("", "plainuser", "plainpassword", &["read:job"]),
                key("", "QWERTYHFGCBNSKFIREHFURHUFE7KEEFBN", &["read:job"]),
            ],
            AnonymousAccess::None,
            None,
        )
        .unwrap();
        let who = |h: &str| auth.authenticate(Some(h)).unwrap().name.clone();
        assert_eq!(who(&basic("snoopyusername", "snoopypassword")), "snoopy");
        assert_eq!(who(&basic("PlainUser", "plainpassword")), "plainuser");
        assert_eq!(
            who("Bearer QWERTYHFGCBNSKFIREHFURHUFE7KEEFBN"),
            "API key ending in ...EEFBN"
        );
    }

    #[test]
    fn wrong_missing_and_unsupported_credentials_are_each_told_apart() {
        let auth = Authenticator::new(
            &[user("a", "alice", "alicepassword", &["*"])],
            AnonymousAccess::None,
            None,
        )
        .unwrap();
        assert_eq!(auth.authenticate(None).unwrap_err(), AuthFailure::Missing);
        assert_eq!(
            auth.authenticate(Some(&basic("alice", "wrongpassword")))
                .unwrap_err(),
            AuthFailure::Invalid("basic auth")
        );
        assert_eq!(
            auth.authenticate(Some("Bearer not-a-key-of-anyone-at-all"))
                .unwrap_err(),
            AuthFailure::Invalid("API key")
        );
        assert_eq!(
            auth.authenticate(Some("Digest x")).unwrap_err(),
            AuthFailure::Unsupported
        );
        assert!(matches!(
            auth.authenticate(Some("Basic %%%")).unwrap_err(),
            AuthFailure::Malformed(_)
        ));
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {jwt}")))
                .unwrap_err(),
            AuthFailure::JwtUnsupported
        );
    }

    #[test]
    fn a_bcrypt_hashed_password_authenticates_and_a_wrong_one_does_not() {
        let hash = bcrypt::hash("correct horse battery", 4).unwrap();
        let auth = Authenticator::new(
            &[user("h", "hashed", &hash, &["read:job"])],
            AnonymousAccess::None,
            None,
        )
        .unwrap();
        for _ in 0..2 {
            assert!(
                auth.authenticate(Some(&basic("hashed", "correct horse battery")))
                    .is_ok()
            );
        }
        assert!(
            auth.authenticate(Some(&basic("hashed", "wrong horse battery")))
                .is_err()
        );
    }

    #[test]
    fn anonymous_callers_get_only_what_the_operator_allowed() {
        let none = Authenticator::new(&[], AnonymousAccess::None, None).unwrap();
        assert!(none.authenticate(None).is_err());
        let read = Authenticator::new(&[], AnonymousAccess::Read, None).unwrap();
        assert_eq!(
            read.authenticate(None).unwrap().grants,
            vec![Grant::ReadAll]
        );
        let open = Authenticator::open();
        assert_eq!(open.authenticate(None).unwrap().grants, vec![Grant::All]);
    }

    #[test]
    fn the_admin_key_holds_everything() {
        let admin = SecretString::from("shoal-admin-0123456789abcdef".to_string());
        let auth = Authenticator::new(&[], AnonymousAccess::None, Some(&admin)).unwrap();
        let p = auth
            .authenticate(Some("Bearer shoal-admin-0123456789abcdef"))
            .unwrap();
        assert_eq!(
            (p.name.as_str(), p.grants.clone()),
            ("admin", vec![Grant::All])
        );
    }

    #[test]
    fn configs_bacalhau_refuses_are_refused_naming_the_user() {
        let e = refused(&[user("shorty", "shorty", "123456789", &["read:job"])]);
        assert!(
            e.contains("password for user 'shorty' is too short, minimum length is 10"),
            "{e}"
        );
        let e = refused(&[user("", "bad-name", "longenoughpassword", &["read:job"])]);
        assert!(e.contains("alphanumeric"), "{e}");
        let e = refused(&[user("nocaps", "nocaps", "longenoughpassword", &[])]);
        assert!(e.contains("user 'nocaps' has no capabilities"), "{e}");
        let e = refused(&[key("short", "tooshortkey", &["read:job"])]);
        assert!(e.contains("API key for user 'short'"), "{e}");
        let mut both = user("both", "both", "longenoughpassword", &["read:job"]);
        both.api_key = Some(SecretString::from("K".repeat(30)));
        assert!(refused(&[both]).contains("has both"));
        let e = refused(&[
            user("", "twin", "longenoughpassword", &["read:job"]),
            user("", "TWIN", "longenoughpassword", &["read:job"]),
        ]);
        assert!(e.contains("duplicate username"), "{e}");
        let e = refused(&[user("u", "u", "longenoughpassword", &["write:jobs"])]);
        assert!(
            e.contains("user 'u': unknown capability \"write:jobs\""),
            "{e}"
        );
        assert!(e.contains("fix the config file"), "{e}");
    }

    #[test]
    fn no_secret_reaches_a_debug_print() {
        let u = user("s", "someone", "hunter2hunter2", &["read:job"]);
        assert!(!format!("{u:?}").contains("hunter2"));
        let auth = Authenticator::new(&[u], AnonymousAccess::None, None).unwrap();
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
