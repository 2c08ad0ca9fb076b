//! The durable half of the link, written once for both ends: every [`Message`] is stored in the
//! sender's outbox before it is sent, kept until the peer acknowledges it, and replayed in
//! order after a reconnect; the receiver applies each sequence number once.
//!
//! ```text
//!  sender                                          receiver
//!  push(msg) ── outbox: seq n, body ── Msg{n} ──►  apply(n): fresh? (n > applied) → act on it,
//!                                                  in the same transaction that records n
//!  ack(n): forget ≤ n ◄──────────────── Ack{n} ──
//!  (reconnect)                       Hello/Welcome{applied}
//!  replay(applied): forget ≤ applied, resend the rest as stored
//! ```
//!
//! Both stores (the orchestrator's, one stream per node; the agent's, one stream to the
//! orchestrator) implement [`LedgerStore`] on their transaction type, so a message and the
//! state change it announces commit together. A second transport carries the same frames.

use crate::{Message, Outbound};

/// A message waiting in the outbox for its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its sequence number on this link.
    pub seq: u64,
    /// The message as it was serialised when pushed.
    pub body: String,
}

/// What a store offers the ledger: one outbox and one "applied up to" mark per peer. Each call
/// runs inside the caller's transaction.
pub trait LedgerStore {
    /// The store's error.
    type Error;

    /// Appends `body` to the outbox for `peer`; returns its sequence number (1, 2, ... per peer).
    fn outbox_push(&self, peer: &str, body: &str) -> Result<u64, Self::Error>;

    /// Records that `peer`'s message `seq` is applied; false (changing nothing) when it
    /// already was: a replay.
    fn mark_applied(&self, peer: &str, seq: u64) -> Result<bool, Self::Error>;

    /// Forgets the messages to `peer` up to `upto`: the peer has applied them.
    fn outbox_ack(&self, peer: &str, upto: u64) -> Result<(), Self::Error>;

    /// The messages to `peer` after `after`, in order.
    fn outbox_after(&self, peer: &str, after: u64) -> Result<Vec<Pending>, Self::Error>;
}

/// Stores `msg` for `peer` and returns what to send once the transaction commits. The message
/// is serialised once: the link writes the stored text into its frame.
pub fn push<S: LedgerStore>(store: &S, peer: &str, msg: &Message) -> Result<Outbound, S::Error> {
    let body = serde_json::to_string(msg).expect("messages always serialise");
    push_json(store, peer, body)
}

/// [`push`] for a message already serialised (see [`Message::run_json`]).
pub fn push_json<S: LedgerStore>(
    store: &S,
    peer: &str,
    body: String,
) -> Result<Outbound, S::Error> {
    let seq = store.outbox_push(peer, &body)?;
    Ok(Outbound::Stored { seq, body })
}

/// Marks `peer`'s message `seq` applied. True when it is new: the caller acts on it in the same
/// transaction; false for a replay, which the caller only acknowledges again.
pub fn apply<S: LedgerStore>(store: &S, peer: &str, seq: u64) -> Result<bool, S::Error> {
    store.mark_applied(peer, seq)
}

/// The peer acknowledged everything up to `upto`.
pub fn ack<S: LedgerStore>(store: &S, peer: &str, upto: u64) -> Result<(), S::Error> {
    store.outbox_ack(peer, upto)
}

