//! The relay against real peers: ffmpeg and GStreamer publish through the hashgate binary to a
//! real nginx-rtmp (or to `ffmpeg -listen 1`), all on 127.0.0.1.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const PUBLISH_WITHIN: Duration = Duration::from_secs(60);

#[test]
fn ffmpeg_through_hashgate_to_nginx_is_byte_identical_with_metadata() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let hashgate = Hashgate::start(dir.path(), &upstream(&nginx.url()));
    let source = source_clip();

    let publisher = ffmpeg_publish(source, &hashgate.url("clip"));
    // While the stream is live, a player on the platform sees the broadcaster's onMetaData
    // (nginx is set to `meta copy`, so this is the metadata hashgate forwarded).
    wait_until("the recording to start", Duration::from_secs(10), || {
        nginx.recording("clip").exists()
    });
    let tags = format_tags(&format!("{}/clip", nginx.url()));
    publish_ok(publisher, PUBLISH_WITHIN);
    nginx.wait_closed("clip", Duration::from_secs(20));

    assert!(
        tags.contains("title=hashgate-test-clip"),
        "metadata not forwarded: {tags:?}"
    );
    assert_same_packets(source, &nginx.recording("clip"));

    // The publisher's disconnect reached nginx as an explicit deleteStream before the TCP close.
    assert_eq!(
        nginx.session_events("clip"),
        ["publish:", "deleteStream", "disconnect"],
        "{}",
        nginx.error_log()
    );

    let hg = hashgate.log();
    assert!(hg.contains("publish") && hg.contains("unpublish"), "{hg}");
}

#[test]
fn gstreamer_rtmp2sink_publisher_arrives_complete() {
    require("gst-launch-1.0");
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let hashgate = Hashgate::start(dir.path(), &upstream(&nginx.url()));
    let source = source_clip();
    let publisher = Process::spawn(
        "gst-launch-1.0 rtmp2sink",
        Command::new("gst-launch-1.0")
            .arg("-q")
            .arg("filesrc")
            .arg(format!("location={}", source.display()))
            .args([
                "!",
                "flvdemux",
                "name=d",
                "d.video",
                "!",
                "queue",
                "!",
                "h264parse",
                "!",
                "m.video",
            ])
            .args(["d.audio", "!", "queue", "!", "aacparse", "!", "m.audio"])
            .args(["flvmux", "name=m", "streamable=true", "!", "rtmp2sink"])
            .arg(format!("location={}", hashgate.url("gst")))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    publish_ok(publisher, PUBLISH_WITHIN);
    nginx.wait_closed("gst", Duration::from_secs(20));

    // flvmux re-times and re-interleaves, so compare each stream's packet bytes in order.
    let by_stream = |packets: Vec<Packet>, stream: u32| -> Vec<(u64, String)> {
        packets
            .into_iter()
            .filter(|p| p.stream == stream)
            .map(|p| (p.size, p.md5))
            .collect()
    };
    let want = packets(source);
    let got = packets(&nginx.recording("gst"));
    for stream in [0, 1] {
        assert_eq!(
            by_stream(got.clone(), stream),
            by_stream(want.clone(), stream),
            "stream {stream} differs"
        );
    }
}

#[test]
fn ffmpeg_listen_as_platform_receives_everything() {
    let dir = temp_dir();
    let port = free_port();
    let received = dir.path().join("received.flv");
    let mut platform = Process::spawn(
        "ffmpeg -listen 1",
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-listen",
                "1",
                "-i",
            ])
            .arg(format!("rtmp://127.0.0.1:{port}/live/listen"))
            .args(["-map", "0", "-c", "copy", "-f", "flv"])
            .arg(&received)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_for_listen(port, Duration::from_secs(10));
    let hashgate = Hashgate::start(
        dir.path(),
        &upstream(&format!("rtmp://127.0.0.1:{port}/live")),
    );
    let source = source_clip();
    publish_ok(
        ffmpeg_publish(source, &hashgate.url("listen")),
        PUBLISH_WITHIN,
    );
    let status = platform
        .wait_timeout(Duration::from_secs(20))
        .expect("the listening ffmpeg ends when hashgate unpublishes");
    assert!(status.success(), "listening ffmpeg failed: {status}");

    // The listening ffmpeg remuxes (its own header), but every packet must be there, unchanged.
    let want = packets(source);
    let got = packets(&received);
    assert_eq!(got.len(), want.len());
    for (w, g) in want.iter().zip(&got) {
        assert_eq!((w.stream, w.size, &w.md5), (g.stream, g.size, &g.md5));
    }
    let tags = format_tags(&received.display().to_string());
    assert!(
        tags.contains("title=hashgate-test-clip"),
        "onMetaData lost: {tags:?}"
    );
}

#[test]
fn ten_concurrent_publishers_all_arrive_complete() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let hashgate = Hashgate::start(dir.path(), &upstream(&nginx.url()));
    let source = source_clip();
    let publishers: Vec<Process> = (0..10)
        .map(|i| ffmpeg_publish(source, &hashgate.url(&format!("multi-{i}"))))
        .collect();
    for publisher in publishers {
        publish_ok(publisher, PUBLISH_WITHIN);
    }
    for i in 0..10 {
        nginx.wait_closed(&format!("multi-{i}"), Duration::from_secs(20));
    }
    for i in 0..10 {
        assert_same_packets(source, &nginx.recording(&format!("multi-{i}")));
    }
}

