//! The video tap, with the relay run in-process so the test can be the inspection side: a tap
//! that keeps up sees every video message; a tap that never reads must not slow or damage the
//! stream the platform receives.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hashgate::config::Config;
use hashgate::registry::StreamRegistry;
use hashgate::relay::tap::{video_frame_kind, VideoFrameKind};
use hashgate::relay::{self, Relay, StreamInfo, TapProvider, VideoTap};

/// Opens a draining tap for key "watched" and a stuck one (capacity 1, never read) for "stuck".
struct TestTaps {
    seen: Arc<Mutex<Vec<VideoFrameKind>>>,
    stuck: Mutex<HashMap<String, tokio::sync::mpsc::Receiver<hashgate::relay::TappedVideo>>>,
}

impl TapProvider for TestTaps {
    fn open(&self, stream: &StreamInfo) -> Option<VideoTap> {
        match stream.stream_key.as_str() {
            "watched" => {
                let (tap, mut rx) = VideoTap::channel(4096);
                let seen = self.seen.clone();
                tokio::spawn(async move {
                    while let Some(video) = rx.recv().await {
                        if let Ok(mut seen) = seen.lock() {
                            seen.push(video_frame_kind(&video.payload));
                        }
                    }
                });
                Some(tap)
            }
            "stuck" => {
                let (tap, rx) = VideoTap::channel(1);
                // Kept alive and never read: the channel stays full.
                self.stuck
                    .lock()
                    .ok()?
                    .insert(stream.stream_key.clone(), rx);
                Some(tap)
            }
            _ => None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_sees_every_video_message_and_a_stuck_tap_costs_nothing() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let config = Config::parse(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}",
            upstream(&nginx.url())
        ),
        Path::new("test.toml"),
    )
    .expect("config");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let taps = Arc::new(TestTaps {
        seen: seen.clone(),
        stuck: Mutex::new(HashMap::new()),
    });
    let relay = Arc::new(
        Relay::new(config.relay_settings(), Arc::new(StreamRegistry::new()))
            .expect("relay")
            .with_taps(taps),
    );
    let listener = relay::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let running = tokio::spawn(relay.clone().run(listener));

    let source = source_clip();
    let url = |key: &str| format!("rtmp://127.0.0.1:{port}/live/{key}");
    let (watched, stuck) = (url("watched"), url("stuck"));
    let publish = tokio::task::spawn_blocking(move || {
        let a = ffmpeg_publish(source, &watched);
        let b = ffmpeg_publish(source, &stuck);
        publish_ok(a, Duration::from_secs(60));
        publish_ok(b, Duration::from_secs(60));
    });
    publish.await.expect("publishers");
    {
        let nginx = &nginx;
        tokio::task::block_in_place(|| {
            nginx.wait_closed("watched", Duration::from_secs(20));
            nginx.wait_closed("stuck", Duration::from_secs(20));
        });
    }
    relay.shutdown();
    running.await.expect("join").expect("relay ran");

    // Both streams reached the platform intact, whatever their taps did.
    assert_same_packets(source, &nginx.recording("watched"));
    assert_same_packets(source, &nginx.recording("stuck"));

    // The watched tap got the sequence header first, then one message per video frame.
    let frames = packets(source).iter().filter(|p| p.stream == 0).count();
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.first(), Some(&VideoFrameKind::SequenceHeader));
    let coded = seen
        .iter()
        .filter(|k| matches!(k, VideoFrameKind::Keyframe | VideoFrameKind::Interframe))
        .count();
    assert_eq!(coded, frames);
    assert_eq!(
        seen.iter()
            .filter(|k| **k == VideoFrameKind::Keyframe)
            .count(),
        2
    );
}
