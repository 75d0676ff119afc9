//! Hash lists and matching: list files in every format platforms receive (`formats`), an exact
//! Hamming index (`index`), loaded lists with their settings (`list`), and the live set of lists
//! that reloads files as they change, swapping in a new index atomically and keeping the old one
//! when a file is broken.

pub mod audio;
pub mod audio_formats;
pub mod formats;
pub mod index;
pub mod list;
pub mod remote;

use crate::locks::Locked;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::hash::imghash::{self, Algorithm};
use crate::hash::pdq::{Dihedral, LumaImage, PdqDct, PdqHash};
use crate::hash::{FrameHashes, View, FEATURELESS};
use crate::metrics::metrics;
use formats::ListError;
use list::{AudioMatch, HashList, ListKind, ListSettings, Match};

/// What the lists say about one frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameMatches {
    /// The allow-list entry the frame matched, if any: then nothing else counts.
    pub allowed: Option<Match>,
    /// Block-list matches, best first.
    pub matches: Vec<Match>,
}

/// The outcome of reloading one list.
#[derive(Debug)]
pub struct Reloaded {
    /// List name.
    pub list: String,
    /// Entries now in force, or why the old list stays in force.
    pub result: Result<usize, ListError>,
}

/// What [`Matcher::reload`] reloads and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadOptions {
    /// Every list, changed or not (SIGHUP, `POST /lists/reload`); else only changed files.
    pub every_list: bool,
    /// Accept a list that empties or shrinks past its `max_shrink` (the operator says so).
    pub accept_shrink: bool,
}

impl ReloadOptions {
    /// Lists whose files changed, guarded against shrinking: the file watcher.
    pub const CHANGED: ReloadOptions = ReloadOptions {
        every_list: false,
        accept_shrink: false,
    };
    /// Every list, guarded against shrinking: SIGHUP and the API's plain reload.
    pub const ALL: ReloadOptions = ReloadOptions {
        every_list: true,
        accept_shrink: false,
    };
    /// Every list, whatever its size: the API's `?force=true`.
    pub const FORCED: ReloadOptions = ReloadOptions {
        every_list: true,
        accept_shrink: true,
    };
}

/// Refuses a reload that would take a list from `in_force` entries to `loaded` when that empties
/// it or drops more than its `max_shrink` share, unless `accepted`.
pub(crate) fn shrink_check(
    settings: &ListSettings,
    in_force: usize,
    loaded: usize,
    accepted: bool,
) -> Result<(), ListError> {
    if accepted || loaded >= in_force {
        return Ok(());
    }
    let share = settings.max_shrink();
    let lost = (in_force - loaded) as f64 / in_force as f64;
    if loaded > 0 && lost <= share {
        return Ok(());
    }
    Err(ListError {
        file: settings.path.display().to_string(),
        line: 0,
        reason: format!(
            "would go from {in_force} to {loaded} entries ({:.0}% fewer; max_shrink is {:.0}%), \
             as a file caught mid-write looks; not applied (POST /lists/reload?force=true applies it)",
            lost * 100.0,
            share * 100.0
        ),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &PathBuf) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// Runs `each` on `owner` every `every` on a thread named `name`, until `owner` is dropped (the
/// thread holds it only while `each` runs): the file watchers of lists and media banks.
pub fn poll_while_alive<T: Send + Sync + 'static>(
    name: &str,
    owner: &Arc<T>,
    every: Duration,
    each: impl Fn(&T) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let weak = Arc::downgrade(owner);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Some(owner) = weak.upgrade() else {
                return;
            };
            each(&owner);
        })
}

/// The lists in force. Lookups read a snapshot (one atomic load); reloads build new lists beside
/// it and swap them in whole.
pub struct Matcher {
    settings: Vec<ListSettings>,
    lists: ArcSwap<Vec<Arc<HashList>>>,
    stamps: Mutex<Vec<Stamps>>,
}

/// A list file's stamp as last applied, and as seen at the last poll.
#[derive(Debug, Clone, Copy)]
struct Stamps {
    applied: Option<FileStamp>,
    seen: Option<FileStamp>,
}

