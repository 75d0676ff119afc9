//! `config.toml`: schema, defaults, and validation errors that name the key and the line.
//!
//! Durations are strings such as `"250ms"`, `"5s"`, `"10m"`; sizes are strings such as
//! `"64KiB"`, `"16MiB"` or plain byte counts. Unknown keys are errors. Relative paths are taken
//! from the directory of the config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::relay::settings::{
    Limits, RelaySettings, ServerConfig, UpstreamConfig, UpstreamRoute,
};
use crate::units::{self, duration_value, secs};
pub use crate::units::{parse_duration, parse_size};

use crate::cluster::ClusterSettings;
use crate::events::EventsConfig;
use crate::hash::inset::InsetSettings;
use crate::hash::letterbox::LetterboxSettings;
use crate::inspect::decoder::Shortcuts;
use crate::inspect::pool::PoolSettings;
use crate::inspect::stream::{InspectSettings, SamplingMode};
use crate::matcher::list::ListSettings;
use crate::rtmp::url::RtmpUrl;
use crate::verdict::policy::{DelaySignal, PolicySettings};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a value of the wrong shape (the message has the line).
    #[error("{path}: {message}")]
    Parse {
        /// File path.
        path: PathBuf,
        /// Parser message, with line and column.
        message: String,
    },
    /// A value that parses but cannot work.
    #[error("{path}{}: {key}: {message}", line.map(|n| format!(":{n}")).unwrap_or_default())]
    Invalid {
        /// File path.
        path: PathBuf,
        /// Line of the key in the file, when it is written there (not a default).
        line: Option<usize>,
        /// Dotted key, e.g. `upstream.url` or `lists[0].path`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where broadcasters connect.
    #[serde(default)]
    pub server: ServerConfig,
    /// The platform's ingest.
    pub upstream: UpstreamConfig,
    /// Per-connection and per-stream limits.
    #[serde(default)]
    pub limits: Limits,
    /// Stream key rewrites and per-key upstreams.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Which frames are hashed.
    #[serde(default)]
    pub sampling: SamplingConfig,
    /// The inspection worker pool.
    #[serde(default)]
    pub inspect: InspectConfig,
    /// Hash lists frames are matched against.
    #[serde(default)]
    pub lists: Vec<ListSettings>,
    /// Media banks: the second matcher, on clips the platform holds.
    #[serde(default)]
    pub media_bank: crate::bank::live::BankSettings,
    /// When matches add up to a cut.
    #[serde(default)]
    pub verdict: PolicySettings,
    /// The event log.
    #[serde(default)]
    pub events: EventsConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The admin HTTP API.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Fleet membership (shared blocks, cuts and flood state on Redis).
    #[serde(default)]
    pub cluster: ClusterSettings,
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Whether the admin API runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Listening address, `"127.0.0.1:8935"` by default.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// Bearer token; the environment variable `HASHGATE_ADMIN_TOKEN` overrides it when set and
    /// not empty. At least [`AdminConfig::MIN_TOKEN_LEN`] characters.
    #[serde(default)]
    pub token: Option<String>,
    /// Names the API answers to in the `Host` header besides the loopback ones (`127.0.0.1`,
    /// `[::1]`, `localhost`) and the listening address: a request naming another host (a web
    /// page reaching it by DNS rebinding) is refused.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            enabled: true,
            listen: default_admin_listen(),
            token: None,
            allowed_hosts: Vec::new(),
        }
    }
}

impl AdminConfig {
    /// Environment variable that overrides `admin.token`.
    pub const TOKEN_ENV: &'static str = "HASHGATE_ADMIN_TOKEN";

    /// Shortest token accepted: a guessable one is no guard.
    pub const MIN_TOKEN_LEN: usize = 16;

    /// The token in force: the environment's when set and not empty, else the config's. An
    /// empty variable (an unset secret in a deployment template) must not erase a configured
    /// token and open the API.
    pub fn token(&self) -> Option<String> {
        std::env::var(Self::TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| self.token.clone())
            .filter(|t| !t.is_empty())
    }