#[test]
fn upstream_refusal_fails_the_publisher_quickly() {
    let dir = temp_dir();
    // Nothing listens on this port: the upstream connect is refused.
    let dead = free_port();
    let hashgate = Hashgate::start(
        dir.path(),
        &upstream(&format!("rtmp://127.0.0.1:{dead}/live")),
    );
    let started = Instant::now();
    let mut publisher = ffmpeg_publish(source_clip(), &hashgate.url("refused"));
    let status = publisher
        .wait_timeout(Duration::from_secs(30))
        .expect("publisher must be closed, not left hanging");
    assert!(!status.success(), "ffmpeg should report the failure");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed only after {:?}: the 4 s clip was relayed into the void",
        started.elapsed()
    );
    let log = hashgate.log();
    assert!(
        log.contains("upstream failed") && log.contains(&dead.to_string()),
        "{log}"
    );
}

#[test]
fn platform_dying_mid_stream_closes_the_publisher() {
    let dir = temp_dir();
    let mut nginx = Nginx::start(dir.path());
    let hashgate = Hashgate::start(dir.path(), &upstream(&nginx.url()));
    let mut publisher = ffmpeg_publish(source_clip(), &hashgate.url("dies"));
    wait_until("the recording to start", Duration::from_secs(10), || {
        nginx.recording("dies").exists()
    });
    nginx.stop();
    let status = publisher
        .wait_timeout(Duration::from_secs(30))
        .expect("publisher closed after the platform died");
    assert!(!status.success(), "ffmpeg should see the stream fail");
    wait_until("the failure in the log", Duration::from_secs(5), || {
        hashgate.log().contains("upstream failed")
    });
}

#[test]
fn duplicate_stream_key_is_refused_while_live() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let hashgate = Hashgate::start(dir.path(), &upstream(&nginx.url()));
    let first = ffmpeg_publish(source_clip(), &hashgate.url("dup"));
    wait_until(
        "the first stream to be live",
        Duration::from_secs(10),
        || nginx.recording("dup").exists(),
    );
    let mut second = ffmpeg_publish(source_clip(), &hashgate.url("dup"));
    let status = second
        .wait_timeout(Duration::from_secs(20))
        .expect("second refused");
    assert!(!status.success());
    publish_ok(first, PUBLISH_WITHIN);
    nginx.wait_closed("dup", Duration::from_secs(20));
    assert!(hashgate.log().contains("already publishing"));
    assert_same_packets(source_clip(), &nginx.recording("dup"));
}

#[test]
fn sigterm_lets_streams_drain_then_ends_them_cleanly() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());

    // A drain timeout longer than the stream: it finishes whole, then the process exits.
    let config = format!(
        "{}[limits]\ndrain_timeout = \"20s\"\n",
        upstream(&nginx.url())
    );
    let mut patient = Hashgate::start(dir.path(), &config);
    let publisher = ffmpeg_publish(source_clip(), &patient.url("finishes"));
    wait_until(
        "the stream to reach the platform",
        Duration::from_secs(15),
        || nginx.recording("finishes").exists(),
    );
    let _ = Command::new("kill")
        .arg(patient.process.pid().to_string())
        .status();
    publish_ok(publisher, Duration::from_secs(30));
    let status = patient
        .process
        .wait_timeout(Duration::from_secs(30))
        .expect("exits after draining");
    assert!(status.success(), "exit status {status}");
    nginx.wait_closed("finishes", Duration::from_secs(10));
    assert_same_packets(source_clip(), &nginx.recording("finishes"));

    // A drain timeout shorter than the stream: ended at the deadline, with an explicit unpublish
    // upstream, and the broadcaster told.
    let events = dir.path().join("drain-events.jsonl");
    let config = format!(
        "{}[limits]\ndrain_timeout = \"1s\"\n[events]\nlog = \"{}\"\n",
        upstream(&nginx.url()),
        events.display()
    );
    let mut hurried = Hashgate::start(dir.path(), &config);
    let mut publisher = ffmpeg_publish(source_clip(), &hurried.url("draining"));
    wait_until(
        "the stream to reach the platform",
        Duration::from_secs(15),
        || nginx.recording("draining").exists(),
    );
    let status = hurried
        .process
        .terminate(Duration::from_secs(20))
        .expect("hashgate exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let broadcaster = publisher
        .wait_timeout(Duration::from_secs(10))
        .expect("publisher closed");
    assert!(
        !broadcaster.success(),
        "the broadcaster sees the stream end early"
    );
    nginx.wait_closed("draining", Duration::from_secs(10));
    assert_eq!(
        nginx.session_events("draining"),
        ["publish:", "deleteStream", "disconnect"],
        "{}",
        nginx.error_log()
    );
    assert!(hurried.log().contains("shutting down"));
    // The event log was flushed before the exit: the stream's end is in it.
    let ended: Vec<_> = read_events(&events)
        .into_iter()
        .filter(|e| e["event"] == "unpublish" && e["stream"] == "draining")
        .collect();
    assert_eq!(ended.len(), 1, "unpublish event written before exit");
    assert_eq!(ended[0]["reason"], "shutdown");
}
