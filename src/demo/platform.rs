//! The demo's stand-in for a streaming platform: an RTMP server on loopback that accepts every
//! publish and records each stream, exactly as received, to `<dir>/<key>.flv`.

use crate::locks::Locked;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpListener;

use crate::rtmp::chunk::DecoderLimits;
use crate::rtmp::connection::Connection;
use crate::rtmp::handshake;
use crate::rtmp::message::kind;
use crate::rtmp::server::{PublisherEvent, ServerSession};
use crate::rtmp::{Message, RtmpError};

/// A running recording server.
pub struct Platform {
    /// Its loopback port.
    pub port: u16,
    dir: PathBuf,
    finished: Arc<Mutex<HashSet<String>>>,
}

impl Platform {
    /// Listens on a free loopback port and records into `dir`.
    pub async fn start(dir: &Path) -> std::io::Result<Platform> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let finished = Arc::new(Mutex::new(HashSet::new()));
        let (record_dir, done) = (dir.to_owned(), finished.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let (dir, done) = (record_dir.clone(), done.clone());
                tokio::spawn(async move {
                    match record(tcp, &dir).await {
                        Ok(key) => {
                            let mut done = done.locked();
                            done.insert(key);
                        }
                        Err(e) => tracing::debug!("demo platform: connection ended: {e}"),
                    }
                });
            }
        });
        Ok(Platform {
            port,
            dir: dir.to_owned(),
            finished,
        })
    }

    /// The recording of `key`.
    pub fn recording(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.flv"))
    }

    /// Waits until the stream `key` has ended (unpublished or disconnected), up to `within`.
    pub async fn wait_ended(&self, key: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.finished.locked().contains(key) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// Accepts one publish and writes what arrives until the publisher leaves; returns the key.
async fn record(tcp: tokio::net::TcpStream, dir: &Path) -> Result<String, RtmpError> {
    let mut io: crate::rtmp::connection::BoxTransport = Box::new(tcp);
    handshake::accept(&mut io, Duration::from_secs(5)).await?;
    let mut session = ServerSession::new(Connection::new(io, DecoderLimits::default()));
    let request = session.wait_for_publish().await?;
    let key = request.stream_key.clone();
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    session.accept_publish(&request).await?;
    let file = tokio::fs::File::create(dir.join(format!("{safe}.flv"))).await?;
    let mut out = BufWriter::new(file);
    out.write_all(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")
        .await?;
    loop {
        let event = session.next_event().await;
        match event {
            Ok(PublisherEvent::Media(msg)) => out.write_all(&flv_tag(&msg)).await?,
            Ok(PublisherEvent::Unpublished | PublisherEvent::Closed) => break,
            Err(e) if e.is_disconnect() => break,
            Err(e) => {
                out.flush().await?;
                return Err(e);
            }
        }
        session.flush().await?;
    }
    out.flush().await?;
    Ok(key)
}

/// An FLV tag for a media message, with the previous-tag-size trailer. `@setDataFrame` is
/// dropped from data messages, as FLV files carry `onMetaData` directly.
fn flv_tag(msg: &Message) -> Vec<u8> {
    const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";
    let body: &[u8] = match msg.type_id {
        kind::DATA_AMF0 => msg
            .payload
            .strip_prefix(SET_DATA_FRAME)
            .unwrap_or(&msg.payload),
        _ => &msg.payload,
    };
    let size = body.len() as u32;
    let ts = msg.timestamp;
    let mut tag = Vec::with_capacity(15 + body.len());
    tag.push(msg.type_id);
    tag.extend_from_slice(&size.to_be_bytes()[1..]);
    tag.extend_from_slice(&ts.to_be_bytes()[1..]);
    tag.push((ts >> 24) as u8);
    tag.extend_from_slice(&[0, 0, 0]);
    tag.extend_from_slice(body);
    tag.extend_from_slice(&(size + 11).to_be_bytes());
    tag
}
