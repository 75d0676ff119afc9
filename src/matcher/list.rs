//! One loaded hash list: its settings, its entries' provenance, and its index.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::audio::{AudioHit, AudioIndex};
use super::audio_formats::parse_audio_list;
use super::formats::{parse_list, HashValue, ListError, ListFormat};
use super::index::HammingIndex;
use crate::hash::imghash::Algorithm;
use crate::hash::pdq::PdqHash;
use crate::hash::View;

/// What a match on a list does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Counts towards cutting the stream.
    #[default]
    Cut,
    /// Only raises an event.
    Alert,
}

/// Whether a list names content to stop or content to let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    /// Known violent content.
    #[default]
    Block,
    /// Known benign content (a logo, a test card): a frame matching it is never counted.
    Allow,
}

/// One `[[lists]]` entry of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSettings {
    /// The list file; with `url`, where the last good copy fetched is cached (it is enforced
    /// when the server is down at startup).
    pub path: PathBuf,
    /// `http://` or `https://` URL the list is fetched from, polled every `poll` with
    /// conditional requests (ETag, Last-Modified).
    pub url: Option<String>,
    /// How often `url` is polled (default 60 s).
    #[serde(default, deserialize_with = "crate::units::optional_duration")]
    pub poll: Option<std::time::Duration>,
    /// Name in reports; the file name when absent.
    pub label: Option<String>,
    /// Hash algorithm of the list.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// File format; detected from the content by default.
    #[serde(default)]
    pub format: ListFormat,
    /// Largest Hamming distance that counts as a match (PDQ default 31; 64-bit hashes 8).
    pub threshold: Option<u32>,
    /// Entries and frames below this quality are not matched (flat and black frames would match
    /// everything).
    #[serde(default = "default_min_quality")]
    pub min_quality: u32,
    /// What a match does.
    #[serde(default)]
    pub action: Action,
    /// Block list or allow list.
    #[serde(default)]
    pub kind: ListKind,
    /// Also look up the query's rotations and mirror images (PDQ only; on by default).
    pub mirror: Option<bool>,
    /// PDQ: largest distance at which the complement of a frame's hash (what the frame's
    /// negative hashes to) matches (default 20, stricter than `threshold`: a negative is a
    /// deliberate edit, and re-encoded negatives measured 0-4 bits).
    pub negative_threshold: Option<u32>,
    /// PDQ: the whole frame (and its content area, inset, colour planes) is also compared on
    /// its sure bits alone: those whose coefficients lie at least this many times the frame's
    /// median distance from the median (default 0.8; 0 turns it off, at most 1.2). A white-box
    /// perturbation steers PDQ by pushing the coefficients nearest the median just across it;
    /// left out, they cannot move the comparison, and a push far enough to count is visible.
    pub weak_margin: Option<f32>,
    /// Off lists are not loaded.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Audio lists: the largest bit error rate of an aligned window that matches (default
    /// 0.14; unrelated audio sits near 0.5, the same audio re-encoded under 0.1, other words by
    /// the same synthetic speaker over tones down to 0.146: `docs/audio.md`).
    pub max_ber: Option<f64>,
    /// Audio lists: seconds of stream audio a match rests on (default 5, at least 3).
    pub min_seconds: Option<f64>,
    /// Largest share of entries a reload may drop (default 0.5); a reload that drops more, or
    /// empties the list, keeps the previous version unless forced.
    pub max_shrink: Option<f64>,
}

/// The threshold a list of `algorithm` hashes has when it names none (PDQ 31, else 8).
pub fn default_threshold(algorithm: Algorithm) -> u32 {
    match algorithm {
        Algorithm::Pdq => 31,
        _ => 8,
    }
}

/// Default [`ListSettings::negative_threshold`].
pub const DEFAULT_NEGATIVE_THRESHOLD: u32 = 20;

/// Fewest sure bits a sure-bit comparison counts (at 0.8 a frame keeps ~150 of 256).
pub const MIN_SURE_BITS: u32 = 96;

/// Default [`ListSettings::weak_margin`].
pub const DEFAULT_WEAK_MARGIN: f32 = 0.8;

/// Default [`ListSettings::max_shrink`].
pub const DEFAULT_MAX_SHRINK: f64 = 0.5;

