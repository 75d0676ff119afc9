//! `hashgate demo`: the whole product in one command, on loopback. An embedded platform
//! (`platform`) records what it receives; two gates run with the default config, one with the
//! delay buffer and one without; the bundled samples are replayed through them like live
//! broadcasts; then every frame the platform recorded is hashed to count how many flagged
//! frames got through.

mod platform;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::gate::Gate;
use crate::hash::letterbox::LetterboxSettings;
use crate::hash::{hash_frame, Views};
use crate::inspect::file::{decode_file, FileFrame};
use crate::matcher::Matcher;
use crate::relay;
use crate::replay::{self, MediaSource, Outcome, ReplayOptions};
use crate::rtmp::url::RtmpUrl;
use platform::Platform;

/// Where the samples are and what to keep.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Folder with `benign.flv`, `flagged.flv` and `flagged.pdq`.
    pub samples: PathBuf,
    /// Folder to keep the recordings and event logs in (a temporary one, removed, otherwise).
    pub out: Option<PathBuf>,
}

/// One replayed stream and what became of it.
#[derive(Debug, Clone)]
pub struct StreamReport {
    /// Stream key.
    pub key: String,
    /// The gate's delay buffer.
    pub delay: Duration,
    /// What the broadcaster saw.
    pub outcome: Outcome,
    /// The `cut` event: stream time of the deciding frame and latency, in milliseconds.
    pub cut: Option<(i64, u64)>,
    /// Seconds of video the platform recorded.
    pub recorded_s: f64,
    /// Frames the platform recorded.
    pub recorded_frames: u64,
    /// Recorded frames that match the list.
    pub flagged_frames: u64,
}

/// What the demo found.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Where the known clip starts in `flagged.flv` (first frame matching the list), seconds.
    pub clip_starts_s: Option<f64>,
    /// Per stream: benign, flagged, flagged without the delay buffer.
    pub streams: Vec<StreamReport>,
}

impl DemoReport {
    /// Whether the demo showed what it should: the benign stream passed whole, the flagged one
    /// was cut, and with the delay buffer no flagged frame reached the platform.
    pub fn passed(&self) -> bool {
        let [benign, flagged, no_delay] = self.streams.as_slice() else {
            return false;
        };
        matches!(benign.outcome, Outcome::Completed { .. })
            && benign.flagged_frames == 0
            && matches!(flagged.outcome, Outcome::Cut { .. })
            && flagged.flagged_frames == 0
            && matches!(no_delay.outcome, Outcome::Cut { .. })
    }

    /// The report as printed.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let clip = self
            .clip_starts_s
            .map_or("not found".to_owned(), |s| format!("{s:.2} s"));
        out.push_str(&format!(
            "known clip in flagged.flv starts at {clip} (first frame matching flagged.pdq)\n\n"
        ));
        out.push_str(&format!(
            "{:<18} {:>6}  {:<26} {:>13} {:>12} {:>18} {:>16}\n",
            "stream",
            "delay",
            "broadcaster saw",
            "deciding frame",
            "cut latency",
            "platform received",
            "flagged frames"
        ));
        for s in &self.streams {
            let saw = match &s.outcome {
                Outcome::Completed { sent_ms } => {
                    format!("complete ({:.1} s)", f64::from(*sent_ms) / 1e3)
                }
                Outcome::Cut { sent_ms, .. } => {
                    format!("cut at {:.1} s", f64::from(*sent_ms) / 1e3)
                }
                Outcome::Failed(e) => format!("failed: {e}"),
            };
            let (deciding, latency) = s.cut.map_or(("-".to_owned(), "-".to_owned()), |(at, ms)| {
                (format!("{:.2} s", at as f64 / 1e3), format!("{ms} ms"))
            });
            out.push_str(&format!(
                "{:<18} {:>6}  {:<26} {:>13} {:>12} {:>18} {:>16}\n",
                s.key,
                humantime::format_duration(s.delay).to_string(),
                saw,
                deciding,
                latency,
                format!("{:.2} s, {} fr", s.recorded_s, s.recorded_frames),
                s.flagged_frames
            ));
        }
        out.push('\n');
        if let [benign, flagged, no_delay] = self.streams.as_slice() {
            let pass = if matches!(benign.outcome, Outcome::Completed { .. }) {
                "passed whole"
            } else {
                "did NOT pass"
            };
            out.push_str(&format!(
                "benign: {pass} ({:.2} s recorded).\n",
                benign.recorded_s
            ));
            match flagged.cut {
                Some((_, latency)) => out.push_str(&format!(
                    "flagged: cut {latency} ms after its first matching frame; with a {} delay the platform received {} flagged frames (without: {}).\n",
                    humantime::format_duration(flagged.delay),
                    flagged.flagged_frames,
                    no_delay.flagged_frames
                )),
                None => out.push_str("flagged: NOT cut.\n"),
            }
        }
        out.push_str(if self.passed() {
            "demo: ok\n"
        } else {
            "demo: FAILED\n"
        });
        out
    }
}

