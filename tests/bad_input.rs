//! Hostile and broken clients: each is refused with a log line naming the reason, while a real
//! ffmpeg stream relayed at the same time arrives complete, and so does one after them.
//!
//! The clients here speak raw bytes (a plain handshake and hand-built chunks), independent of
//! the code under test.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Does a plain handshake: C0+C1 of zeros, reads S0+S1+S2, echoes S1 as C2.
fn handshaken(port: u16) -> TcpStream {
    let mut s = raw_connect(port);
    let mut c0c1 = vec![0u8; 1537];
    c0c1[0] = 3;
    s.write_all(&c0c1).expect("C0+C1");
    let mut reply = vec![0u8; 1 + 2 * 1536];
    s.read_exact(&mut reply).expect("S0+S1+S2");
    assert_eq!(reply[0], 3, "S0 version");
    s.write_all(&reply[1..1537]).expect("C2");
    s
}

/// A type 0 chunk on chunk stream `csid` with a one-chunk body.
fn chunk(csid: u8, type_id: u8, stream_id: u32, body: &[u8]) -> Vec<u8> {
    let len = body.len() as u32;
    let mut out = vec![csid, 0, 0, 0];
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn amf_string(s: &str) -> Vec<u8> {
    let mut out = vec![0x02];
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    out
}

fn amf_number(n: f64) -> Vec<u8> {
    let mut out = vec![0x00];
    out.extend_from_slice(&n.to_be_bytes());
    out
}

struct Case {
    name: &'static str,
    /// Text the log line about this client must contain.
    reason: &'static str,
    run: fn(u16) -> TcpStream,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "random bytes instead of a handshake",
            reason: "not RTMP: version byte",
            run: |port| {
                let mut s = raw_connect(port);
                let junk: Vec<u8> = (0..4000u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 0x80)
                    .collect();
                write_quietly(&mut s, &junk);
                s
            },
        },
        Case {
            name: "handshake that stops half-way",
            reason: "limit handshake_timeout",
            run: |port| {
                let mut s = raw_connect(port);
                write_quietly(&mut s, &[3]);
                write_quietly(&mut s, &[0u8; 700]);
                s
            },
        },
        Case {
            name: "silent after the handshake",
            reason: "limit publish_timeout",
            run: handshaken,
        },
        Case {
            name: "chunk size 0",
            reason: "invalid chunk size 0",
            run: |port| {
                let mut s = handshaken(port);
                write_quietly(&mut s, &chunk(2, 1, 0, &0u32.to_be_bytes()));
                s
            },
        },
        Case {
            name: "chunk size 2^31",
            reason: "invalid chunk size 2147483648",
            run: |port| {
                let mut s = handshaken(port);
                write_quietly(&mut s, &chunk(2, 1, 0, &(1u32 << 31).to_be_bytes()));
                s
            },
        },
        Case {
            name: "message header claiming 16 MB",
            reason: "exceeds limit max_message_size",
            run: |port| {
                let mut s = handshaken(port);
                let mut header = vec![3, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0];
                header.extend_from_slice(&[0u8; 128]);
                write_quietly(&mut s, &header);
                s
            },
        },
        Case {
            name: "flood of chunk stream ids",
            reason: "limit max_chunk_streams",
            run: |port| {
                let mut s = handshaken(port);
                let mut flood = Vec::new();
                for id in 0..=255u8 {
                    // Two-byte basic header (csid 64 + id), type 0, empty message of type 0x30.
                    flood.extend_from_slice(&[0, id, 0, 0, 0, 0, 0, 0, 0x30, 0, 0, 0, 0]);
                }
                write_quietly(&mut s, &flood);
                s
            },
        },
        Case {
            name: "publish before connect",
            reason: "publish before connect",
            run: |port| {
                let mut s = handshaken(port);
                let mut body = amf_string("publish");
                body.extend(amf_number(5.0));
                body.push(0x05);
                body.extend(amf_string("sneaky"));
                body.extend(amf_string("live"));
                write_quietly(&mut s, &chunk(8, 20, 1, &body));
                s
            },
        },
        Case {
            name: "AMF garbage",
            reason: "malformed",
            run: |port| {
                let mut s = handshaken(port);
                write_quietly(
                    &mut s,
                    &chunk(3, 20, 0, &[0x02, 0xFF, 0xFF, 0x01, 0x7E, 0x33]),
                );
                s
            },
        },
    ]
}

