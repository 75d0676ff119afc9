//! Relay benchmark: latency added per media message, CPU and RSS per stream, first-GOP loss —
//! hashgate next to an nginx-rtmp `push` relay, in one run on loopback.
//!
//! The broadcaster and the platform live in this process (so one clock times every message):
//! broadcasters publish synthetic 4 Mbit/s H.264-shaped video (30 fps, a keyframe every 2 s) and
//! AAC-shaped audio, each message carrying its sequence number; the platform records when each
//! arrives. Paths: direct (broadcaster → platform, the baseline), via hashgate, via nginx.
//!
//! Run with `bench/relay.sh` (or `cargo bench --bench relay -- [SECONDS]`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hashgate::rtmp::chunk::DecoderLimits;
use hashgate::rtmp::client::{PublishTarget, UpstreamPublisher};
use hashgate::rtmp::connection::Connection;
use hashgate::rtmp::handshake;
use hashgate::rtmp::message::{kind, Message};
use hashgate::rtmp::server::{PublisherEvent, ServerSession};
use hashgate::rtmp::url::RtmpUrl;
use tokio::net::TcpListener;

const BITRATE: usize = 4_000_000;
const FPS: u64 = 30;
const GOP_FRAMES: u64 = 60;
const AUDIO_EVERY_MS: u64 = 23;

/// Arrival instants per (stream key, sequence number).
type Arrivals = Arc<Mutex<HashMap<(String, u64), Instant>>>;

fn payload(video: bool, keyframe: bool, seq: u64, size: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(size.max(16));
    if video {
        b.put_slice(&[if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0]);
    } else {
        b.put_slice(&[0xAF, 1]);
    }
    b.put_u64(seq);
    b.resize(size.max(b.len()), 0x5A);
    b.freeze()
}

/// A platform that accepts any publish and timestamps every media message's arrival.
async fn platform(listener: TcpListener, arrivals: Arrivals) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            if handshake::accept(&mut tcp, Duration::from_secs(5))
                .await
                .is_err()
            {
                return;
            }
            let mut session =
                ServerSession::new(Connection::new(Box::new(tcp), DecoderLimits::default()));
            let Ok(request) = session.wait_for_publish().await else {
                return;
            };
            if session.accept_publish(&request).await.is_err() {
                return;
            }
            while let Ok(PublisherEvent::Media(msg)) = session.next_event().await {
                let now = Instant::now();
                let at = if msg.type_id == kind::VIDEO { 5 } else { 2 };
                if let Some(raw) = msg.payload.get(at..at + 8) {
                    let seq = u64::from_be_bytes(raw.try_into().unwrap_or_default());
                    if let Ok(mut a) = arrivals.lock() {
                        a.insert((request.stream_key.clone(), seq), now);
                    }
                }
                let _ = session.flush().await;
            }
        });
    }
}

