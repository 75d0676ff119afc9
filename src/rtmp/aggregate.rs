//! Aggregate messages (type 22) read to the bottom, as the platform reads them.
//!
//! nginx-rtmp (`ngx_rtmp_aggregate_message_handler`) hands every sub-message back to its own
//! message dispatcher: an aggregate inside an aggregate is unpacked again, at any depth, and a
//! command or protocol control message inside one is acted on like one sent on its own. Each
//! sub-message's timestamp is the enclosing message's plus its own minus the first
//! sub-message's (RTMP 1.0, 7.1.6), computed again at every level. Whatever the gate forwards
//! must be what it inspected, so [`unpack`] reads an aggregate the same way, to the bottom, and
//! says when forwarding it as it came leaves no room for another reading ([`Unpacked::plain`]);
//! otherwise the relay forwards the media messages it found instead.

use super::message::{kind, Message};

/// The deepest nesting of aggregates accepted (a real stream has one level; each level costs
/// the platform a stack frame, and nothing a legitimate sender does needs more).
pub const MAX_DEPTH: usize = 8;

/// Bytes of a sub-message header: type, size (24), timestamp (24 + 8), stream id (24).
const HEADER: usize = 11;
/// The back pointer after each sub-message: its header and body size (32).
const BACK_POINTER: usize = 4;

/// What an aggregate message holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Unpacked {
    /// Every audio, video and data message inside it, at any depth, in order, with the
    /// timestamp the platform gives it. Payloads are slices of the aggregate's.
    pub media: Vec<Message>,
    /// Forwarding the aggregate as it came is read the same by every platform: one level
    /// deep, and the first sub-message stamped with the aggregate's own time (so a platform
    /// that takes sub-message timestamps as absolute and one that takes them relative to the
    /// first agree).
    pub plain: bool,
}

/// Why an aggregate message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// Its sub-messages do not add up.
    #[error("malformed aggregate message: {0}")]
    Malformed(&'static str),
    /// Aggregates inside aggregates past [`MAX_DEPTH`].
    #[error("aggregate messages nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A message that is not media rides inside: the platform would act on it (a command, a
    /// chunk size), the gate does not.
    #[error("an aggregate message carries a message of type {0}: only audio, video and data may")]
    Carries(u8),
}

/// Reads an aggregate message to the bottom.
pub fn unpack(aggregate: &Message) -> Result<Unpacked, AggregateError> {
    let mut unpacked = Unpacked {
        media: Vec::new(),
        plain: true,
    };
    unpack_level(aggregate, 1, &mut unpacked)?;
    Ok(unpacked)
}

