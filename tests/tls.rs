//! RTMPS on both legs: the platform behind a stunnel TLS terminator with a CA made by the test
//! (given to hashgate as `ca_file`), and broadcasters publishing `rtmps://` to hashgate.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A throwaway CA and a certificate for `localhost` / 127.0.0.1 signed by it.
fn make_pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "hashgate test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    let cert = params
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("server cert");
    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).expect("write CA");
    std::fs::write(&pki.cert, cert.pem()).expect("write cert");
    std::fs::write(&pki.key, key.serialize_pem()).expect("write key");
    pki
}

/// A self-signed certificate for localhost as `openssl req -x509` makes it (with the CA flag
/// set: what webpki refuses as an end entity), its key, and its key's SHA-256 pin computed by
/// openssl.
fn openssl_self_signed(dir: &Path) -> (Pki, String) {
    require("openssl");
    let cert = dir.join("self.pem");
    let key = dir.join("self.key");
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl req -x509 failed");
    let pin = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | base64",
            cert.display()
        ))
        .output()
        .expect("run openssl");
    let pin = String::from_utf8_lossy(&pin.stdout).trim().to_owned();
    assert_eq!(pin.len(), 44, "a base64 SHA-256: {pin:?}");
    (
        Pki {
            ca: cert.clone(),
            cert,
            key,
        },
        pin,
    )
}

/// stunnel terminating TLS on a free port and forwarding to `backend`.
fn stunnel(dir: &Path, pki: &Pki, backend: u16) -> (Process, u16) {
    require("stunnel4");
    let port = free_port();
    let conf = dir.join(format!("stunnel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\n[rtmps]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend}\ncert = {}\nkey = {}\n",
            pki.cert.display(),
            pki.key.display()
        ),
    )
    .expect("stunnel.conf");
    let process = Process::spawn(
        "stunnel4",
        Command::new("stunnel4")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_for_port(port, Duration::from_secs(10));
    (process, port)
}

#[test]
fn rtmps_upstream_with_private_ca() {
    let dir = temp_dir();
    let pki = make_pki(dir.path());
    let nginx = Nginx::start(dir.path());
    let (_stunnel, tls_port) = stunnel(dir.path(), &pki, nginx.port);
    let config = format!(
        "[upstream]\nurl = \"rtmps://localhost:{tls_port}/live\"\nca_file = \"{}\"\n",
        pki.ca.display()
    );
    let hashgate = Hashgate::start(dir.path(), &config);
    publish_ok(
        ffmpeg_publish(source_clip(), &hashgate.url("secure")),
        Duration::from_secs(60),
    );
    nginx.wait_closed("secure", Duration::from_secs(20));
    assert_same_packets(source_clip(), &nginx.recording("secure"));
}

#[test]
fn rtmps_upstream_with_untrusted_certificate_is_refused() {
    let dir = temp_dir();
    let pki = make_pki(dir.path());
    let other = make_pki(&{
        let d = dir.path().join("other");
        std::fs::create_dir_all(&d).expect("dir");
        d
    });
    let nginx = Nginx::start(dir.path());
    let (_stunnel, tls_port) = stunnel(dir.path(), &pki, nginx.port);
    // Trusting a different CA: the platform's certificate must not be accepted.
    let config = format!(
        "[upstream]\nurl = \"rtmps://localhost:{tls_port}/live\"\nca_file = \"{}\"\n",
        other.ca.display()
    );
    let hashgate = Hashgate::start(dir.path(), &config);
    let mut publisher = ffmpeg_publish(source_clip(), &hashgate.url("mitm"));
    let status = publisher
        .wait_timeout(Duration::from_secs(30))
        .expect("publisher closed");
    assert!(!status.success());
    let log = hashgate.log();
    assert!(
        log.contains("upstream failed") && log.contains("TLS"),
        "{log}"
    );
    assert!(
        log.contains("not signed by a trusted CA") && log.contains("pin_sha256"),
        "the refusal says what to configure: {log}"
    );
    assert!(
        !nginx.recording("mitm").exists(),
        "nothing may reach the platform"
    );
}

#[test]
fn rtmps_listener_accepts_tls_broadcasters() {
    let dir = temp_dir();
    let pki = make_pki(dir.path());
    let nginx = Nginx::start(dir.path());
    let config = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n{}",
        pki.cert.display(),
        pki.key.display(),
        upstream(&nginx.url())
    );
    let hashgate = Hashgate::start(dir.path(), &config);
    let url = format!("rtmps://127.0.0.1:{}/live/tls-in", hashgate.port);
    publish_ok(ffmpeg_publish(source_clip(), &url), Duration::from_secs(60));
    nginx.wait_closed("tls-in", Duration::from_secs(20));
    assert_same_packets(source_clip(), &nginx.recording("tls-in"));

    // `hashgate replay` over rtmps, trusting the test's CA: every frame arrives.
    let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .arg("replay")
        .arg(source_clip())
        .arg(format!(
            "rtmps://localhost:{}/live/tls-replay",
            hashgate.port
        ))
        .args(["--as-fast-as-possible", "--linger", "0s", "--ca-file"])
        .arg(&pki.ca)
        .output()
        .expect("hashgate replay");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    nginx.wait_closed("tls-replay", Duration::from_secs(20));
    assert_eq!(
        video_md5s(&nginx.recording("tls-replay")),
        video_md5s(source_clip())
    );
}

