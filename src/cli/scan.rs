//! `hashgate scan --config config.toml VIDEO`: a file through the live pipeline (sampling,
//! hashing, matching, policy) with a timeline of matches and the verdict the live policy would
//! give; with several `--fps` rates, when the first match and the cut would come at each, and
//! what each rate cost in CPU — the table for tuning `[sampling] fps`. With an audio list, the
//! soundtrack is fingerprinted and matched as live (a window every 0.5 s): its matches join the
//! timeline and the table gains the audio decision.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::hash::inset::InsetTracker;
use crate::hash::letterbox::ContentArea;
use crate::hash::{hash_frame, Views};
use crate::inspect::file::decode_file;
use crate::inspect::sampler::Sampler;
use crate::inspect::stream::SamplingMode;
use crate::matcher::Matcher;
use crate::verdict::policy::{counts_for_cut, MatchWindow};

/// Arguments of `hashgate scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Configuration (its lists, sampling and verdict settings are used).
    #[arg(long, short, default_value = "config.toml")]
    pub config: PathBuf,
    /// Sampling rates to compare, e.g. `0.5,1,2,4`; `[sampling] fps` when absent.
    #[arg(long, value_delimiter = ',')]
    pub fps: Vec<f64>,
    /// Also report the list entry nearest to any hashed frame, at any distance (how far
    /// benign content stays from the threshold); scans every entry, so slow on large lists.
    #[arg(long)]
    pub nearest: bool,
    /// The video file.
    pub video: PathBuf,
}

struct RateResult {
    fps: f64,
    hashed: u64,
    first_match: Option<f64>,
    cut_at: Option<f64>,
    alerts: u64,
    cpu_seconds: f64,
    timeline: Vec<(f64, String)>,
    /// With `--nearest`: the nearest entry's margin (distance less its threshold), distance,
    /// the frame's time and the entry with the view that came nearest.
    nearest: Option<(i64, u32, f64, String)>,
    /// Hashed frames in which the frame-in-frame lookup found an inset, and the last inset.
    insets: u64,
    last_inset: Option<ContentArea>,
}

/// What the soundtrack gave.
#[derive(Default)]
struct AudioScan {
    timeline: Vec<(f64, String)>,
    first_match: Option<f64>,
    /// When an audio match of a cut list would cut (`verdict.audio = "alone"`).
    cut_at: Option<f64>,
}

/// Runs `scan`.
pub fn run(args: &ScanArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    if config.lists.is_empty() {
        anyhow::bail!("{}: no [[lists]] to match against", args.config.display());
    }
    let matcher = Matcher::load(config.lists.clone()).context("loading hash lists")?;
    let rates = if args.fps.is_empty() {
        vec![config.sampling.fps]
    } else {
        args.fps.clone()
    };
    let mut results = Vec::new();
    for fps in rates {
        results.push(scan_at(&config, &matcher, args, fps)?);
    }
    let audio = scan_audio(&config, &matcher, args);
    let show = |t: Option<f64>| t.map_or("-".to_owned(), |t| format!("{t:.3}"));
    if let [only] = results.as_slice() {
        let mut timeline = only.timeline.clone();
        if let Some(a) = &audio {
            timeline.extend(a.timeline.iter().cloned());
        }
        timeline.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, line) in &timeline {
            println!("{line}");
        }
        println!("{}", verdict_line(only));
        if args.nearest {
            println!("{}", nearest_line(only));
        }
        if let Some(a) = &audio {
            println!("{}", audio_line(a));
        }
    } else {
        let with_audio = audio.is_some();
        if with_audio {
            println!("| fps | frames hashed | first match s | cut at s | audio cut at s | CPU s |");
            println!("|---|---|---|---|---|---|");
        } else {
            println!("| fps | frames hashed | first match s | cut at s | CPU s |");
            println!("|---|---|---|---|---|");
        }
        for r in &results {
            if args.nearest {
                eprintln!("{} fps: {}", r.fps, nearest_line(r));
            }
            let audio_cell = audio
                .as_ref()
                .map(|a| format!(" {} |", show(a.cut_at)))
                .unwrap_or_default();
            println!(
                "| {} | {} | {} | {} |{audio_cell} {:.2} |",
                r.fps,
                r.hashed,
                show(r.first_match),
                show(r.cut_at),
                r.cpu_seconds
            );
        }
    }
    Ok(())
}

