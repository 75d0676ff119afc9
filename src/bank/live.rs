//! The media banks in force (`[media_bank]`): loaded at start (a broken bank is an error then:
//! running without it would fail open), polled for changes and swapped in whole when a changed
//! file reads cleanly; a file that does not keeps the bank in force, with a one-line reason.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::Deserialize;

use super::build::DEFAULT_FPS;
use super::file::{load, BankFileError};
use super::{CheckSettings, FrameFeatures, IndexedBank, DEFAULT_FEATURES};
use crate::hash::pdq::LumaImage;
use crate::locks::Locked;
use crate::matcher::list::Action;

/// `[media_bank]`: the second matcher's banks and how often it looks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankSettings {
    /// Bank files (`hashgate bank add`); none, and no `remote`: the second matcher is off.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Banks served over HTTP(S) (`[[media_bank.remote]]`), shared across a fleet as URL
    /// lists are.
    #[serde(default)]
    pub remote: Vec<RemoteBank>,
    /// Feature pairs one mapping must explain for a frame to match.
    #[serde(default = "default_min_inliers")]
    pub min_inliers: usize,
    /// Most checks per second of one stream (wall clock): the check costs milliseconds.
    #[serde(default = "default_checks_per_second")]
    pub checks_per_second: f64,
    /// Bits past a PDQ block list's threshold within which a frame's whole picture is in
    /// PDQ's grey zone (it cannot decide): such frames, and frames holding a layout candidate,
    /// are checked at `grey_checks_per_second` instead. 0: only layout candidates. At most 16:
    /// with the default threshold (31) the widened search still uses the list's index.
    #[serde(default = "default_grey_zone")]
    pub grey_zone: u32,
    /// Most checks per second of one stream while its frames are in the grey zone.
    #[serde(default = "default_grey_checks_per_second")]
    pub grey_checks_per_second: f64,
    /// Features taken from each checked frame.
    #[serde(default = "default_features")]
    pub features: usize,
    /// What a match does.
    #[serde(default)]
    pub action: Action,
    /// Largest clip the admin API takes (`POST /banks/{bank}/clips`), held in memory while it
    /// is added.
    #[serde(
        default = "default_max_upload",
        deserialize_with = "crate::units::size"
    )]
    pub max_upload: usize,
    /// A bank among `paths` (by its file's stem) that learns from cuts: when a hash list cuts a
    /// stream on its whole picture, the frames that matched are added to it as a clip (as they
    /// are and mirrored), so the bank then sees those moments through rotations, crops,
    /// overlays and a filmed screen. None: nothing is learned.
    #[serde(default)]
    pub learn: Option<String>,
    /// Most reference frames the learning bank may hold (its file's size: about 18 KB a
    /// frame); past it, cuts are no longer learned, with a one-line reason.
    #[serde(default = "default_learn_max_frames")]
    pub learn_max_frames: usize,
    /// What a match in the learning bank does: `alert` by default, so what cuts taught is
    /// reviewed before it cuts (a publisher can get a logo or a game's screen learned beside
    /// the clip); `cut` once the learned clips are trusted.
    #[serde(default = "default_learn_action")]
    pub learn_action: Action,
}

fn default_learn_action() -> Action {
    Action::Alert
}

fn default_learn_max_frames() -> usize {
    4000
}

fn default_max_upload() -> usize {
    256 << 20
}

fn default_min_inliers() -> usize {
    20
}

fn default_checks_per_second() -> f64 {
    1.0
}

fn default_grey_zone() -> u32 {
    16
}

fn default_grey_checks_per_second() -> f64 {
    2.0
}

fn default_features() -> usize {
    DEFAULT_FEATURES
}

/// `[[media_bank.remote]]`: a bank fetched from a URL, polled with conditional requests, and
/// cached at `path` (enforced when the server is down at startup).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteBank {
    /// `http://` or `https://` URL of the bank file.
    pub url: String,
    /// Where the last good copy is kept; its stem names the bank.
    pub path: PathBuf,
    /// How often `url` is polled (default 60 s).
    #[serde(default, deserialize_with = "crate::units::optional_duration")]
    pub poll: Option<Duration>,
    /// The largest share of its reference frames a new version may drop (0-1; default 0.5):
    /// a server that sends an empty or gutted bank does not switch the matcher off. Past it,
    /// remove clips where the server's copy is made and raise this for one poll.
    #[serde(default = "default_max_shrink")]
    pub max_shrink: f64,
}

