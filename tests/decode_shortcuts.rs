//! What inspection leaves undecoded must not change what it sees: in `all` and `hybrid` modes,
//! with the default shortcuts (unreferenced frames the sampler will not pick are not decoded;
//! hybrid holds frames until a sample needs them and drops them at an IDR), every sampled frame
//! hashes exactly as the same frame of a full decode. Clips from the ffmpeg CLI's x264 with
//! B-frames 0 and 3, and an open GOP (keyframes that are not IDR), fed to the stream inspector
//! as the relay would, arriving at their stream time.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use hashgate::hash::pdq::PdqHash;
use hashgate::inspect::decoder::Shortcuts;
use hashgate::inspect::flv::{parse_video_tag, VideoTag};
use hashgate::inspect::params::{avc_config, is_idr};
use hashgate::inspect::stream::{
    Finding, InspectSettings, InspectStats, SamplingMode, StreamInspector,
};
use hashgate::relay::TappedVideo;

const SECONDS: u32 = 10;

/// A 360p30 clip with motion everywhere, a keyframe every 2 s (none on scene cuts).
fn clip(dir: &Path, name: &str, x264: &[&str]) -> Vec<(u32, Bytes)> {
    let path = dir.join(name);
    let mut extra = vec!["-g", "60", "-sc_threshold", "0", "-b:v", "800k"];
    extra.extend_from_slice(x264);
    extra.extend_from_slice(&["-f", "flv"]);
    lavfi_clip(
        &path,
        "testsrc2=size=640x360:rate=30,noise=alls=8:allf=t",
        SECONDS,
        &extra,
    );
    flv_video_tags(&path)
}

struct Run {
    hashed: BTreeMap<i64, PdqHash>,
    decoded: u64,
}

fn run(tags: &[(u32, Bytes)], mode: SamplingMode, fps: f64, shortcuts: Shortcuts) -> Run {
    let stats = InspectStats::default();
    let mut inspector = StreamInspector::new(InspectSettings {
        fps,
        mode,
        letterbox: None,
        frame_in_frame: None,
        shortcuts,
        ..InspectSettings::default()
    });
    let t0 = Instant::now();
    let mut hashed = BTreeMap::new();
    let mut sink = |f| {
        if let Finding::Frame(f) = f {
            hashed.insert(f.stream_time_ms, f.hashes.full.hash());
        }
    };
    for (ts, payload) in tags {
        let video = TappedVideo {
            timestamp: *ts,
            payload: payload.clone(),
            arrived: t0 + Duration::from_millis(u64::from(*ts)),
            clock: Default::default(),
        };
        inspector.handle(&video, &stats, &mut sink);
    }
    inspector.flush(&stats, t0, &mut sink);
    Run {
        hashed,
        decoded: stats.frames_decoded.load(Ordering::Relaxed),
    }
}

/// Presentation times of the frames no other frame references (nal_ref_idc 0 in every NAL).
fn unreferenced(tags: &[(u32, Bytes)]) -> Vec<i64> {
    let mut out = Vec::new();
    for (ts, payload) in tags {
        if let Ok(VideoTag::Frame {
            composition_time,
            data,
            ..
        }) = parse_video_tag(payload)
        {
            let mut rest = &data[..];
            let mut referenced = false;
            while rest.len() > 4 {
                let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if let Some(&header) = rest.get(4) {
                    referenced |= header & 0x60 != 0 && (1..=5).contains(&(header & 0x1f));
                }
                rest = rest.get(4 + len..).unwrap_or(&[]);
            }
            if !referenced {
                out.push(i64::from(*ts) + i64::from(composition_time));
            }
        }
    }
    out
}

/// Presentation times of the frames flagged as keyframes, and whether each is an IDR.
fn keyframes(tags: &[(u32, Bytes)]) -> Vec<(i64, bool)> {
    let mut length_size = 4;
    let mut out = Vec::new();
    for (ts, payload) in tags {
        match parse_video_tag(payload) {
            Ok(VideoTag::SequenceStart { config, .. }) => {
                length_size = avc_config(&config).map_or(4, |c| c.length_size);
            }
            Ok(VideoTag::Frame {
                keyframe: true,
                composition_time,
                data,
                ..
            }) => out.push((
                i64::from(*ts) + i64::from(composition_time),
                is_idr(false, length_size, &data),
            )),
            _ => {}
        }
    }
    out
}