fn unpack_level(
    aggregate: &Message,
    depth: usize,
    into: &mut Unpacked,
) -> Result<(), AggregateError> {
    if depth > MAX_DEPTH {
        return Err(AggregateError::TooDeep);
    }
    let data = &aggregate.payload;
    let mut pos = 0usize;
    let mut first_ts: Option<u32> = None;
    while pos < data.len() {
        let header = data
            .get(pos..pos + HEADER)
            .ok_or(AggregateError::Malformed("sub-message header cut short"))?;
        let size = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let ts = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let body_end = pos + HEADER + size;
        if body_end + BACK_POINTER > data.len() {
            return Err(AggregateError::Malformed(
                "sub-message longer than the aggregate",
            ));
        }
        let base = *first_ts.get_or_insert(ts);
        if pos == 0 && ts != aggregate.timestamp {
            into.plain = false;
        }
        let sub = Message {
            csid: aggregate.csid,
            timestamp: aggregate.timestamp.wrapping_add(ts.wrapping_sub(base)),
            type_id: header[0],
            stream_id: aggregate.stream_id,
            payload: data.slice(pos + HEADER..body_end),
        };
        match sub.type_id {
            kind::AUDIO | kind::VIDEO | kind::DATA_AMF0 | kind::DATA_AMF3 => into.media.push(sub),
            kind::AGGREGATE => {
                into.plain = false;
                unpack_level(&sub, depth + 1, into)?;
            }
            other => return Err(AggregateError::Carries(other)),
        }
        pos = body_end + BACK_POINTER;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Sub-messages packed as an aggregate's body: (type, timestamp, body).
    fn packed(parts: &[(u8, u32, &[u8])]) -> Vec<u8> {
        let mut payload = Vec::new();
        for &(type_id, ts, body) in parts {
            let size = body.len() as u32;
            payload.push(type_id);
            payload.extend_from_slice(&size.to_be_bytes()[1..]);
            payload.extend_from_slice(&ts.to_be_bytes()[1..]);
            payload.push((ts >> 24) as u8);
            payload.extend_from_slice(&[0, 0, 1]);
            payload.extend_from_slice(body);
            payload.extend_from_slice(&(size + 11).to_be_bytes());
        }
        payload
    }

    fn aggregate(ts: u32, payload: Vec<u8>) -> Message {
        Message {
            csid: 4,
            timestamp: ts,
            type_id: kind::AGGREGATE,
            stream_id: 1,
            payload: Bytes::from(payload),
        }
    }

    fn stamps(unpacked: &Unpacked) -> Vec<(u8, u32)> {
        unpacked
            .media
            .iter()
            .map(|m| (m.type_id, m.timestamp))
            .collect()
    }

    #[test]
    fn sub_messages_keep_their_spacing_on_the_aggregate_clock() {
        let body = packed(&[(9, 1000, b"\x17\x01abc"), (8, 1033, b"\xaf\x01z")]);
        let unpacked = unpack(&aggregate(40, body.clone())).expect("well formed");
        assert_eq!(stamps(&unpacked), vec![(9, 40), (8, 73)]);
        assert_eq!(&unpacked.media[0].payload[..], b"\x17\x01abc");
        assert!(
            !unpacked.plain,
            "stamped apart from the aggregate's own time"
        );
        let same_clock = unpack(&aggregate(1000, body.clone())).expect("well formed");
        assert!(same_clock.plain);
        let cut = aggregate(40, body[..body.len() - 6].to_vec());
        assert!(matches!(unpack(&cut), Err(AggregateError::Malformed(_))));
    }

    #[test]
    fn nested_aggregates_are_read_to_the_bottom_as_nginx_rtmp_reads_them() {
        // An aggregate at 500 holding video at 100, an aggregate stamped 200 (whose own
        // sub-messages are stamped 7000 and 7040) and audio at 300.
        let inner = packed(&[(9, 7000, b"\x27\x01b"), (9, 7040, b"\x27\x01c")]);
        let outer = packed(&[
            (9, 100, b"\x17\x01a"),
            (22, 200, &inner),
            (8, 300, b"\xaf\x01z"),
        ]);
        let unpacked = unpack(&aggregate(500, outer)).expect("well formed");
        // ngx_rtmp_aggregate_message_handler: h->timestamp + timestamp - base_time, at every
        // level (the inner aggregate is at 500 + 200 - 100 = 600).
        assert_eq!(
            stamps(&unpacked),
            vec![(9, 500), (9, 600), (9, 640), (8, 700)]
        );
        assert_eq!(&unpacked.media[2].payload[..], b"\x27\x01c");
        assert!(!unpacked.plain);
    }

    #[test]
    fn nesting_is_bounded_and_commands_inside_are_refused() {
        let mut body = packed(&[(9, 0, b"\x17\x01a")]);
        for _ in 0..MAX_DEPTH - 1 {
            body = packed(&[(22, 0, &body)]);
        }
        let deepest = unpack(&aggregate(0, body.clone())).expect("at the bound");
        assert_eq!(stamps(&deepest), vec![(9, 0)]);
        let over = packed(&[(22, 0, &body)]);
        assert_eq!(unpack(&aggregate(0, over)), Err(AggregateError::TooDeep));
        for (type_id, what) in [
            (20u8, "command"),
            (1, "set chunk size"),
            (4, "user control"),
        ] {
            let body = packed(&[(9, 0, b"\x17\x01a"), (type_id, 0, b"\x02\x00\x07publish")]);
            assert_eq!(
                unpack(&aggregate(0, body)),
                Err(AggregateError::Carries(type_id)),
                "{what}"
            );
        }
    }

    #[test]
    fn an_empty_aggregate_holds_nothing() {
        let unpacked = unpack(&aggregate(0, Vec::new())).expect("empty");
        assert!(unpacked.media.is_empty() && unpacked.plain);
    }
}