fn default_max_shrink() -> f64 {
    0.5
}

impl Default for BankSettings {
    fn default() -> Self {
        BankSettings {
            paths: Vec::new(),
            remote: Vec::new(),
            min_inliers: default_min_inliers(),
            checks_per_second: default_checks_per_second(),
            grey_zone: default_grey_zone(),
            grey_checks_per_second: default_grey_checks_per_second(),
            features: default_features(),
            action: Action::default(),
            max_upload: default_max_upload(),
            learn: None,
            learn_max_frames: default_learn_max_frames(),
            learn_action: default_learn_action(),
        }
    }
}

impl BankSettings {
    /// Why the settings cannot be used: (key, message).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.min_inliers < 8 {
            return Err((
                "media_bank.min_inliers",
                "must be at least 8 (chance arrangements of unrelated pictures reach 10)".into(),
            ));
        }
        if !(0.05..=30.0).contains(&self.checks_per_second) {
            return Err((
                "media_bank.checks_per_second",
                "must be between 0.05 and 30".into(),
            ));
        }
        if !(0.05..=30.0).contains(&self.grey_checks_per_second) {
            return Err((
                "media_bank.grey_checks_per_second",
                "must be between 0.05 and 30".into(),
            ));
        }
        if self.grey_zone > 16 {
            return Err((
                "media_bank.grey_zone",
                "must be at most 16 bits (past that the widened search reads most of the list)"
                    .into(),
            ));
        }
        if !(50..=4000).contains(&self.features) {
            return Err(("media_bank.features", "must be between 50 and 4000".into()));
        }
        for remote in &self.remote {
            crate::matcher::remote::check_url(&remote.url)
                .map_err(|e| ("media_bank.remote.url", e.to_string()))?;
            if remote.poll.is_some_and(|p| p < Duration::from_secs(1)) {
                return Err(("media_bank.remote.poll", "must be at least 1s".into()));
            }
            if !(0.0..=1.0).contains(&remote.max_shrink) {
                return Err((
                    "media_bank.remote.max_shrink",
                    "must be between 0 and 1".into(),
                ));
            }
        }
        if let Some(learn) = &self.learn {
            if !self.paths.iter().any(|p| stem_of(p) == *learn) {
                return Err((
                    "media_bank.learn",
                    format!(
                        "names no bank in paths (\"{learn}\"): a remote bank's cache is \
                         overwritten by its server"
                    ),
                ));
            }
        }
        if self.learn_max_frames < 2 {
            return Err(("media_bank.learn_max_frames", "must be at least 2".into()));
        }
        let mut stems: Vec<String> = self.files().map(stem_of).collect();
        stems.sort();
        if let Some(twice) = stems.windows(2).find(|w| w[0] == w[1]) {
            return Err((
                "media_bank",
                format!(
                    "two banks are named \"{}\" (a bank is named by its file's stem)",
                    twice[0]
                ),
            ));
        }
        Ok(())
    }

    /// Every bank file in force: `paths`, then the remote banks' caches.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.paths
            .iter()
            .map(PathBuf::as_path)
            .chain(self.remote.iter().map(|r| r.path.as_path()))
    }

    /// Whether any bank is configured.
    pub fn is_on(&self) -> bool {
        self.files().next().is_some()
    }

    /// The interval between two checks of one stream.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.checks_per_second.max(0.05))
    }

    /// The interval between two checks of one stream whose frame is in PDQ's grey zone: never
    /// longer than [`Self::interval`].
    pub fn grey_interval(&self) -> Duration {
        let rate = self.grey_checks_per_second.max(self.checks_per_second);
        Duration::from_secs_f64(1.0 / rate.max(0.05))
    }
}

/// A bank in force, with its name (the file's stem).
#[derive(Debug)]
pub struct LoadedBank {
    /// The file's stem: the "list" a match names.
    pub name: Arc<str>,
    /// The file.
    pub path: PathBuf,
    /// Its contents, indexed.
    pub bank: IndexedBank,
}

