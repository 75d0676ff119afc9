//! Where per-key state lives: the streams being published, the keys blocked after a cut, the
//! keys on probation (cut lately, so their next match cuts at once), and the list entries the
//! fleet's flood guard demoted. The relay claims keys here, the verdict and the admin API cut
//! and unblock through it. Keys are compared in their normal form (see [`key`]).
//!
//! In a fleet (`[cluster]`), every local change also goes out as a [`Change`] on a bounded
//! channel (never waiting: the data path does not wait on the fleet), and the cluster applies
//! other instances' changes with the `apply_*` methods. The publish-time check reads only the
//! local copy.

pub mod key;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::relay::StreamInfo;

pub use key::{KeyError, StreamKey};

/// Most keys remembered for blocks and for probation each; past it the oldest are forgotten
/// first (a flood of distinct keys must not grow memory without bound).
pub const MAX_REMEMBERED_KEYS: usize = 100_000;

/// Whole seconds a block has left, rounded up (a key told "0 s" is free now): the one rule for
/// the broadcaster's refusal, the `blocked` event and `GET /blocks`.
pub fn seconds_left(left: Duration) -> u64 {
    left.as_secs_f64().ceil() as u64
}

/// Locks `mutex`, recovering it (loudly, see [`crate::locks`]) when a thread panicked while
/// holding it: refusing to read the maps would fail open, letting blocked keys publish.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    crate::locks::Locked::locked(mutex)
}

/// A stream being published: how to cut it, and what it is.
struct LiveStream {
    cut: tokio::sync::mpsc::UnboundedSender<String>,
    info: StreamInfo,
}

/// Keys with an expiry, bounded in number.
#[derive(Default)]
struct Expiring {
    until: HashMap<String, Instant>,
}

impl Expiring {
    fn insert(&mut self, key: &str, until: Instant) {
        let now = Instant::now();
        if self.until.len() >= MAX_REMEMBERED_KEYS {
            self.until.retain(|_, t| *t > now);
        }
        if self.until.len() >= MAX_REMEMBERED_KEYS {
            if let Some(soonest) = self
                .until
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
            {
                self.until.remove(&soonest);
            }
        }
        let entry = self.until.entry(key.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    fn remaining(&mut self, key: &str) -> Option<Duration> {
        let until = *self.until.get(key)?;
        let now = Instant::now();
        if until <= now {
            self.until.remove(key);
            return None;
        }
        Some(until - now)
    }

    /// Every unexpired key with the time it has left, soonest to expire first.
    fn snapshot(&mut self) -> Vec<(String, Duration)> {
        let now = Instant::now();
        self.until.retain(|_, until| *until > now);
        let mut out: Vec<(String, Duration)> = self
            .until
            .iter()
            .map(|(key, until)| (key.clone(), *until - now))
            .collect();
        out.sort_by_key(|(_, left)| *left);
        out
    }
}

/// A local change the rest of the fleet must learn.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `key` was cut here (or an operator asked for a cut of a stream not live here).
    Cut {
        /// The key, normal form.
        key: String,
        /// Told to the broadcaster.
        reason: String,
        /// Block until then.
        block_until: Option<Instant>,
        /// Probation until then.
        probation_until: Option<Instant>,
        /// Whether the stream was live on this instance.
        live_here: bool,
        /// `key` is an operator's SHA-256 of a key this instance does not know: the instance
        /// that knows it resolves it.
        by_hash: bool,
    },
    /// The block on `key` was lifted here.
    Unblock {
        /// The key, normal form.
        key: String,
        /// As for [`Change::Cut`].
        by_hash: bool,
    },
    /// A list entry matched a stream off any clip timeline, the first time for this pair.
    FloodSeen {
        /// The entry's source (list and position), as the flood guard names it.
        entry: String,
        /// Its label, for the event.
        label: String,
        /// The list's name, for the event.
        list: String,
        /// The stream key.
        stream: String,
    },
    /// `stream` showed a clip's timeline: it no longer counts against `entries`.
    FloodForget {
        /// The stream key.
        stream: String,
        /// Entries it was counted against.
        entries: Vec<String>,
    },
}

/// Live streams, blocks and probation, by key name.
#[derive(Default)]
pub struct StreamRegistry {
    live: Mutex<HashMap<String, LiveStream>>,
    blocks: Mutex<Expiring>,
    probation: Mutex<Expiring>,
    /// Entries the fleet's flood guard demoted to alert, until their window ends.
    flooded: Mutex<Expiring>,
    fleet: OnceLock<tokio::sync::mpsc::Sender<Change>>,
    /// A stream started or ended since the fleet last heard (one flag, not a message each).
    streams_changed: AtomicBool,
    /// A change could not be queued for the fleet: its state must be written through.
    fleet_behind: AtomicBool,
    /// Unblocks that could not be queued for the fleet (bounded), sent again by the cluster.
    unblocks_behind: Mutex<Vec<String>>,
}

impl StreamRegistry {
    /// An empty registry.
    pub fn new() -> StreamRegistry {
        StreamRegistry::default()
    }

