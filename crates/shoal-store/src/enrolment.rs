//! Join tokens and node keys on the orchestrator (see `shoal_types::enrolment`). Only hashes of
//! secrets are stored.

use rusqlite::{OptionalExtension, params};
use shoal_types::enrolment::JoinToken;

use crate::db::{StoreError, Tx};
use crate::orchestrator::Reader;

pub(crate) const SCHEMA: &str = "
CREATE TABLE join_tokens (
    id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, uses_left INTEGER, description TEXT NOT NULL DEFAULT '');
CREATE TABLE node_keys (
    node_id TEXT PRIMARY KEY, key_hash TEXT, enrolled_at INTEGER NOT NULL,
    token_id TEXT NOT NULL, revoked_at INTEGER);
";

/// A node's enrolment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeKey {
    /// SHA-256 (hex) of the node's key; `None` once revoked.
    pub key_hash: Option<String>,
    /// When the node enrolled (Unix nanoseconds).
    pub enrolled_at: i64,
    /// The join token it enrolled with (`shared` for the `--token` shorthand).
    pub token_id: String,
    /// When an operator revoked it (Unix nanoseconds).
    pub revoked_at: Option<i64>,
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JoinToken> {
    Ok(JoinToken {
        id: r.get(0)?,
        created_at: r.get(1)?,
        expires_at: r.get(2)?,
        uses_left: r.get(3)?,
        description: r.get(4)?,
    })
}

impl Reader<'_> {
    /// A join token and its secret's hash.
    pub fn join_token(&self, id: &str) -> Result<Option<(JoinToken, String)>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id, created_at, expires_at, uses_left, description, secret_hash
                 FROM join_tokens WHERE id = ?1",
            )?
            .query_row(params![id], |r| Ok((token_row(r)?, r.get(5)?)))
            .optional()?)
    }

    /// Every join token, oldest first.
    pub fn join_tokens(&self) -> Result<Vec<JoinToken>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, created_at, expires_at, uses_left, description
             FROM join_tokens ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], token_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How a node enrolled, if it did.
    pub fn node_key(&self, node_id: &str) -> Result<Option<NodeKey>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT key_hash, enrolled_at, token_id, revoked_at FROM node_keys WHERE node_id = ?1",
            )?
            .query_row(params![node_id], |r| {
                Ok(NodeKey {
                    key_hash: r.get(0)?,
                    enrolled_at: r.get(1)?,
                    token_id: r.get(2)?,
                    revoked_at: r.get(3)?,
                })
            })
            .optional()?)
    }
}

impl Tx<'_> {
    /// Stores a new join token with its secret's hash.
    pub fn put_join_token(&self, token: &JoinToken, secret_hash: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO join_tokens (id, secret_hash, created_at, expires_at, uses_left, description)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                token.id,
                secret_hash,
                token.created_at,
                token.expires_at,
                token.uses_left,
                token.description
            ],
        )?;
        Ok(())
    }

    /// Spends one use of a token that counts its uses.
    pub fn spend_join_token(&self, id: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE join_tokens SET uses_left = uses_left - 1 WHERE id = ?1 AND uses_left IS NOT NULL",
            params![id],
        )?;
        Ok(())
    }

    /// Deletes a join token; false when there was none. Nodes it enrolled stay enrolled.
    pub fn delete_join_token(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.exec("DELETE FROM join_tokens WHERE id = ?1", params![id])? > 0)
    }

    /// Records a node's key hash (its enrolment).
    pub fn put_node_key(
        &self,
        node_id: &str,
        key_hash: &str,
        token_id: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO node_keys (node_id, key_hash, enrolled_at, token_id, revoked_at)
             VALUES (?1, ?2, ?3, ?4, NULL)
             ON CONFLICT(node_id) DO UPDATE SET key_hash = excluded.key_hash,
                 enrolled_at = excluded.enrolled_at, token_id = excluded.token_id, revoked_at = NULL",
            params![node_id, key_hash, at, token_id],
        )?;
        Ok(())
    }

    /// Forgets a node's key and remembers that it was revoked, so the node cannot enrol again
    /// with a join token until an operator deletes it.
    pub fn revoke_node_key(&self, node_id: &str, at: i64) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO node_keys (node_id, key_hash, enrolled_at, token_id, revoked_at)
             VALUES (?1, NULL, ?2, '', ?2)
             ON CONFLICT(node_id) DO UPDATE SET key_hash = NULL, revoked_at = excluded.revoked_at",
            params![node_id, at],
        )?;
        Ok(())
    }

    /// Forgets everything about a node's enrolment (the node was deleted).
    pub(crate) fn forget_node_key(&self, node_id: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM node_keys WHERE node_id = ?1", params![node_id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrchestratorStore;

    fn token(id: &str, uses: Option<u32>) -> JoinToken {
        JoinToken {
            id: id.into(),
            created_at: 1,
            expires_at: 100,
            uses_left: uses,
            description: "rack 4".into(),
        }
    }

    #[test]
    fn a_join_token_is_stored_with_its_hash_and_spends_its_uses() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = OrchestratorStore::open(dir.path()).unwrap();
        let tx = store.begin().unwrap();
        tx.put_join_token(&token("a", Some(2)), "hash-a").unwrap();
        tx.put_join_token(&token("b", None), "hash-b").unwrap();
        tx.spend_join_token("a").unwrap();
        tx.spend_join_token("b").unwrap();
        tx.commit().unwrap();
        let (a, hash) = store.read().join_token("a").unwrap().unwrap();
        assert_eq!((a.uses_left, hash.as_str()), (Some(1), "hash-a"));
        assert_eq!(
            store.read().join_token("b").unwrap().unwrap().0.uses_left,
            None
        );
        assert_eq!(store.read().join_tokens().unwrap().len(), 2);
        let tx = store.begin().unwrap();
        assert!(tx.delete_join_token("a").unwrap());
        assert!(!tx.delete_join_token("a").unwrap());
        tx.commit().unwrap();
        assert!(store.read().join_token("a").unwrap().is_none());
    }

    #[test]
    fn a_revoked_key_is_gone_but_the_revocation_is_remembered_until_the_node_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = OrchestratorStore::open(dir.path()).unwrap();
        let tx = store.begin().unwrap();
        tx.put_node_key("n-1", "h1", "a", 5).unwrap();
        tx.revoke_node_key("n-1", 9).unwrap();
        tx.commit().unwrap();
        let key = store.read().node_key("n-1").unwrap().unwrap();
        assert_eq!((key.key_hash, key.revoked_at), (None, Some(9)));
        let tx = store.begin().unwrap();
        tx.delete_node("n-1").unwrap();
        tx.commit().unwrap();
        assert!(store.read().node_key("n-1").unwrap().is_none());
    }
}
