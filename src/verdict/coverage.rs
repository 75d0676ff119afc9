//! Coverage: what inspection could not see does not pass silently.
//!
//! Every live stream's coverage clocks (see `relay::stats`) say how much of the video inspection
//! processed, in wall-clock time and in stream time, has no hashed frame after it (*blind*), and
//! how much received video still waits (*backlog*). A watch thread looks at every stream ten
//! times a second. A stream blind for longer than `max_blind` (`max_blind_degraded` while the
//! whole pool samples keyframes only), or blind and behind together for longer than
//! `max_blind_degraded`, is `uninspectable`, with the cause as far as the counters tell it, and
//! meets `on_uninspectable`. (Video the pool skips to keep up is judged by the pool itself, at
//! the moment it skips.)
//!
//! Lost coverage the pool's load explains (the pool skipped the stream's video, lowered its
//! sampling or kept it waiting while short, within the degraded bound) cuts only a stream that
//! made itself costly (`stats.responsible_for_load`: over its budget, grown past its admitted
//! cost, evasive) or whose decoder never showed a picture; for any other it is reported once
//! with `"action":"alert"` and judged again every tick, so coverage still lost once the load no
//! longer explains it is cut then.
//!
//! The delay buffer holds media until inspection has processed it, so what the watch judges is
//! still held: with `max_blind` under the delay, a stream whose processed video yields no hashed
//! frame is cut before that video airs. The looser degraded bound is longer than the default
//! delay: under overload part of a clip can air. An episode is reported once and re-armed when
//! coverage recovers to half the bound.

use crate::locks::Locked;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::policy::UninspectableAction;
use super::{StreamState, Verdict};
use crate::relay::stats::Coverage as StreamCoverage;
use crate::relay::StreamInfo;

/// How often coverage is checked.
const TICK: Duration = Duration::from_millis(100);
/// How long the state of a stream gone from the relay is kept for inspection to finish it
/// (inspection's own end of stream removes it sooner).
const KEEP_ENDED: Duration = Duration::from_secs(30);

/// Starts the watch thread; it ends with the verdict or the relay.
pub(super) fn watch(verdict: Weak<Verdict>) {
    let spawned = std::thread::Builder::new()
        .name("coverage".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            let Some(verdict) = verdict.upgrade() else {
                return;
            };
            let streams = verdict.registry.streams();
            for stream in &streams {
                check(&verdict, stream);
            }
            // States of streams that ended without a word from inspection. Not at once: the
            // pool may still be working through a cut stream's queued video, and a state
            // dropped under it would start afresh (and cut the stream a second time).
            let live: HashSet<u64> = streams.iter().map(|s| s.id).collect();
            {
                let mut states = verdict.streams.locked();
                let now = Instant::now();
                states.retain(|id, state| {
                    if live.contains(id) {
                        return true;
                    }
                    let gone = *state.gone_since.get_or_insert(now);
                    now.duration_since(gone) < KEEP_ENDED
                });
            }
        });
    if let Err(e) = spawned {
        tracing::error!("coverage watch could not start: {e}");
    }
}

/// What the coverage of one stream is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Within the bounds.
    Covered,
    /// Back under half the bound: a new episode may be reported.
    Recovered,
    /// Blind past the bound: this much, on the wall clock (`true`) or the stream clock.
    Blind(Duration, bool),
    /// So far behind that, counting what still waits, this much video has gone unseen.
    Late(Duration),
}

/// Judges a stream's coverage: what inspection processed without a hashed frame against
/// `bound`; that plus what still waits (lateness, the pool's load) against `late_bound`.
pub fn judge(c: StreamCoverage, bound: Duration, late_bound: Duration) -> Judgement {
    let total = c.blind_wall + c.backlog;
    if c.blind_wall > bound {
        Judgement::Blind(c.blind_wall, true)
    } else if c.blind_stream > bound {
        Judgement::Blind(c.blind_stream, false)
    } else if total > late_bound {
        Judgement::Late(total)
    } else if total < bound / 2 && c.blind_stream < bound / 2 {
        Judgement::Recovered
    } else {
        Judgement::Covered
    }
}

