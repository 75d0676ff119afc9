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

/// stunnel terminating TLS on a free port and forwarding to `backend`.
fn stunnel(dir: &Path, pki: &Pki, backend: u16) -> (Process, u16) {
    require("stunnel4");
    let port = free_port();
    let conf = dir.join("stunnel.conf");
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