/// The soundtrack through the live audio path, when an audio list is configured and the file
/// has audio.
fn scan_audio(config: &Config, matcher: &Matcher, args: &ScanArgs) -> Option<AudioScan> {
    use crate::hash::chromaprint::{StreamFingerprinter, ITEM_SECONDS, REACH_SECONDS};
    use crate::inspect::audio::{decode_file_audio, EVALUATE_EVERY};
    use crate::matcher::list::Action;
    use crate::verdict::policy::AudioPolicy;
    let window = matcher.audio_window_items();
    if window == 0 {
        return None;
    }
    let samples = match decode_file_audio(&args.video) {
        Ok((samples, _)) => samples,
        Err(e) => {
            eprintln!("hashgate: {}: audio not scanned: {e}", args.video.display());
            return None;
        }
    };
    let mut scan = AudioScan::default();
    let mut printer = StreamFingerprinter::default();
    let mut items: Vec<u32> = Vec::new();
    let mut since = 0usize;
    for chunk in samples.chunks(1024) {
        let mut fresh = Vec::new();
        printer.consume(chunk, |v| fresh.push(v));
        for v in fresh {
            items.push(v);
            since += 1;
            if items.len() < window || since < EVALUATE_EVERY {
                continue;
            }
            since = 0;
            // The window's audio is in once its last item's audio is.
            let at = (items.len() - 1) as f64 * ITEM_SECONDS + REACH_SECONDS;
            let newest = &items[items.len() - window..];
            if !crate::verdict::audio_window_informative(newest) {
                continue;
            }
            for m in matcher.match_audio(newest) {
                scan.timeline.push((
                    at,
                    format!(
                        "{at:>9.3}s  audio BER {:.3} at clip {:.1}s{}  {:?}  {} / {}  ({})",
                        m.hit.ber,
                        m.clip_offset_s,
                        if m.speed == 1.0 {
                            String::new()
                        } else {
                            format!(" speed {}", m.speed)
                        },
                        m.action,
                        m.list,
                        m.label,
                        m.source
                    ),
                ));
                scan.first_match.get_or_insert(at);
                if m.action == Action::Cut && config.verdict.audio == AudioPolicy::Alone {
                    scan.cut_at.get_or_insert(at);
                }
            }
        }
    }
    Some(scan)
}

fn audio_line(a: &AudioScan) -> String {
    match (a.cut_at, a.first_match) {
        (Some(t), _) => format!("audio: CUT at {t:.3}s"),
        (None, Some(t)) => format!("audio: matches from {t:.3}s, no cut on audio alone"),
        (None, None) => "audio: no match".to_owned(),
    }
}