/// Publishes for `seconds`; returns the send instant of every message by sequence number.
async fn broadcaster(url: String, key: String, seconds: u64, stagger_us: u64) -> Vec<Instant> {
    let target = PublishTarget {
        url: RtmpUrl::parse(&url).expect("url"),
        stream_key: key,
        publish_type: "live".into(),
        fourcc_list: None,
    };
    let mut up = UpstreamPublisher::publish(
        &target,
        None,
        DecoderLimits::default(),
        Duration::from_secs(5),
    )
    .await
    .expect("publish to the relay");
    let frame_bytes = BITRATE / 8 / FPS as usize;
    let mut sent = Vec::new();
    // Real broadcasters are not frame-synchronised: spread the streams over one frame interval.
    tokio::time::sleep(Duration::from_micros(stagger_us)).await;
    let start = Instant::now();
    let header = Message {
        csid: 6,
        timestamp: 0,
        type_id: kind::VIDEO,
        stream_id: 1,
        payload: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 0]),
    };
    up.queue_media(&header);
    up.flush().await.expect("send");
    let total_ms = seconds * 1000;
    let mut next_video = 0u64;
    let mut next_audio = 0u64;
    let mut frame = 0u64;
    loop {
        let due = next_video.min(next_audio);
        if due >= total_ms {
            break;
        }
        tokio::time::sleep_until((start + Duration::from_millis(due)).into()).await;
        let video = next_video <= next_audio;
        let (type_id, data) = if video {
            let key = frame % GOP_FRAMES == 0;
            // Keyframes ~5x a P-frame, the GOP still averaging the bitrate.
            let size = if key {
                frame_bytes * 5
            } else {
                frame_bytes * (GOP_FRAMES as usize - 5) / (GOP_FRAMES as usize - 1)
            };
            frame += 1;
            next_video = frame * 1000 / FPS;
            (kind::VIDEO, payload(true, key, sent.len() as u64, size))
        } else {
            next_audio += AUDIO_EVERY_MS;
            (kind::AUDIO, payload(false, false, sent.len() as u64, 370))
        };
        let msg = Message {
            csid: 4,
            timestamp: due as u32,
            type_id,
            stream_id: 1,
            payload: data,
        };
        sent.push(Instant::now());
        up.queue_media(&msg);
        if up.flush().await.is_err() {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = up.unpublish().await;
    sent
}

struct Run {
    latencies_us: Vec<f64>,
    lost_at_start: usize,
    lost_total: usize,
    cpu_percent_per_stream: Option<f64>,
    rss_kib: Option<u64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn run(
    relay_url: &str,
    relay_pid: Option<u32>,
    streams: usize,
    seconds: u64,
    arrivals: &Arrivals,
    tag: &str,
) -> Run {
    let ticks_before = relay_pid.and_then(cpu_ticks);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..streams {
        let key = format!("{tag}-{i}");
        let stagger_us = i as u64 * 1_000_000 / FPS / streams as u64;
        tasks.push((
            key.clone(),
            tokio::spawn(broadcaster(relay_url.to_owned(), key, seconds, stagger_us)),
        ));
    }
    let mut rss = None;
    tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
    if let Some(pid) = relay_pid {
        rss = rss_kib(pid);
    }
    let mut sent_all = Vec::new();
    for (key, task) in tasks {
        sent_all.push((key, task.await.expect("broadcaster")));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = match (ticks_before, relay_pid.and_then(cpu_ticks)) {
        (Some(a), Some(b)) => Some((b - a) as f64 / 100.0 / elapsed * 100.0 / streams as f64),
        _ => None,
    };
    let arrivals = arrivals.lock().expect("lock");
    let mut latencies = Vec::new();
    let mut lost_at_start = 0;
    let mut lost_total = 0;
    for (key, sent) in &sent_all {
        let mut seen_first = false;
        for (seq, at) in sent.iter().enumerate() {
            match arrivals.get(&(key.clone(), seq as u64)) {
                Some(arrived) => {
                    seen_first = true;
                    latencies.push(arrived.saturating_duration_since(*at).as_secs_f64() * 1e6);
                }
                None => {
                    lost_total += 1;
                    if !seen_first {
                        lost_at_start += 1;
                    }
                }
            }
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    Run {
        latencies_us: latencies,
        lost_at_start,
        lost_total,
        cpu_percent_per_stream: cpu,
        rss_kib: rss,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("port {port} never opened");
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_hashgate(dir: &Path, platform: u16) -> (Killed, u16) {
    let port = free_port();
    let config = dir.join("hashgate.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"rtmp://127.0.0.1:{platform}/live\"\n[verdict]\ndelay = \"0s\"\n[admin]\nenabled = false\n"),
    )
    .expect("config");
    // HASHGATE_BIN: another build to measure (say, the previous commit's, side by side).
    let bin = std::env::var_os("HASHGATE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/hashgate"),
        PathBuf::from,
    );
    assert!(bin.exists(), "build first: cargo build --release");
    let child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .expect("start hashgate");
    wait_port(port);
    (Killed(child), port)
}

fn start_nginx(dir: &Path, platform: u16) -> (Killed, u16) {
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nerror_log {d}/nginx.log warn;\npid {d}/nginx.pid;\n\
             load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\nevents {{ worker_connections 512; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; max_message 16M;\n\
             application live {{ live on; push rtmp://127.0.0.1:{platform}/live; }} }} }}\n",
            d = dir.display()
        ),
    )
    .expect("nginx.conf");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    wait_port(port);
    (Killed(child), port)
}

fn report(name: &str, streams: usize, direct: &Run, r: &Run) {
    let p = |run: &Run, q| percentile(&run.latencies_us, q);
    let added = |q| (p(r, q) - p(direct, q)) / 1000.0;
    println!(
        "| {name} | {streams} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} |",
        added(0.5),
        added(0.9),
        added(0.99),
        (p(r, 1.0)) / 1000.0,
        r.lost_at_start,
        r.lost_total,
        r.cpu_percent_per_stream
            .map_or("-".into(), |c| format!("{c:.2}")),
        r.rss_kib
            .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let arrivals: Arrivals = Arc::new(Mutex::new(HashMap::new()));
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let platform_port = listener.local_addr().expect("addr").port();
    tokio::spawn(platform(listener, arrivals.clone()));
    let (_hashgate, hg_port) = start_hashgate(dir.path(), platform_port);
    let (nginx, ng_port) = start_nginx(dir.path(), platform_port);
    let (hg_pid, ng_pid) = (_hashgate.0.id(), nginx.0.id());
    let url = |port: u16| format!("rtmp://127.0.0.1:{port}/live");

    println!(
        "relay benchmark: {seconds} s per run, 4 Mbit/s streams (30 fps video + audio), loopback"
    );
    println!("latency = arrival at the platform - send by the broadcaster, per media message;");
    println!("added = relayed percentile - direct percentile (direct: broadcaster -> platform)\n");
    println!("| relay | streams | added p50 ms | added p90 ms | added p99 ms | max ms | lost at start | lost total | CPU % of a core per stream | RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for streams in [1usize, 10] {
        let direct = run(
            &url(platform_port),
            None,
            streams,
            seconds,
            &arrivals,
            &format!("direct{streams}"),
        )
        .await;
        let hg = run(
            &url(hg_port),
            Some(hg_pid),
            streams,
            seconds,
            &arrivals,
            &format!("hashgate{streams}"),
        )
        .await;
        let ng = run(
            &url(ng_port),
            Some(ng_pid),
            streams,
            seconds,
            &arrivals,
            &format!("nginx{streams}"),
        )
        .await;
        report("direct (baseline)", streams, &direct, &direct);
        report("hashgate", streams, &direct, &hg);
        report("nginx-rtmp push", streams, &direct, &ng);
        println!(
            "|   direct p50/p99/max ms: {:.3} / {:.3} / {:.3} | | | | | | | | | |",
            percentile(&direct.latencies_us, 0.5) / 1000.0,
            percentile(&direct.latencies_us, 0.99) / 1000.0,
            percentile(&direct.latencies_us, 1.0) / 1000.0
        );
    }
    drop(nginx);
}
