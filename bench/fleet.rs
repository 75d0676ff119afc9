//! Block propagation across a fleet: three cluster members (registries joined to one real
//! redis-server, as `hashgate serve` joins them) in one process; instance A cuts a key with a
//! block, and the time until B and C both hold the block (their publish-time check would refuse
//! the key from then on) is measured, over 1,000 cuts. Also the Redis commands each cut cost.
//!
//! Run with `cargo bench --bench fleet` (needs redis-server; `bench/fleet.sh` runs it with the
//! load measurements).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashgate::cluster::{Cluster, ClusterSettings, FloodLimits};
use hashgate::events::Events;
use hashgate::registry::StreamRegistry;

const CUTS: usize = 1000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn commands_processed(port: u16) -> u64 {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", "stats"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let port = free_port();
    let dir = std::env::temp_dir();
    let mut redis = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (make deps installs it)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let members: Vec<(Arc<StreamRegistry>, Arc<Cluster>)> = ["A", "B", "C"]
        .iter()
        .map(|name| {
            let registry = Arc::new(StreamRegistry::new());
            let settings = ClusterSettings {
                redis: Some(format!("redis://127.0.0.1:{port}")),
                instance: Some((*name).to_owned()),
                ..ClusterSettings::default()
            };
            let cluster = Cluster::join(
                settings,
                registry.clone(),
                Arc::new(Events::disabled()),
                FloodLimits {
                    streams: 5,
                    window: Duration::from_secs(600),
                },
            )
            .expect("join");
            (registry, cluster)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !members.iter().all(|(_, c)| c.is_up()) {
        assert!(Instant::now() < deadline, "the members did not connect");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = commands_processed(port);
    let mut latencies = Vec::with_capacity(CUTS);
    for i in 0..CUTS {
        let key = format!("bench-{i}");
        let started = Instant::now();
        members[0]
            .0
            .cut(&key, "bench", Duration::from_secs(300), Duration::ZERO);
        loop {
            if members[1..]
                .iter()
                .all(|(r, _)| r.blocked_for(&key).is_some())
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "cut {i} never arrived"
            );
            std::thread::sleep(Duration::from_micros(20));
        }
        latencies.push(started.elapsed());
    }
    let after = commands_processed(port);
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "block propagation A -> B and C over {CUTS} cuts: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1])
    );
    println!(
        "Redis commands per cut (all three members, heartbeats included): {:.1}",
        after.saturating_sub(before) as f64 / CUTS as f64
    );
    for (_, c) in &members {
        runtime.block_on(c.leave(Duration::from_secs(1)));
    }
    drop(members);
    let _ = redis.kill();
    let _ = redis.wait();
}