fn scan_at(
    config: &Config,
    matcher: &Matcher,
    args: &ScanArgs,
    fps: f64,
) -> anyhow::Result<RateResult> {
    let settings = config.inspect_settings("");
    let mut sampler = Sampler::new(fps);
    let mut inset = settings.frame_in_frame.map(InsetTracker::new);
    let mut window = MatchWindow::new(config.verdict.window);
    // A file has no wall clock: frames "arrive" at their stream time.
    let clock = Instant::now();
    let started = Instant::now();
    let mut result = RateResult {
        fps,
        hashed: 0,
        first_match: None,
        cut_at: None,
        alerts: 0,
        cpu_seconds: 0.0,
        timeline: Vec::new(),
        nearest: None,
        insets: 0,
        last_inset: None,
    };
    decode_file(&args.video, |frame| {
        if settings.mode == SamplingMode::Keyframes && !frame.keyframe {
            return;
        }
        let ms = (frame.seconds * 1000.0).round() as i64;
        let take = sampler.take_in_stream_time(ms)
            || (settings.mode == SamplingMode::Hybrid
                && frame.keyframe
                && sampler.extra_keyframe(ms));
        if !take {
            return;
        }
        result.hashed += 1;
        let inset = inset.as_mut().and_then(|t| t.observe(&frame.luma, ms));
        let views = Views {
            letterbox: settings.letterbox,
            inset,
            windows: settings.windows,
        };
        let mut hashes = hash_frame(&frame.luma, views);
        hashes.add_colour(&frame.colour, settings.colour_planes);
        if let Some((area, _)) = &hashes.inset {
            result.insets += 1;
            result.last_inset = Some(*area);
        }
        if args.nearest {
            if let Some((m, margin)) = matcher.nearest_pdq(&hashes) {
                if result
                    .nearest
                    .as_ref()
                    .is_none_or(|(n, _, _, _)| margin < *n)
                {
                    let negative = if m.negative { ", negative" } else { "" };
                    let entry = format!(
                        "{} / {} ({}), {}{negative}",
                        m.list,
                        m.label,
                        m.source,
                        m.view.name()
                    );
                    result.nearest = Some((margin, m.distance, frame.seconds, entry));
                }
            }
        }
        let found = matcher.match_frame(&hashes, &frame.luma);
        if let Some(allowed) = &found.allowed {
            result.timeline.push((
                frame.seconds,
                format!(
                    "{:>9.3}s  allowed by {} ({})",
                    frame.seconds, allowed.label, allowed.source
                ),
            ));
            return;
        }
        for m in &found.matches {
            result.timeline.push((
                frame.seconds,
                format!(
                    "{:>9.3}s  distance {:>3}  {:?}  {} / {}  ({})  {}{}",
                    frame.seconds,
                    m.distance,
                    m.action,
                    m.list,
                    m.label,
                    m.source,
                    m.view.name(),
                    if m.negative { ", negative" } else { "" }
                ),
            ));
        }
        if found.matches.is_empty() {
            return;
        }
        result.first_match.get_or_insert(frame.seconds);
        if counts_for_cut(&found) {
            let arrived = clock + std::time::Duration::from_millis(ms.max(0) as u64);
            let cuts = window
                .record(ms, arrived, config.verdict.min_matches)
                .is_some();
            if cuts && result.cut_at.is_none() {
                result.cut_at = Some(frame.seconds);
            }
        } else {
            result.alerts += 1;
        }
    })?;
    result.cpu_seconds = started.elapsed().as_secs_f64();
    Ok(result)
}

fn nearest_line(r: &RateResult) -> String {
    let nearest = match &r.nearest {
        Some((margin, d, t, entry)) => {
            format!("nearest: distance {d} margin {margin} at {t:.3}s ({entry})")
        }
        None => "nearest: none (no PDQ block list, or no frame of enough quality)".to_owned(),
    };
    let last = r.last_inset.map_or(String::new(), |a| {
        format!(
            " (the last at {},{} {}x{})",
            a.left, a.top, a.width, a.height
        )
    });
    format!(
        "{nearest}\ninsets: found in {} of {} hashed frames{last}",
        r.insets, r.hashed
    )
}

fn verdict_line(r: &RateResult) -> String {
    match (r.cut_at, r.first_match) {
        (Some(t), _) => format!(
            "verdict: CUT at {t:.3}s ({} frames hashed at {} fps)",
            r.hashed, r.fps
        ),
        (None, Some(t)) if r.alerts > 0 => {
            format!("verdict: alert only (first match at {t:.3}s, no cut list matched enough)")
        }
        (None, Some(t)) => {
            format!("verdict: pass (matches from {t:.3}s but fewer than the policy needs)")
        }
        (None, None) => format!(
            "verdict: pass (no match in {} frames hashed at {} fps)",
            r.hashed, r.fps
        ),
    }
}