impl Matcher {
    /// Loads every enabled list. At startup a broken list is an error: running without a list
    /// the operator configured would be failing open.
    pub fn load(settings: Vec<ListSettings>) -> Result<Matcher, ListError> {
        let settings: Vec<ListSettings> = settings.into_iter().filter(|s| s.enabled).collect();
        let mut lists = Vec::with_capacity(settings.len());
        let mut stamps = Vec::with_capacity(settings.len());
        for s in &settings {
            let now = stamp(&s.path);
            stamps.push(Stamps {
                applied: now,
                seen: now,
            });
            lists.push(Arc::new(HashList::load(s.clone())?));
        }
        Ok(Matcher {
            settings,
            lists: ArcSwap::from_pointee(lists),
            stamps: Mutex::new(stamps),
        })
    }

    /// The settings of the lists loaded (enabled ones), in the order of [`Matcher::lists`].
    pub fn settings(&self) -> &[ListSettings] {
        &self.settings
    }

    /// Applies a version of list `index` fetched from its URL: parsed and checked against
    /// `max_shrink` like a reloaded file, then cached to the list's path and swapped in. A
    /// version refused leaves the list in force and its cache as they were.
    pub fn apply_fetched(&self, index: usize, body: &[u8]) -> Reloaded {
        let Some(settings) = self.settings.get(index) else {
            return Reloaded {
                list: format!("#{index}"),
                result: Err(ListError {
                    file: String::new(),
                    line: 0,
                    reason: "no such list".into(),
                }),
            };
        };
        let mut stamps = self.stamps.locked();
        let in_force = self.lists.load().get(index).map_or(0, |l| l.len());
        let text = String::from_utf8_lossy(body);
        let result = HashList::from_text(settings.clone(), &settings.path, &text)
            .and_then(|list| {
                shrink_check(settings, in_force, list.len(), false)?;
                remote::write_cache(&settings.path, body).map_err(|e| ListError {
                    file: settings.path.display().to_string(),
                    line: 0,
                    reason: format!("caching the fetched list: {e}"),
                })?;
                Ok(list)
            })
            .map(|list| {
                let n = list.len();
                let mut next = self.lists.load_full().as_ref().clone();
                next[index] = Arc::new(list);
                self.lists.store(Arc::new(next));
                let now = stamp(&settings.path);
                stamps[index] = Stamps {
                    applied: now,
                    seen: now,
                };
                n
            });
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics()
            .list_reloads
            .inc(&[settings.name().as_str(), outcome]);
        Reloaded {
            list: settings.name(),
            result,
        }
    }

    /// The lists in force now.
    pub fn lists(&self) -> Arc<Vec<Arc<HashList>>> {
        self.lists.load_full()
    }

    /// Reloads the lists whose files changed and have then stayed the same for a poll (every
    /// list with `how.every_list`). A list that
    /// fails to load keeps its previous version in force, and so does one that would empty or
    /// shrink by more than its `max_shrink` (a file caught mid-write by a non-atomic writer or
    /// a sync tool), unless `how.accept_shrink`.
    pub fn reload(&self, how: ReloadOptions) -> Vec<Reloaded> {
        let mut stamps = self.stamps.locked();
        let mut next: Vec<Arc<HashList>> = self.lists.load_full().as_ref().clone();
        let mut report = Vec::new();
        for (i, settings) in self.settings.iter().enumerate() {
            let now = stamp(&settings.path);
            if !how.every_list {
                // A changed file is read once it has stayed the same for a poll: a writer
                // that is not atomic shows half-written states in between.
                let settled = now == stamps[i].seen;
                stamps[i].seen = now;
                if now == stamps[i].applied || !settled {
                    continue;
                }
            }
            stamps[i] = Stamps {
                applied: now,
                seen: now,
            };
            let in_force = next[i].len();
            let result = HashList::load(settings.clone())
                .and_then(|list| {
                    shrink_check(settings, in_force, list.len(), how.accept_shrink)?;
                    Ok(list)
                })
                .map(|list| {
                    let n = list.len();
                    next[i] = Arc::new(list);
                    n
                });
            let outcome = if result.is_ok() { "ok" } else { "error" };
            metrics()
                .list_reloads
                .inc(&[settings.name().as_str(), outcome]);
            report.push(Reloaded {
                list: settings.name(),
                result,
            });
        }
        if report.iter().any(|r| r.result.is_ok()) {
            self.lists.store(Arc::new(next));
        }
        report
    }

