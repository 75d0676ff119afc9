//! The flood guard, by clip timeline.
//!
//! A bad list entry (a black frame that slipped past `min_quality`, a logo, a test card) must not
//! take down every stream that shows it; a real clip re-streamed by thousands must be cut every
//! time. What tells them apart is not how many streams match an entry but *how*: a re-stream
//! matches successive entries of one clip, in the clip's order, at the clip's spacing (vPDQ
//! lists carry each frame's time, `hashgate hash --fps` lists its seconds). A bad entry matches
//! alone, again and again, or from unrelated content.
//!
//! So: a stream's match that continues an earlier match of the same clip (a position the earlier
//! frame did not match, later in the clip by about the time that passed) is *on the timeline*,
//! and one that shows another position of a clip seen before, in any order (a re-cut, the clip
//! in reversed chunks, at another speed), shows more of the clip than a bad entry would: such
//! matches always count, and the stream is no longer evidence against any entry. Every other
//! match (one frame again and again, or one entry alone) is counted per entry, by distinct
//! stream; an entry matched so by more than `flood_streams` streams within `flood_window` stops
//! cutting (alert only) until the streams that tipped it turn out to show a clip or the window
//! passes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::matcher::list::ClipPosition;

/// One sampled frame's matches against timed entries.
#[derive(Debug, Clone)]
struct Sighting {
    positions: Vec<ClipPosition>,
    stream_ms: i64,
    arrived: Instant,
}

/// How far the time between two matches may differ from their distance in the clip: a quarter
/// of it, or 750 ms, whichever is larger (sampling, B-frame reordering, a re-stream sped up or
/// slowed down a little).
fn spacing_fits(elapsed_s: f64, clip_s: f64) -> bool {
    (elapsed_s - clip_s).abs() <= (clip_s * 0.25).max(0.75)
}

/// Recent sightings of one stream, to recognise its timeline.
#[derive(Debug, Default)]
pub struct Timeline {
    recent: Vec<Sighting>,
}

/// Sightings kept per stream.
const TIMELINE_LEN: usize = 32;

impl Timeline {
    /// Records a frame's timed matches; true when they continue an earlier sighting of the
    /// same clip in order and at its spacing (on either clock).
    pub fn continues(
        &mut self,
        positions: Vec<ClipPosition>,
        stream_ms: i64,
        arrived: Instant,
    ) -> bool {
        self.observe(positions, stream_ms, arrived).on_timeline
    }

    /// Records a frame's timed matches and says how they relate to the stream's earlier ones.
    pub fn observe(
        &mut self,
        positions: Vec<ClipPosition>,
        stream_ms: i64,
        arrived: Instant,
    ) -> Sighted {
        if positions.is_empty() {
            return Sighted::default();
        }
        let mut sighted = Sighted::default();
        for earlier in &self.recent {
            let by_stream = (stream_ms - earlier.stream_ms) as f64 / 1000.0;
            let by_wall = arrived
                .saturating_duration_since(earlier.arrived)
                .as_secs_f64();
            for p in positions.iter().filter(|p| !earlier.positions.contains(p)) {
                for e in earlier.positions.iter().filter(|e| e.clip == p.clip) {
                    sighted.another_position = true;
                    let ahead = p.seconds - e.seconds;
                    if ahead > 0.0
                        && (spacing_fits(by_stream, ahead) || spacing_fits(by_wall, ahead))
                    {
                        sighted.on_timeline = true;
                    }
                }
            }
        }
        if self.recent.len() >= TIMELINE_LEN {
            self.recent.remove(0);
        }
        self.recent.push(Sighting {
            positions,
            stream_ms,
            arrived,
        });
        sighted
    }
}

/// A stream's cutting audio matches, to tell a clip's soundtrack from one sound.
///
/// Audio windows overlap (one every 0.5 s), so two matches of one clip say little; what a bad
/// audio entry (a jingle, a stock sound, a ringtone) cannot do is match at two places of the
/// clip a whole window apart: two windows of the clip that share no audio. In any order and on
/// no clock (the broadcaster sets stream time; a re-cut, shuffled or reversed soundtrack shows
/// the clip as much as one played through), such a stream shows the clip, like a frame on its
/// clip's timeline.
#[derive(Debug, Default)]
pub struct AudioTimeline {
    /// Per entry source: the earliest and latest places in the clip matched (seconds).
    spans: Vec<(String, f64, f64)>,
}

/// Entries whose spans a stream keeps (the oldest make way).
const AUDIO_SPANS: usize = 16;

