//! The one byte-bounded queue: items in arrival order, at most a set number of bytes of them
//! (payloads plus bookkeeping), so a stalled consumer never holds unbounded memory. The relay
//! holds a stream's first GOP in it while the upstream publish is set up ([`PendingMedia`]),
//! the delay line its held media, the audio pool each stream's inbox.

use std::collections::VecDeque;
use std::time::Instant;

use crate::rtmp::Message;

/// Bookkeeping cost of a held message beyond its payload (header fields, deque slot).
pub const PER_MESSAGE_OVERHEAD: usize = 64;

/// What an item costs in a [`ByteBounded`] queue.
pub trait Weighed {
    /// Bytes the item holds, bookkeeping included.
    fn weight(&self) -> usize;
}

impl Weighed for Message {
    fn weight(&self) -> usize {
        self.payload.len() + PER_MESSAGE_OVERHEAD
    }
}

/// A held item with its release time and gates weighs what the item weighs.
impl<G, T: Weighed> Weighed for (Instant, G, T) {
    fn weight(&self) -> usize {
        self.2.weight()
    }
}

/// Holding one more item would pass the byte limit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{held} bytes already held, limit queue_bytes = {limit}")]
pub struct QueueFull {
    /// Bytes held at the time of the push.
    pub held: usize,
    /// Configured limit.
    pub limit: usize,
}

/// Items in arrival order, at most `limit` bytes of them.
#[derive(Debug)]
pub struct ByteBounded<T> {
    items: VecDeque<T>,
    held: usize,
    limit: usize,
}

impl<T: Weighed> ByteBounded<T> {
    /// An empty queue holding at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ByteBounded {
            items: VecDeque::new(),
            held: 0,
            limit,
        }
    }

    /// Appends an item, or refuses it (and hands it back) when the limit would be passed.
    pub fn push(&mut self, item: T) -> Result<(), (QueueFull, T)> {
        let cost = item.weight();
        if self.held.saturating_add(cost) > self.limit {
            let full = QueueFull {
                held: self.held,
                limit: self.limit,
            };
            return Err((full, item));
        }
        self.held += cost;
        self.items.push_back(item);
        Ok(())
    }

    /// The oldest item.
    pub fn front(&self) -> Option<&T> {
        self.items.front()
    }

    /// Takes the oldest item.
    pub fn pop_front(&mut self) -> Option<T> {
        let item = self.items.pop_front()?;
        self.held -= item.weight();
        Some(item)
    }

    /// Takes every item, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.held = 0;
        self.items.drain(..)
    }

    /// Drops every item; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.items.len();
        self.items.clear();
        self.held = 0;
        n
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes held now (payloads plus bookkeeping).
    pub fn held_bytes(&self) -> usize {
        self.held
    }
}

/// Media held for a stream while its upstream publish is being set up: the first GOP is kept
/// without letting a stalled upstream hold unbounded memory.
pub type PendingMedia = ByteBounded<Message>;

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(ts: u32, len: usize) -> Message {
        Message {
            csid: 6,
            timestamp: ts,
            type_id: 9,
            stream_id: 1,
            payload: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn bounded_in_bytes_and_keeps_order() {
        let mut q = PendingMedia::new(1000);
        q.push(msg(0, 400)).expect("fits");
        q.push(msg(1, 400)).expect("fits");
        let (full, refused) = q.push(msg(2, 400)).expect_err("full");
        assert_eq!(
            full,
            QueueFull {
                held: 928,
                limit: 1000
            }
        );
        assert_eq!(refused.timestamp, 2, "the refused item is handed back");
        assert_eq!(q.pop_front().map(|m| m.timestamp), Some(0));
        assert_eq!(q.held_bytes(), 464);
        let order: Vec<u32> = q.drain().map(|m| m.timestamp).collect();
        assert_eq!(order, vec![1]);
        assert_eq!(q.held_bytes(), 0);
        q.push(msg(3, 400)).expect("room again after drain");
        assert_eq!(q.clear(), 1);
        assert!(q.is_empty());
    }
}