/// A frame's match in a bank.
#[derive(Debug, Clone, PartialEq)]
pub struct BankMatch {
    /// The bank's name.
    pub bank: Arc<str>,
    /// The clip's name.
    pub clip: String,
    /// `file@seconds` of the reference frame.
    pub source: String,
    /// Where the reference frame sits in its clip, milliseconds.
    pub at_ms: u32,
    /// Pairs one mapping explains.
    pub inliers: usize,
    /// What the bank says to do.
    pub action: Action,
}

/// Why a clip could not be added through [`Banks::add_clip`].
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// No configured bank has that name.
    #[error("no media bank named \"{0}\" in [media_bank] paths")]
    NoSuchBank(String),
    /// The media could not be read.
    #[error("{0}")]
    Media(String),
    /// The bank file could not be read or written.
    #[error("{0}")]
    Bank(String),
    /// The learning bank holds `learn_max_frames` already.
    #[error("the learning bank holds media_bank.learn_max_frames ({0}) frames already")]
    Full(usize),
    /// The learning bank already finds every frame offered.
    #[error("the learning bank already finds these frames")]
    Known,
}

/// The banks in force.
pub struct Banks {
    settings: BankSettings,
    banks: ArcSwap<Vec<Arc<LoadedBank>>>,
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
    /// Held while a clip is added, so two additions cannot lose one another's.
    writing: Mutex<()>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A bank's name: its file's stem.
fn stem_of(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into(),
    )
}

fn read(path: &Path) -> Result<LoadedBank, BankFileError> {
    let bank = load(path)?;
    Ok(LoadedBank {
        name: stem_of(path).into(),
        path: path.to_owned(),
        bank: IndexedBank::new(bank),
    })
}