/// Every sampled frame hashes as in a full decode; no two samples more than an interval and a
/// frame apart (what `all` mode guarantees at 2 fps with random sample points: 2 intervals).
fn assert_exact(name: &str, reference: &BTreeMap<i64, PdqHash>, run: &Run) {
    assert_same_hashes(name, reference, run);
    let times: Vec<i64> = run.hashed.keys().copied().collect();
    let widest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(widest <= 1034, "{name}: {widest} ms between two samples");
}

/// Every sampled frame hashes as in a full decode (at least 15 sampled).
fn assert_same_hashes(name: &str, reference: &BTreeMap<i64, PdqHash>, run: &Run) {
    assert_same_hashes_of(name, reference, run, 15);
}

/// Every sampled frame hashes as in a full decode (at least `least` sampled).
fn assert_same_hashes_of(name: &str, reference: &BTreeMap<i64, PdqHash>, run: &Run, least: usize) {
    assert!(
        run.hashed.len() >= least,
        "{name}: {} frames hashed",
        run.hashed.len()
    );
    for (pts, hash) in &run.hashed {
        let full = reference
            .get(pts)
            .unwrap_or_else(|| panic!("{name}: hashed a frame at {pts} ms the file lacks"));
        assert_eq!(
            hash.distance(full),
            0,
            "{name}: the frame at {pts} ms hashes differently from a full decode"
        );
    }
}

#[test]
fn shortcuts_decode_less_and_see_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let defaults = Shortcuts::default();
    assert!(
        defaults.skip_unreferenced && !defaults.skip_loop_filter && defaults.hash_width == 0,
        "the lossless shortcuts are the default"
    );
    for (name, x264) in [
        ("no B-frames", &["-bf", "0"][..]),
        ("B-frames 3, pyramid", &["-bf", "3", "-b_strategy", "0"][..]),
        (
            "open GOP",
            &["-bf", "2", "-x264-params", "open-gop=1:b-pyramid=none"][..],
        ),
    ] {
        let tags = clip(dir.path(), &format!("{}.flv", name.replace(' ', "-")), x264);
        let keys = keyframes(&tags);
        assert!(keys.len() >= 4, "{name}: {} keyframes", keys.len());
        let idr = keys.iter().filter(|(_, idr)| *idr).count();
        if name == "open GOP" {
            assert!(
                idr < keys.len(),
                "{name}: every keyframe is an IDR: not an open GOP"
            );
        } else {
            assert_eq!(idr, keys.len(), "{name}: keyframes that are not IDR");
        }
        let reference = run(&tags, SamplingMode::All, 0.0, Shortcuts::EXACT).hashed;
        assert_eq!(
            reference.len(),
            30 * SECONDS as usize,
            "{name}: full decode"
        );

        let all = run(&tags, SamplingMode::All, 2.0, defaults);
        assert_exact(&format!("{name}, all"), &reference, &all);
        // A publisher who knows B-frames are skipped could show the clip in them alone: the
        // sampler must land on them as often as on any frame.
        let b_frames = unreferenced(&tags);
        if b_frames.len() * 3 > reference.len() {
            for (mode, r) in [
                ("all", &all),
                ("hybrid", &run(&tags, SamplingMode::Hybrid, 2.0, defaults)),
            ] {
                let sampled = r.hashed.keys().filter(|t| b_frames.contains(t)).count();
                assert!(
                    sampled * 6 >= r.hashed.len(),
                    "{name}, {mode}: {sampled} of {} samples are unreferenced frames, which are {} of {}",
                    r.hashed.len(),
                    b_frames.len(),
                    reference.len()
                );
            }
        }
        if name != "no B-frames" {
            assert!(
                all.decoded < reference.len() as u64 * 9 / 10,
                "{name}: all mode decoded {} of {} frames: unreferenced B-frames were decoded",
                all.decoded,
                reference.len()
            );
        }

        let hybrid = run(&tags, SamplingMode::Hybrid, 2.0, defaults);
        assert_exact(&format!("{name}, hybrid"), &reference, &hybrid);
        // Frames after a GOP's last sample are dropped at the next IDR: with no B-frames that
        // is all hybrid saves, and it must. With B-frames both modes skip the unreferenced ones
        // and the counts differ by where the random samples fell. An open GOP's keyframes are
        // not IDR: there hybrid must drop nothing (its hashes are exact above).
        if name == "no B-frames" {
            assert!(
                hybrid.decoded < all.decoded,
                "{name}: hybrid decoded {} frames, all {}",
                hybrid.decoded,
                all.decoded
            );
        } else {
            assert!(
                hybrid.decoded <= all.decoded + all.decoded / 10,
                "{name}: hybrid decoded {} frames, all {}",
                hybrid.decoded,
                all.decoded
            );
        }
        // Each keyframe is hashed, unless a sample lies within half an interval of it.
        for (pts, _) in &keys {
            let near = hybrid.hashed.range(pts - 250..=pts + 250).next().is_some();
            assert!(
                near,
                "{name}: hybrid hashed nothing near the keyframe at {pts} ms"
            );
        }
        // Keyframes mode probes between keyframes at random points: each probe decodes its GOP
        // from the keyframe and hashes what a full decode shows there.
        let key_times: Vec<i64> = keys.iter().map(|(pts, _)| *pts).collect();
        let mut probes = 0;
        for _ in 0..8 {
            let keyframes = run(&tags, SamplingMode::Keyframes, 2.0, defaults);
            assert_same_hashes_of(&format!("{name}, keyframes"), &reference, &keyframes, 2);
            probes += keyframes
                .hashed
                .keys()
                .filter(|t| !key_times.contains(t))
                .count();
        }
        assert!(probes > 0, "{name}: no probe between keyframes in 8 runs");
    }
}