    /// Polls the list files every `every` and reloads what changed, logging each outcome. Runs
    /// until the matcher is dropped.
    pub fn watch(
        self: &Arc<Self>,
        every: Duration,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        poll_while_alive("list-watch", self, every, |matcher: &Matcher| {
            for outcome in matcher.reload(ReloadOptions::CHANGED) {
                log_reload(&outcome);
            }
        })
    }

    /// Matches a hashed frame against every list. `luma` is the frame, for lists of the
    /// image_hasher algorithms.
    pub fn match_frame(&self, hashes: &FrameHashes, luma: &LumaImage) -> FrameMatches {
        let lists = self.lists.load();
        let mut out = FrameMatches::default();
        let mut short_hashes: Vec<(Algorithm, Option<u64>)> = Vec::new();
        for list in lists.iter() {
            let s = &list.settings;
            if s.is_audio() {
                continue;
            }
            let found = if s.algorithm == Algorithm::Pdq {
                lookup_views(list, hashes, None)
            } else {
                let cached = short_hashes
                    .iter()
                    .find(|(a, _)| *a == s.algorithm)
                    .map(|(_, h)| *h);
                let hash = cached.unwrap_or_else(|| {
                    let h = short_hash(s.algorithm, luma);
                    short_hashes.push((s.algorithm, h));
                    h
                });
                hash.map_or_else(Vec::new, |h| list.lookup_short(h, None))
            };
            let counters = metrics();
            counters.lookups.inc(&[list.name()]);
            if !found.is_empty() {
                counters.matches.inc(&[list.name()]);
            }
            match s.kind {
                ListKind::Allow => {
                    if out.allowed.is_none() {
                        out.allowed = found.into_iter().next();
                    }
                }
                ListKind::Block => out.matches.extend(found),
            }
        }
        // An allow entry matches the luma's whole picture; a clip carried in a colour plane
        // beside it (an allowed test card in the luma) is not excused by it.
        if out.allowed.is_some() {
            out.matches.retain(|m| m.view == View::Colour);
            if !out.matches.is_empty() {
                out.allowed = None;
            }
        }
        // The whole frame, its content area and their rotations can all hit one entry: report
        // each entry once, at its best distance.
        out.matches
            .sort_by(|a, b| a.source.cmp(&b.source).then(a.distance.cmp(&b.distance)));
        out.matches
            .dedup_by(|later, first| later.source == first.source);
        out.matches.sort_by_key(|m| m.distance);
        out
    }
}

impl Matcher {
    /// Whether PDQ cannot decide the frame: its whole picture (as it is, or mirrored when the
    /// list says `mirror`) comes within `widen` bits past a PDQ block list's threshold without
    /// matching it, or the frame holds a layout candidate (an inset found by the motion map,
    /// #17). The media banks check such frames sooner. One widened index search per list and
    /// query: cheap next to a bank check.
    pub fn near_miss(&self, hashes: &FrameHashes, widen: u32) -> bool {
        if hashes.inset.is_some() {
            return true;
        }
        if widen == 0 {
            return false;
        }
        let lists = self.lists.load();
        let frame = &hashes.full;
        lists.iter().any(|list| {
            let s = &list.settings;
            if s.algorithm != Algorithm::Pdq
                || s.kind != ListKind::Block
                || frame.stretched_quality < s.min_quality
            {
                return false;
            }
            let mut queries = vec![frame.hash()];
            if s.mirror() {
                queries.push(frame.dihedral(Dihedral::FlipY));
            }
            let radius = (s.threshold() + widen).min(256);
            !list.lookup_pdq(&queries, Some(radius)).is_empty()
        })
    }