impl AudioTimeline {
    /// Records a match of `source` lining up `clip_s` seconds into the clip, in a window
    /// resting on `window_s` seconds of audio; true when the stream has now matched the clip at
    /// two places at least `window_s` apart.
    pub fn shows_clip(&mut self, source: &str, clip_s: f64, window_s: f64) -> bool {
        let at = match self.spans.iter().position(|(s, _, _)| s == source) {
            Some(at) => at,
            None => {
                if self.spans.len() >= AUDIO_SPANS {
                    self.spans.remove(0);
                }
                self.spans.push((source.to_owned(), clip_s, clip_s));
                self.spans.len() - 1
            }
        };
        let (_, first, last) = &mut self.spans[at];
        *first = first.min(clip_s);
        *last = last.max(clip_s);
        *last - *first >= window_s
    }
}

/// How a frame's matches relate to the stream's earlier ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sighted {
    /// A later position of a clip seen before, at about the time that passed: the clip playing.
    pub on_timeline: bool,
    /// A position of a clip seen before that the earlier frame did not match, in any order or
    /// spacing: the stream shows more of the clip than one frame (a re-cut, reversed chunks), so
    /// it is no evidence against an entry. One frame again and again never is.
    pub another_position: bool,
}

#[derive(Debug, Default)]
struct EntryRecord {
    streams: Vec<(Instant, String)>,
    flooded_since: Option<Instant>,
}

/// Most streams remembered per entry.
const STREAMS_PER_ENTRY: usize = 256;
/// Most entries remembered.
const ENTRIES: usize = 100_000;

/// What recording one off-timeline match did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The stream was not yet counted against the entry (the fleet is told once per pair).
    pub new_stream: bool,
    /// The stream count, when this match tipped the entry over the limit.
    pub tipped: Option<usize>,
}

/// What forgetting a stream did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Entries the stream had been counted against.
    pub counted_in: Vec<String>,
    /// Entries restored by it.
    pub lifted: Vec<String>,
}

/// Which streams matched each entry off-timeline lately, and the entries that tripped.
#[derive(Debug, Default)]
pub struct FloodGuard {
    entries: HashMap<String, EntryRecord>,
}

impl FloodGuard {
    /// Records an off-timeline match of `source` in `stream`.
    pub fn record(
        &mut self,
        source: &str,
        stream: &str,
        limit: usize,
        window: Duration,
    ) -> Recorded {
        let now = Instant::now();
        if self.entries.len() >= ENTRIES {
            self.entries.retain(|_, r| {
                r.streams.retain(|(at, _)| now.duration_since(*at) < window);
                !r.streams.is_empty() || r.flooded_since.is_some()
            });
        }
        let record = self.entries.entry(source.to_owned()).or_default();
        record
            .streams
            .retain(|(at, _)| now.duration_since(*at) < window);
        if record
            .flooded_since
            .is_some_and(|since| now.duration_since(since) >= window)
        {
            record.flooded_since = None;
        }
        let new_stream = match record.streams.iter_mut().find(|(_, s)| s == stream) {
            Some((at, _)) => {
                *at = now;
                false
            }
            None => {
                if record.streams.len() >= STREAMS_PER_ENTRY {
                    record.streams.remove(0);
                }
                record.streams.push((now, stream.to_owned()));
                true
            }
        };
        let tipped = (record.flooded_since.is_none() && record.streams.len() > limit).then(|| {
            record.flooded_since = Some(now);
            record.streams.len()
        });
        Recorded { new_stream, tipped }
    }

    /// `stream` showed a clip's timeline: it is a re-stream, not evidence against an entry.
    /// Entries it helped tip are restored when what is left is within `limit`.
    pub fn forget(&mut self, stream: &str, limit: usize) -> Forgotten {
        let mut out = Forgotten::default();
        for (source, record) in self.entries.iter_mut() {
            let before = record.streams.len();
            record.streams.retain(|(_, s)| s != stream);
            if record.streams.len() == before {
                continue;
            }
            out.counted_in.push(source.clone());
            if record.flooded_since.is_some() && record.streams.len() <= limit {
                record.flooded_since = None;
                out.lifted.push(source.clone());
            }
        }
        out
    }