    /// Why the token in force is unusable: too short, or with white space in it.
    fn token_problem(&self) -> Option<String> {
        let token = self.token()?;
        if token.trim().chars().count() < Self::MIN_TOKEN_LEN {
            return Some(format!(
                "must be at least {} characters (not counting white space)",
                Self::MIN_TOKEN_LEN
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Some(
                "must be printable ASCII without white space (it travels in an HTTP header)".into(),
            );
        }
        None
    }
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8935))
}

/// One `[[routes]]` entry: matched on the broadcaster's stream key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Stream key this route applies to (exact match).
    pub key: String,
    /// Key to publish under upstream; the broadcaster's key when absent.
    pub upstream_key: Option<String>,
    /// Upstream URL for this key; `[upstream] url` when absent.
    pub url: Option<String>,
    /// Sampling rate for this key; `[sampling] fps` when absent.
    pub fps: Option<f64>,
    /// Sampling mode for this key; `[sampling] mode` when absent.
    pub mode: Option<SamplingMode>,
}

/// `[sampling]`: which frames of each stream are decoded and hashed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    /// Frames per second of stream time to hash; 0 hashes every decoded frame.
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// `"hybrid"` (default) decodes what the samples need, `"all"` every frame, `"keyframes"`
    /// only keyframes (cheap).
    #[serde(default)]
    pub mode: SamplingMode,
    /// Also hash the picture inside letterbox/pillarbox bars when a frame has them.
    #[serde(default = "yes")]
    pub letterbox: bool,
    /// Also hash the video playing inside a static layout (frame-in-frame) when one is found.
    #[serde(default = "yes")]
    pub frame_in_frame: bool,
    /// Also hash each frame's halves, quadrants, centre and seam-bound rectangles (split
    /// screens, tiles, a clip over its own blurred copy).
    #[serde(default = "yes")]
    pub windows: bool,
    /// Hash the colour planes of every sampled frame (a clip moved into a colour plane while
    /// the luma carries something else); off: only when the luma is featureless.
    #[serde(default = "yes")]
    pub colour_planes: bool,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            fps: default_fps(),
            mode: SamplingMode::default(),
            letterbox: true,
            frame_in_frame: true,
            windows: true,
            colour_planes: true,
        }
    }
}

/// `[inspect]`: the worker pool that decodes and hashes, off the relay's path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectConfig {
    /// Worker threads; 0 = one per core.
    #[serde(default)]
    pub threads: usize,
    /// Video messages buffered per stream before inspection drops (whole GOPs) to catch up.
    #[serde(default = "default_tap_capacity")]
    pub queue: usize,
    /// Largest picture decoded, in pixels; a stream declaring a larger one is uninspectable.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    /// Video that waited longer than this for inspection is skipped for the newest keyframe.
    #[serde(default = "secs::<1>", deserialize_with = "duration_value")]
    pub max_lag: Duration,
    /// A stream using more than this share of a core is sampled at keyframes only.
    #[serde(default = "default_max_stream_cost")]
    pub max_stream_cost: f64,
    /// Cores of inspection filled before new streams are refused at publish; 0 = 0.8 per
    /// worker thread.
    #[serde(default)]
    pub capacity: f64,
    /// What a new stream is assumed to cost (share of a core) until its own cost is known.
    #[serde(default = "default_admission_cost")]
    pub admission_cost: f64,
    /// Threads decoding and fingerprinting audio (only when an audio list is configured).
    #[serde(default = "default_audio_threads")]
    pub audio_threads: usize,
    /// Audio messages buffered per stream before audio inspection drops (~5 s of AAC).
    #[serde(default = "default_tap_capacity")]
    pub audio_queue: usize,
    /// Frames nothing references and the sampler will not pick are not decoded.
    #[serde(default = "yes")]
    pub skip_unreferenced: bool,
    /// Frames the sampler will not pick are decoded without the deblocking filter.
    #[serde(default)]
    pub skip_loop_filter: bool,
    /// Sampled pictures wider than this are scaled down to it before hashing; 0 = full size.
    #[serde(default = "default_hash_width")]
    pub hash_width: u32,
}