#[test]
fn self_signed_platform_is_trusted_by_its_certificate_or_its_key_pin_and_nothing_else() {
    let dir = temp_dir();
    let (pki, pin) = openssl_self_signed(dir.path());
    let nginx = Nginx::start(dir.path());
    let (_stunnel, tls_port) = stunnel(dir.path(), &pki, nginx.port);
    let url = format!("rtmps://localhost:{tls_port}/live");

    // The certificate itself as ca_file: webpki alone refuses it (CaUsedAsEndEntity).
    let by_file = Hashgate::start(
        dir.path(),
        &format!(
            "[upstream]\nurl = \"{url}\"\nca_file = \"{}\"\n",
            pki.ca.display()
        ),
    );
    publish_ok(
        ffmpeg_publish(source_clip(), &by_file.url("by-file")),
        Duration::from_secs(60),
    );
    nginx.wait_closed("by-file", Duration::from_secs(20));
    assert_same_packets(source_clip(), &nginx.recording("by-file"));

    // Its key's pin, as openssl computes it, with no CA at all.
    let by_pin = Hashgate::start(
        dir.path(),
        &format!("[upstream]\nurl = \"{url}\"\npin_sha256 = [\"sha256//{pin}\"]\n"),
    );
    publish_ok(
        ffmpeg_publish(source_clip(), &by_pin.url("by-pin")),
        Duration::from_secs(60),
    );
    nginx.wait_closed("by-pin", Duration::from_secs(20));
    assert_same_packets(source_clip(), &nginx.recording("by-pin"));

    // Another key's pin: refused, and the log gives the pin of the key it saw.
    let wrong = Hashgate::start(
        dir.path(),
        &format!(
            "[upstream]\nurl = \"{url}\"\npin_sha256 = [\"{}\"]\n",
            "ab".repeat(32)
        ),
    );
    let mut publisher = ffmpeg_publish(source_clip(), &wrong.url("wrong-pin"));
    let status = publisher
        .wait_timeout(Duration::from_secs(30))
        .expect("publisher closed");
    assert!(!status.success());
    let log = wrong.log();
    assert!(
        log.contains(&format!("sha256//{pin}")) && log.contains("is not one of"),
        "{log}"
    );
    assert!(!nginx.recording("wrong-pin").exists());

    // `hashgate replay` trusts the same way.
    for (key, flag, value) in [
        ("replay-file", "--ca-file", pki.ca.display().to_string()),
        ("replay-pin", "--pin-sha256", pin.clone()),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
            .args([
                "replay",
                "--as-fast-as-possible",
                "--linger",
                "0s",
                flag,
                &value,
            ])
            .arg(source_clip())
            .arg(format!("{url}/{key}"))
            .output()
            .expect("run replay");
        assert!(
            out.status.success(),
            "replay {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        nginx.wait_closed(key, Duration::from_secs(20));
        assert!(!packets(&nginx.recording(key)).is_empty(), "{key} arrived");
    }
}

#[test]
fn a_platform_reading_a_trickle_ends_the_stream_once_it_is_too_far_behind_live() {
    let dir = temp_dir();
    let (pki, _) = openssl_self_signed(dir.path());
    let nginx = Nginx::start(dir.path());
    let (_stunnel, tls_port) = stunnel(dir.path(), &pki, nginx.port);
    // 20 KB/s towards the platform, for a stream of several Mbit/s.
    let trickle = Trickle::start(tls_port, 20_000);
    let events = dir.path().join("events.jsonl");
    let hashgate = Hashgate::start(
        dir.path(),
        &format!(
            "[upstream]\nurl = \"rtmps://localhost:{}/live\"\nca_file = \"{}\"\n\
             [limits]\nmax_upstream_lag = \"3s\"\nidle_timeout = \"30s\"\n\
             [events]\nlog = \"{}\"\n",
            trickle.port,
            pki.ca.display(),
            events.display()
        ),
    );
    // A live encoder: two minutes of noisy video, encoded as it is sent.
    require("ffmpeg");
    let started = std::time::Instant::now();
    let mut publisher = Process::spawn(
        "ffmpeg",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=25,noise=alls=40:allf=t",
            ])
            .args([
                "-t",
                "120",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-b:v",
                "3M",
            ])
            .args(["-f", "flv"])
            .arg(hashgate.url("slow-platform"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let status = publisher
        .wait_timeout(Duration::from_secs(90))
        .expect("the broadcaster is let go long before its two minutes end");
    let took = started.elapsed();
    assert!(!status.success(), "ended by the relay, not by the clip");
    let log = hashgate.log();
    assert!(
        log.contains("behind live") && log.contains("limits.max_upstream_lag"),
        "{log}"
    );
    let logged = read_events(&events);
    let ended = of_kind(&logged, "unpublish");
    assert_eq!(ended.len(), 1, "{logged:?}");
    assert_eq!(ended[0]["reason"], "upstream");
    eprintln!("stalled platform: stream ended after {took:?}");
    drop(trickle);
}
