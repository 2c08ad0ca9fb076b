//! Who may connect as a node: the shared `--token`, join tokens traded for node keys, and
//! revocation (see `shoal_types::enrolment` for the model).
//!
//! [`admit`] decides from what the node presented and what the store holds; it writes nothing,
//! so a refused node leaves no trace. [`enrol`] records the outcome once the connection is
//! otherwise accepted, in the same transaction.

use sha2::{Digest, Sha256};
use shoal_store::Tx;
use shoal_types::enrolment::{JoinToken, JoinTokenRequest, NewJoinToken, random_secret};
use shoal_types::time::{UnixNanos, parse_duration};

use crate::clock::now;
use crate::command::NodeCredentials;
use crate::error::{BadRequest, NotFound, OrchestratorError, Refusal};
use crate::state::EngineState;

/// The token id recorded for nodes that enrolled with the shared `--token`.
const SHARED: &str = "shared";

/// How long a join token lets nodes in when the request does not say.
const DEFAULT_TTL: UnixNanos = 24 * 3600 * 1_000_000_000;

/// What connecting will record.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Nothing to check (no token configured: devstack).
    Open,
    /// The node presented the key it enrolled with.
    Known,
    /// A new node: store its key's hash, spending a use of `token_id` (`SHARED` spends none).
    Enrol { token_id: String, key_hash: String },
    /// A node on the shared token that has no key (an older agent): let in, nothing bound.
    SharedWithoutKey,
}

/// SHA-256 of a secret, hex.
fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Decides whether `node_id` may connect with `creds`.
pub(super) fn admit(
    tx: &Tx<'_>,
    st: &EngineState,
    node_id: &str,
    creds: &NodeCredentials,
) -> Result<Result<Admission, Refusal>, OrchestratorError> {
    let required = st.cfg.join_token.is_some() || st.cfg.require_join_token;
    if !required {
        return Ok(Ok(Admission::Open));
    }
    let node_id = node_id.to_string();
    let key_hash = creds.node_key.as_deref().map(hash);
    if let Some(stored) = tx.read().node_key(&node_id)? {
        if let Some(at) = stored.revoked_at {
            return Ok(Err(Refusal::Revoked { node_id, at }));
        }
        return Ok(
            if stored.key_hash.is_some() && stored.key_hash == key_hash {
                Ok(Admission::Known)
            } else {
                Err(Refusal::KeyMismatch { node_id })
            },
        );
    }
    let Some(token) = creds.token.as_deref() else {
        return Ok(Err(Refusal::NoToken { node_id }));
    };
    if st.cfg.join_token.as_deref() == Some(token) {
        return Ok(Ok(match key_hash {
            Some(key_hash) => Admission::Enrol {
                token_id: SHARED.into(),
                key_hash,
            },
            None => Admission::SharedWithoutKey,
        }));
    }
    let Some((id, secret)) = shoal_types::enrolment::split_join_token(token) else {
        return Ok(Err(Refusal::WrongToken { node_id }));
    };
    let valid = match tx.read().join_token(id)? {
        Some((t, stored)) => {
            stored == hash(secret) && t.expires_at > now() && t.uses_left.is_none_or(|n| n > 0)
        }
        None => false,
    };
    if !valid {
        return Ok(Err(Refusal::JoinTokenInvalid {
            node_id,
            token_id: id.to_string(),
        }));
    }
    let Some(key_hash) = key_hash else {
        return Ok(Err(Refusal::NoNodeKey { node_id }));
    };
    Ok(Ok(Admission::Enrol {
        token_id: id.to_string(),
        key_hash,
    }))
}

/// Records an admission decided by [`admit`].
pub(super) fn enrol(
    tx: &Tx<'_>,
    node_id: &str,
    admission: &Admission,
) -> Result<(), OrchestratorError> {
    if let Admission::Enrol { token_id, key_hash } = admission {
        if token_id != SHARED {
            tx.spend_join_token(token_id)?;
        }
        tx.put_node_key(node_id, key_hash, token_id, now())?;
        tracing::info!(node = %node_id, token = %token_id, "node enrolled");
    }
    Ok(())
}

/// Creates a join token; its secret is in the answer and nowhere else.
pub(super) fn create_token(
    tx: &Tx<'_>,
    request: &JoinTokenRequest,
) -> Result<NewJoinToken, OrchestratorError> {
    let ttl = if request.ttl.trim().is_empty() {
        DEFAULT_TTL
    } else {
        parse_duration(request.ttl.trim()).map_err(|cause| BadRequest::JoinTokenTtl {
            ttl: request.ttl.clone(),
            cause,
        })?
    };
    if ttl <= 0 {
        return Err(BadRequest::JoinTokenTtl {
            ttl: request.ttl.clone(),
            cause: "it must be longer than zero".into(),
        }
        .into());
    }
    if request.uses == Some(0) {
        return Err(BadRequest::JoinTokenUses.into());
    }
    let t = now();
    let id = random_secret()[..12].to_string();
    let secret = random_secret();
    let token = JoinToken {
        id: id.clone(),
        created_at: t,
        expires_at: t.saturating_add(ttl),
        uses_left: request.uses,
        description: request.description.clone(),
    };
    tx.put_join_token(&token, &hash(&secret))?;
    Ok(NewJoinToken {
        token,
        secret: format!("{id}.{secret}"),
    })
}

/// Deletes a join token; nodes it enrolled stay.
pub(super) fn delete_token(tx: &Tx<'_>, id: &str) -> Result<(), OrchestratorError> {
    if tx.delete_join_token(id)? {
        Ok(())
    } else {
        Err(NotFound::JoinToken { id: id.to_string() }.into())
    }
}
