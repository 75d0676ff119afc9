//! Real peers for the integration tests: nginx-rtmp as the platform, the hashgate binary, ffmpeg
//! and GStreamer as broadcasters. Everything listens on 127.0.0.1, on free ports, and is stopped
//! by PID when the handle drops.

#![allow(dead_code)]

pub mod attacks;
pub mod crafted;
pub mod fleet;
pub mod gate;
pub mod sound;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on 127.0.0.1:{port} after {within:?}");
}

/// Waits until a socket listens on 127.0.0.1:`port`, without connecting to it (a one-shot
/// server such as `ffmpeg -listen 1` would take the probe for its client).
pub fn wait_for_listen(port: u16, within: Duration) {
    let needle = format!(":{port:04X} ");
    wait_until(&format!("a listener on port {port}"), within, || {
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && format!("{} ", f[1]).ends_with(&needle) && f[3] == "0A"
            })
    });
}

/// Polls `condition` until it holds; panics with `what` after `within`.
pub fn wait_until(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

/// Panics with an actionable message when a tool `make test` installs is missing.
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: run the tests with `make test`, which installs it"
    );
}

/// A child process killed (by PID) when dropped.
pub struct Process {
    pub name: &'static str,
    pub child: Child,
}

impl Process {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Process {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process { name, child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `within` for the exit.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits for the exit, killing the process after `within`.
    pub fn wait_timeout(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A private temporary directory.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hashgate-test-")
        .tempdir()
        .expect("temp dir")
}

/// nginx with the RTMP module: application `live` records everything it receives to `rec/`.
pub struct Nginx {
    pub port: u16,
    pub dir: PathBuf,
    process: Process,
}

impl Nginx {
    pub fn start(dir: &Path) -> Nginx {
        require("nginx");
        let port = free_port();
        let dir = dir.join(format!("nginx-{port}"));
        std::fs::create_dir_all(dir.join("rec")).expect("nginx dirs");
        let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
        assert!(
            Path::new(module).exists(),
            "{module} missing: run `make test`, which installs libnginx-mod-rtmp"
        );
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
load_module {module};
events {{ worker_connections 512; }}
rtmp {{
  server {{
    listen 127.0.0.1:{port};
    max_message 16M;
    application live {{
      live on;
      meta copy;
      record all;
      record_path {dir}/rec;
      record_unique off;
    }}
  }}
}}
"#,
            dir = dir.display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let process = Process::spawn(
            "nginx",
            Command::new("nginx")
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_for_port(port, Duration::from_secs(10));
        Nginx { port, dir, process }
    }

    /// `rtmp://127.0.0.1:PORT/live`.
    pub fn url(&self) -> String {
        format!("rtmp://127.0.0.1:{}/live", self.port)
    }

    /// Recording of stream `key`.
    pub fn recording(&self, key: &str) -> PathBuf {
        self.dir.join("rec").join(format!("{key}.flv"))
    }

    /// Waits until the connection that published `key` has disconnected from nginx, so its
    /// recording is complete (with hashgate's delay buffer that is after the broadcaster ends).
    pub fn wait_closed(&self, key: &str, within: Duration) {
        let published = format!("publish: name='{key}'");
        wait_until(&format!("nginx to close the stream {key}"), within, || {
            let log = self.error_log();
            let Some(conn) = log
                .lines()
                .find(|l| l.contains(&published))
                .and_then(|l| l.split_whitespace().find(|w| w.starts_with('*')))
            else {
                return false;
            };
            let closed = format!("{conn} disconnect");
            log.lines().any(|l| l.contains(&closed))
        });
    }

    /// The first three of `publish:`, `deleteStream`, `disconnect` that nginx logged for the
    /// connection that published `key`, in order: an explicit unpublish logs deleteStream
    /// before the disconnect (nginx logs one after it too when the peer just hangs up).
    pub fn session_events(&self, key: &str) -> Vec<&'static str> {
        let log = self.error_log();
        let published = format!("publish: name='{key}'");
        let Some(conn) = log
            .lines()
            .find(|l| l.contains(&published))
            .and_then(|l| l.split_whitespace().find(|w| w.starts_with('*')))
        else {
            return Vec::new();
        };
        let conn = format!("{conn} ");
        log.lines()
            .filter(|l| l.contains(&conn))
            .filter_map(|l| {
                ["publish:", "deleteStream", "disconnect"]
                    .into_iter()
                    .find(|e| l.contains(e))
            })
            .take(3)
            .collect()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }
}

/// The hashgate binary under test, running `serve` with a generated config.
pub struct Hashgate {
    pub port: u16,
    pub admin_port: u16,
    pub log: PathBuf,
    pub process: Process,
}

impl Hashgate {
    /// Starts hashgate with `[server] listen` on a free port plus `extra` config text.
    pub fn start(dir: &Path, extra: &str) -> Hashgate {
        Hashgate::start_with_admin(dir, extra, "127.0.0.1", "")
    }