    /// The entry of a PDQ block list nearest to matching any of the frame's hashes (as
    /// `match_frame` queries them), at any distance, and its margin: the distance less the
    /// threshold it would have to reach (the negative threshold for a negative). How far benign
    /// content stays from a list. Scans every entry: for benchmarks and `scan --nearest`, not
    /// for the live path.
    pub fn nearest_pdq(&self, hashes: &FrameHashes) -> Option<(Match, i64)> {
        let lists = self.lists.load();
        let mut nearest: Option<(Match, i64)> = None;
        for list in lists.iter() {
            let s = &list.settings;
            if s.algorithm != Algorithm::Pdq || s.kind != ListKind::Block {
                continue;
            }
            for m in lookup_views(list, hashes, Some(256)) {
                let margin = margin(s, &m);
                if nearest.as_ref().is_none_or(|(_, n)| margin < *n) {
                    nearest = Some((m, margin));
                }
            }
        }
        nearest
    }

    /// Matches a stream's newest audio sub-fingerprints (oldest first) against every audio
    /// list, best first.
    pub fn match_audio(&self, newest: &[u32]) -> Vec<AudioMatch> {
        let lists = self.lists.load();
        let mut out = Vec::new();
        for list in lists.iter().filter(|l| l.settings.is_audio()) {
            let found = list.lookup_audio(newest);
            let counters = metrics();
            counters.lookups.inc(&[list.name()]);
            if !found.is_empty() {
                counters.matches.inc(&[list.name()]);
            }
            out.extend(found);
        }
        out.sort_by(|a, b| a.hit.ber.total_cmp(&b.hit.ber));
        out
    }

    /// The longest window any audio list judges over, in sub-fingerprints (0: no audio list).
    pub fn audio_window_items(&self) -> usize {
        self.settings
            .iter()
            .filter(|s| s.is_audio())
            .map(ListSettings::window_items)
            .max()
            .unwrap_or(0)
    }
}