impl Banks {
    /// Loads every bank file; any that cannot be read is an error.
    pub fn load(settings: BankSettings) -> Result<Banks, BankFileError> {
        let mut banks = Vec::new();
        let mut stamps = Vec::new();
        for path in settings.files() {
            stamps.push(stamp(path));
            banks.push(Arc::new(read(path)?));
        }
        Ok(Banks {
            settings,
            banks: ArcSwap::from_pointee(banks),
            stamps: Mutex::new(stamps),
            writing: Mutex::new(()),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &BankSettings {
        &self.settings
    }

    /// The banks in force.
    pub fn banks(&self) -> Arc<Vec<Arc<LoadedBank>>> {
        self.banks.load_full()
    }

    /// Whether any bank holds a reference frame.
    pub fn is_empty(&self) -> bool {
        self.banks
            .load()
            .iter()
            .all(|b| b.bank.bank.frames.is_empty())
    }

    /// Reloads the files whose size or time changed; returns each attempt's outcome (the
    /// bank's frames, or why the one in force stays).
    pub fn reload_changed(&self) -> Vec<(PathBuf, Result<usize, BankFileError>)> {
        let mut stamps = self.stamps.locked();
        let mut next = self.banks.load_full().as_ref().clone();
        let mut outcomes = Vec::new();
        for (i, path) in self.settings.files().enumerate() {
            let now = stamp(path);
            if now == stamps[i] {
                continue;
            }
            stamps[i] = now;
            let outcome = read(path).map(|b| {
                let frames = b.bank.bank.frames.len();
                next[i] = Arc::new(b);
                frames
            });
            outcomes.push((path.to_owned(), outcome));
        }
        if outcomes.iter().any(|(_, r)| r.is_ok()) {
            self.banks.store(Arc::new(next));
        }
        outcomes
    }

    /// Adds the media file `media` as clip `clip` to the configured bank named `bank` (its
    /// file's stem, one of `paths`: a remote bank's cache would be overwritten by its server's
    /// copy, and no other file can be written), mirrored too, writes the file whole and
    /// puts the new bank in force. Blocks for the decoding: call off the async runtime.
    /// Returns the bank's frames after it.
    pub fn add_clip(&self, bank: &str, clip: &str, media: &Path) -> Result<usize, AddError> {
        let source = format!("admin API: {clip}");
        self.change(bank, |contents| {
            super::build::add_media(contents, clip, media, &source, DEFAULT_FPS, true)
                .map_err(|e| AddError::Media(e.0))
        })
    }

    /// Adds the frames a cut matched on (milliseconds into the stream, luma) to the learning
    /// bank (`learn`) as clip `clip`, as they are and mirrored, and puts it in force. Blocks
    /// for the features: call off the async runtime. Returns the bank's frames after it.
    pub fn learn(
        &self,
        clip: &str,
        source: &str,
        frames: &[(u32, LumaImage)],
    ) -> Result<usize, AddError> {
        let Some(bank) = self.settings.learn.as_deref() else {
            return Err(AddError::NoSuchBank(String::new()));
        };
        // Frames the learning bank already finds teach nothing new: every cut of one wave of
        // re-streams would otherwise fill the bank with copies of the same moments (and the
        // copies would take the vote's few places from other clips).
        let new: Vec<(u32, LumaImage)> = frames
            .iter()
            .filter(|(_, luma)| !self.learned_already(bank, luma))
            .cloned()
            .collect();
        if new.is_empty() {
            return Err(AddError::Known);
        }
        let most = self.settings.learn_max_frames;
        self.change(bank, |contents| {
            if !self.fits_learning(contents.frames.len(), 2 * new.len()) {
                return Err(AddError::Full(most));
            }
            super::build::add_frames(contents, clip, source, &new).map_err(|e| AddError::Media(e.0))
        })
    }

    /// Whether the bank named `bank` in force already finds `luma` (`min_inliers`).
    fn learned_already(&self, bank: &str, luma: &LumaImage) -> bool {
        let settings = CheckSettings {
            features: self.settings.features,
            ..CheckSettings::default()
        };
        let banks = self.banks.load();
        let Some(loaded) = banks.iter().find(|b| &*b.name == bank) else {
            return false;
        };
        let features = FrameFeatures::of(luma, settings.features);
        loaded
            .bank
            .best(&features, &settings)
            .is_some_and(|hit| hit.inliers >= self.settings.min_inliers)
    }

    /// Whether the learning bank in force has room for `frames` more reference frames
    /// (`learn_max_frames`); false when there is no learning bank.
    pub fn has_room_to_learn(&self, frames: usize) -> bool {
        let Some(name) = self.settings.learn.as_deref() else {
            return false;
        };
        self.banks
            .load()
            .iter()
            .any(|b| &*b.name == name && self.fits_learning(b.bank.bank.frames.len(), frames))
    }

    /// Whether a learning bank holding `held` reference frames may take `adding` more.
    fn fits_learning(&self, held: usize, adding: usize) -> bool {
        held + adding <= self.settings.learn_max_frames
    }

    /// Applies `add` to the configured bank named `bank` (its file's stem, one of `paths`: a
    /// remote bank's cache would be overwritten by its server's copy, and no other file can be
    /// written), read from its file, writes the file whole and puts the new bank in force.
    /// Returns the bank's frames after it.
    fn change(
        &self,
        bank: &str,
        add: impl FnOnce(&mut super::MediaBank) -> Result<usize, AddError>,
    ) -> Result<usize, AddError> {
        let (index, path) = self
            .settings
            .paths
            .iter()
            .enumerate()
            .find(|(_, p)| p.file_stem().is_some_and(|s| s.to_string_lossy() == bank))
            .ok_or_else(|| AddError::NoSuchBank(bank.to_owned()))?;
        let _writing = self.writing.locked();
        let mut contents = load(path).map_err(|e| AddError::Bank(e.to_string()))?;
        add(&mut contents)?;
        super::file::save(&contents, path).map_err(|e| AddError::Bank(e.to_string()))?;
        // In force now, whatever the watcher's next poll makes of the file's stamp.
        let frames = contents.frames.len();
        let loaded = LoadedBank {
            name: bank.into(),
            path: path.clone(),
            bank: IndexedBank::new(contents),
        };
        let mut stamps = self.stamps.locked();
        stamps[index] = stamp(path);
        let mut next = self.banks.load_full().as_ref().clone();
        next[index] = Arc::new(loaded);
        self.banks.store(Arc::new(next));
        Ok(frames)
    }

    /// Polls the bank files every `every` and reloads what changed, logging each outcome.
    /// Runs until the banks are dropped.
    pub fn watch(
        self: &Arc<Self>,
        every: Duration,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        crate::matcher::poll_while_alive("bank-watch", self, every, |banks: &Banks| {
            for (path, outcome) in banks.reload_changed() {
                match outcome {
                    Ok(frames) => {
                        tracing::info!(bank = %path.display(), frames, "media bank reloaded")
                    }
                    Err(e) => tracing::error!("{e}; the bank in force stays"),
                }
            }
        })
    }

    /// A frame's best match in any bank, when one mapping explains `min_inliers` pairs.
    pub fn check(&self, luma: &LumaImage) -> Option<BankMatch> {
        let banks = self.banks.load();
        if banks.iter().all(|b| b.bank.bank.frames.is_empty()) {
            return None;
        }
        let settings = CheckSettings {
            features: self.settings.features,
            ..CheckSettings::default()
        };
        let features = FrameFeatures::of(luma, settings.features);
        let mut best: Option<BankMatch> = None;
        for loaded in banks.iter() {
            let Some(hit) = loaded.bank.best(&features, &settings) else {
                continue;
            };
            if hit.inliers < self.settings.min_inliers
                || best.as_ref().is_some_and(|b| b.inliers >= hit.inliers)
            {
                continue;
            }
            let clip = &loaded.bank.bank.clips[hit.clip as usize];
            let learning = self.settings.learn.as_deref() == Some(&*loaded.name);
            best = Some(BankMatch {
                bank: loaded.name.clone(),
                clip: clip.name.clone(),
                source: format!("{}@{:.1}", clip.source, f64::from(hit.at_ms) / 1000.0),
                at_ms: hit.at_ms,
                inliers: hit.inliers,
                action: if learning {
                    self.settings.learn_action
                } else {
                    self.settings.action
                },
            });
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bank::file::save;
    use crate::bank::Clip;

    fn textured(seed: u64) -> LumaImage {
        let g = crate::bank::features::tests::blocks(480, 270, seed);
        LumaImage {
            width: g.width,
            height: g.height,
            pixels: g.pixels.iter().map(|&v| f32::from(v)).collect(),
        }
    }

    fn bank_of(seed: u64) -> crate::bank::MediaBank {
        let mut bank = crate::bank::MediaBank::default();
        let clip = Clip {
            name: format!("clip-{seed}"),
            source: "test".into(),
        };
        bank.add_clip(clip, [(0, textured(seed))], DEFAULT_FEATURES);
        bank
    }

    #[test]
    fn a_banked_picture_matches_and_another_does_not_and_a_damaged_reload_keeps_the_bank() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("incidents.hgb");
        save(&bank_of(1), &path).expect("save");
        let settings = BankSettings {
            paths: vec![path.clone()],
            ..BankSettings::default()
        };
        let banks = Banks::load(settings).expect("load");
        let hit = banks
            .check(&textured(1))
            .expect("the banked picture matches");
        assert_eq!((&*hit.bank, hit.clip.as_str()), ("incidents", "clip-1"));
        assert!(hit.inliers >= 100, "{}", hit.inliers);
        assert!(banks.check(&textured(2)).is_none());

        // A damaged file: refused, the bank in force stays.
        std::fs::write(
            &path,
            b"HGBANK\0\x01 and then nothing useful at all, 52 bytes or more",
        )
        .expect("damage");
        let outcomes = banks.reload_changed();
        assert!(matches!(outcomes.as_slice(), [(_, Err(_))]), "{outcomes:?}");
        assert!(banks.check(&textured(1)).is_some());

        // A good new version is taken.
        let mut next = bank_of(2);
        next.clips[0].name = "clip-2".into();
        save(&next, &path).expect("save");
        let outcomes = banks.reload_changed();
        assert!(matches!(outcomes.as_slice(), [(_, Ok(1))]), "{outcomes:?}");
        assert!(banks.check(&textured(1)).is_none());
        assert_eq!(banks.check(&textured(2)).expect("new bank").clip, "clip-2");
    }

    #[test]
    fn a_clip_added_is_in_force_at_once_without_a_reload() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("incidents.hgb");
        save(&bank_of(1), &path).expect("save");
        let banks = Banks::load(BankSettings {
            paths: vec![path.clone()],
            ..BankSettings::default()
        })
        .expect("load");
        let picture = crate::bank::features::tests::blocks(480, 270, 9);
        let media = dir.path().join("clip.png");
        image::GrayImage::from_raw(480, 270, picture.pixels.clone())
            .expect("picture")
            .save(&media)
            .expect("png");
        assert!(banks.check(&textured(9)).is_none());
        assert!(matches!(
            banks.add_clip("nope", "x", &media),
            Err(AddError::NoSuchBank(_))
        ));
        let frames = banks
            .add_clip("incidents", "incident-9", &media)
            .expect("added");
        assert_eq!(
            frames, 3,
            "the first clip's frame, the new one and its mirror"
        );
        assert_eq!(
            banks.check(&textured(9)).expect("in force").clip,
            "incident-9"
        );
        assert!(load(&path)
            .expect("written")
            .clips
            .iter()
            .any(|c| c.name == "incident-9"));
    }

    #[test]
    fn settings_out_of_range_are_refused_with_their_key() {
        let mut s = BankSettings {
            min_inliers: 4,
            ..BankSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "media_bank.min_inliers");
        s.min_inliers = 20;
        s.checks_per_second = 0.0;
        assert_eq!(s.validate().unwrap_err().0, "media_bank.checks_per_second");
        s.checks_per_second = 1.0;
        assert!(s.validate().is_ok());
        assert_eq!(s.interval(), Duration::from_secs(1));
        assert_eq!(s.grey_interval(), Duration::from_millis(500));
        // A plain rate above the grey one is allowed; the grey zone then changes nothing.
        s.checks_per_second = 4.0;
        assert!(s.validate().is_ok());
        assert_eq!(s.grey_interval(), s.interval());
        s.checks_per_second = 1.0;
        // A remote bank's URL is checked, and two banks may not share a name.
        s.paths = vec!["a/incidents.hgb".into()];
        s.remote = vec![RemoteBank {
            url: "ftp://banks.example/x.hgb".into(),
            path: "cache/fleet.hgb".into(),
            poll: None,
            max_shrink: 0.5,
        }];
        assert_eq!(s.validate().unwrap_err().0, "media_bank.remote.url");
        s.remote[0].url = "https://banks.example/x.hgb".into();
        assert!(s.validate().is_ok());
        assert!(s.is_on());
        s.remote[0].path = "cache/incidents.hgb".into();
        let (key, message) = s.validate().unwrap_err();
        assert_eq!(key, "media_bank");
        assert!(message.contains("\"incidents\""), "{message}");
        // The learning bank must be one of `paths` (a remote bank's cache is its server's).
        s.remote[0].path = "cache/fleet.hgb".into();
        s.learn = Some("fleet".into());
        assert_eq!(s.validate().unwrap_err().0, "media_bank.learn");
        s.learn = Some("incidents".into());
        assert!(s.validate().is_ok());
        s.learn_max_frames = 1;
        assert_eq!(s.validate().unwrap_err().0, "media_bank.learn_max_frames");
        assert!(!BankSettings::default().is_on());
    }

    #[test]
    fn frames_learned_are_in_force_at_once_until_the_bank_is_full() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("learned.hgb");
        save(&crate::bank::MediaBank::default(), &path).expect("save");
        let settings = BankSettings {
            paths: vec![path.clone()],
            learn_max_frames: 5,
            ..BankSettings::default()
        };
        let unset = Banks::load(settings.clone()).expect("load");
        assert!(unset.learn("x", "s", &[(0, textured(3))]).is_err());
        let banks = Banks::load(BankSettings {
            learn: Some("learned".into()),
            ..settings
        })
        .expect("load");
        assert!(banks.check(&textured(3)).is_none());
        let frames = banks
            .learn(
                "incident-3",
                "learned from a cut",
                &[(2_000, textured(3)), (2_500, textured(4))],
            )
            .expect("learned");
        assert_eq!(frames, 4, "two frames, and the same mirrored");
        // The same moments again (the next cut of a wave of re-streams) add nothing.
        assert!(matches!(
            banks.learn("incident-3", "again", &[(0, textured(3))]),
            Err(AddError::Known)
        ));
        let found = banks.check(&textured(3)).expect("in force");
        assert_eq!((found.clip.as_str(), found.at_ms), ("incident-3", 2_000));
        // What cuts taught alerts until the operator says it may cut.
        assert_eq!(found.action, Action::Alert);
        assert!(banks.has_room_to_learn(1) && !banks.has_room_to_learn(2));
        assert_eq!(load(&path).expect("written").frames.len(), 4);
        // Two more frames would pass learn_max_frames (5): refused, the bank unchanged.
        assert!(matches!(
            banks.learn("incident-5", "s", &[(0, textured(5))]),
            Err(AddError::Full(5))
        ));
        assert_eq!(load(&path).expect("unchanged").frames.len(), 4);
        assert!(banks.check(&textured(3)).is_some());
    }
}