#[test]
fn bad_clients_are_refused_and_good_streams_keep_flowing() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let config = format!(
        "{}[limits]\nhandshake_timeout = \"1s\"\nidle_timeout = \"2s\"\npublish_timeout = \"2s\"\n",
        upstream(&nginx.url())
    );
    let hashgate = Hashgate::start(dir.path(), &config);
    let source = source_clip();

    // A real stream is live while the bad clients hit the same process.
    let during = ffmpeg_publish(source, &hashgate.url("during"));
    wait_until("the live stream to start", Duration::from_secs(10), || {
        nginx.recording("during").exists()
    });
    for case in cases() {
        let started = Instant::now();
        let mut stream = (case.run)(hashgate.port);
        assert!(
            closed_by_peer(&mut stream),
            "{}: hashgate did not close the connection",
            case.name
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}: closed only after {:?}",
            case.name,
            started.elapsed()
        );
        wait_until(case.name, Duration::from_secs(5), || {
            hashgate.log().contains(case.reason)
        });
    }
    publish_ok(during, Duration::from_secs(60));

    // And one more after all of them.
    publish_ok(
        ffmpeg_publish(source, &hashgate.url("after")),
        Duration::from_secs(60),
    );
    nginx.wait_closed("during", Duration::from_secs(20));
    nginx.wait_closed("after", Duration::from_secs(20));
    assert_same_packets(source, &nginx.recording("during"));
    assert_same_packets(source, &nginx.recording("after"));

    // Each refusal is one log line that names the peer.
    let log = hashgate.log();
    for case in cases() {
        let line = log
            .lines()
            .find(|l| l.contains(case.reason))
            .unwrap_or_else(|| panic!("no log line for {}", case.name));
        assert!(line.contains("peer=127.0.0.1:"), "{}: {line}", case.name);
    }
}

#[test]
fn connection_limit_refuses_the_extra_connection_only() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let config = format!("{}[limits]\nmax_connections = 1\n", upstream(&nginx.url()));
    let hashgate = Hashgate::start(dir.path(), &config);
    let publisher = ffmpeg_publish(source_clip(), &hashgate.url("only"));
    wait_until("the stream to be live", Duration::from_secs(10), || {
        nginx.recording("only").exists()
    });
    let mut extra = raw_connect(hashgate.port);
    assert!(
        closed_by_peer(&mut extra),
        "second connection must be refused"
    );
    publish_ok(publisher, Duration::from_secs(60));
    let log = hashgate.log();
    assert!(log.contains("limit max_connections = 1 reached"), "{log}");
    nginx.wait_closed("only", Duration::from_secs(20));
    assert_same_packets(source_clip(), &nginx.recording("only"));
}

#[test]
fn platform_that_never_answers_hits_the_queue_limit() {
    let dir = temp_dir();
    // Accepts TCP and never says a word: the upstream handshake hangs, media piles up.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let holder = std::thread::spawn(move || silent.accept().map(|(s, _)| s));
    let config = format!(
        "{}connect_timeout = \"30s\"\n[limits]\nqueue_bytes = \"64KiB\"\n",
        upstream(&format!("rtmp://127.0.0.1:{silent_port}/live"))
    );
    let hashgate = Hashgate::start(dir.path(), &config);
    let started = Instant::now();
    let mut publisher = ffmpeg_publish(source_clip(), &hashgate.url("piled"));
    let status = publisher
        .wait_timeout(Duration::from_secs(20))
        .expect("publisher closed by the limit");
    assert!(!status.success());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    wait_until("the limit log line", Duration::from_secs(5), || {
        hashgate.log().contains("limit queue_bytes")
    });
    let log = hashgate.log();
    let line = log
        .lines()
        .find(|l| l.contains("limit queue_bytes"))
        .unwrap_or_default();
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    drop(holder);
}