    /// Like [`Hashgate::start`], with the admin API on a free port of `admin_host` plus
    /// `admin_extra` (more `[admin]` keys). Tests only ever connect to it through loopback.
    pub fn start_with_admin(
        dir: &Path,
        extra: &str,
        admin_host: &str,
        admin_extra: &str,
    ) -> Hashgate {
        Hashgate::start_with_admin_env(dir, extra, admin_host, admin_extra, &[])
    }

    /// Like [`Hashgate::start_with_admin`], with `env` set for the process.
    pub fn start_with_admin_env(
        dir: &Path,
        extra: &str,
        admin_host: &str,
        admin_extra: &str,
        env: &[(&str, &str)],
    ) -> Hashgate {
        let port = free_port();
        let admin_port = free_port();
        let config = dir.join(format!("hashgate-{port}.toml"));
        let log = dir.join(format!("hashgate-{port}.log"));
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n[admin]\nlisten = \"{admin_host}:{admin_port}\"\n{admin_extra}"
        );
        std::fs::write(&config, text).expect("write config");
        let log_file = std::fs::File::create(&log).expect("log file");
        let process = Process::spawn(
            "hashgate",
            Command::new(env!("CARGO_BIN_EXE_hashgate"))
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "hashgate=debug")
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(log_file),
        );
        // Not a probe connection: it would show up in the log the tests read.
        wait_for_listen(port, Duration::from_secs(10));
        wait_for_listen(admin_port, Duration::from_secs(10));
        Hashgate {
            port,
            admin_port,
            log,
            process,
        }
    }

    /// Publishing URL for `key`.
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// An HTTP/1.1 request to 127.0.0.1:`port`: the status and the body.
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    http_with(port, method, path, &format!("Host: 127.0.0.1\r\n{auth}"))
}

/// An HTTP/1.1 request with `headers` (each line ending in CRLF) as given: no Host is added.
pub fn http_with(port: u16, method: &str, path: &str, headers: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(loopback(port)).expect("connect to the admin API");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked bodies are not decoded here: {head}"
    );
    (status, body.to_owned())
}

/// Upstream section pointing at `url`.
pub fn upstream(url: &str) -> String {
    format!("[upstream]\nurl = \"{url}\"\n")
}

/// The shared test clip: 4 s of 640x360 H.264 (keyframe every 2 s, B-frames) and AAC, as FLV,
/// generated once per test binary with the ffmpeg CLI.
pub fn source_clip() -> &'static Path {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| {
        require("ffmpeg");
        let dir = std::env::temp_dir().join(format!("hashgate-clip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("clip dir");
        let path = dir.join("source.flv");
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args([
                "-t", "4", "-c:v", "libx264", "-preset", "veryfast", "-g", "60",
            ])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k"])
            .args(["-metadata", "title=hashgate-test-clip", "-f", "flv"])
            .arg(&path)
            .status()
            .expect("run ffmpeg");
        assert!(status.success(), "ffmpeg could not make the test clip");
        path
    })
}