/// Messages a decoder may hold a picture back for B-frame reordering (x264 with 2 B-frames).
const REORDER: u64 = 4;

/// Hybrid mode holds frames undecoded until a sample needs them; the delay buffer lets a message
/// out only once inspection has *settled* it. A held frame must never count as settled: a
/// frame hashed later would be one the platform already has.
#[test]
fn held_frames_are_not_settled_until_judged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tags = clip(dir.path(), "held.flv", &["-bf", "2"]);
    let stats = InspectStats::default();
    let mut inspector = StreamInspector::new(InspectSettings {
        fps: 2.0,
        mode: SamplingMode::Hybrid,
        letterbox: None,
        frame_in_frame: None,
        ..InspectSettings::default()
    });
    let t0 = Instant::now();
    // Each message's clock (wall ms) is its index; a hashed frame's is its carrying message's.
    let mut clock_of_pts = BTreeMap::new();
    let (mut lagging, mut hashed, mut paused) = (0, 0, false);
    let mut settled = 0;
    for (i, (ts, payload)) in tags.iter().enumerate() {
        let clock = hashgate::relay::stats::CoverageClock {
            wall_ms: i as u64 + 1,
            stream_ms: u64::from(*ts),
        };
        if let Ok(VideoTag::Frame {
            composition_time, ..
        }) = parse_video_tag(payload)
        {
            clock_of_pts.insert(i64::from(*ts) + i64::from(composition_time), clock.wall_ms);
        }
        let video = TappedVideo {
            timestamp: *ts,
            payload: payload.clone(),
            arrived: t0 + Duration::from_millis(u64::from(*ts)),
            clock,
        };
        let mut out = Vec::new();
        inspector.handle(&video, &stats, &mut |f| {
            if let Finding::Frame(f) = f {
                out.push(f.stream_time_ms);
            }
        });
        for pts in out {
            // The decoder holds pictures back a few messages for B-frame reordering (in every
            // mode); a held frame would be up to half a second of messages behind.
            let carried = clock_of_pts[&pts];
            assert!(
                carried + REORDER >= settled,
                "the frame at {pts} ms (message {carried}) was hashed after inspection had \
                 settled up to message {settled}"
            );
            hashed += 1;
        }
        settled = inspector.settled().wall_ms;
        assert!(settled <= clock.wall_ms);
        if settled < clock.wall_ms {
            lagging += 1;
            if !paused && i >= tags.len() / 2 {
                paused = true;
                // The video pauses here and the delay line asks inspection to finish what it
                // holds: everything handled so far is settled at once.
                inspector.settle(&stats, &mut |f| {
                    if let Finding::Frame(f) = f {
                        assert!(clock_of_pts[&f.stream_time_ms] > settled);
                        hashed += 1;
                    }
                });
                settled = inspector.settled().wall_ms;
                assert_eq!(settled, clock.wall_ms, "settle() left frames held");
            }
        }
    }
    assert!(hashed >= 15, "{hashed} frames hashed");
    assert!(
        lagging > 100,
        "hybrid held frames after only {lagging} messages"
    );
    inspector.flush(&stats, t0, &mut |_| {});
    assert_eq!(
        inspector.settled().wall_ms,
        tags.len() as u64,
        "the end of the stream settles everything"
    );
}