    /// Whether `source` is demoted to alert.
    pub fn is_flooded(&self, source: &str) -> bool {
        self.entries
            .get(source)
            .is_some_and(|r| r.flooded_since.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(clip: &str, seconds: f64) -> ClipPosition {
        ClipPosition {
            clip: clip.into(),
            seconds,
        }
    }

    #[test]
    fn a_clip_playing_in_order_is_on_its_timeline() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut t = Timeline::default();
        assert!(
            !t.continues(vec![at("c", 0.0)], 2000, ms(0)),
            "first sighting"
        );
        assert!(t.continues(vec![at("c", 0.5)], 2500, ms(500)));
        // A few samples later, with one entry missed between.
        assert!(t.continues(vec![at("c", 1.5)], 3500, ms(1500)));
        // Sped up by 20 %: still the clip.
        let mut fast = Timeline::default();
        fast.continues(vec![at("c", 0.0)], 0, ms(0));
        assert!(fast.continues(vec![at("c", 2.0)], 1600, ms(1600)));
    }

    #[test]
    fn one_frame_again_and_again_is_not_a_timeline() {
        let t0 = Instant::now();
        let mut t = Timeline::default();
        for i in 0..20u64 {
            let ms = i as i64 * 500;
            assert!(!t.continues(vec![at("c", 0.0)], ms, t0 + Duration::from_millis(i * 500)));
        }
        // A static frame that several entries of a clip share (its first 3 s are a test card):
        // the same set each time is not progress.
        let mut card = Timeline::default();
        let set: Vec<_> = (0..7).map(|i| at("c", f64::from(i) * 0.5)).collect();
        for i in 0..10u64 {
            assert!(!card.continues(
                set.clone(),
                i as i64 * 500,
                t0 + Duration::from_millis(i * 500)
            ));
        }
        // Out of order, wrong spacing, another clip: not the timeline either.
        let mut odd = Timeline::default();
        odd.continues(vec![at("c", 2.0)], 0, t0);
        assert!(!odd.continues(vec![at("c", 1.0)], 1000, t0 + Duration::from_secs(1)));
        assert!(!odd.continues(vec![at("c", 9.0)], 1500, t0 + Duration::from_millis(1500)));
        assert!(!odd.continues(vec![at("d", 2.5)], 2000, t0 + Duration::from_secs(2)));
    }

    #[test]
    fn another_position_of_a_clip_in_any_order_is_not_one_frame_again() {
        let t0 = Instant::now();
        let mut reversed = Timeline::default();
        let first = reversed.observe(vec![at("c", 2.5)], 0, t0);
        assert_eq!(first, Sighted::default());
        let back = reversed.observe(vec![at("c", 1.0)], 500, t0 + Duration::from_millis(500));
        assert!(back.another_position && !back.on_timeline);
        let mut still = Timeline::default();
        for i in 0..5u64 {
            let s = still.observe(
                vec![at("c", 1.0)],
                i as i64 * 500,
                t0 + Duration::from_millis(i * 500),
            );
            assert!(!s.another_position, "the same frame again");
        }
    }

    #[test]
    fn two_places_of_a_clip_a_window_apart_show_it_and_one_sound_does_not() {
        // Windows of 5.3 s every 0.5 s along the clip: shown once the places span a window.
        let mut t = AudioTimeline::default();
        let shown: Vec<bool> = (0..14)
            .map(|k| t.shows_clip("l:1", 2.0 + 0.5 * f64::from(k), 5.3))
            .collect();
        assert_eq!(shown.iter().position(|&s| s), Some(11));
        // A 6 s jingle, matched again and again: never a window apart.
        let mut t = AudioTimeline::default();
        for _ in 0..50 {
            assert!(!t.shows_clip("j:1", 0.0, 5.3));
            assert!(!t.shows_clip("j:1", 0.6, 5.3));
        }
        // Chunks of the clip in reverse order show it too.
        let mut t = AudioTimeline::default();
        assert!(!t.shows_clip("l:1", 30.0, 5.3));
        assert!(t.shows_clip("l:1", 20.0, 5.3));
        // Another clip's places say nothing about this one.
        let mut t = AudioTimeline::default();
        assert!(!t.shows_clip("l:2", 10.0, 5.3));
        assert!(!t.shows_clip("l:1", 16.0, 5.3));
        // Bounded: many entries, the oldest forgotten.
        let mut t = AudioTimeline::default();
        for k in 0..100 {
            assert!(!t.shows_clip(&format!("e:{k}"), 0.0, 5.3));
        }
        assert!(t.spans.len() <= AUDIO_SPANS);
    }

    #[test]
    fn flood_trips_past_the_limit_and_lifts_when_streams_prove_to_be_re_streams() {
        let mut g = FloodGuard::default();
        let w = Duration::from_secs(600);
        for s in ["a", "b", "c"] {
            let r = g.record("e", s, 2, w);
            assert!(r.new_stream);
            assert_eq!(r.tipped, if s == "c" { Some(3) } else { None });
        }
        assert!(!g.record("e", "a", 2, w).new_stream, "a again is no news");
        assert!(g.is_flooded("e"));
        assert_eq!(g.record("e", "d", 2, w).tipped, None, "trips once");
        let c = g.forget("c", 2);
        assert!(c.lifted.is_empty(), "three streams still off-timeline");
        assert_eq!(c.counted_in, vec!["e".to_owned()]);
        assert_eq!(g.forget("d", 2).lifted, vec!["e".to_owned()]);
        assert!(g.forget("d", 2).counted_in.is_empty(), "forgotten already");
        assert!(!g.is_flooded("e"));
    }
}