fn default_hash_width() -> u32 {
    Shortcuts::default().hash_width
}

fn default_audio_threads() -> usize {
    1
}

impl Default for InspectConfig {
    fn default() -> Self {
        InspectConfig {
            threads: 0,
            queue: default_tap_capacity(),
            max_pixels: default_max_pixels(),
            max_lag: secs::<1>(),
            max_stream_cost: default_max_stream_cost(),
            capacity: 0.0,
            admission_cost: default_admission_cost(),
            audio_threads: default_audio_threads(),
            audio_queue: default_tap_capacity(),
            skip_unreferenced: true,
            skip_loop_filter: false,
            hash_width: default_hash_width(),
        }
    }
}

impl InspectConfig {
    /// The pool's settings.
    pub fn pool(&self) -> PoolSettings {
        PoolSettings {
            threads: self.threads,
            queue: self.queue,
            max_lag: self.max_lag,
            max_stream_cost: self.max_stream_cost,
            capacity: self.capacity,
            admission_cost: self.admission_cost,
        }
    }
}

fn default_admission_cost() -> f64 {
    crate::inspect::pool::DEFAULT_ADMISSION_COST
}

fn default_max_pixels() -> u64 {
    crate::inspect::stream::DEFAULT_MAX_PIXELS
}

fn default_max_stream_cost() -> f64 {
    0.5
}

fn default_fps() -> f64 {
    2.0
}

fn yes() -> bool {
    true
}

