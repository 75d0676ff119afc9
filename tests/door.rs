//! The door against a flood: one address (127.0.0.2) opens 1,500 idle and half-handshaken
//! sockets while broadcasters on 127.0.0.1 publish through the same hashgate to nginx-rtmp.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// Raises this process's open-file limit: the flood holds 1,500 sockets.
fn enough_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain struct filled and read.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    assert!(limit.rlim_cur >= 2048, "open-file limit {}", limit.rlim_cur);
}

/// The runtime [`connect_from`] dials on.
fn dialer() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Connects to `port` from `source` (another loopback address).
fn connect_from(runtime: &tokio::runtime::Runtime, source: &str, port: u16) -> Option<TcpStream> {
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket
            .bind(format!("{source}:0").parse::<SocketAddr>().ok()?)
            .ok()?;
        let stream = tokio::time::timeout(Duration::from_secs(2), socket.connect(loopback(port)))
            .await
            .ok()?
            .ok()?;
        stream.into_std().ok()
    })
}

#[test]
fn one_address_flooding_idle_sockets_cannot_lock_broadcasters_out() {
    enough_files();
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let hashgate = Hashgate::start(
        dir.path(),
        &format!(
            "{}[limits]\nmax_connections = 1000\nmax_connections_per_address = 64\n\
             connection_rate_per_address = 10\nconnection_burst_per_address = 40\n\
             publish_timeout = \"4s\"\n",
            upstream(&nginx.url())
        ),
    );
    let runtime = dialer();

    // 1,500 sockets from one address: half silent, half stopping inside the handshake.
    let mut flood = Vec::new();
    for i in 0..1500 {
        if let Some(mut s) = connect_from(&runtime, "127.0.0.2", hashgate.port) {
            if i % 2 == 1 {
                write_quietly(&mut s, &[3]);
                write_quietly(&mut s, &[0u8; 500]);
            }
            flood.push(s);
        }
    }
    assert!(
        flood.len() > 1000,
        "the kernel accepted the flood's sockets"
    );

    // Twelve broadcasters during the flood: every one gets through.
    let clip = source_clip();
    let publishers: Vec<_> = (0..12)
        .map(|i| ffmpeg_publish(clip, &hashgate.url(&format!("cam{i}"))))
        .collect();
    for publisher in publishers {
        publish_ok(publisher, Duration::from_secs(60));
    }
    for i in 0..12 {
        nginx.wait_closed(&format!("cam{i}"), Duration::from_secs(20));
        assert!(!packets(&nginx.recording(&format!("cam{i}"))).is_empty());
    }

    // The flood got at most its share, and hashgate freed it: every flood socket is closed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !flood.is_empty() && Instant::now() < deadline {
        flood.retain_mut(|s| !closed_now(s));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(flood.len(), 0, "idle and half-open sockets are let go");
    let log = hashgate.log();
    assert!(
        log.contains("limit connection_rate_per_address")
            || log.contains("limit max_connections_per_address"),
        "{log}"
    );
    assert!(log.contains("publish_timeout") || log.contains("handshake_timeout"));
    assert!(
        !log.contains("limit max_connections = "),
        "the total was never reached"
    );
}

/// Whether the peer has closed `stream` (without blocking).
fn closed_now(stream: &mut TcpStream) -> bool {
    use std::io::Read;
    stream.set_nonblocking(true).ok();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    stream.set_nonblocking(false).ok();
    closed
}

#[test]
fn many_addresses_filling_the_door_with_idlers_are_evicted_for_broadcasters() {
    enough_files();
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    // A long publish_timeout: eviction, not the timeout, must let the broadcasters in.
    let hashgate = Hashgate::start(
        dir.path(),
        &format!(
            "{}[limits]\nmax_connections = 200\nmax_connections_per_address = 30\n\
             connection_rate_per_address = 0\npublish_timeout = \"60s\"\n",
            upstream(&nginx.url())
        ),
    );
    let runtime = dialer();
    // Ten addresses, 30 idle sockets each: 300 for 200 slots.
    let mut flood = Vec::new();
    for a in 10..20 {
        for _ in 0..30 {
            if let Some(s) = connect_from(&runtime, &format!("127.0.0.{a}"), hashgate.port) {
                flood.push(s);
            }
        }
    }
    wait_until("the door to fill", Duration::from_secs(10), || {
        hashgate
            .log()
            .contains("limit max_connections = 200 reached")
    });
    // Idlers become evictable after two seconds of not publishing.
    std::thread::sleep(Duration::from_millis(2500));
    let clip = source_clip();
    let publishers: Vec<_> = (0..6)
        .map(|i| ffmpeg_publish(clip, &hashgate.url(&format!("late{i}"))))
        .collect();
    for publisher in publishers {
        publish_ok(publisher, Duration::from_secs(60));
    }
    for i in 0..6 {
        nginx.wait_closed(&format!("late{i}"), Duration::from_secs(20));
        assert!(!packets(&nginx.recording(&format!("late{i}"))).is_empty());
    }
    let log = hashgate.log();
    assert!(log.contains("evicted: the door was full"), "{log}");
    drop(flood);
}
