//! Browser sessions: the web UI's login form trades an API key or a username and password
//! for a random session token, sent back as an `HttpOnly; SameSite=Strict` cookie.
//!
//! Sessions live in the orchestrator's memory only (a restart logs everybody out) and are kept
//! by the SHA-256 of their token. An expired or unknown session is treated as no session at
//! all, never as "less than anonymous" (the Nomad lesson, nomad#23938).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::principal::Principal;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "shoal_session";

/// How long a session lasts after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// A session's principal and when it expires, by the SHA-256 of its token.
type Live = HashMap<[u8; 32], (Arc<Principal>, Instant)>;

/// Live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<Live>,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// A new session for `principal`; returns its token (for the cookie only).
    pub fn create(&self, principal: Arc<Principal>) -> String {
        let token = shoal_types::enrolment::random_secret();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        live.retain(|_, (_, expires)| *expires > now);
        live.insert(key(&token), (principal, now + SESSION_TTL));
        token
    }

    /// The principal of a live session.
    pub fn get(&self, token: &str) -> Option<Arc<Principal>> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(&key(token))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(p, _)| p.clone())
    }

    /// Ends a session.
    pub fn remove(&self, token: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.remove(&key(token));
    }
}

/// The session token in a `Cookie` header, if any.
pub fn cookie_token(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Grant;

    #[test]
    fn a_session_gives_back_its_principal_until_it_is_removed() {
        let sessions = Sessions::default();
        let token = sessions.create(Arc::new(Principal::anonymous(vec![Grant::ReadAll])));
        assert_eq!(sessions.get(&token).unwrap().grants, vec![Grant::ReadAll]);
        assert!(sessions.get("forged").is_none());
        sessions.remove(&token);
        assert!(sessions.get(&token).is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(cookie_token("a=1; shoal_session=abc ; b=2"), Some("abc"));
        assert_eq!(cookie_token("a=1"), None);
        assert_eq!(cookie_token("shoal_session="), None);
    }
}