/// Default bit error rate threshold of audio lists.
pub const DEFAULT_MAX_BER: f64 = 0.14;
/// Default seconds of audio a match is judged over.
pub const DEFAULT_MIN_SECONDS: f64 = 5.0;

fn default_min_quality() -> u32 {
    50
}

fn default_enabled() -> bool {
    true
}

impl ListSettings {
    /// Settings for a list file with every default.
    pub fn for_path(path: impl Into<PathBuf>) -> ListSettings {
        ListSettings {
            path: path.into(),
            url: None,
            poll: None,
            label: None,
            algorithm: Algorithm::Pdq,
            format: ListFormat::Auto,
            threshold: None,
            min_quality: default_min_quality(),
            action: Action::Cut,
            kind: ListKind::Block,
            mirror: None,
            negative_threshold: None,
            weak_margin: None,
            enabled: true,
            max_ber: None,
            min_seconds: None,
            max_shrink: None,
        }
    }

    /// Largest share of entries a reload may drop without being forced.
    pub fn max_shrink(&self) -> f64 {
        self.max_shrink.unwrap_or(DEFAULT_MAX_SHRINK)
    }

    /// Whether the list holds audio fingerprints.
    pub fn is_audio(&self) -> bool {
        self.algorithm == Algorithm::Chromaprint
    }

    /// The effective bit error rate threshold of an audio list.
    pub fn max_ber(&self) -> f64 {
        self.max_ber.unwrap_or(DEFAULT_MAX_BER)
    }

    /// Sub-fingerprints an audio match is judged over: as many as `min_seconds` of audio
    /// yields (each item rests on 2.6 s of audio, and they come every 0.124 s).
    pub fn window_items(&self) -> usize {
        use crate::hash::chromaprint::{ITEM_SECONDS, REACH_SECONDS};
        let seconds = self.min_seconds.unwrap_or(DEFAULT_MIN_SECONDS);
        (((seconds - REACH_SECONDS) / ITEM_SECONDS).floor() as i64 + 1).max(4) as usize
    }

    /// The effective match threshold.
    pub fn threshold(&self) -> u32 {
        self.threshold
            .unwrap_or_else(|| default_threshold(self.algorithm))
    }

    /// The effective threshold for negatives (see [`ListSettings::negative_threshold`]).
    pub fn negative_threshold(&self) -> u32 {
        self.negative_threshold
            .unwrap_or(DEFAULT_NEGATIVE_THRESHOLD)
            .min(self.threshold())
    }

    /// The effective weak margin (see [`ListSettings::weak_margin`]); 0 when off.
    pub fn weak_margin(&self) -> f32 {
        match self.algorithm {
            Algorithm::Pdq => self.weak_margin.unwrap_or(DEFAULT_WEAK_MARGIN).max(0.0),
            _ => 0.0,
        }
    }

    /// Whether dihedral variants of the query are looked up.
    pub fn mirror(&self) -> bool {
        self.algorithm == Algorithm::Pdq && self.mirror.unwrap_or(true)
    }

    /// The list's name in reports.
    pub fn name(&self) -> String {
        self.label.clone().unwrap_or_else(|| {
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| self.path.display().to_string())
        })
    }
}

/// Where an entry sits in the clip it is a frame of.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipPosition {
    /// The clip (the entry's label in TSV lists, the file in vPDQ lists).
    pub clip: Arc<str>,
    /// Seconds from the clip's start.
    pub seconds: f64,
}

/// A match of a query against a list entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// List name.
    pub list: Arc<str>,
    /// The entry's label, or the list name when the entry has none.
    pub label: String,
    /// `file:line` of the entry.
    pub source: String,
    /// Hamming distance.
    pub distance: u32,
    /// What the list says to do.
    pub action: Action,
    /// Block or allow list.
    pub kind: ListKind,
    /// Where the entry sits in its clip, when the list says.
    pub position: Option<ClipPosition>,
    /// Which picture of the frame matched (the whole frame until the matcher says otherwise).
    pub view: View,
    /// Whether it was the picture's negative that matched (the complement of its hash).
    pub negative: bool,
    /// When the match counted only the query's sure bits: how many there were (`distance`
    /// is then over them, against the threshold scaled to them).
    pub sure_bits: Option<u32>,
    /// When a media bank matched (view `bank`): the feature pairs one mapping explains
    /// (`distance` is then 0: no hash was compared).
    pub inliers: Option<u32>,
}