/// Runs the demo.
pub fn run(options: &DemoOptions) -> anyhow::Result<DemoReport> {
    let samples = &options.samples;
    for name in ["benign.flv", "flagged.flv", "flagged.pdq"] {
        let path = samples.join(name);
        anyhow::ensure!(
            path.is_file(),
            "{} is missing (samples/make-samples.sh makes it)",
            path.display()
        );
    }
    let (dir, temporary) = match &options.out {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("hashgate-demo-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let report = runtime.block_on(run_in(samples, &dir));
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    report
}

/// The config a gate runs with: `config.toml`'s defaults, the sample list, this platform.
fn gate_config(
    dir: &Path,
    samples: &Path,
    platform: u16,
    delay: &str,
    name: &str,
) -> anyhow::Result<Config> {
    let list = samples
        .canonicalize()
        .context("samples folder")?
        .join("flagged.pdq");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [upstream]\nurl = \"rtmp://127.0.0.1:{platform}/live\"\n\
         [[lists]]\npath = {list:?}\nlabel = \"demo-known-clips\"\n\
         [verdict]\ndelay = \"{delay}\"\n\
         [events]\nlog = \"events-{name}.jsonl\"\n\
         [admin]\nenabled = false\n"
    );
    Ok(Config::parse(&text, &dir.join(format!("{name}.toml")))?)
}

async fn run_in(samples: &Path, dir: &Path) -> anyhow::Result<DemoReport> {
    let matcher = Matcher::load(vec![crate::matcher::list::ListSettings::for_path(
        samples.join("flagged.pdq"),
    )])?;
    let clip_starts_s =
        tokio::task::block_in_place(|| first_match(&samples.join("flagged.flv"), &matcher))?;

    let platform = Platform::start(dir)
        .await
        .context("starting the demo platform")?;
    let with_delay = gate_config(dir, samples, platform.port, "2s", "delay")?;
    let delay = with_delay.verdict.delay;
    let no_delay = gate_config(dir, samples, platform.port, "0s", "no-delay")?;
    let mut gates = Vec::new();
    for config in [with_delay, no_delay] {
        let events = config.events.log.clone();
        let gate = Gate::build(config)?;
        let listener = relay::bind("127.0.0.1:0".parse()?).await?;
        let port = listener.local_addr()?.port();
        let running = tokio::spawn(gate.relay.clone().run(listener));
        gates.push((gate, port, running, events));
    }
    let plan = [
        ("benign", "benign.flv", 0usize),
        ("flagged", "flagged.flv", 0),
        ("flagged-no-delay", "flagged.flv", 1),
    ];
    println!(
        "replaying {} and {} in real time through hashgate to a local platform...",
        samples.join("benign.flv").display(),
        samples.join("flagged.flv").display()
    );
    let mut replays = Vec::new();
    for (key, file, gate) in plan {
        let source = MediaSource::open(&samples.join(file))?;
        let options = ReplayOptions {
            url: RtmpUrl::parse(&format!("rtmp://127.0.0.1:{}/live", gates[gate].1))?,
            key: key.to_owned(),
            realtime: true,
            looped: false,
            linger: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
        };
        replays.push(tokio::spawn(async move {
            replay::publish(source, &options, None, CancellationToken::new(), |_| {}).await
        }));
    }
    let mut outcomes = Vec::new();
    for task in replays {
        outcomes.push(
            task.await
                .unwrap_or_else(|e| Outcome::Failed(e.to_string())),
        );
    }
    for (key, _, _) in plan {
        if !platform.wait_ended(key, Duration::from_secs(15)).await {
            tracing::warn!(key, "the platform did not see the stream end");
        }
    }
    for (gate, ..) in &gates {
        gate.events.flush(Duration::from_secs(5));
    }
    let mut streams = Vec::new();
    for ((key, _, gate), outcome) in plan.into_iter().zip(outcomes) {
        let events = &gates[gate].3;
        let recording = platform.recording(key);
        let (recorded_s, recorded_frames, flagged_frames) =
            tokio::task::block_in_place(|| count_flagged(&recording, &matcher))?;
        streams.push(StreamReport {
            key: key.to_owned(),
            delay: if gate == 0 { delay } else { Duration::ZERO },
            outcome,
            cut: cut_event(events, key),
            recorded_s,
            recorded_frames,
            flagged_frames,
        });
    }
    for (gate, _, running, _) in gates {
        gate.relay.shutdown();
        let _ = running.await;
    }
    Ok(DemoReport {
        clip_starts_s,
        streams,
    })
}

/// Seconds of the first frame of `video` that matches a list.
fn first_match(video: &Path, matcher: &Matcher) -> anyhow::Result<Option<f64>> {
    let mut first = None;
    decode_file(video, |frame| {
        if first.is_none() && matches(matcher, &frame) {
            first = Some(frame.seconds);
        }
    })?;
    Ok(first)
}

/// Whether a frame matches, hashed with every view the live path uses but the frame-in-frame
/// inset (which needs a stream's history): the whole frame, the letterbox crop, the windows,
/// and the colour planes when the luma is featureless.
fn matches(matcher: &Matcher, frame: &FileFrame) -> bool {
    let views = Views {
        letterbox: Some(LetterboxSettings::default()),
        inset: None,
        windows: true,
    };
    let mut hashes = hash_frame(&frame.luma, views);
    hashes.add_colour(&frame.colour, true);
    let found = matcher.match_frame(&hashes, &frame.luma);
    found.allowed.is_none() && !found.matches.is_empty()
}

/// Seconds recorded, frames recorded, and frames matching a list, of a recording (zeros when
/// nothing was recorded). Every frame is decoded and hashed (every view but the inset), as the
/// tests and the red-team bench count what reached a platform.
pub fn count_flagged(recording: &Path, matcher: &Matcher) -> anyhow::Result<(f64, u64, u64)> {
    if !recording.is_file() {
        return Ok((0.0, 0, 0));
    }
    let (mut last, mut frames, mut flagged) = (0.0f64, 0u64, 0u64);
    decode_file(recording, |frame| {
        frames += 1;
        last = last.max(frame.seconds);
        if matches(matcher, &frame) {
            flagged += 1;
        }
    })?;
    Ok((last, frames, flagged))
}

/// The `cut` event of `key` in an event log: (deciding frame's stream ms, latency ms).
fn cut_event(log: &Path, key: &str) -> Option<(i64, u64)> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "cut" && e["stream"] == key)
        .and_then(|e| Some((e["stream_ms"].as_i64()?, e["latency_ms"].as_u64()?)))
}
