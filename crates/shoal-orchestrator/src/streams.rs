//! Streams pulled from a node over its link: log streams (`logs.rs`) and result downloads
//! (`results.rs`).
//!
//! The caller opens a stream, which registers it under a fresh id with the node that serves
//! it, and sends the node a request carrying that id. The link task delivers the node's frames
//! by id; only the serving node can feed a stream, and the stream's last event makes the
//! registry forget it. Dropping an [`OpenStream`] before its end tells the node to stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use shoal_transport::Frame;
use tokio::sync::mpsc;

use crate::nodes::Links;

/// What one kind of stream carries, and how it ends.
pub(crate) trait StreamEvent {
    /// Whether this is the stream's last event.
    fn ends(&self) -> bool;
    /// The last event of a stream whose node's link dropped.
    fn node_gone(node_id: &str) -> Self;
    /// The frame that tells the node to stop sending stream `stream_id`.
    fn cancel(stream_id: u64) -> Frame;
}

/// Open streams: id → (serving node, sender to the caller).
type Streams<E> = HashMap<u64, (String, mpsc::UnboundedSender<E>)>;

/// Open streams of one kind, by stream id. Cheap to clone; clones share the streams.
pub(crate) struct StreamRegistry<E> {
    next: Arc<AtomicU64>,
    streams: Arc<Mutex<Streams<E>>>,
}

impl<E> Default for StreamRegistry<E> {
    fn default() -> Self {
        StreamRegistry {
            next: Arc::default(),
            streams: Arc::default(),
        }
    }
}

impl<E> Clone for StreamRegistry<E> {
    fn clone(&self) -> Self {
        StreamRegistry {
            next: self.next.clone(),
            streams: self.streams.clone(),
        }
    }
}

impl<E: StreamEvent> StreamRegistry<E> {
    /// Registers a stream served by `node_id`. Send the node its request with the stream's
    /// [`OpenStream::id`]; dropping the stream before its end sends it the cancel over `links`.
    pub fn open(&self, node_id: &str, links: &Links) -> OpenStream<E> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(id, (node_id.to_string(), tx));
        OpenStream {
            id,
            rx,
            registry: self.clone(),
            links: links.clone(),
        }
    }

    /// Hands an event from `node_id` to stream `stream_id`; ignored unless that node serves
    /// the stream. The last event closes it.
    pub fn deliver(&self, node_id: &str, stream_id: u64, event: E) {
        let ended = event.ends();
        let mut map = self.lock();
        if let Some((owner, tx)) = map.get(&stream_id)
            && owner == node_id
        {
            let _ = tx.send(event);
            if ended {
                map.remove(&stream_id);
            }
        }
    }

    /// Ends every stream served by a node whose link dropped.
    pub fn node_gone(&self, node_id: &str) {
        self.lock().retain(|_, (owner, tx)| {
            if owner == node_id {
                let _ = tx.send(E::node_gone(node_id));
                false
            } else {
                true
            }
        });
    }

    /// Forgets a stream; returns its node if it was still open.
    fn close(&self, stream_id: u64) -> Option<String> {
        self.lock().remove(&stream_id).map(|(node, _)| node)
    }

    fn lock(&self) -> MutexGuard<'_, Streams<E>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One open stream; dropping it before its end tells the node to stop sending.
pub(crate) struct OpenStream<E: StreamEvent> {
    id: u64,
    rx: mpsc::UnboundedReceiver<E>,
    registry: StreamRegistry<E>,
    links: Links,
}

impl<E: StreamEvent> OpenStream<E> {
    /// The id the node's frames for this stream carry.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The open links, for frames about this stream to its node (acknowledgements).
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The next event; `None` after the end.
    pub async fn next(&mut self) -> Option<E> {
        self.rx.recv().await
    }
}

impl<E: StreamEvent> Drop for OpenStream<E> {
    fn drop(&mut self) {
        if let Some(node) = self.registry.close(self.id) {
            self.links.send(&node, E::cancel(self.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc::UnboundedReceiver;

    use super::*;
    use crate::nodes::Session;
    use shoal_transport::Outbound;

    #[derive(Debug, PartialEq)]
    enum Ev {
        Data(u8),
        End(String),
    }

    impl StreamEvent for Ev {
        fn ends(&self) -> bool {
            matches!(self, Ev::End(_))
        }
        fn node_gone(node_id: &str) -> Self {
            Ev::End(format!("{node_id} gone"))
        }
        fn cancel(stream_id: u64) -> Frame {
            Frame::LogCancel { stream_id }
        }
    }

    fn connected(node: &str) -> (Links, UnboundedReceiver<Outbound>) {
        let links = Links::default();
        let (tx, rx) = mpsc::unbounded_channel();
        links.insert(node, Session { id: 1, tx });
        (links, rx)
    }

    #[tokio::test]
    async fn only_the_serving_node_feeds_a_stream_and_its_end_closes_it() {
        let (links, mut to_node) = connected("n-a");
        let registry = StreamRegistry::<Ev>::default();
        let mut stream = registry.open("n-a", &links);
        let id = stream.id();
        registry.deliver("n-b", id, Ev::Data(9));
        registry.deliver("n-a", id, Ev::Data(1));
        registry.deliver("n-a", id, Ev::End(String::new()));
        registry.deliver("n-a", id, Ev::Data(2));
        assert_eq!(stream.next().await, Some(Ev::Data(1)));
        assert_eq!(stream.next().await, Some(Ev::End(String::new())));
        drop(stream);
        assert!(
            to_node.try_recv().is_err(),
            "an ended stream sends no cancel"
        );
    }

    #[tokio::test]
    async fn a_lost_node_ends_its_streams_and_only_its_own() {
        let (links, _to_node) = connected("n-a");
        let registry = StreamRegistry::<Ev>::default();
        let mut on_a = registry.open("n-a", &links);
        let mut on_b = registry.open("n-b", &links);
        registry.node_gone("n-a");
        assert_eq!(on_a.next().await, Some(Ev::End("n-a gone".into())));
        registry.deliver("n-b", on_b.id(), Ev::Data(3));
        assert_eq!(on_b.next().await, Some(Ev::Data(3)));
    }

    #[test]
    fn dropping_an_open_stream_tells_its_node_to_stop() {
        let (links, mut to_node) = connected("n-a");
        let registry = StreamRegistry::<Ev>::default();
        let stream = registry.open("n-a", &links);
        let id = stream.id();
        drop(stream);
        assert_eq!(
            to_node.try_recv().ok(),
            Some(Outbound::Frame(Frame::LogCancel { stream_id: id }))
        );
        registry.deliver("n-a", id, Ev::Data(1));
    }
}