    /// Cuts the stream published under `key`: its task gets `reason`. With a non-zero
    /// `block_for`, the key is refused at publish time until then; with a non-zero `probation`,
    /// its streams are cut on their first match until then. Returns whether such a stream was
    /// live.
    pub fn cut(&self, key: &str, reason: &str, block_for: Duration, probation: Duration) -> bool {
        let now = Instant::now();
        let block_until = (!block_for.is_zero()).then(|| now + block_for);
        let probation_until = (!probation.is_zero()).then(|| now + probation);
        let live_here = self.apply_cut(key, reason, block_until, probation_until);
        // A cut with nothing to remember that ended a stream here concerns no one else.
        if !live_here || block_until.is_some() || probation_until.is_some() {
            self.tell_fleet(Change::Cut {
                key: key.to_owned(),
                reason: reason.to_owned(),
                block_until,
                probation_until,
                live_here,
                by_hash: !live_here && key::looks_hashed(key),
            });
        }
        live_here
    }

    /// Applies a cut decided here or elsewhere in the fleet: blocks and probation are recorded,
    /// the stream is cut if it is live here. Returns whether it was.
    pub fn apply_cut(
        &self,
        key: &str,
        reason: &str,
        block_until: Option<Instant>,
        probation_until: Option<Instant>,
    ) -> bool {
        self.remember(key, block_until, probation_until);
        self.cut_live(key, reason)
    }

    /// Records a block and probation; returns whether the key was not blocked before.
    fn remember(
        &self,
        key: &str,
        block_until: Option<Instant>,
        probation_until: Option<Instant>,
    ) -> bool {
        let mut newly_blocked = false;
        if let Some(until) = block_until {
            let mut blocks = locked(&self.blocks);
            newly_blocked = blocks.remaining(key).is_none();
            blocks.insert(key, until);
        }
        if let Some(until) = probation_until {
            locked(&self.probation).insert(key, until);
        }
        newly_blocked
    }

    /// Sends `reason` to the stream live under `key`; whether there was one.
    fn cut_live(&self, key: &str, reason: &str) -> bool {
        locked(&self.live)
            .get(key)
            .is_some_and(|stream| stream.cut.send(reason.to_owned()).is_ok())
    }

    /// Records a block and probation learnt from the fleet. A stream live here under a key
    /// that was not blocked here is cut (it was accepted while this instance did not know the
    /// block, or the cut meant for it was lost on the way). Returns whether one was.
    pub fn apply_block(
        &self,
        key: &str,
        block_until: Option<Instant>,
        probation_until: Option<Instant>,
    ) -> bool {
        self.remember(key, block_until, probation_until) && self.cut_live(key, "stream key blocked")
    }

    /// Lifts a block another instance lifted.
    pub fn apply_unblock(&self, key: &str) -> bool {
        locked(&self.blocks).until.remove(key).is_some()
    }

    /// Every key on probation with the time it has left.
    pub fn probations(&self) -> Vec<(String, Duration)> {
        locked(&self.probation).snapshot()
    }

    /// Records that the fleet's flood guard demoted `entry` until `until`.
    pub fn apply_flood(&self, entry: &str, until: Instant) {
        locked(&self.flooded).insert(entry, until);
    }

