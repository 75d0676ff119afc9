//! The RTMP handshake, server and client side.
//!
//! Two variants exist in the wild: the plain one of the RTMP 1.0 specification (C1/S1 random,
//! C2/S2 echo) and the HMAC-SHA256 "digest" one that Flash Player and Flash Media Server use and
//! that FFmpeg, OBS and most servers speak. The server answers in the variant the client chose;
//! the client offers the digest variant and accepts either answer. Every read and write has its
//! own deadline, so a peer that stops half-way costs one timeout, never a stuck task.

use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::RtmpError;

const VERSION: u8 = 3;
const PACKET: usize = 1536;
const DIGEST: usize = 32;

/// "Genuine Adobe Flash Player 001" followed by 32 constant bytes.
const PLAYER_KEY: [u8; 62] = key_with_tail(*b"Genuine Adobe Flash Player 001");
/// "Genuine Adobe Flash Media Server 001" followed by the same 32 bytes.
const SERVER_KEY: [u8; 68] = key_with_tail(*b"Genuine Adobe Flash Media Server 001");
const PLAYER_KEY_TEXT: usize = 30;
const SERVER_KEY_TEXT: usize = 36;
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
/// Version we claim as a client: the Flash Player version FFmpeg also sends.
const CLIENT_VERSION: [u8; 4] = [9, 0, 124, 2];
/// Version we claim as a server, as Flash Media Server 3.5 does.
const SERVER_VERSION: [u8; 4] = [3, 5, 1, 1];

const fn key_with_tail<const T: usize, const N: usize>(text: [u8; T]) -> [u8; N] {
    let mut key = [0u8; N];
    let mut i = 0;
    while i < T {
        key[i] = text[i];
        i += 1;
    }
    while i < N {
        key[i] = KEY_TAIL[i - T];
        i += 1;
    }
    key
}

/// Which variant a completed handshake used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    /// Plain RTMP 1.0 handshake.
    Plain,
    /// HMAC-SHA256 digest handshake.
    Digest,
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Where the digest sits in a 1536-byte packet for the scheme whose offset field is at `base`
/// (8 for scheme 1, 772 for scheme 0).
fn digest_offset(packet: &[u8], base: usize) -> usize {
    let sum: usize = packet[base..base + 4].iter().map(|&b| b as usize).sum();
    sum % 728 + base + 4
}

fn digest_of(packet: &[u8], at: usize, key: &[u8]) -> [u8; 32] {
    hmac_sha256(key, &[&packet[..at], &packet[at + DIGEST..]])
}

/// Finds a valid digest in `packet` signed with `key`, trying both schemes.
fn find_digest(packet: &[u8], key: &[u8]) -> Option<[u8; 32]> {
    [8usize, 772].into_iter().find_map(|base| {
        let at = digest_offset(packet, base);
        let expected = digest_of(packet, at, key);
        (packet[at..at + DIGEST] == expected).then_some(expected)
    })
}

fn random_packet(version: [u8; 4]) -> Vec<u8> {
    let mut packet = vec![0u8; PACKET];
    rand::thread_rng().fill_bytes(&mut packet[8..]);
    packet[4..8].copy_from_slice(&version);
    packet
}

/// Whether `answer` (S2 or C2) is signed for our digest `ours` with `full_key`.
fn answer_is_signed(answer: &[u8], full_key: &[u8], ours: &[u8; 32]) -> bool {
    let key = hmac_sha256(full_key, &[ours]);
    hmac_sha256(&key, &[&answer[..PACKET - DIGEST]])[..] == answer[PACKET - DIGEST..]
}

/// Writes the digest (scheme 1) into `packet`.
fn sign(packet: &mut [u8], key: &[u8]) -> [u8; 32] {
    let at = digest_offset(packet, 8);
    let digest = digest_of(packet, at, key);
    packet[at..at + DIGEST].copy_from_slice(&digest);
    digest
}

/// The answer packet (S2 or C2) of the digest variant: random bytes signed with a key derived
/// from the peer's digest.
fn digest_answer(full_key: &[u8], peer_digest: &[u8; 32]) -> Vec<u8> {
    let mut packet = vec![0u8; PACKET];
    rand::thread_rng().fill_bytes(&mut packet[..PACKET - DIGEST]);
    let key = hmac_sha256(full_key, &[peer_digest]);
    let signature = hmac_sha256(&key, &[&packet[..PACKET - DIGEST]]);
    packet[PACKET - DIGEST..].copy_from_slice(&signature);
    packet
}