fn short_hash(algorithm: Algorithm, luma: &LumaImage) -> Option<u64> {
    let gray = image::GrayImage::from_fn(luma.width as u32, luma.height as u32, |x, y| {
        let v = luma.pixels[y as usize * luma.width + x as usize];
        image::Luma([v.round().clamp(0.0, 255.0) as u8])
    });
    let hash = imghash::hash(algorithm, &gray)?;
    let bytes: [u8; 8] = hash.as_bytes().try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// A PDQ list's matches for every view of a frame good enough for its gate (quality judged
/// with the contrast stretched, but for colour planes beside a luma picture): each view with
/// the hashes [`view_queries`] gives, and the complement of each (its negative) at the list's
/// stricter negative threshold; the views that stand for the whole clip also on their sure
/// bits alone ([`sure_queries`]). `radius` overrides the thresholds (`Some(256)`: the
/// nearest entry, for `nearest_pdq`). Best first, one per entry.
///
/// An allow list excuses the whole frame, so it is looked up on the whole picture only, as it
/// is (and mirrored when it says so): an allowed logo in a window, a negative of a test card or
/// a near miss on a few sure bits must not excuse the rest of the picture.
fn lookup_views(list: &HashList, hashes: &FrameHashes, radius: Option<u32>) -> Vec<Match> {
    let s = &list.settings;
    let allow = s.kind == ListKind::Allow;
    let colour_alone = hashes.luma_featureless(FEATURELESS);
    // A colour plane beside a luma picture is judged on its own contrast: stretched, the
    // smooth chroma of ordinary footage would pass the gate (a plane carrying a clip in place
    // of the luma keeps the luma's contrast).
    let gated = |view: View, d: &PdqDct| {
        let quality = if view == View::Colour && !colour_alone {
            d.quality
        } else {
            d.stretched_quality
        };
        quality >= s.min_quality
    };
    let mut found: Vec<Match> = Vec::new();
    let mut sure: Vec<(View, (PdqHash, PdqHash))> = Vec::new();
    for (view, dct) in hashes
        .views()
        .filter(|(v, d)| gated(*v, d))
        .filter(|(v, _)| !allow || matches!(v, View::Frame | View::Content))
    {
        let queries = view_queries(s, view, dct, colour_alone);
        let mut direct = list.lookup_pdq(&queries, radius);
        if allow {
            direct.retain(|m| agrees_on_sure_bits(list, dct, m, radius));
        }
        let complements: Vec<PdqHash> = if allow { &[][..] } else { &queries[..] }
            .iter()
            .map(|q| PdqHash(q.0.map(|word| !word)))
            .collect();
        let negative = list.lookup_pdq(
            &complements,
            Some(radius.unwrap_or_else(|| s.negative_threshold())),
        );
        found.extend(direct.into_iter().map(seen(view, false)));
        found.extend(negative.into_iter().map(seen(view, true)));
        if !allow {
            let pairs = sure_queries(s, view, dct, colour_alone);
            sure.extend(pairs.into_iter().map(|pair| (view, pair)));
        }
    }
    for (view, (hash, bits)) in sure {
        let matched = list.lookup_pdq_sure(&hash, &bits, radius);
        found.extend(matched.into_iter().map(seen(view, false)));
    }
    // One per entry: the one nearest its own threshold (a negative at 19 of 20 is a nearer
    // call than a direct match at 25 of 31, though its distance is smaller).
    found.sort_by(|a, b| (a.source.cmp(&b.source)).then(margin(s, a).cmp(&margin(s, b))));
    found.dedup_by(|later, first| later.source == first.source);
    found.sort_by_key(|m| m.distance);
    found
}

/// Whether an allow entry matched on all 256 bits also matches the picture on its sure bits:
/// a clip steered onto an allowed picture's hash (a test card's is easy to learn) moves only
/// the bits near the median, and must not be excused by it.
fn agrees_on_sure_bits(list: &HashList, dct: &PdqDct, m: &Match, radius: Option<u32>) -> bool {
    let margin = list.settings.weak_margin();
    if margin <= 0.0 {
        return true;
    }
    Dihedral::ALL.iter().any(|&t| {
        let turned = dct.transformed(t);
        let sure = turned.sure_bits(margin);
        list.lookup_pdq_sure(&turned.hash(), &sure, radius)
            .iter()
            .any(|s| s.source == m.source)
    })
}

/// A match as found on `view`, of the picture or (`negative`) of its complement.
fn seen(view: View, negative: bool) -> impl Fn(Match) -> Match {
    move |mut m: Match| {
        m.view = view;
        m.negative = negative;
        m
    }
}

/// The hashes a view is looked up with: whole pictures in every orientation (when the list
/// says `mirror`); windows and colour planes beside a luma picture as they are and mirrored
/// left to right (a mirrored stream mirrors each window's picture).
fn view_queries(s: &ListSettings, view: View, dct: &PdqDct, colour_alone: bool) -> Vec<PdqHash> {
    match view {
        _ if !s.mirror() => vec![dct.hash()],
        View::Window | View::Seams => vec![dct.hash(), dct.dihedral(Dihedral::FlipY)],
        View::Colour if !colour_alone => vec![dct.hash(), dct.dihedral(Dihedral::FlipY)],
        _ => dct.dihedrals().to_vec(),
    }
}

/// The `(hash, sure bits)` pairs a view is also compared on (`weak_margin`): the pictures
/// that stand for the whole clip (the whole frame, the picture inside its bars or inside a
/// layout, the colour planes when they are all there is), as they are and mirrored left to
/// right when the list says `mirror` (mirroring first is the attacker's cheapest way round a
/// sure-bit comparison of the original). Not windows: a sure-bit search mostly scans the
/// list (2.6 ms at a million entries; six at once in one pass measured no faster: the scan is
/// bound by the comparisons, not by memory).
fn sure_queries(
    s: &ListSettings,
    view: View,
    dct: &PdqDct,
    colour_alone: bool,
) -> Vec<(PdqHash, PdqHash)> {
    let steerable = match view {
        View::Frame | View::Content | View::Inset => true,
        View::Colour => colour_alone,
        View::Window | View::Seams | View::Bank => false,
    };
    if !steerable || s.weak_margin() <= 0.0 {
        return Vec::new();
    }
    let orientations = if s.mirror() {
        &[Dihedral::Original, Dihedral::FlipY][..]
    } else {
        &[Dihedral::Original][..]
    };
    orientations
        .iter()
        .map(|&t| {
            let turned = dct.transformed(t);
            (turned.hash(), turned.sure_bits(s.weak_margin()))
        })
        .collect()
}

/// A PDQ match's distance less the threshold it had to reach: the negative threshold for a
/// negative, the threshold scaled to the bits counted for a sure-bit comparison.
fn margin(s: &ListSettings, m: &Match) -> i64 {
    let threshold = match (m.negative, m.sure_bits) {
        (true, _) => s.negative_threshold(),
        (false, Some(counted)) => s.threshold() * counted / 256,
        (false, None) => s.threshold(),
    };
    i64::from(m.distance) - i64::from(threshold)
}

/// Logs one reload outcome: info when the new list is in force, a warning when the old one stays.
pub fn log_reload(outcome: &Reloaded) {
    match &outcome.result {
        Ok(entries) => tracing::info!(list = %outcome.list, entries, "list reloaded"),
        Err(e) => {
            tracing::warn!(list = %outcome.list, "list reload failed, previous list stays in force: {e}")
        }
    }
}

#[cfg(test)]
mod shrink_tests {
    use super::*;

    #[test]
    fn a_reload_may_shrink_up_to_max_shrink_and_never_empty_unforced() {
        let mut s = ListSettings::for_path("l.txt");
        assert!(shrink_check(&s, 100, 50, false).is_ok(), "half may go");
        assert!(shrink_check(&s, 100, 49, false).is_err());
        assert!(shrink_check(&s, 100, 0, false).is_err());
        assert!(shrink_check(&s, 100, 0, true).is_ok(), "forced");
        assert!(shrink_check(&s, 0, 0, false).is_ok(), "was empty already");
        assert!(shrink_check(&s, 10, 1000, false).is_ok(), "growth");
        s.max_shrink = Some(1.0);
        assert!(shrink_check(&s, 100, 1, false).is_ok());
        assert!(
            shrink_check(&s, 100, 0, false).is_err(),
            "emptying needs force"
        );
        s.max_shrink = Some(0.0);
        assert!(shrink_check(&s, 100, 99, false).is_err());
    }

    #[test]
    fn a_changed_file_is_read_once_it_has_settled() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("l.txt");
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).expect("write");
        let matcher = Matcher::load(vec![ListSettings::for_path(&path)]).expect("load");
        std::fs::write(&path, format!("{}\n{}\n", "ab".repeat(32), "cd".repeat(32)))
            .expect("write");
        assert!(
            matcher.reload(ReloadOptions::CHANGED).is_empty(),
            "just changed: maybe mid-write"
        );
        let report = matcher.reload(ReloadOptions::CHANGED);
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].result.as_ref().ok(), Some(&2));
        assert!(
            matcher.reload(ReloadOptions::CHANGED).is_empty(),
            "nothing new"
        );
    }
}