/// A match of a stream's audio against an audio list's clip.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioMatch {
    /// List name.
    pub list: Arc<str>,
    /// The clip's label.
    pub label: String,
    /// `file:line` of the clip.
    pub source: String,
    /// What the list says to do.
    pub action: Action,
    /// Where the window lined up, and how well (`offset` in items of the reference at `speed`).
    pub hit: AudioHit,
    /// The speed of the reference that lined up (1: the clip as published).
    pub speed: f64,
    /// Seconds into the clip as published where the window starts (negative: before it).
    pub clip_offset_s: f64,
}

enum Store {
    Pdq(HammingIndex<4>),
    Short(HammingIndex<1>),
    Audio(AudioIndex),
}

/// A loaded list.
pub struct HashList {
    /// Its settings.
    pub settings: ListSettings,
    name: Arc<str>,
    file: String,
    lines: Vec<u32>,
    labels: Vec<Option<Box<str>>>,
    /// Clip index (into `clips`) and seconds, per entry.
    positions: Vec<Option<(u32, f32)>>,
    clips: Vec<Arc<str>>,
    store: Store,
    /// Entries skipped for quality below `min_quality`.
    pub skipped_low_quality: usize,
}

impl HashList {
    /// Reads and indexes the list file.
    pub fn load(settings: ListSettings) -> Result<HashList, ListError> {
        let text = std::fs::read_to_string(&settings.path).map_err(|e| ListError {
            file: settings.path.display().to_string(),
            line: 0,
            reason: e.to_string(),
        })?;
        HashList::from_text(settings.clone(), &settings.path, &text)
    }

    /// Builds a list from file text (`path` names it in errors and reports).
    pub fn from_text(
        settings: ListSettings,
        path: &Path,
        text: &str,
    ) -> Result<HashList, ListError> {
        if settings.is_audio() {
            let clips = parse_audio_list(path, text)?;
            return Ok(HashList {
                name: settings.name().into(),
                file: path.display().to_string(),
                lines: Vec::new(),
                labels: Vec::new(),
                positions: Vec::new(),
                clips: Vec::new(),
                store: Store::Audio(AudioIndex::build(clips)),
                settings,
                skipped_low_quality: 0,
            });
        }
        let entries = parse_list(path, text, settings.format, settings.algorithm)?;
        let mut lines = Vec::with_capacity(entries.len());
        let mut labels = Vec::with_capacity(entries.len());
        let mut positions = Vec::with_capacity(entries.len());
        let mut clips: Vec<Arc<str>> = Vec::new();
        let mut clip_ids: std::collections::HashMap<String, u32> = Default::default();
        let mut pdq = Vec::new();
        let mut short = Vec::new();
        let mut skipped_low_quality = 0;
        for entry in entries {
            if entry.quality.is_some_and(|q| q < settings.min_quality) {
                skipped_low_quality += 1;
                continue;
            }
            lines.push(entry.line);
            labels.push(entry.label.map(String::into_boxed_str));
            positions.push(entry.position.map(|(clip, seconds)| {
                let id = *clip_ids.entry(clip.clone()).or_insert_with(|| {
                    clips.push(clip.into());
                    clips.len() as u32 - 1
                });
                (id, seconds as f32)
            }));
            match entry.hash {
                HashValue::Pdq(h) => pdq.push(h.0),
                HashValue::Short(h) => short.push([h]),
            }
        }
        let store = match settings.algorithm {
            Algorithm::Pdq => Store::Pdq(HammingIndex::build(pdq)),
            _ => Store::Short(HammingIndex::build(short)),
        };
        Ok(HashList {
            name: settings.name().into(),
            file: path.display().to_string(),
            settings,
            lines,
            labels,
            positions,
            clips,
            store,
            skipped_low_quality,
        })
    }

    /// Number of entries indexed (clips, for an audio list).
    pub fn len(&self) -> usize {
        match &self.store {
            Store::Audio(index) => index.clips().len(),
            _ => self.lines.len(),
        }
    }