async fn read_step<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut [u8],
    limit: Duration,
    step: &'static str,
) -> Result<(), RtmpError> {
    match tokio::time::timeout(limit, io.read_exact(buf)).await {
        Err(_) => Err(RtmpError::Timeout(step)),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(RtmpError::Handshake(format!("connection closed {step}")))
        }
        Ok(result) => result.map(|_| ()).map_err(RtmpError::from),
    }
}

async fn write_step<S: AsyncWrite + Unpin>(
    io: &mut S,
    parts: &[&[u8]],
    limit: Duration,
    step: &'static str,
) -> Result<(), RtmpError> {
    let joined = parts.concat();
    let write = async {
        io.write_all(&joined).await?;
        io.flush().await
    };
    match tokio::time::timeout(limit, write).await {
        Err(_) => Err(RtmpError::Timeout(step)),
        Ok(result) => result.map_err(RtmpError::from),
    }
}

fn check_version(version: u8) -> Result<(), RtmpError> {
    match version {
        VERSION => Ok(()),
        6 | 8 | 9 => Err(RtmpError::Handshake(format!(
            "encrypted RTMPE (version byte {version}) is not supported; use rtmps"
        ))),
        other => Err(RtmpError::Handshake(format!(
            "not RTMP: version byte 0x{other:02x}, expected 0x03"
        ))),
    }
}

/// Runs the server side: reads C0+C1, answers S0+S1+S2 in the client's variant, reads C2.
pub async fn accept<S>(io: &mut S, step_timeout: Duration) -> Result<HandshakeKind, RtmpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut c0 = [0u8; 1];
    // A peer that connects and leaves without a byte (a load balancer's health check) is not
    // an error worth a warning.
    match tokio::time::timeout(step_timeout, io.read(&mut c0)).await {
        Err(_) => return Err(RtmpError::Timeout("waiting for C0")),
        Ok(Ok(0)) => return Err(RtmpError::Closed),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e.into()),
    }
    check_version(c0[0])?;
    let mut c1 = vec![0u8; PACKET];
    read_step(io, &mut c1, step_timeout, "waiting for C1").await?;

    let client_digest = if c1[4..8] != [0; 4] {
        find_digest(&c1, &PLAYER_KEY[..PLAYER_KEY_TEXT])
    } else {
        None
    };
    let (kind, s1, s2) = match client_digest {
        Some(digest) => {
            let mut s1 = random_packet(SERVER_VERSION);
            sign(&mut s1, &SERVER_KEY[..SERVER_KEY_TEXT]);
            (
                HandshakeKind::Digest,
                s1,
                digest_answer(&SERVER_KEY, &digest),
            )
        }
        None => (HandshakeKind::Plain, random_packet([0; 4]), c1),
    };
    write_step(
        io,
        &[&[VERSION], &s1, &s2],
        step_timeout,
        "sending S0+S1+S2",
    )
    .await?;

    let mut c2 = vec![0u8; PACKET];
    read_step(io, &mut c2, step_timeout, "waiting for C2").await?;
    Ok(kind)
}