fn default_tap_capacity() -> usize {
    256
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `"text"` (default) or `"json"`.
    #[serde(default)]
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The 1-based line where `key` (`table.field` or `array[i].field`) is set in `text`.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let (table, field) = key.rsplit_once('.')?;
    let (name, index) = match table.split_once('[') {
        Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()?),
        None => (table, 0),
    };
    let mut current = String::new();
    let mut occurrence = 0usize;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix("[[").and_then(|l| l.split(']').next()) {
            current = header.trim().to_owned();
            if current == name {
                occurrence += 1;
            }
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = header.trim().to_owned();
            occurrence = usize::from(current == name);
            continue;
        }
        let in_place = current == name && occurrence == index + 1;
        let sets_field = line.split_once('=').is_some_and(|(k, _)| k.trim() == field);
        if in_place && sets_field {
            return Some(n + 1);
        }
    }
    None
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate(path).map_err(|e| match e {
            ConfigError::Invalid {
                path, key, message, ..
            } => ConfigError::Invalid {
                line: line_of(text, &key),
                path,
                key,
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.server.tls_cert,
            &mut self.server.tls_key,
            &mut self.upstream.ca_file,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if self.events.log.is_relative() {
            self.events.log = base.join(&self.events.log);
        }
        if let Some(dir) = self
            .events
            .evidence_dir
            .as_mut()
            .filter(|d| d.is_relative())
        {
            *dir = base.join(&*dir);
        }
        for list in &mut self.lists {
            if list.path.is_relative() {
                list.path = base.join(&list.path);
            }
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            line: None,
            key: key.to_owned(),
            message,
        };
        RtmpUrl::parse(&self.upstream.url).map_err(|e| invalid("upstream.url", e.to_string()))?;
        self.cluster
            .validate()
            .map_err(|(key, message)| invalid(key, message))?;
        self.media_bank
            .validate()
            .map_err(|(key, message)| invalid(key, message))?;
        for (i, route) in self.routes.iter().enumerate() {
            if let Some(url) = &route.url {
                RtmpUrl::parse(url)
                    .map_err(|e| invalid(&format!("routes[{i}].url"), e.to_string()))?;
            }
            if route.key.is_empty() {
                return Err(invalid(
                    &format!("routes[{i}].key"),
                    "must not be empty".into(),
                ));
            }
        }
        // Below 0.01 (a frame every 100 s) the sampling interval leaves Duration's range.
        let fps_ok = |fps: f64| fps == 0.0 || (0.01..=240.0).contains(&fps);
        if !fps_ok(self.sampling.fps) {
            return Err(invalid(
                "sampling.fps",
                "must be 0 (every frame) or between 0.01 and 240".into(),
            ));
        }
        for (i, route) in self.routes.iter().enumerate() {
            if route.fps.is_some_and(|f| !fps_ok(f)) {
                return Err(invalid(
                    &format!("routes[{i}].fps"),
                    "must be 0 or between 0.01 and 240".into(),
                ));
            }
        }
        for (i, list) in self.lists.iter().enumerate() {
            if list.is_audio() {
                if list.kind == crate::matcher::list::ListKind::Allow {
                    return Err(invalid(
                        &format!("lists[{i}].kind"),
                        "audio lists are block lists (allow is for frames)".into(),
                    ));
                }
                if list.threshold.is_some() {
                    return Err(invalid(
                        &format!("lists[{i}].threshold"),
                        "audio lists take max_ber (a bit error rate), not threshold".into(),
                    ));
                }
                if list.max_ber.is_some_and(|b| !(b > 0.0 && b < 0.5)) {
                    return Err(invalid(
                        &format!("lists[{i}].max_ber"),
                        "must be above 0 and below 0.5 (unrelated audio sits at 0.5)".into(),
                    ));
                }
                if list.min_seconds.is_some_and(|s| !(3.0..=60.0).contains(&s)) {
                    return Err(invalid(
                        &format!("lists[{i}].min_seconds"),
                        "must be between 3 and 60 (a sub-fingerprint rests on 2.6 s of audio)"
                            .into(),
                    ));
                }
                continue;
            }
            if list.max_ber.is_some() || list.min_seconds.is_some() {
                return Err(invalid(
                    &format!("lists[{i}]"),
                    "max_ber and min_seconds are for audio lists (algorithm = \"chromaprint\")"
                        .into(),
                ));
            }
            let bits = if list.algorithm == crate::hash::imghash::Algorithm::Pdq {
                256
            } else {
                64
            };
            if list.threshold.is_some_and(|t| t > bits) {
                return Err(invalid(
                    &format!("lists[{i}].threshold"),
                    format!("must be at most {bits} (the hash has {bits} bits)"),
                ));
            }
            if list.negative_threshold.is_some_and(|t| t > bits) {
                return Err(invalid(
                    &format!("lists[{i}].negative_threshold"),
                    format!("must be at most {bits} (the hash has {bits} bits)"),
                ));
            }
            // Up to 1.0 at least half the bits always count (those at or past the median
            // distance); past it an attacker could shrink the set below the floor.
            if list.weak_margin.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
                return Err(invalid(
                    &format!("lists[{i}].weak_margin"),
                    "must be from 0 (off) to 1 (past that an attacker can leave too few bits)"
                        .into(),
                ));
            }
            let usual = crate::matcher::list::default_threshold(list.algorithm);
            if list.kind == crate::matcher::list::ListKind::Allow
                && list.threshold.is_some_and(|t| t > usual)
            {
                return Err(invalid(
                    &format!("lists[{i}].threshold"),
                    format!(
                        "an allow list excuses whole frames: at most {usual}, the block default"
                    ),
                ));
            }
            if list.max_shrink.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
                return Err(invalid(
                    &format!("lists[{i}].max_shrink"),
                    "must be a share from 0 to 1 (0.5: a reload may drop half the entries)".into(),
                ));
            }
            if list.min_quality > 100 {
                return Err(invalid(
                    &format!("lists[{i}].min_quality"),
                    "must be 0-100".into(),
                ));
            }
            if let Some(url) = &list.url {
                crate::matcher::remote::check_url(url)
                    .map_err(|e| invalid(&format!("lists[{i}].url"), e.to_string()))?;
                // The path is the cache: it may not exist yet, but its folder must.
                let folder = list.path.parent().filter(|p| !p.as_os_str().is_empty());
                if folder.is_some_and(|f| !f.is_dir()) {
                    return Err(invalid(
                        &format!("lists[{i}].path"),
                        format!(
                            "the cache {} is in a folder that does not exist",
                            list.path.display()
                        ),
                    ));
                }
                if list
                    .poll
                    .is_some_and(|p| p < std::time::Duration::from_secs(1))
                {
                    return Err(invalid(
                        &format!("lists[{i}].poll"),
                        "must be at least 1s".into(),
                    ));
                }
            } else if list.poll.is_some() {
                return Err(invalid(
                    &format!("lists[{i}].poll"),
                    "applies to lists with a url only".into(),
                ));
            } else if list.enabled && !list.path.is_file() {
                return Err(invalid(
                    &format!("lists[{i}].path"),
                    format!("{} is not a readable file", list.path.display()),
                ));
            }
        }
        for (i, pin) in self.upstream.pin_sha256.iter().enumerate() {
            crate::rtmp::tls::parse_pin(pin)
                .map_err(|e| invalid(&format!("upstream.pin_sha256[{i}]"), e))?;
        }
        if let Some(url) = &self.events.webhook {
            crate::events::webhook::Endpoint::parse(url)
                .map_err(|e| invalid("events.webhook", e))?;
        }
        if let Some(problem) = self
            .admin
            .enabled
            .then(|| self.admin.token_problem())
            .flatten()
        {
            let from = if std::env::var(AdminConfig::TOKEN_ENV).is_ok_and(|t| !t.is_empty()) {
                AdminConfig::TOKEN_ENV
            } else {
                "admin.token"
            };
            return Err(invalid(from, problem));
        }
        if self.admin.enabled
            && !self.admin.allowed_hosts.is_empty()
            && self.admin.token().is_none()
        {
            return Err(invalid(
                "admin.allowed_hosts",
                format!(
                    "answering to other names means other clients reach the API: set admin.token or {}",
                    AdminConfig::TOKEN_ENV
                ),
            ));
        }
        if self.admin.enabled
            && !self.admin.listen.ip().is_loopback()
            && self.admin.token().is_none()
        {
            return Err(invalid(
                "admin.listen",
                format!(
                    "{} is beyond loopback: set admin.token or {} (or listen on 127.0.0.1)",
                    self.admin.listen,
                    AdminConfig::TOKEN_ENV
                ),
            ));
        }
        let l = &self.limits;
        if !(l.connection_rate_per_address.is_finite() && l.connection_rate_per_address >= 0.0) {
            return Err(invalid(
                "limits.connection_rate_per_address",
                "must be 0 (no limit) or a rate per second".into(),
            ));
        }
        if l.connection_rate_per_address > 0.0
            && !(l.connection_burst_per_address.is_finite()
                && l.connection_burst_per_address >= 1.0)
        {
            return Err(invalid(
                "limits.connection_burst_per_address",
                "must be at least 1 (a connection) when a rate is set".into(),
            ));
        }
        if self.inspect.queue == 0 {
            return Err(invalid("inspect.queue", "must be greater than 0".into()));
        }
        if self.inspect.max_pixels < 64 * 64 {
            return Err(invalid(
                "inspect.max_pixels",
                "must be at least 4096 (64x64, the picture PDQ hashes)".into(),
            ));
        }
        let cost = self.inspect.max_stream_cost;
        if !(cost.is_finite() && cost > 0.0) {
            return Err(invalid(
                "inspect.max_stream_cost",
                "must be a share of a core greater than 0 (1.0 = a whole core)".into(),
            ));
        }
        if !(self.inspect.capacity.is_finite() && self.inspect.capacity >= 0.0) {
            return Err(invalid(
                "inspect.capacity",
                "must be 0 (0.8 per worker thread) or cores of inspection (1.0 = a whole core)"
                    .into(),
            ));
        }
        let estimate = self.inspect.admission_cost;
        if !(estimate.is_finite() && estimate > 0.0 && estimate <= 4.0) {
            return Err(invalid(
                "inspect.admission_cost",
                "must be a share of a core greater than 0 (0.1 = a tenth of a core)".into(),
            ));
        }
        let v = &self.verdict;
        for (key, value) in [
            ("verdict.max_blind", v.max_blind),
            ("verdict.max_blind_degraded", v.max_blind_degraded),
            ("inspect.max_lag", self.inspect.max_lag),
            ("limits.max_upstream_lag", self.limits.max_upstream_lag),
            ("limits.publish_timeout", self.limits.publish_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be longer than 0s".into()));
            }
        }
        if v.max_blind_degraded < v.max_blind {
            return Err(invalid(
                "verdict.max_blind_degraded",
                "must be at least verdict.max_blind".into(),
            ));
        }
        if !v.delay_waits_for.contains(&DelaySignal::Video) {
            return Err(invalid(
                "verdict.delay_waits_for",
                "must hold \"video\": held media always waits for video inspection".into(),
            ));
        }
        self.check_blind_against_rates(path)?;
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(invalid(
                "server.tls_cert",
                "tls_cert and tls_key must be set together".into(),
            ));
        }
        let l = &self.limits;
        for (key, value) in [
            ("limits.max_message_size", l.max_message_size),
            ("limits.max_chunk_streams", l.max_chunk_streams),
            ("limits.max_connections", l.max_connections),
            ("limits.queue_bytes", l.queue_bytes),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0".into()));
            }
        }
        if l.max_message_size > 0x00FF_FFFF {
            return Err(invalid(
                "limits.max_message_size",
                "must be at most 16MiB - 1 (the RTMP header's 24-bit length)".into(),
            ));
        }
        for (key, value) in [
            ("limits.handshake_timeout", l.handshake_timeout),
            ("limits.idle_timeout", l.idle_timeout),
            ("upstream.connect_timeout", self.upstream.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be longer than 0s".into()));
            }
        }
        Ok(())
    }

    /// Live sample points are drawn at random within each interval, so two hashed frames can
    /// lie over two intervals apart: a `max_blind` shorter than that, with room for decoding
    /// and arrival jitter, would cut healthy streams as uninspectable.
    fn check_blind_against_rates(&self, path: &Path) -> Result<(), ConfigError> {
        let rates = std::iter::once(("sampling.fps".to_owned(), self.sampling.fps)).chain(
            self.routes
                .iter()
                .enumerate()
                .filter_map(|(i, r)| Some((format!("routes[{i}].fps"), r.fps?))),
        );
        for (key, fps) in rates {
            let Some(needed) = crate::inspect::sampler::min_blind_bound(fps) else {
                continue;
            };
            if self.verdict.max_blind < needed {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    line: None,
                    key: "verdict.max_blind".into(),
                    message: format!(
                        "{} is too short for {key} = {fps}: sample points are random within \
                         each {} interval, so two hashed frames can lie over two intervals \
                         apart, and healthy streams would be cut as uninspectable; set it to \
                         at least {}{} or sample faster",
                        units::duration_text(self.verdict.max_blind),
                        units::duration_text(Duration::from_secs_f64(1.0 / fps)),
                        units::duration_text(needed),
                        if needed > self.verdict.max_blind_degraded {
                            " (and verdict.max_blind_degraded as well)"
                        } else {
                            ""
                        },
                    ),
                });
            }
        }
        Ok(())
    }

    /// Sampling settings for a broadcaster's stream key (route overrides applied).
    pub fn inspect_settings(&self, stream_key: &str) -> InspectSettings {
        let route = self.routes.iter().find(|r| r.key == stream_key);
        InspectSettings {
            fps: route.and_then(|r| r.fps).unwrap_or(self.sampling.fps),
            mode: route.and_then(|r| r.mode).unwrap_or(self.sampling.mode),
            letterbox: self.sampling.letterbox.then(LetterboxSettings::default),
            frame_in_frame: self.sampling.frame_in_frame.then(InsetSettings::default),
            windows: self.sampling.windows,
            colour_planes: self.sampling.colour_planes,
            max_pixels: self.inspect.max_pixels,
            max_blind: self.verdict.max_blind,
            max_blind_degraded: self.verdict.max_blind_degraded,
            shortcuts: Shortcuts {
                skip_unreferenced: self.inspect.skip_unreferenced,
                skip_loop_filter: self.inspect.skip_loop_filter,
                hash_width: self.inspect.hash_width,
            },
        }
    }

    /// The relay's part of the configuration.
    pub fn relay_settings(&self) -> RelaySettings {
        RelaySettings {
            server: self.server.clone(),
            upstream: self.upstream.clone(),
            limits: self.limits.clone(),
            routes: self
                .routes
                .iter()
                .map(|r| UpstreamRoute {
                    key: r.key.clone(),
                    url: r.url.clone(),
                    upstream_key: r.upstream_key.clone(),
                })
                .collect(),
            delay: self.verdict.delay,
            max_blind_degraded: self.verdict.max_blind_degraded,
            waits_for_video: self.verdict.delay_waits_for.contains(&DelaySignal::Video),
            waits_for_audio: self.verdict.delay_waits_for.contains(&DelaySignal::Audio),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/hashgate/config.toml"))
    }

    #[test]
    fn the_delay_waits_for_the_signals_named() {
        let up = "[upstream]\nurl = \"rtmp://127.0.0.1:1936/live\"\n";
        let relay =
            |extra: &str| parse(&format!("{up}[verdict]\n{extra}")).map(|c| c.relay_settings());
        let shipped = relay("").expect("valid");
        assert!(shipped.waits_for_video && !shipped.waits_for_audio);
        let both = relay("delay_waits_for = [\"video\", \"audio\"]\n").expect("valid");
        assert!(both.waits_for_video && both.waits_for_audio);
        for bad in ["[\"smell\"]", "[\"audio\"]", "[]"] {
            let err = relay(&format!("delay_waits_for = {bad}\n")).expect_err(bad);
            assert!(err.to_string().contains("delay_waits_for"), "{bad}: {err}");
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse("[upstream]\nurl = \"rtmp://127.0.0.1:1936/live\"\n").expect("valid");
        assert_eq!(c.server.listen, "0.0.0.0:1935".parse().expect("addr"));
        assert_eq!(c.limits.queue_bytes, 32 << 20);
        assert_eq!(c.limits.handshake_timeout, Duration::from_secs(5));
    }

    #[test]
    fn durations_sizes_routes_and_paths() {
        let c = parse(
            r#"
[upstream]
url = "rtmps://ingest.example/app"
ca_file = "ca.pem"
[limits]
idle_timeout = "1.5s"
handshake_timeout = "250ms"
queue_bytes = "64KiB"
max_message_size = 1000
[[routes]]
key = "a"
upstream_key = "b"
"#,
        )
        .expect("valid");
        assert_eq!(c.limits.idle_timeout, Duration::from_millis(1500));
        assert_eq!(c.limits.handshake_timeout, Duration::from_millis(250));
        assert_eq!(c.limits.queue_bytes, 65536);
        assert_eq!(c.limits.max_message_size, 1000);
        assert_eq!(
            c.upstream.ca_file,
            Some(PathBuf::from("/etc/hashgate/ca.pem"))
        );
        assert_eq!(
            c.relay_settings().route("a"),
            ("rtmps://ingest.example/app", "b".to_owned())
        );
        assert_eq!(
            c.relay_settings().route("z"),
            ("rtmps://ingest.example/app", "z".to_owned())
        );
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let err = parse("[upstream]\nurl = \"rtmp://h/a\"\n[limits]\nidle_timout = \"5s\"\n")
            .expect_err("unknown key")
            .to_string();
        assert!(
            err.contains("idle_timout") && err.contains("line 4"),
            "{err}"
        );

        let err =
            parse("[upstream]\nurl = \"rtmp://h/a\"\n[limits]\nidle_timeout = \"5 parsecs\"\n")
                .expect_err("bad duration")
                .to_string();
        assert!(err.contains("line 4") && err.contains("parsecs"), "{err}");

        let err = parse("[upstream]\nurl = \"http://h/a\"\n")
            .expect_err("bad url")
            .to_string();
        assert!(
            err.contains("upstream.url") && err.contains("rtmp://"),
            "{err}"
        );

        assert!(parse_duration(&format!("{}s", "3".repeat(60))).is_err());
        assert!(parse_duration("1e400").is_err());
        let err =
            parse("[upstream]\nurl = \"rtmp://h/a\"\n[limits]\nmax_message_size = \"32MiB\"\n")
                .expect_err("too big")
                .to_string();
        assert!(err.contains("limits.max_message_size"), "{err}");
    }

    #[test]
    fn pdq_list_margins_are_bounded() {
        let list = |extra: &str| {
            parse(&format!(
                "[upstream]\nurl = \"rtmp://h/a\"\n[[lists]]\npath = \"l.txt\"\nenabled = false\n{extra}\n"
            ))
        };
        list("weak_margin = 0.0").expect("off");
        list("weak_margin = 1.0").expect("the most");
        list("kind = \"allow\"\nthreshold = 20").expect("a strict allow list");
        for (bad, key) in [
            ("weak_margin = 1.2", "weak_margin"),
            ("weak_margin = -0.5", "weak_margin"),
            ("negative_threshold = 300", "negative_threshold"),
            ("kind = \"allow\"\nthreshold = 60", "threshold"),
        ] {
            let err = list(bad).expect_err(bad).to_string();
            assert!(err.contains(&format!("lists[0].{key}")), "{bad}: {err}");
        }
    }

    #[test]
    fn max_blind_leaves_room_for_two_sampling_intervals() {
        let with = |extra: &str| parse(&format!("[upstream]\nurl = \"rtmp://h/a\"\n{extra}"));
        // The defaults (2 fps, 1.5 s) are just enough.
        assert!(with("").is_ok());
        assert!(with("[verdict]\nmax_blind = \"1499ms\"\n").is_err());
        let err = with("[sampling]\nfps = 1.0\n")
            .expect_err("1 fps with the default max_blind")
            .to_string();
        assert!(
            err.contains("verdict.max_blind")
                && err.contains("sampling.fps = 1")
                && err.contains("at least 2600ms")
                && !err.contains("max_blind_degraded"),
            "{err}"
        );
        assert!(with("[sampling]\nfps = 1.0\n[verdict]\nmax_blind = \"2600ms\"\n").is_ok());
        assert!(with("[sampling]\nfps = 1.0\n[verdict]\nmax_blind = \"2599ms\"\n").is_err());
        // A route's own rate counts too; every frame (0) needs no room.
        let err = with("[[routes]]\nkey = \"slow\"\nfps = 0.5\n")
            .expect_err("a slow route")
            .to_string();
        assert!(
            err.contains("routes[0].fps = 0.5")
                && err.contains("at least 4800ms (and verdict.max_blind_degraded as well)"),
            "{err}"
        );
        assert!(with("[sampling]\nfps = 0.0\n[[routes]]\nkey = \"k\"\nfps = 0\n").is_ok());
        assert_eq!(units::duration_text(Duration::from_millis(2500)), "2500ms");
        assert_eq!(units::duration_text(Duration::from_secs(4)), "4s");
        assert_eq!(
            units::duration_text(Duration::from_secs_f64(2.0 / 3.0)),
            "667ms"
        );
    }

    #[test]
    fn shipped_config_is_valid_and_shows_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let shipped = Config::load(&path).expect("config.toml must stay valid");
        let defaults = Limits::default();
        let l = &shipped.limits;
        assert_eq!(
            (
                l.handshake_timeout,
                l.idle_timeout,
                l.max_message_size,
                l.max_chunk_streams
            ),
            (
                defaults.handshake_timeout,
                defaults.idle_timeout,
                defaults.max_message_size,
                defaults.max_chunk_streams
            )
        );
        let admin = AdminConfig::default();
        assert_eq!(
            (
                shipped.admin.enabled,
                shipped.admin.listen,
                &shipped.admin.token
            ),
            (admin.enabled, admin.listen, &admin.token)
        );
        assert_eq!(
            (l.max_connections, l.queue_bytes, l.drain_timeout),
            (
                defaults.max_connections,
                defaults.queue_bytes,
                defaults.drain_timeout
            )
        );
    }

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert!(parse_size("12 parsecs").is_err());
    }
}
