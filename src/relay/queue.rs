//! Media held for a stream while its upstream publish is being set up: bounded in bytes, so the
//! first GOP is kept without letting a stalled upstream hold unbounded memory.

use std::collections::VecDeque;

use crate::rtmp::Message;

/// Bookkeeping cost of a held message beyond its payload (header fields, deque slot).
const PER_MESSAGE_OVERHEAD: usize = 64;

fn cost(msg: &Message) -> usize {
    msg.payload.len() + PER_MESSAGE_OVERHEAD
}

/// Holding one more message would pass the byte limit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{held} bytes already held, limit queue_bytes = {limit}")]
pub struct QueueFull {
    /// Bytes held at the time of the push.
    pub held: usize,
    /// Configured limit.
    pub limit: usize,
}

/// Messages in arrival order, at most `limit` bytes of them.
#[derive(Debug)]
pub struct PendingMedia {
    messages: VecDeque<Message>,
    held: usize,
    limit: usize,
}

impl PendingMedia {
    /// An empty queue holding at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        PendingMedia {
            messages: VecDeque::new(),
            held: 0,
            limit,
        }
    }

    /// Appends a message, or refuses it when the limit would be passed.
    pub fn push(&mut self, msg: Message) -> Result<(), QueueFull> {
        let cost = cost(&msg);
        if self.held + cost > self.limit {
            return Err(QueueFull {
                held: self.held,
                limit: self.limit,
            });
        }
        self.held += cost;
        self.messages.push_back(msg);
        Ok(())
    }

    /// Takes every held message, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = Message> + '_ {
        self.held = 0;
        self.messages.drain(..)
    }

    /// Bytes held now (payloads plus bookkeeping).
    pub fn held_bytes(&self) -> usize {
        self.held
    }
}

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
        assert_eq!(
            q.push(msg(2, 400)),
            Err(QueueFull {
                held: 928,
                limit: 1000
            })
        );
        let order: Vec<u32> = q.drain().map(|m| m.timestamp).collect();
        assert_eq!(order, vec![0, 1]);
        assert_eq!(q.held_bytes(), 0);
        q.push(msg(3, 400)).expect("room again after drain");
    }
}