#[cfg(test)]
mod lookup_tests {
    use super::*;
    use crate::hash::{hash_frame, pdq, Views};
    use crate::matcher::list::DEFAULT_WEAK_MARGIN;

    /// A blocky pseudo-random picture: texture enough for PDQ, different per seed.
    fn blocks(width: usize, height: usize, seed: u64) -> LumaImage {
        let mut state = seed | 1;
        let mut cells = [0f32; 64];
        for c in &mut cells {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *c = (state % 256) as f32;
        }
        let pixels = (0..width * height)
            .map(|i| cells[(i / width * 8 / height) * 8 + (i % width) * 8 / width])
            .collect();
        LumaImage {
            width,
            height,
            pixels,
        }
    }

    fn list(dir: &std::path::Path, name: &str, hash: PdqHash, kind: ListKind) -> ListSettings {
        let path = dir.join(name);
        std::fs::write(&path, format!("{hash}\t100\t{name}\n")).expect("write");
        let mut settings = ListSettings::for_path(&path);
        settings.kind = kind;
        settings
    }

    #[test]
    fn the_nearest_entry_is_judged_by_its_margin_not_its_distance() {
        let frame = blocks(256, 144, 3);
        let views = Views {
            letterbox: None,
            inset: None,
            windows: false,
        };
        let hashes = hash_frame(&frame, views);
        let sure = hashes.full.sure_bits(DEFAULT_WEAK_MARGIN);
        let counted: u32 = sure.0.iter().map(|w| w.count_ones()).sum();
        assert!(counted >= 96 + 19, "{counted} sure bits");
        // 19 sure bits and 11 others flipped: 30 of 256 (a match, margin -1), while the
        // sure bits alone are 19 against ~18 (margin about +1): the smaller distance.
        let mut entry = hashes.full.hash();
        let (mut sure_left, mut other_left) = (19, 11);
        for k in 0..256 {
            let is_sure = sure.0[k / 64] >> (k % 64) & 1 == 1;
            let flip = if is_sure {
                &mut sure_left
            } else {
                &mut other_left
            };
            if *flip > 0 {
                *flip -= 1;
                entry.0[k / 64] ^= 1 << (k % 64);
            }
        }
        let dir = tempfile::tempdir().expect("tmp");
        let block = list(dir.path(), "block.tsv", entry, ListKind::Block);
        let matcher = Matcher::load(vec![block]).expect("load");
        let (nearest, margin) = matcher.nearest_pdq(&hashes).expect("an entry");
        assert_eq!((nearest.distance, margin), (30, -1), "{nearest:?}");
        assert_eq!(nearest.sure_bits, None);
    }