    /// Whether the list indexes no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Audio matches of a stream's newest sub-fingerprints (oldest first): judged over the
    /// list's window, best first.
    pub fn lookup_audio(&self, newest: &[u32]) -> Vec<AudioMatch> {
        let Store::Audio(index) = &self.store else {
            return Vec::new();
        };
        let w = self.settings.window_items();
        if newest.len() < w {
            return Vec::new();
        }
        let window = &newest[newest.len() - w..];
        let mut found: Vec<AudioMatch> = Vec::new();
        // Best first: the first hit of a clip is its best speed; the others say nothing more.
        for hit in index.search(window, self.settings.max_ber()) {
            let clip = &index.clips()[hit.clip];
            if found.iter().any(|m| m.source == clip.source) {
                continue;
            }
            found.push(AudioMatch {
                list: self.name.clone(),
                label: clip.label.clone(),
                source: clip.source.clone(),
                action: self.settings.action,
                speed: clip.speed,
                clip_offset_s: clip.clip_seconds(hit.offset),
                hit,
            });
        }
        found
    }

    /// The list's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn matched(&self, id: u32, distance: u32) -> Match {
        let i = id as usize;
        Match {
            list: self.name.clone(),
            label: self.labels[i].as_deref().unwrap_or(&self.name).to_owned(),
            source: format!("{}:{}", self.file, self.lines[i]),
            distance,
            action: self.settings.action,
            kind: self.settings.kind,
            position: self.positions[i].map(|(clip, seconds)| ClipPosition {
                clip: self.clips[clip as usize].clone(),
                seconds: f64::from(seconds),
            }),
            view: View::Frame,
            negative: false,
            sure_bits: None,
            inliers: None,
        }
    }

    /// Matches of PDQ query hashes (the frame's hash and, with `mirror`, its dihedral variants)
    /// at the list's threshold, best first, one per entry.
    pub fn lookup_pdq(&self, queries: &[PdqHash], threshold: Option<u32>) -> Vec<Match> {
        let Store::Pdq(index) = &self.store else {
            return Vec::new();
        };
        let radius = threshold.unwrap_or_else(|| self.settings.threshold());
        let mut best: Vec<(u32, u32)> = Vec::new();
        for q in queries {
            index.search(&q.0, radius, |id, d| best.push((id, d)));
        }
        self.collect(best)
    }

    /// Matches of a PDQ query counting only the bits set in `sure` (see
    /// [`crate::hash::pdq::PdqDct::sure_bits`]), at the list's threshold scaled to the share
    /// of bits counted (31 of 256 is 18 of 150), unless a threshold is given.
    pub fn lookup_pdq_sure(
        &self,
        query: &PdqHash,
        sure: &PdqHash,
        threshold: Option<u32>,
    ) -> Vec<Match> {
        let Store::Pdq(index) = &self.store else {
            return Vec::new();
        };
        let counted: u32 = sure.0.iter().map(|w| w.count_ones()).sum();
        // Over a handful of bits anything matches: too few sure bits, no sure comparison.
        if counted < MIN_SURE_BITS {
            return Vec::new();
        }
        let radius = threshold.unwrap_or_else(|| self.settings.threshold() * counted / 256);
        let mut best = Vec::new();
        index.search_masked(&query.0, &sure.0, radius, |id, d| best.push((id, d)));
        let mut found = self.collect(best);
        for m in &mut found {
            m.sure_bits = Some(counted);
        }
        found
    }

    /// Matches of a 64-bit image_hasher query.
    pub fn lookup_short(&self, query: u64, threshold: Option<u32>) -> Vec<Match> {
        let Store::Short(index) = &self.store else {
            return Vec::new();
        };
        let radius = threshold.unwrap_or_else(|| self.settings.threshold());
        let mut best = Vec::new();
        index.search(&[query], radius, |id, d| best.push((id, d)));
        self.collect(best)
    }

    fn collect(&self, mut found: Vec<(u32, u32)>) -> Vec<Match> {
        found.sort_unstable_by_key(|&(id, d)| (id, d));
        found.dedup_by_key(|(id, _)| *id);
        found.sort_by_key(|&(id, d)| (d, id));
        found
            .into_iter()
            .map(|(id, d)| self.matched(id, d))
            .collect()
    }

    /// Approximate memory held by the index.
    pub fn memory_bytes(&self) -> usize {
        let index = match &self.store {
            Store::Pdq(i) => i.memory_bytes(),
            Store::Short(i) => i.memory_bytes(),
            Store::Audio(i) => i.memory_bytes(),
        };
        index
            + self.lines.capacity() * 4
            + self.labels.capacity() * 16
            + self.positions.capacity() * 12
    }
}
