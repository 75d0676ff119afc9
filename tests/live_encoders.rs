//! Live encoders as broadcasters: they pace and order messages differently from a file replayed
//! with `-c copy` (metadata long before the first frame, frames released in bursts by the
//! encoder's lookahead). ffmpeg encoding with libx264 and lookahead, and GStreamer's
//! `x264enc ! flvmux ! rtmp2sink`, publish the flagged sample through hashgate (shipped
//! defaults) into nginx-rtmp. Timing proxies on both sides of hashgate note when each message
//! passes: every message is held at least the 2 s delay, and no frame of the clip reaches the
//! platform.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::attacks::sample;
use common::crafted::{holds, TimingProxy};
use common::*;
use hashgate::matcher::list::ListSettings;
use hashgate::matcher::Matcher;

/// broadcaster → `before` → hashgate → `after` → nginx-rtmp.
struct Chain {
    _dir: tempfile::TempDir,
    nginx: Nginx,
    after: TimingProxy,
    hashgate: Hashgate,
    before: TimingProxy,
    log: PathBuf,
}

impl Chain {
    fn start() -> Chain {
        let dir = temp_dir();
        let nginx = Nginx::start(dir.path());
        let after = TimingProxy::start(nginx.port);
        let log = dir.path().join("events.jsonl");
        let hashgate = Hashgate::start(
            dir.path(),
            &format!(
                "{}[[lists]]\npath = \"{}\"\n[events]\nlog = \"{}\"\n",
                upstream(&format!("rtmp://127.0.0.1:{}/live", after.port)),
                sample("flagged.pdq").display(),
                log.display()
            ),
        );
        let before = TimingProxy::start(hashgate.port);
        Chain {
            _dir: dir,
            nginx,
            after,
            hashgate,
            before,
            log,
        }
    }

    fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.before.port)
    }

    /// The stream was cut, every byte of every message was held at least the delay, nothing of
    /// the clip aired.
    fn assert_held_and_cut(&self, key: &str) {
        wait_until("the unpublish event", Duration::from_secs(20), || {
            read_events(&self.log)
                .iter()
                .any(|e| e["stream"] == key && e["event"] == "unpublish")
        });
        let events = read_events(&self.log);
        let cut = events
            .iter()
            .find(|e| e["stream"] == key && e["event"] == "cut")
            .unwrap_or_else(|| panic!("{key} was not cut:\n{}", self.hashgate.log()));
        self.nginx.wait_closed(key, Duration::from_secs(20));
        let held = holds(&self.before.seen(), &self.after.seen());
        // The clip starts 2 s in and is cut within a fraction of a second, so only what arrived
        // in the first moments airs; an encoder that sends its first seconds in one burst (as
        // GStreamer sometimes does on a busy machine) may air nothing at all before the cut.
        // Then there is no hold to measure, and the check below on the recording still holds.
        let shortest = held
            .iter()
            .map(|(_, _, d)| *d)
            .min()
            .unwrap_or(Duration::MAX);
        let first_video = self
            .before
            .seen()
            .iter()
            .find(|p| p.type_id == 9)
            .map(|p| p.first);
        let first_data = self.before.seen().first().map(|p| p.first);
        let lead = first_video
            .zip(first_data)
            .map(|(v, d)| v.saturating_duration_since(d));
        println!(
            "{key}: cut at stream {} ms ({} ms after the first counted match); {} messages \
             reached the platform, shortest hold {shortest:?}; first video {lead:?} after the \
             first message",
            cut["stream_ms"],
            cut["latency_ms"],
            held.len()
        );
        // Holds are measured from the kernel's receive timestamps of the last byte before
        // hashgate to those of the first byte after it: no slack for the test's own threads.
        assert!(
            shortest >= Duration::from_secs(2),
            "{key}: a message was held {shortest:?}, under the 2 s delay"
        );
        if held.is_empty() {
            // Nothing aired (nginx recorded no stream at all): then the cut must have been the
            // clip's, which starts 2 s in, not an early false one.
            let at = cut["stream_ms"].as_u64().unwrap_or(0);
            assert!(at >= 1900, "{key}: cut at stream {at} ms, before the clip");
            return;
        }
        let matcher =
            Matcher::load(vec![ListSettings::for_path(sample("flagged.pdq"))]).expect("list");
        let (_, frames, flagged) =
            hashgate::demo::count_flagged(&self.nginx.recording(key), &matcher).expect("decode");
        assert!(frames > 0, "{key}: the benign start reached the platform");
        assert_eq!(flagged, 0, "{key}: frames of the clip reached the platform");
    }
}

#[test]
fn ffmpeg_x264_with_lookahead_is_held_and_cut() {
    require("ffmpeg");
    let chain = Chain::start();
    let mut encoder = Process::spawn(
        "ffmpeg libx264",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
            .arg(sample("flagged.flv"))
            .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "30"])
            .args([
                "-x264-params",
                "rc-lookahead=20",
                "-c:a",
                "copy",
                "-f",
                "flv",
            ])
            .arg(chain.url("x264"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let status = encoder.wait_timeout(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| !s.success()),
        "ffmpeg must see the stream cut"
    );
    chain.assert_held_and_cut("x264");
}

#[test]
fn gstreamer_x264enc_flvmux_rtmp2sink_is_held_and_cut() {
    require("gst-launch-1.0");
    let chain = Chain::start();
    let mut encoder = Process::spawn(
        "gst-launch-1.0 x264enc",
        Command::new("gst-launch-1.0")
            .arg("-q")
            .arg("filesrc")
            .arg(format!("location={}", sample("flagged.flv").display()))
            .args(["!", "flvdemux", "name=d"])
            .args([
                "d.video",
                "!",
                "queue",
                "!",
                "decodebin",
                "!",
                "videoconvert",
            ])
            .args([
                "!",
                "x264enc",
                "speed-preset=veryfast",
                "key-int-max=30",
                "bitrate=800",
            ])
            .args(["!", "h264parse", "!", "queue", "!", "m.video"])
            .args(["d.audio", "!", "queue", "!", "aacparse", "!", "m.audio"])
            .args(["flvmux", "name=m", "streamable=true", "!", "rtmp2sink"])
            .arg(format!("location={}", chain.url("gst")))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // rtmp2sink paces by the pipeline clock, like a live source; it may end with an error or
    // simply stop sending after the cut: either way the stream ends within the file's length.
    encoder.wait_timeout(Duration::from_secs(30));
    chain.assert_held_and_cut("gst");
}
