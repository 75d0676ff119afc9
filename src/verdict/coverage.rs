//! Coverage: what inspection could not see does not pass silently.
//!
//! Every live stream's coverage clocks (see `relay::stats`) say how much of its received video,
//! in wall-clock time and in stream time, has no hashed frame after it. A watch thread looks at
//! every stream ten times a second; a stream blind for longer than `max_blind` (or
//! `max_blind_degraded` while the pool sheds load) is `uninspectable`, with the cause as far as
//! the counters tell it, and meets `on_uninspectable`. With the default delay buffer longer
//! than the bound, the cut lands before the unseen video reaches the platform. An episode is
//! reported once and re-armed when coverage recovers to half the bound.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use super::{StreamState, Verdict};
use crate::relay::StreamInfo;

/// How often coverage is checked.
const TICK: Duration = Duration::from_millis(100);

/// Starts the watch thread; it ends with the verdict or the relay.
pub(super) fn watch(verdict: Weak<Verdict>) {
    let spawned = std::thread::Builder::new()
        .name("coverage".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            let Some(verdict) = verdict.upgrade() else {
                return;
            };
            let Some(relay) = verdict.relay() else {
                return;
            };
            let streams = relay.streams();
            for stream in &streams {
                check(&verdict, stream);
            }
            // States of streams that ended without a word from inspection.
            let live: HashSet<u64> = streams.iter().map(|s| s.id).collect();
            let states = verdict.streams.lock();
            if let Ok(mut states) = states {
                states.retain(|id, _| live.contains(id));
            }
        });
    if let Err(e) = spawned {
        tracing::error!("coverage watch could not start: {e}");
    }
}

/// What the coverage of one stream is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Within the bound.
    Covered,
    /// Back under half the bound: a new episode may be reported.
    Recovered,
    /// Over the bound on the wall clock (`true`) or the stream clock (`false`), by this much.
    Blind(Duration, bool),
}

/// Judges blind stretches `(wall, stream)` against `bound`.
pub fn judge(blind: (Duration, Duration), bound: Duration) -> Coverage {
    let (wall, stream) = blind;
    if wall > bound {
        Coverage::Blind(wall, true)
    } else if stream > bound {
        Coverage::Blind(stream, false)
    } else if wall < bound / 2 && stream < bound / 2 {
        Coverage::Recovered
    } else {
        Coverage::Covered
    }
}

fn check(verdict: &Verdict, stream: &StreamInfo) {
    let stats = &stream.stats;
    let degraded = stats.degraded.load(Ordering::Relaxed) > 0;
    let bound = if degraded {
        verdict.policy.max_blind_degraded
    } else {
        verdict.policy.max_blind
    };
    let verdict_of = judge(stats.blind(), bound);
    let Ok(mut states) = verdict.streams.lock() else {
        return;
    };
    let state = states
        .entry(stream.id)
        .or_insert_with(|| StreamState::new(&verdict.policy));
    match verdict_of {
        Coverage::Covered => {}
        Coverage::Recovered => state.blind_reported = false,
        Coverage::Blind(..) if state.blind_reported || state.cut => {}
        Coverage::Blind(blind, wall) => {
            state.blind_reported = true;
            drop(states);
            let dropped = stats.inspection_dropped.load(Ordering::Relaxed);
            let errors = stats.decode_errors.load(Ordering::Relaxed);
            let decoded = stats.frames_decoded.load(Ordering::Relaxed);
            let why = if dropped > 0 || degraded {
                format!("; inspection is overloaded ({dropped} video messages skipped to keep up)")
            } else if decoded == 0 {
                format!("; the decoder produced no picture ({errors} decode errors)")
            } else if errors > 0 {
                format!("; {errors} decode errors")
            } else {
                String::new()
            };
            let cause = format!(
                "no frame hashed for {:.1}s of video ({} time; the bound is {:.1}s){why}",
                blind.as_secs_f64(),
                if wall { "wall-clock" } else { "stream" },
                bound.as_secs_f64(),
            );
            let kind = if dropped > 0 || degraded {
                "overload"
            } else {
                "blind"
            };
            verdict.uninspectable_now(stream, kind, &cause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blind_past_the_bound_on_either_clock() {
        let ms = Duration::from_millis;
        let bound = ms(1500);
        assert_eq!(judge((ms(400), ms(500)), bound), Coverage::Recovered);
        assert_eq!(judge((ms(900), ms(100)), bound), Coverage::Covered);
        assert_eq!(
            judge((ms(1600), ms(0)), bound),
            Coverage::Blind(ms(1600), true)
        );
        assert_eq!(
            judge((ms(10), ms(3000)), bound),
            Coverage::Blind(ms(3000), false)
        );
    }
}
