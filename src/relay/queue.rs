//! The per-stream queue between the broadcaster's connection and the upstream's: unbounded in
//! messages, bounded in bytes. Pushing never waits; a push past the limit fails, and the relay
//! closes that stream instead of buffering without end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::rtmp::Message;

/// Bookkeeping cost of a queued message beyond its payload (header fields, channel node).
const PER_MESSAGE_OVERHEAD: usize = 64;

fn cost(msg: &Message) -> usize {
    msg.payload.len() + PER_MESSAGE_OVERHEAD
}

/// A push would take the queue past its byte limit, or the receiver is gone.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    /// Over the byte limit.
    #[error("{queued} bytes already queued, limit queue_bytes = {limit}")]
    Full {
        /// Bytes queued at the time of the push.
        queued: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The upstream side has ended.
    #[error("upstream side has ended")]
    Closed,
}

/// Sending half, owned by the broadcaster's task.
pub struct QueueSender {
    tx: mpsc::UnboundedSender<Message>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// Receiving half, owned by the upstream task.
pub struct QueueReceiver {
    rx: mpsc::UnboundedReceiver<Message>,
    queued: Arc<AtomicUsize>,
}

/// A queue holding at most `limit_bytes` of messages.
pub fn media_queue(limit_bytes: usize) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        QueueSender {
            tx,
            queued: queued.clone(),
            limit: limit_bytes,
        },
        QueueReceiver { rx, queued },
    )
}

impl QueueSender {
    /// Queues a message without waiting.
    pub fn push(&self, msg: Message) -> Result<(), PushError> {
        let cost = cost(&msg);
        let before = self.queued.fetch_add(cost, Ordering::AcqRel);
        if before + cost > self.limit {
            self.queued.fetch_sub(cost, Ordering::AcqRel);
            return Err(PushError::Full {
                queued: before,
                limit: self.limit,
            });
        }
        self.tx.send(msg).map_err(|_| PushError::Closed)
    }

    /// Bytes currently queued.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl QueueReceiver {
    /// Next message; `None` once the sender is dropped and the queue is empty.
    pub async fn recv(&mut self) -> Option<Message> {
        let msg = self.rx.recv().await?;
        self.queued.fetch_sub(cost(&msg), Ordering::AcqRel);
        Some(msg)
    }

    /// Next message if one is ready.
    pub fn try_recv(&mut self) -> Option<Message> {
        let msg = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(cost(&msg), Ordering::AcqRel);
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(len: usize) -> Message {
        Message {
            csid: 6,
            timestamp: 0,
            type_id: 9,
            stream_id: 1,
            payload: Bytes::from(vec![0u8; len]),
        }
    }

    #[tokio::test]
    async fn bounded_in_bytes_and_frees_on_receive() {
        let (tx, mut rx) = media_queue(1000);
        tx.push(msg(400)).expect("fits");
        tx.push(msg(400)).expect("fits");
        assert_eq!(
            tx.push(msg(400)),
            Err(PushError::Full {
                queued: 928,
                limit: 1000
            })
        );
        assert_eq!(rx.recv().await.map(|m| m.payload.len()), Some(400));
        tx.push(msg(400)).expect("room again");
        assert!(rx.try_recv().is_some());
        assert!(rx.try_recv().is_some());
        assert!(rx.try_recv().is_none());
        assert_eq!(tx.queued_bytes(), 0);
        drop(tx);
        assert!(rx.recv().await.is_none());
    }
}
