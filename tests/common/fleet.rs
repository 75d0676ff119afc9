//! A fleet on loopback: redis-server, three hashgate instances sharing it, HAProxy in TCP mode in
//! front of them (health-checked on `/healthz`), nginx-rtmp as the platform.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;

/// redis-server without persistence (a restart loses everything, like a cache node).
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    process: Option<Process>,
}

impl Redis {
    pub fn start(dir: &Path) -> Redis {
        require("redis-server");
        let mut redis = Redis {
            port: free_port(),
            dir: dir.to_owned(),
            process: None,
        };
        redis.restart();
        redis
    }

    /// Starts it (again) on the same port.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.join(format!("redis-{}.log", self.port)))
            .expect("redis log");
        self.process = Some(Process::spawn(
            "redis-server",
            Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .arg("--dir")
                .arg(&self.dir)
                .stdout(log)
                .stderr(Stdio::null()),
        ));
        wait_for_listen(self.port, Duration::from_secs(10));
    }

    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli` output for `args`.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// HAProxy in TCP mode balancing RTMP over `backends` (rtmp port, admin port), each checked
/// with `GET /healthz` on its admin port every 300 ms.
pub struct Haproxy {
    pub port: u16,
    _process: Process,
}

impl Haproxy {
    pub fn start(dir: &Path, backends: &[(u16, u16)]) -> Haproxy {
        require("haproxy");
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, (rtmp, admin))| {
                format!(
                    "  server g{i} 127.0.0.1:{rtmp} check port {admin} inter 300ms fall 1 rise 1\n"
                )
            })
            .collect();
        let conf = format!(
            "global\n  maxconn 2000\n\
             defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 120s\n  timeout server 120s\n\
             frontend rtmp\n  bind 127.0.0.1:{port}\n  default_backend gates\n\
             backend gates\n  balance roundrobin\n  option httpchk\n  http-check send meth GET uri /healthz hdr Host 127.0.0.1\n  http-check expect status 200\n{servers}"
        );
        let path = dir.join(format!("haproxy-{port}.cfg"));
        std::fs::write(&path, conf).expect("haproxy.cfg");
        let process = Process::spawn(
            "haproxy",
            Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_for_listen(port, Duration::from_secs(10));
        Haproxy {
            port,
            _process: process,
        }
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }
}

/// Three instances named A, B and C on one Redis, behind one HAProxy.
pub struct Fleet {
    pub nginx: Nginx,
    pub redis: Redis,
    pub gates: Vec<Hashgate>,
    pub events: Vec<PathBuf>,
    pub haproxy: Haproxy,
}

pub const NAMES: [&str; 3] = ["A", "B", "C"];

impl Fleet {
    /// `extra` is more config for every instance (lists, verdict settings).
    pub fn start(dir: &Path, extra: &str) -> Fleet {
        Fleet::start_each(dir, &[extra, extra, extra])
    }

    /// Like [`Fleet::start`] with config of its own for each instance.
    pub fn start_each(dir: &Path, extras: &[&str; 3]) -> Fleet {
        let nginx = Nginx::start(dir);
        let redis = Redis::start(dir);
        let mut gates = Vec::new();
        let mut events = Vec::new();
        for (name, extra) in NAMES.into_iter().zip(extras) {
            let log = dir.join(format!("events-{name}.jsonl"));
            gates.push(Hashgate::start(
                dir,
                &format!(
                    "{}{extra}\n[events]\nlog = \"{}\"\n[cluster]\nredis = \"{}\"\ninstance = \"{name}\"\nheartbeat = \"300ms\"\nevents_stream = \"hashgate:events\"\n",
                    upstream(&nginx.url()),
                    log.display(),
                    redis.url(),
                ),
            ));
            events.push(log);
        }
        let fleet_ports: Vec<(u16, u16)> = gates.iter().map(|g| (g.port, g.admin_port)).collect();
        let haproxy = Haproxy::start(dir, &fleet_ports);
        let fleet = Fleet {
            nginx,
            redis,
            gates,
            events,
            haproxy,
        };
        for g in &fleet.gates {
            wait_until(
                "the instance to join the fleet",
                Duration::from_secs(10),
                || g.log().contains("cluster connected"),
            );
        }
        fleet
    }

    /// The index of the instance that carries `key` (from each one's `GET /streams`).
    pub fn carrier(&self, key: &str) -> Option<usize> {
        self.gates.iter().position(|g| {
            // An instance killed by the test no longer answers.
            try_get(g.admin_port, "/streams")
                .is_some_and(|body| body.contains(&format!("\"key\":\"{key}\"")))
        })
    }

    /// Waits until some instance carries `key`.
    pub fn wait_carrier(&self, key: &str) -> usize {
        let mut found = None;
        wait_until(
            &format!("an instance to carry {key}"),
            Duration::from_secs(15),
            || {
                found = self.carrier(key);
                found.is_some()
            },
        );
        found.unwrap_or_default()
    }
}

/// `hashgate replay` of `file` to `url` in the background (looped: until killed).
pub fn replay_looped(file: &Path, url: &str) -> Process {
    Process::spawn(
        "hashgate replay",
        Command::new(env!("CARGO_BIN_EXE_hashgate"))
            .arg("replay")
            .arg("--loop")
            .arg(file)
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// `hashgate replay` once: its exit code (0 complete, 2 cut or refused) and output.
pub fn replay_once(file: &Path, url: &str) -> (i32, String) {
    let out = Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_hashgate"))
        .args(["replay", "--linger", "2s"])
        .arg(file)
        .arg(url)
        .output()
        .expect("hashgate replay");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `GET path` on 127.0.0.1:`port`: the body of a 200, `None` when nothing answers.
pub fn try_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.starts_with("HTTP/1.1 200")
        .then(|| text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()))
        .flatten()
}