/// After a handshake in which `peer` said it has applied up to `peer_applied`: forgets those
/// messages and returns the rest, to be sent again as stored, in order. An entry that no longer
/// reads as a message (written by a newer build, or damaged) is logged and left out, since the
/// peer would close the link on it every time.
pub fn replay<S: LedgerStore>(
    store: &S,
    peer: &str,
    peer_applied: u64,
) -> Result<Vec<Outbound>, S::Error> {
    store.outbox_ack(peer, peer_applied)?;
    let pending = store.outbox_after(peer, peer_applied)?;
    Ok(pending
        .into_iter()
        .filter_map(
            |Pending { seq, body }| match serde_json::from_str::<Message>(&body) {
                Ok(_) => Some(Outbound::Stored { seq, body }),
                Err(e) => {
                    tracing::error!(%peer, seq, error = %e, "unreadable outbox entry left out of the replay");
                    None
                }
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;
    use crate::Frame;

    /// An in-memory store with the same rules as the SQLite ones.
    #[derive(Default)]
    struct Books {
        next: RefCell<BTreeMap<String, u64>>,
        outbox: RefCell<BTreeMap<(String, u64), String>>,
        applied: RefCell<BTreeMap<String, u64>>,
    }

    impl LedgerStore for Books {
        type Error = std::convert::Infallible;

        fn outbox_push(&self, peer: &str, body: &str) -> Result<u64, Self::Error> {
            let mut next = self.next.borrow_mut();
            let seq = next.entry(peer.into()).or_insert(1);
            let this = *seq;
            *seq += 1;
            self.outbox
                .borrow_mut()
                .insert((peer.into(), this), body.into());
            Ok(this)
        }

        fn mark_applied(&self, peer: &str, seq: u64) -> Result<bool, Self::Error> {
            let mut applied = self.applied.borrow_mut();
            let mark = applied.entry(peer.into()).or_insert(0);
            if seq <= *mark {
                return Ok(false);
            }
            *mark = seq;
            Ok(true)
        }

        fn outbox_ack(&self, peer: &str, upto: u64) -> Result<(), Self::Error> {
            self.outbox
                .borrow_mut()
                .retain(|(p, seq), _| p != peer || *seq > upto);
            Ok(())
        }

        fn outbox_after(&self, peer: &str, after: u64) -> Result<Vec<Pending>, Self::Error> {
            Ok(self
                .outbox
                .borrow()
                .iter()
                .filter(|((p, seq), _)| p == peer && *seq > after)
                .map(|((_, seq), body)| Pending {
                    seq: *seq,
                    body: body.clone(),
                })
                .collect())
        }
    }

    fn cancel(id: &str) -> Message {
        Message::Cancel {
            execution_id: id.into(),
            reason: "stop".into(),
        }
    }

    fn decoded(out: &Outbound) -> Frame {
        Frame::decode(&out.encode()).unwrap()
    }

    #[test]
    fn a_pushed_message_is_sent_as_the_frame_it_was_stored_as() {
        let books = Books::default();
        let first = push(&books, "n-1", &cancel("e-1")).unwrap();
        let second = push(&books, "n-1", &cancel("e-2")).unwrap();
        let other_peer = push(&books, "n-2", &cancel("e-3")).unwrap();
        assert_eq!(
            decoded(&first),
            Frame::Msg {
                seq: 1,
                msg: cancel("e-1")
            }
        );
        assert_eq!(
            decoded(&second),
            Frame::Msg {
                seq: 2,
                msg: cancel("e-2")
            }
        );
        assert_eq!(
            decoded(&other_peer),
            Frame::Msg {
                seq: 1,
                msg: cancel("e-3")
            },
            "each peer has its own sequence"
        );
    }

    #[test]
    fn a_message_is_applied_once_however_often_it_arrives() {
        let books = Books::default();
        assert!(apply(&books, "n-1", 1).unwrap());
        assert!(!apply(&books, "n-1", 1).unwrap(), "a replay is not fresh");
        assert!(apply(&books, "n-1", 2).unwrap());
        assert!(!apply(&books, "n-1", 1).unwrap(), "an older one neither");
        assert!(apply(&books, "n-2", 1).unwrap(), "another peer's stream");
    }

    #[test]
    fn a_reconnect_replays_what_the_peer_has_not_applied_in_order() {
        let books = Books::default();
        for id in ["e-1", "e-2", "e-3", "e-4"] {
            push(&books, "n-1", &cancel(id)).unwrap();
        }
        ack(&books, "n-1", 1).unwrap();
        // The peer applied 2 as well, but its ack was lost with the link.
        let replayed: Vec<Frame> = replay(&books, "n-1", 2)
            .unwrap()
            .iter()
            .map(decoded)
            .collect();
        assert_eq!(
            replayed,
            vec![
                Frame::Msg {
                    seq: 3,
                    msg: cancel("e-3")
                },
                Frame::Msg {
                    seq: 4,
                    msg: cancel("e-4")
                },
            ]
        );
        assert_eq!(
            books.outbox_after("n-1", 0).unwrap().len(),
            2,
            "what the peer applied is forgotten"
        );
    }

    #[test]
    fn an_unreadable_entry_is_left_out_of_the_replay_and_kept() {
        let books = Books::default();
        push(&books, "n-1", &cancel("e-1")).unwrap();
        books.outbox_push("n-1", "{not a message").unwrap();
        push(&books, "n-1", &cancel("e-3")).unwrap();
        let seqs: Vec<u64> = replay(&books, "n-1", 0)
            .unwrap()
            .iter()
            .map(|o| match decoded(o) {
                Frame::Msg { seq, .. } => seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, vec![1, 3]);
        assert_eq!(books.outbox_after("n-1", 0).unwrap().len(), 3);
    }
}
