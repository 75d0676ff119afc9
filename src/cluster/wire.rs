//! What instances write to Redis and say on the control channel. Durations travel as the
//! milliseconds left, never as wall-clock times, so instances' clocks need not agree.

use serde::{Deserialize, Serialize};

/// Redis key of a block.
pub fn block_key(prefix: &str, key: &str) -> String {
    format!("{prefix}:block:{key}")
}

/// Redis key set for a while after a block is lifted: a block Redis no longer has was lifted
/// (not lost) only when this is there.
pub fn unblocked_key(prefix: &str, key: &str) -> String {
    format!("{prefix}:unblocked:{key}")
}

/// How long an unblock is remembered.
pub const UNBLOCK_MEMORY_MS: u64 = 24 * 3600 * 1000;

/// Redis key of a probation.
pub fn probation_key(prefix: &str, key: &str) -> String {
    format!("{prefix}:probation:{key}")
}

/// Redis key of an instance's heartbeat record.
pub fn instance_key(prefix: &str, instance: &str) -> String {
    format!("{prefix}:instance:{instance}")
}

/// Redis key of an entry's off-timeline streams.
pub fn flood_key(prefix: &str, entry: &str) -> String {
    format!("{prefix}:flood:{entry}")
}

/// Redis key set while an entry is demoted fleet-wide.
pub fn flooded_key(prefix: &str, entry: &str) -> String {
    format!("{prefix}:flooded:{entry}")
}

/// The token that changes when Redis loses its data.
pub fn epoch_key(prefix: &str) -> String {
    format!("{prefix}:epoch")
}

/// The control channel.
pub fn control_channel(prefix: &str) -> String {
    format!("{prefix}:control")
}

/// One message on the control channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// The process that sent it, unique per run (its own messages are ignored, and two
    /// instances configured with one name still hear each other).
    pub origin: String,
    /// What happened.
    #[serde(flatten)]
    pub op: Op,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Cut the stream under `key` wherever it is live; block and probation as given.
    Cut {
        /// Stream key.
        key: String,
        /// Told to the broadcaster.
        reason: String,
        /// Block left, 0 for none.
        block_ms: u64,
        /// Probation left, 0 for none.
        probation_ms: u64,
        /// `key` is a SHA-256 the sender could not resolve: the carrier resolves it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        by_hash: bool,
    },
    /// Record a block and probation (a write-through after an outage): no stream is cut.
    Block {
        /// Stream key.
        key: String,
        /// Block left, 0 for none.
        block_ms: u64,
        /// Probation left, 0 for none.
        probation_ms: u64,
    },
    /// Lift the block on `key`.
    Unblock {
        /// Stream key.
        key: String,
        /// As for [`Op::Cut`].
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        by_hash: bool,
    },
    /// `entry` is demoted to alert fleet-wide for `window_ms`.
    Flood {
        /// Entry source.
        entry: String,
        /// Demoted for this long.
        window_ms: u64,
    },
    /// `entry` counts again.
    FloodLift {
        /// Entry source.
        entry: String,
    },
}

/// A live stream somewhere in the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetStream {
    /// The instance carrying it.
    pub instance: String,
    /// Its key as the admin API shows keys (the SHA-256 with `events.redact_keys`).
    pub key: String,
    /// Application.
    pub app: String,
    /// Broadcaster's address.
    pub peer: String,
    /// Seconds since it was published.
    pub uptime_s: u64,
    /// Bytes received from the broadcaster.
    pub bytes_in: u64,
}

/// An instance's heartbeat record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Its name.
    pub instance: String,
    /// Its admin API, when configured.
    pub admin_url: Option<String>,
    /// Whether it is draining (shutting down).
    #[serde(default)]
    pub draining: bool,
    /// Its live streams.
    pub streams: Vec<FleetStream>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip_as_flat_json() {
        let c = Control {
            origin: "a".into(),
            op: Op::Cut {
                key: "k".into(),
                reason: "r".into(),
                block_ms: 5,
                probation_ms: 0,
                by_hash: false,
            },
        };
        let text = serde_json::to_string(&c).expect("json");
        assert_eq!(
            text,
            r#"{"origin":"a","op":"cut","key":"k","reason":"r","block_ms":5,"probation_ms":0}"#
        );
        assert_eq!(serde_json::from_str::<Control>(&text).expect("parse"), c);
        assert!(serde_json::from_str::<Control>(r#"{"origin":"a","op":"nuke"}"#).is_err());
    }
}