    /// Entries the fleet's flood guard has demoted, with the time each has left.
    pub fn fleet_floods(&self) -> Vec<(String, Duration)> {
        locked(&self.flooded).snapshot()
    }

    /// Records that the fleet's flood guard restored `entry`.
    pub fn apply_flood_lift(&self, entry: &str) {
        locked(&self.flooded).until.remove(entry);
    }

    /// Whether the fleet's flood guard has demoted `entry` to alert.
    pub fn fleet_flooded(&self, entry: &str) -> bool {
        locked(&self.flooded).remaining(entry).is_some()
    }

    /// Sends every later local change to `fleet` (once; later calls are ignored).
    pub fn connect_fleet(&self, fleet: tokio::sync::mpsc::Sender<Change>) {
        let _ = self.fleet.set(fleet);
    }

    /// Tells the fleet about a local change, without waiting: a full queue drops it (counted;
    /// blocks and probation are written through again when the cluster reconnects).
    pub fn tell_fleet(&self, change: Change) {
        if let Some(fleet) = self.fleet.get() {
            if let Err(refused) = fleet.try_send(change) {
                // Blocks are written through from the local copy; an unblock leaves no trace
                // there, so it is kept to be sent again.
                if let Change::Unblock {
                    key,
                    by_hash: false,
                } = refused.into_inner()
                {
                    let mut behind = locked(&self.unblocks_behind);
                    if behind.len() < MAX_REMEMBERED_KEYS {
                        behind.push(key);
                    }
                }
                self.fleet_behind.store(true, Ordering::Relaxed);
                crate::metrics::metrics().cluster_dropped.inc();
            }
        }
    }

    /// Whether a stream started or ended since the last call.
    pub fn take_streams_changed(&self) -> bool {
        self.streams_changed.swap(false, Ordering::Relaxed)
    }

    /// Unblocks dropped on their way to the fleet since the last call.
    pub fn take_unblocks_behind(&self) -> Vec<String> {
        std::mem::take(&mut *locked(&self.unblocks_behind))
    }

    /// Whether a change was dropped on its way to the fleet since the last call.
    pub fn take_fleet_behind(&self) -> bool {
        self.fleet_behind.swap(false, Ordering::Relaxed)
    }

    /// The key an operator means by `text`: a live or blocked key equal to it, or whose SHA-256
    /// it is (what logs and the admin API show with `events.redact_keys`); else `text` itself.
    pub fn resolve(&self, text: &str) -> String {
        let text = key::normal_name(text);
        if !key::looks_hashed(&text) {
            return text;
        }
        // A key whose hash the text is wins over a key that merely spells that hash: a
        // broadcaster cannot name a decoy after another stream's hash.
        let live = locked(&self.live);
        let blocks = locked(&self.blocks);
        live.keys()
            .chain(blocks.until.keys())
            .find(|k| k.as_str() != text && key::shown(k).named_by(&text))
            .cloned()
            .unwrap_or(text)
    }

    /// How long `key` stays blocked, if it is.
    pub fn blocked_for(&self, key: &str) -> Option<Duration> {
        locked(&self.blocks).remaining(key)
    }

    /// Whether `key` was cut within the probation period.
    pub fn on_probation(&self, key: &str) -> bool {
        locked(&self.probation).remaining(key).is_some()
    }

    /// Every blocked key with the time its block has left, soonest to lift first.
    pub fn blocks(&self) -> Vec<(String, Duration)> {
        locked(&self.blocks).snapshot()
    }

    /// Lifts the block on `key`; returns whether there was one here. Probation stays: the key
    /// was still cut lately. The fleet is told either way (the block may live elsewhere).
    pub fn unblock(&self, key: &str) -> bool {
        let found = self.apply_unblock(key);
        self.tell_fleet(Change::Unblock {
            key: key.to_owned(),
            by_hash: !found && key::looks_hashed(key),
        });
        found
    }

    /// The streams being published now, by key.
    pub fn streams(&self) -> Vec<StreamInfo> {
        let mut out: Vec<StreamInfo> = locked(&self.live)
            .values()
            .map(|s| s.info.clone())
            .collect();
        out.sort_by(|a, b| a.stream_key.cmp(&b.stream_key));
        out
    }