/// Runs the client side: sends C0+C1 (digest variant), reads S0+S1+S2, sends C2.
pub async fn connect<S>(io: &mut S, step_timeout: Duration) -> Result<HandshakeKind, RtmpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut c1 = random_packet(CLIENT_VERSION);
    let our_digest = sign(&mut c1, &PLAYER_KEY[..PLAYER_KEY_TEXT]);
    write_step(io, &[&[VERSION], &c1], step_timeout, "sending C0+C1").await?;

    let mut s0 = [0u8; 1];
    read_step(io, &mut s0, step_timeout, "waiting for S0").await?;
    check_version(s0[0])?;
    let mut s1 = vec![0u8; PACKET];
    read_step(io, &mut s1, step_timeout, "waiting for S1").await?;
    let mut s2 = vec![0u8; PACKET];
    read_step(io, &mut s2, step_timeout, "waiting for S2").await?;

    // A server that signed S1 expects a signed C2; one that did not expects S1 echoed.
    let server_digest = if s1[4..8] != [0; 4] {
        find_digest(&s1, &SERVER_KEY[..SERVER_KEY_TEXT])
    } else {
        None
    };
    let (kind, c2) = match server_digest {
        Some(digest) => {
            // Many servers that sign S1 still echo C1 as S2, so this is worth a note, not a
            // refusal.
            if !answer_is_signed(&s2, &SERVER_KEY, &our_digest) {
                tracing::debug!("server signed S1 but not S2");
            }
            (HandshakeKind::Digest, digest_answer(&PLAYER_KEY, &digest))
        }
        None => (HandshakeKind::Plain, s1),
    };
    write_step(io, &[&c2], step_timeout, "sending C2").await?;
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_secs(2);

    #[test]
    fn keys_are_the_published_constants() {
        assert_eq!(
            &PLAYER_KEY[..PLAYER_KEY_TEXT],
            b"Genuine Adobe Flash Player 001"
        );
        assert_eq!(
            &SERVER_KEY[..SERVER_KEY_TEXT],
            b"Genuine Adobe Flash Media Server 001"
        );
        assert_eq!(PLAYER_KEY[PLAYER_KEY_TEXT..], KEY_TAIL);
        assert_eq!(SERVER_KEY[SERVER_KEY_TEXT..], KEY_TAIL);
    }

    #[test]
    fn signed_packet_validates_and_tampering_breaks_it() {
        let mut c1 = random_packet(CLIENT_VERSION);
        let digest = sign(&mut c1, &PLAYER_KEY[..PLAYER_KEY_TEXT]);
        assert_eq!(
            find_digest(&c1, &PLAYER_KEY[..PLAYER_KEY_TEXT]),
            Some(digest)
        );
        assert_eq!(find_digest(&c1, &SERVER_KEY[..SERVER_KEY_TEXT]), None);
        c1[1000] ^= 1;
        c1[100] ^= 1;
        assert_eq!(find_digest(&c1, &PLAYER_KEY[..PLAYER_KEY_TEXT]), None);
    }

    #[tokio::test]
    async fn digest_server_signs_s1_and_s2_for_the_client() {
        let (mut a, mut b) = tokio::io::duplex(8192);
        let server = tokio::spawn(async move { accept(&mut b, STEP).await });
        let mut c1 = random_packet(CLIENT_VERSION);
        let digest = sign(&mut c1, &PLAYER_KEY[..PLAYER_KEY_TEXT]);
        a.write_all(&[3]).await.expect("C0");
        a.write_all(&c1).await.expect("C1");
        let mut reply = vec![0u8; 1 + 2 * PACKET];
        a.read_exact(&mut reply).await.expect("S0+S1+S2");
        let (s1, s2) = (&reply[1..1 + PACKET], &reply[1 + PACKET..]);
        assert!(
            find_digest(s1, &SERVER_KEY[..SERVER_KEY_TEXT]).is_some(),
            "S1 signed"
        );
        assert!(
            answer_is_signed(s2, &SERVER_KEY, &digest),
            "S2 signed for our digest"
        );
        a.write_all(&digest_answer(&PLAYER_KEY, &digest))
            .await
            .expect("C2");
        assert_eq!(
            server.await.expect("join").expect("ok"),
            HandshakeKind::Digest
        );
    }

    #[tokio::test]
    async fn client_and_server_agree_on_digest() {
        let (mut a, mut b) = tokio::io::duplex(8192);
        let server = tokio::spawn(async move { accept(&mut b, STEP).await });
        let client = connect(&mut a, STEP).await.expect("client side");
        let server = server.await.expect("join").expect("server side");
        assert_eq!(
            (client, server),
            (HandshakeKind::Digest, HandshakeKind::Digest)
        );
    }

    #[tokio::test]
    async fn plain_client_gets_plain_echo() {
        let (mut a, mut b) = tokio::io::duplex(8192);
        let server = tokio::spawn(async move { accept(&mut b, STEP).await });
        let c1 = vec![7u8; PACKET];
        a.write_all(&[3]).await.expect("write");
        a.write_all(&c1).await.expect("write");
        let mut reply = vec![0u8; 1 + 2 * PACKET];
        a.read_exact(&mut reply).await.expect("S0+S1+S2");
        assert_eq!(reply[0], 3);
        assert_eq!(&reply[1 + PACKET..], c1.as_slice(), "S2 echoes C1");
        a.write_all(&reply[1..1 + PACKET]).await.expect("C2");
        assert_eq!(
            server.await.expect("join").expect("ok"),
            HandshakeKind::Plain
        );
    }

    #[tokio::test]
    async fn garbage_and_stalls_fail_cleanly() {
        let (mut a, mut b) = tokio::io::duplex(8192);
        a.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
        let err = accept(&mut b, STEP).await.expect_err("not rtmp");
        assert!(err.to_string().contains("version byte 0x47"), "{err}");

        let (mut a, mut b) = tokio::io::duplex(8192);
        a.write_all(&[3; 100]).await.expect("write");
        let err = accept(&mut b, Duration::from_millis(100))
            .await
            .expect_err("stall");
        assert!(matches!(err, RtmpError::Timeout("waiting for C1")), "{err}");
    }
}