fn check(verdict: &Verdict, stream: &StreamInfo) {
    let stats = &stream.stats;
    let policy = &verdict.policy;
    // Once per stream, on the stream's own record: the verdict's state of a stream can be
    // dropped (its video inspection ended) while the relay still flushes its delay.
    if stats.audio_dropped.load(Ordering::Relaxed) > 0
        && !stats.audio_behind_reported.swap(true, Ordering::Relaxed)
    {
        verdict.audio_fell_behind(stream);
    }
    // The looser bound only while the stream's sampling is lowered for the pool's load: never
    // for what a stream brings on itself.
    let degraded = stats.degraded.load(Ordering::Relaxed) > 0;
    let bound = if degraded {
        policy.max_blind_degraded
    } else {
        policy.max_blind
    };
    let judgement = judge(stats.coverage(), bound, policy.max_blind_degraded);
    let (unseen, clock) = {
        let mut states = verdict.streams.locked();
        let state = states
            .entry(stream.id)
            .or_insert_with(|| StreamState::new(&verdict.policy));
        match judgement {
            Judgement::Covered => return,
            Judgement::Recovered => {
                state.blind_reported = false;
                state.excused_reported = false;
                return;
            }
            _ if state.blind_reported || state.cut => return,
            Judgement::Blind(unseen, wall) => (unseen, if wall { "wall-clock" } else { "stream" }),
            Judgement::Late(unseen) => (unseen, "wall-clock, counting video still waiting"),
        }
    };
    let limit = match judgement {
        Judgement::Late(_) => policy.max_blind_degraded,
        _ => bound,
    };
    let head = format!(
        "no frame hashed for {:.1}s of video ({clock} time; the bound is {:.1}s)",
        unseen.as_secs_f64(),
        limit.as_secs_f64(),
    );
    if excused_by_load(stats, policy.max_blind_degraded) {
        // Overload is a capacity problem, not a verdict: reported once, not cut, and judged
        // again every tick, so a stream still blind once the pool's load no longer explains it
        // is cut then.
        let first = {
            let mut states = verdict.streams.locked();
            states
                .get_mut(&stream.id)
                .is_some_and(|state| !std::mem::replace(&mut state.excused_reported, true))
        };
        if first {
            let dropped = stats.inspection_dropped.load(Ordering::Relaxed);
            let cause = format!(
                "{head}; inspection is overloaded by others' load ({dropped} video messages \
                 skipped to keep up): not this stream's doing"
            );
            verdict.uninspectable_with(stream, "overload", &cause, UninspectableAction::Alert);
        }
        return;
    }
    if let Some(state) = verdict.streams.locked().get_mut(&stream.id) {
        state.blind_reported = true;
    }
    let errors = stats.decode_errors.load(Ordering::Relaxed);
    let decoded = stats.frames_decoded.load(Ordering::Relaxed);
    let why = if decoded == 0 {
        format!("; the decoder produced no picture ({errors} decode errors)")
    } else if errors > 0 {
        format!("; {errors} decode errors")
    } else {
        String::new()
    };
    verdict.uninspectable_now(stream, "blind", &format!("{head}{why}"));
}

/// Whether the pool's load explains a stream's lost coverage: the pool took coverage from it
/// lately (skipped its video, lowered its sampling, kept it waiting while short), it did not
/// make itself costly, and its decoder has shown pictures (a stream that never yields one is
/// its own doing, load or not).
fn excused_by_load(stats: &crate::relay::stats::StreamStats, lately: Duration) -> bool {
    stats.lost_to_load_within(lately)
        && !stats.responsible_for_load.load(Ordering::Relaxed)
        && stats.frames_decoded.load(Ordering::Relaxed) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_coverage_the_pool_took_is_excused() {
        let stats = crate::relay::stats::StreamStats::default();
        let lately = Duration::from_secs(4);
        assert!(
            !excused_by_load(&stats, lately),
            "nothing taken by the pool"
        );
        stats.note_lost_to_load();
        assert!(
            !excused_by_load(&stats, lately),
            "a stream whose decoder never showed a picture is its own doing"
        );
        stats.frames_decoded.store(10, Ordering::Relaxed);
        assert!(excused_by_load(&stats, lately));
        stats.responsible_for_load.store(true, Ordering::Relaxed);
        assert!(!excused_by_load(&stats, lately), "it made itself costly");
        stats.responsible_for_load.store(false, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            !excused_by_load(&stats, Duration::from_millis(2)),
            "the excuse runs out"
        );
    }

    #[test]
    fn blind_past_the_bound_on_either_clock_late_past_the_looser_one() {
        let ms = Duration::from_millis;
        let c = |wall, stream, backlog| StreamCoverage {
            blind_wall: ms(wall),
            blind_stream: ms(stream),
            backlog: ms(backlog),
        };
        let (bound, late) = (ms(1500), ms(4000));
        assert_eq!(judge(c(400, 500, 0), bound, late), Judgement::Recovered);
        assert_eq!(judge(c(900, 100, 0), bound, late), Judgement::Covered);
        assert_eq!(
            judge(c(1600, 0, 0), bound, late),
            Judgement::Blind(ms(1600), true)
        );
        assert_eq!(
            judge(c(10, 3000, 0), bound, late),
            Judgement::Blind(ms(3000), false)
        );
        // Behind, not blind: the pool's load gets the looser bound.
        assert_eq!(judge(c(500, 500, 2500), bound, late), Judgement::Covered);
        assert_eq!(
            judge(c(500, 500, 3600), bound, late),
            Judgement::Late(ms(4100))
        );
    }
}
