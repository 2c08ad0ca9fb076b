//! The outbox of the agent link: messages persisted before they are sent, deleted when the
//! peer acknowledges them, and replayed in order after a reconnect.
//!
//! Each peer (a node on the orchestrator; the orchestrator on a node) has its own sequence.
//! `links.next_seq` is the next number to hand out; `links.applied_seq` is the highest number
//! received *from* that peer and applied, which makes inbound delivery idempotent. The rules
//! of the protocol live in `shoal_transport::ledger`; this is its SQLite store.

use rusqlite::{OptionalExtension, params};
use shoal_transport::{LedgerStore, Pending};

use crate::db::{StoreError, Tx};

pub(crate) const SCHEMA: &str = "
CREATE TABLE outbox (peer TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (peer, seq));
CREATE TABLE links (peer TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, applied_seq INTEGER NOT NULL);
";

const NEXT_SEQ: &str = "SELECT next_seq FROM links WHERE peer = ?1";
const SET_NEXT_SEQ: &str = "INSERT INTO links (peer, next_seq, applied_seq) VALUES (?1, ?2, 0)
             ON CONFLICT(peer) DO UPDATE SET next_seq = excluded.next_seq";
const PUSH: &str = "INSERT INTO outbox (peer, seq, body) VALUES (?1, ?2, ?3)";
const APPLIED: &str = "SELECT applied_seq FROM links WHERE peer = ?1";
const SET_APPLIED: &str = "INSERT INTO links (peer, next_seq, applied_seq) VALUES (?1, 1, ?2)
             ON CONFLICT(peer) DO UPDATE SET applied_seq = excluded.applied_seq";
const ACK: &str = "DELETE FROM outbox WHERE peer = ?1 AND seq <= ?2";

/// The statements every delivered message, pushed message and ack runs.
pub(crate) const HOT: &[&str] = &[NEXT_SEQ, SET_NEXT_SEQ, PUSH, APPLIED, SET_APPLIED, ACK];

impl LedgerStore for Tx<'_> {
    type Error = StoreError;

    fn outbox_push(&self, peer: &str, body: &str) -> Result<u64, StoreError> {
        // A read and one upsert rather than `UPDATE ... RETURNING`, which buffers its rows in
        // a temporary b-tree (with a page cache of its own) for every message.
        let seq: u64 = self
            .query_one(NEXT_SEQ, params![peer], |r| r.get(0))
            .optional()?
            .unwrap_or(1);
        self.exec(SET_NEXT_SEQ, params![peer, seq + 1])?;
        self.exec(PUSH, params![peer, seq, body])?;
        Ok(seq)
    }

    fn mark_applied(&self, peer: &str, seq: u64) -> Result<bool, StoreError> {
        let applied = link_applied(&self.tx, peer)?;
        if seq <= applied {
            return Ok(false);
        }
        self.exec(SET_APPLIED, params![peer, seq])?;
        Ok(true)
    }

    fn outbox_ack(&self, peer: &str, upto: u64) -> Result<(), StoreError> {
        self.exec(ACK, params![peer, upto])?;
        Ok(())
    }

    fn outbox_after(&self, peer: &str, after: u64) -> Result<Vec<Pending>, StoreError> {
        pending(&self.tx, peer, after)
    }
}

impl Tx<'_> {
    /// Forgets everything about a peer's link (the node was deleted).
    pub fn link_forget(&self, peer: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM outbox WHERE peer = ?1", params![peer])?;
        self.exec("DELETE FROM links WHERE peer = ?1", params![peer])?;
        Ok(())
    }
}

pub(crate) fn link_applied(conn: &rusqlite::Connection, peer: &str) -> Result<u64, StoreError> {
    // Read for every message a link delivers: a cached statement, not a parse each time.
    Ok(conn
        .prepare_cached(APPLIED)?
        .query_row(params![peer], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

pub(crate) fn pending(
    conn: &rusqlite::Connection,
    peer: &str,
    after: u64,
) -> Result<Vec<Pending>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT seq, body FROM outbox WHERE peer = ?1 AND seq > ?2 ORDER BY seq")?;
    let rows = stmt.query_map(params![peer, after], |r| {
        Ok(Pending {
            seq: r.get(0)?,
            body: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