    #[test]
    fn a_frame_just_past_the_threshold_is_a_near_miss_and_a_far_one_is_not() {
        let frame = blocks(256, 144, 5);
        let hashes = hash_frame(&frame, Views::default());
        let hash = hashes.full.hash();
        let sure = hashes.full.sure_bits(DEFAULT_WEAK_MARGIN);
        let dir = tempfile::tempdir().expect("tmp");
        // 40 bits from the frame: no match at 31, within 31 + 16.
        let near = list(
            dir.path(),
            "near.tsv",
            flipped(hash, sure, 40, true),
            ListKind::Block,
        );
        let matcher = Matcher::load(vec![near]).expect("load");
        assert!(matcher.match_frame(&hashes, &frame).matches.is_empty());
        assert!(matcher.near_miss(&hashes, 16));
        assert!(!matcher.near_miss(&hashes, 8));
        assert!(!matcher.near_miss(&hashes, 0));
        // 60 bits: out of the grey zone; an allow list never makes one.
        let far = list(
            dir.path(),
            "far.tsv",
            flipped(hash, sure, 60, true),
            ListKind::Block,
        );
        let allowed = list(dir.path(), "allow.tsv", hash, ListKind::Allow);
        let matcher = Matcher::load(vec![far, allowed]).expect("load");
        assert!(!matcher.near_miss(&hashes, 16));
    }

    /// `hash` with the first `n` bits flipped among those `sure` has set (or has not).
    fn flipped(hash: PdqHash, sure: PdqHash, n: usize, among_sure: bool) -> PdqHash {
        let mut out = hash;
        let bits = (0..256).filter(|&k| (sure.0[k / 64] >> (k % 64) & 1 == 1) == among_sure);
        for k in bits.take(n) {
            out.0[k / 64] ^= 1 << (k % 64);
        }
        out
    }