/// One packet as `ffmpeg -f framemd5 -c copy` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub stream: u32,
    pub dts: i64,
    pub pts: i64,
    pub size: u64,
    pub md5: String,
}

/// Every packet of `file`, without decoding.
pub fn packets(file: &Path) -> Vec<Packet> {
    try_packets(file).unwrap_or_else(|e| panic!("framemd5 of {} failed: {e}", file.display()))
}

/// Every packet of `file`, or why ffmpeg could not read it (e.g. a recording that never got
/// a frame).
pub fn try_packets(file: &Path) -> Result<Vec<Packet>, String> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(file)
        .args(["-map", "0", "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            Packet {
                stream: f[0].parse().expect("stream"),
                dts: f[1].parse().expect("dts"),
                pts: f[2].parse().expect("pts"),
                size: f[4].parse().expect("size"),
                md5: f[5].to_owned(),
            }
        })
        .collect())
}

/// Format tags (onMetaData fields) of a file or URL, via ffprobe.
pub fn format_tags(input: &str) -> String {
    let out = Command::new("timeout")
        .args([
            "15",
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format_tags",
            "-of",
            "compact",
        ])
        .arg(input)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ffmpeg -re -i FILE -c copy -f flv URL` (a broadcaster at real-time pace).
pub fn ffmpeg_publish(file: &Path, url: &str) -> Process {
    require("ffmpeg");
    Process::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
            .arg(file)
            .args(["-c", "copy", "-f", "flv"])
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

/// Runs a publisher to its end and asserts it succeeded.
pub fn publish_ok(mut publisher: Process, within: Duration) {
    let status = publisher
        .wait_timeout(within)
        .unwrap_or_else(|| panic!("{} did not finish within {within:?}", publisher.name));
    let mut err = String::new();
    if let Some(mut stderr) = publisher.child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    assert!(
        status.success(),
        "{} failed ({status}): {err}",
        publisher.name
    );
}

/// The md5 of every video packet of `file`, in order.
pub fn video_md5s(file: &Path) -> Vec<String> {
    packets(file)
        .into_iter()
        .filter(|p| p.stream == 0)
        .map(|p| p.md5)
        .collect()
}

/// Asserts that `recording` holds exactly the packets of `source`: same count, same bytes, same
/// timestamps, the first keyframe included.
pub fn assert_same_packets(source: &Path, recording: &Path) {
    assert!(
        recording.exists(),
        "no recording at {}",
        recording.display()
    );
    let want = packets(source);
    let got = packets(recording);
    assert!(!want.is_empty());
    assert_eq!(
        got.len(),
        want.len(),
        "packet count differs (source vs recording)"
    );
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w, g, "packet {i} differs");
    }
}

/// Opens a raw TCP connection to hashgate.
pub fn raw_connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to hashgate");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
}

/// Whether the peer closed `stream` (EOF or reset) within its read timeout.
pub fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Writes, ignoring errors (the peer may have closed already).
pub fn write_quietly(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes);
}

/// Socket address of a port on loopback.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Encodes `seconds` of a lavfi `source` (e.g. `testsrc2=size=640x360:rate=30`) with x264 into
/// `path` (container from the extension), with `extra` ffmpeg arguments before the output.
pub fn lavfi_clip(path: &Path, source: &str, seconds: u32, extra: &[&str]) {
    require("ffmpeg");
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            source,
        ])
        .args([
            "-t",
            &seconds.to_string(),
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .args(extra)
        .arg(path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {}", path.display());
}

/// The video tags of an FLV file, as (timestamp ms, tag body): what RTMP carries for each.
pub fn flv_video_tags(path: &Path) -> Vec<(u32, bytes::Bytes)> {
    let data = std::fs::read(path).expect("read flv");
    if data.len() < 9 {
        // nginx opened the recording and got nothing to write into it.
        return Vec::new();
    }
    let mut pos = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize + 4;
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        if data[pos] == 9 && pos + 11 + size <= data.len() {
            tags.push((
                ts,
                bytes::Bytes::copy_from_slice(&data[pos + 11..pos + 11 + size]),
            ));
        }
        pos += 11 + size + 4;
    }
    tags
}

/// A synthetic re-stream: `restream.mp4` is benign video (0-2 s), then a distinctive clip that
/// stands in for known content (2-5 s), then benign video again (5-7 s); `benign.mp4` has no
/// clip; `known.tsv` is the clip's hash list, made with `hashgate hash --fps 2`.
pub struct KnownClip {
    pub restream: PathBuf,
    pub benign: PathBuf,
    pub list: PathBuf,
}

/// Second at which the known clip starts in `restream.mp4`.
pub const CLIP_START_S: f64 = 2.0;

pub fn known_clip_fixture(dir: &Path) -> KnownClip {
    known_clip_fixture_with(dir, "")
}

/// The same, with `transform` (an ffmpeg filter such as `hflip`, or empty) applied to the known
/// clip where it plays in the re-stream: a re-broadcaster mirroring footage to dodge matching.
pub fn known_clip_fixture_with(dir: &Path, transform: &str) -> KnownClip {
    known_clip_fixture_from(dir, "mandelbrot=size=640x360:rate=30", transform)
}

/// The same with the known clip made by the lavfi `source` (640x360, 30 fps).
pub fn known_clip_fixture_from(dir: &Path, source: &str, transform: &str) -> KnownClip {
    require("ffmpeg");
    let known = dir.join("known.mp4");
    lavfi_clip(&known, source, 3, &["-r", "30"]);
    let benign = dir.join("benign.mp4");
    lavfi_clip(&benign, "testsrc2=size=640x360:rate=30", 6, &["-r", "30"]);
    let restream = dir.join(if transform.is_empty() {
        "restream.mp4".to_owned()
    } else {
        format!("restream-{transform}.mp4")
    });
    let known_filter = if transform.is_empty() {
        String::new()
    } else {
        format!(",{transform}")
    };
    let filter = format!("[0:v]trim=0:2,setpts=PTS-STARTPTS[a];[1:v]setpts=PTS-STARTPTS{known_filter}[b];[0:v]trim=2:4,setpts=PTS-STARTPTS[c];[a][b][c]concat=n=3:v=1[v]");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&benign)
        .arg("-i")
        .arg(&known)
        .args([
            "-filter_complex",
            &filter,
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args(["-pix_fmt", "yuv420p", "-r", "30", "-g", "30"])
        .arg(&restream)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg could not make the re-stream");
    let list = dir.join("known.tsv");
    hash_list(&known, &list);
    KnownClip {
        restream,
        benign,
        list,
    }
}

/// Writes the list `hashgate hash --fps 2 clip` makes to `list` (panics when it fails).
pub fn hash_list(clip: &Path, list: &Path) {
    hash_into(&["--fps", "2"], clip, list);
}

/// Writes what `hashgate hash ARGS clip` prints to `list` (panics when it fails).
pub fn hash_into(args: &[&str], clip: &Path, list: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .arg("hash")
        .args(args)
        .arg(clip)
        .output()
        .expect("hashgate hash");
    assert!(
        out.status.success(),
        "hashgate hash {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(list, &out.stdout).expect("list");
}

/// Benign streams showing a test card, and a list that (wrongly) holds the card: every entry
/// of `hashgate hash --fps 2 card.flv` is the same picture at another second. Returns the
/// 6 s card video (FLV) and the list.
pub fn test_card_list(dir: &Path) -> (PathBuf, PathBuf) {
    let card = dir.join("card.flv");
    lavfi_clip(
        &card,
        "smptebars=size=640x360:rate=30",
        6,
        &["-g", "30", "-f", "flv"],
    );
    let list = dir.join("card.tsv");
    hash_list(&card, &list);
    (card, list)
}

/// What `hashgate scan` prints for `video` with `config` and `extra` arguments; panics with its
/// error output when it fails.
pub fn hashgate_scan(config: &Path, video: &Path, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .arg("scan")
        .args(extra)
        .arg("--config")
        .arg(config)
        .arg(video)
        .output()
        .expect("hashgate scan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The events of one kind (`"cut"`, `"match"`, ...).
pub fn of_kind<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// What became of one of the streams [`publish_all`] published.
pub struct Published {
    /// Its stream key.
    pub key: String,
    /// How the publisher exited (a cut makes ffmpeg fail).
    pub status: ExitStatus,
    /// The stream's events, once its unpublish event was written.
    pub events: Vec<serde_json::Value>,
    /// The platform's recording of it (nginx-rtmp), closed.
    pub recording: PathBuf,
}

impl Published {
    /// The stream's events of one kind.
    pub fn of(&self, kind: &str) -> Vec<&serde_json::Value> {
        of_kind(&self.events, kind)
    }
}

/// Publishes every (key, file) to `hashgate` at once with ffmpeg, and waits for each to end:
/// the publisher's exit, its unpublish event in `log`, nginx-rtmp closing its recording.
pub fn publish_all(
    files: &[(String, PathBuf)],
    hashgate: &Hashgate,
    nginx: &Nginx,
    log: &Path,
) -> Vec<Published> {
    let mut publishers: Vec<_> = files
        .iter()
        .map(|(key, file)| ffmpeg_publish(file, &hashgate.url(key)))
        .collect();
    let mut out = Vec::new();
    for ((key, _), publisher) in files.iter().zip(publishers.iter_mut()) {
        let status = publisher
            .wait_timeout(Duration::from_secs(40))
            .expect("publisher finished");
        let mine = |e: &serde_json::Value| e["stream"] == key.as_str();
        wait_until("the unpublish event", Duration::from_secs(20), || {
            read_events(log)
                .iter()
                .any(|e| mine(e) && e["event"] == "unpublish")
        });
        nginx.wait_closed(key, Duration::from_secs(20));
        out.push(Published {
            key: key.clone(),
            status,
            events: read_events(log).into_iter().filter(mine).collect(),
            recording: nginx.recording(key),
        });
    }
    out
}

/// The JSON lines of an event log written so far.
pub fn read_events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A link to the platform that reads a trickle: accepts one connection on a free loopback port
/// and forwards what it reads to `backend` at about `bytes_per_second` (the platform's answers
/// go back at full speed). Its receive buffer is kept small, so the slowness reaches the
/// sender within seconds rather than after megabytes of kernel buffering. Stops when dropped.
pub struct Trickle {
    /// Where to connect instead of the platform.
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Trickle {
    /// Starts forwarding to 127.0.0.1:`backend`.
    pub fn start(backend: u16, bytes_per_second: usize) -> Trickle {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind trickle");
        let small: libc::c_int = 8 * 1024;
        // SAFETY: setting an int socket option on a socket we own.
        unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&small as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let port = listener.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let Ok(server) = TcpStream::connect(loopback(backend)) else {
                return;
            };
            let (mut client_back, mut server_back) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server_back, &mut client_back);
            });
            let (mut from, mut to) = (client, server);
            let slice = (bytes_per_second / 10).max(1);
            let mut buf = vec![0u8; slice];
            while !flag.load(Ordering::Relaxed) {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = to.shutdown(std::net::Shutdown::Both);
            let _ = from.shutdown(std::net::Shutdown::Both);
        });
        Trickle { port, stop }
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Python's `http.server` serving `dir` on a free loopback port.
pub fn http_server(dir: &Path) -> (Process, u16) {
    require("python3");
    let port = free_port();
    let process = Process::spawn(
        "python3 -m http.server",
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_for_listen(port, Duration::from_secs(10));
    (process, port)
}

/// Runs `hashgate serve` with `config` (written to `file`), which must refuse to start within
/// a minute: its standard error, with the reason.
pub fn serve_refused(file: &Path, config: &str) -> String {
    std::fs::write(file, config).expect("config");
    let out = Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_hashgate"))
        .args(["serve", "--config"])
        .arg(file)
        .output()
        .expect("hashgate serve");
    assert!(!out.status.success(), "serve started with {config}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