/// The frame_num guard reads what x264 writes: IDRs are 0, every other frame is the last
/// reference frame's number plus one (mod 2^bits), and reference frames count up.
#[test]
fn frame_numbers_are_read_from_real_slices() {
    use hashgate::inspect::params::{frame_nals, h264_frame_num, h264_frame_num_syntax};
    let dir = tempfile::tempdir().expect("tempdir");
    let tags = clip(dir.path(), "numbers.flv", &["-bf", "3"]);
    let (mut syntax, mut length_size) = (None, 4);
    let (mut last_ref, mut checked, mut unreferenced) = (None::<u32>, 0, 0);
    for (_, payload) in &tags {
        match parse_video_tag(payload) {
            Ok(VideoTag::SequenceStart { config, .. }) => {
                let config = avc_config(&config).expect("avcC");
                length_size = config.length_size;
                syntax = h264_frame_num_syntax(&config);
            }
            Ok(VideoTag::Frame { data, .. }) => {
                let sx = syntax.expect("an SPS before the first frame");
                let num = h264_frame_num(length_size, &data, sx).expect("a slice");
                let nals = frame_nals(false, length_size, &data).expect("clean framing");
                let max = 1u32 << sx.bits;
                if nals.idr {
                    assert_eq!(num, 0, "an IDR's frame_num");
                } else {
                    let last = last_ref.expect("a reference before");
                    assert_eq!(num, (last + 1) % max, "frame_num after reference {last}");
                    checked += 1;
                }
                if nals.unreferenced {
                    unreferenced += 1;
                } else {
                    last_ref = Some(num);
                }
            }
            _ => {}
        }
    }
    assert!(
        checked > 250 && unreferenced > 30,
        "{checked} frames, {unreferenced} unreferenced"
    );
}

/// A publisher who has read hybrid mode sends, every two-thirds of a second, a packet flagged as
/// a keyframe holding a well-formed IDR slice that names a PPS the stream never declared.
/// FFmpeg (hashgate's and the platform's) refuses it and keeps its references, so the frames
/// hybrid holds are still needed: dropping them would leave every later sample decoded against
/// the wrong pictures. Hashes must stay those of a full decode.
#[test]
fn a_fake_idr_does_not_make_hybrid_drop_needed_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clean = clip(dir.path(), "fake-idr.flv", &["-bf", "0"]);
    // IDR NAL (ref_idc 3, type 5): first_mb 0, slice type 7 (I), PPS id 5, then filler bits.
    let fake_slice = [0x65u8, 0x88, 0x34, 0x12, 0x34, 0x56];
    let mut body = vec![0x17, 0x01, 0, 0, 0];
    body.extend_from_slice(&(fake_slice.len() as u32).to_be_bytes());
    body.extend_from_slice(&fake_slice);
    let fake = Bytes::from(body);
    let mut tags = Vec::new();
    for (i, (ts, payload)) in clean.iter().enumerate() {
        tags.push((*ts, payload.clone()));
        if i % 20 == 10 {
            tags.push((*ts, fake.clone()));
        }
    }
    let length_size = 4;
    assert!(
        is_idr(false, length_size, &fake[5..]),
        "the fake passes the IDR checks"
    );
    let reference = run(&tags, SamplingMode::All, 0.0, Shortcuts::EXACT).hashed;
    // (FFmpeg withholds some pictures around each refused IDR; the platform's decoder does the
    // same, and what it shows is the reference. So samples may lie further apart than usual:
    // only the hashes are compared.)
    assert!(
        reference.len() > 100,
        "{} pictures decoded",
        reference.len()
    );
    for _ in 0..3 {
        let hybrid = run(&tags, SamplingMode::Hybrid, 2.0, Shortcuts::default());
        assert_same_hashes("fake IDRs, hybrid", &reference, &hybrid);
    }
}