    #[test]
    fn a_frame_steered_onto_an_allowed_hash_is_not_excused() {
        let frame = blocks(256, 144, 21);
        let hashes = hash_frame(&frame, Views::default());
        let (hash, sure) = (
            hashes.full.hash(),
            hashes.full.sure_bits(DEFAULT_WEAK_MARGIN),
        );
        let dir = tempfile::tempdir().expect("tmp");
        let block = list(dir.path(), "clip.tsv", hash, ListKind::Block);
        // 20 bits from the frame on all 256 (within the allow threshold), but all 20 sure.
        let steered = flipped(hash, sure, 20, true);
        let card = list(dir.path(), "card.tsv", steered, ListKind::Allow);
        let matcher = Matcher::load(vec![card, block.clone()]).expect("load");
        let found = matcher.match_frame(&hashes, &frame);
        assert!(
            found.allowed.is_none(),
            "excused by a hash it was steered onto"
        );
        assert_eq!(found.matches.len(), 1);

        // The same 20 bits away near the median: the card itself, re-encoded.
        let near = flipped(hash, sure, 20, false);
        let card = list(dir.path(), "card2.tsv", near, ListKind::Allow);
        let matcher = Matcher::load(vec![card, block]).expect("load");
        assert!(matcher.match_frame(&hashes, &frame).allowed.is_some());
    }

    #[test]
    fn an_allowed_luma_does_not_excuse_a_clip_in_a_colour_plane() {
        let card = blocks(256, 144, 11);
        let clip = blocks(128, 72, 12);
        let mut hashes = hash_frame(&card, Views::default());
        hashes.add_colour(&[clip.clone(), blocks(128, 72, 20)], true);
        let dir = tempfile::tempdir().expect("tmp");
        let allowed = list(dir.path(), "card.tsv", hashes.full.hash(), ListKind::Allow);
        let block = list(
            dir.path(),
            "clip.tsv",
            pdq::pdq(&clip).hash(),
            ListKind::Block,
        );
        let matcher = Matcher::load(vec![allowed, block]).expect("load");
        let found = matcher.match_frame(&hashes, &card);
        assert!(found.allowed.is_none(), "the card excused the clip");
        assert_eq!(found.matches.len(), 1);
        assert_eq!(found.matches[0].view, View::Colour);

        let mut plain = hash_frame(&card, Views::default());
        plain.add_colour(&[blocks(128, 72, 40), blocks(128, 72, 20)], true);
        let found = matcher.match_frame(&plain, &card);
        assert!(found.allowed.is_some(), "the card alone is allowed");
    }

    #[test]
    fn an_allowed_picture_in_a_window_does_not_excuse_the_frame() {
        let (width, height) = (256, 128);
        let left = blocks(width / 2, height, 7);
        let right = blocks(width / 2, height, 99);
        let frame = LumaImage {
            width,
            height,
            pixels: (0..width * height)
                .map(|i| {
                    let (x, y) = (i % width, i / width);
                    let half = if x < width / 2 { &left } else { &right };
                    half.pixels[y * half.width + x % (width / 2)]
                })
                .collect(),
        };
        let views = Views {
            letterbox: None,
            inset: None,
            windows: true,
        };
        let hashes = hash_frame(&frame, views);
        let dir = tempfile::tempdir().expect("tmp");
        let block = list(dir.path(), "block.tsv", hashes.full.hash(), ListKind::Block);
        let logo = pdq::pdq(&left).hash();
        assert!(
            hashes
                .windows
                .iter()
                .any(|w| w.dct.hash().distance(&logo) <= 31),
            "the left half is one of the windows"
        );
        let in_window = list(dir.path(), "logo.tsv", logo, ListKind::Allow);
        let matcher = Matcher::load(vec![block.clone(), in_window]).expect("load");
        let found = matcher.match_frame(&hashes, &frame);
        assert!(found.allowed.is_none(), "a window excused the frame");
        assert_eq!(found.matches.len(), 1);

        let whole = list(dir.path(), "card.tsv", hashes.full.hash(), ListKind::Allow);
        let matcher = Matcher::load(vec![block, whole]).expect("load");
        assert!(
            matcher.match_frame(&hashes, &frame).allowed.is_some(),
            "the whole frame allowed"
        );
    }
}