    /// Claims a stream key; `None` when it is already being published. The receiver gets the
    /// reason when the stream is cut; the key is released when the guard drops.
    pub fn claim(
        self: &Arc<Self>,
        info: &StreamInfo,
    ) -> Option<(LiveGuard, tokio::sync::mpsc::UnboundedReceiver<String>)> {
        let mut live = locked(&self.live);
        if live.contains_key(&info.stream_key) {
            return None;
        }
        let (cut, cut_rx) = tokio::sync::mpsc::unbounded_channel();
        live.insert(
            info.stream_key.clone(),
            LiveStream {
                cut,
                info: info.clone(),
            },
        );
        drop(live);
        self.streams_changed.store(true, Ordering::Relaxed);
        let guard = LiveGuard {
            registry: self.clone(),
            key: info.stream_key.clone(),
        };
        Some((guard, cut_rx))
    }
}

/// Holds a stream key as live until dropped.
pub struct LiveGuard {
    registry: Arc<StreamRegistry>,
    key: String,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        locked(&self.registry.live).remove(&self.key);
        self.registry.streams_changed.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_blocks_and_puts_on_probation_until_each_expires() {
        let registry = StreamRegistry::new();
        assert!(
            !registry.cut(
                "k",
                "test",
                Duration::from_secs(60),
                Duration::from_secs(3600)
            ),
            "nothing live under k"
        );
        let left = registry.blocked_for("k").expect("blocked");
        assert!(left > Duration::from_secs(55) && left <= Duration::from_secs(60));
        assert!(registry.on_probation("k"));
        assert!(registry.unblock("k"));
        assert!(registry.blocked_for("k").is_none());
        assert!(registry.on_probation("k"), "an unblock keeps probation");
        registry.cut("j", "test", Duration::ZERO, Duration::ZERO);
        assert!(registry.blocked_for("j").is_none(), "zero blocks nothing");
        assert!(!registry.on_probation("j"));
        registry.cut("p", "test", Duration::ZERO, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!registry.on_probation("p"), "probation expires");
    }

    #[test]
    fn operators_name_keys_by_their_hash_and_a_decoy_spelling_it_loses() {
        let registry = StreamRegistry::new();
        let hour = Duration::from_secs(3600);
        registry.cut("real-key", "test", hour, hour);
        let hash = key::hex_sha256("real-key");
        registry.cut(&hash, "decoy", hour, hour);
        assert_eq!(registry.resolve(&hash), "real-key");
        assert_eq!(registry.resolve(&hash.to_uppercase()), "real-key");
        assert_eq!(registry.resolve("real-key"), "real-key");
        assert_eq!(registry.resolve("unknown"), "unknown");
    }

    #[test]
    fn an_unblock_the_fleet_queue_refused_is_kept_to_be_sent_again() {
        let registry = StreamRegistry::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        registry.connect_fleet(tx);
        let hour = Duration::from_secs(3600);
        registry.cut("a", "test", hour, Duration::ZERO);
        assert!(
            registry.unblock("a"),
            "the queue is full: the unblock is not sent now"
        );
        assert!(registry.take_fleet_behind());
        assert_eq!(registry.take_unblocks_behind(), vec!["a".to_owned()]);
        assert!(registry.take_unblocks_behind().is_empty());
        assert!(matches!(rx.try_recv(), Ok(Change::Cut { .. })));
    }

    #[test]
    fn remembered_keys_are_bounded() {
        let mut e = Expiring::default();
        let later = Instant::now() + Duration::from_secs(60);
        for i in 0..MAX_REMEMBERED_KEYS + 10 {
            e.insert(&format!("k{i}"), later + Duration::from_millis(i as u64));
        }
        assert_eq!(e.until.len(), MAX_REMEMBERED_KEYS);
        assert!(
            e.remaining("k0").is_none(),
            "the soonest to expire went first"
        );
        assert!(e
            .remaining(&format!("k{}", MAX_REMEMBERED_KEYS + 9))
            .is_some());
    }
}
