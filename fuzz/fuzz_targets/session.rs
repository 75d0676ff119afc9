//! The publisher's session as the server runs it: a valid plain handshake, then arbitrary bytes
//! as chunks (connect, createStream, publish, media, control messages). It ends with a publish
//! and the stream's events, or an error, never a panic or a hang.
#![no_main]

use std::time::Duration;

use hashgate::rtmp::chunk::DecoderLimits;
use hashgate::rtmp::connection::Connection;
use hashgate::rtmp::server::{PublisherEvent, ServerSession};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PACKET: usize = 1536;

fuzz_target!(|data: &[u8]| {
    let runtime = runtime();
    runtime.block_on(async {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let mut bytes = vec![3u8];
        bytes.extend_from_slice(&[0u8; PACKET * 2]);
        bytes.extend_from_slice(data);
        // Writing and draining the answers at once: neither side's writes can block the other.
        let write = async move {
            let _ = client_write.write_all(&bytes).await;
            let _ = client_write.shutdown().await;
        };
        let drain = async move {
            let mut sink = vec![0u8; 8192];
            while matches!(client_read.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        let feed = async {
            tokio::join!(write, drain);
        };
        let serve = async move {
            if hashgate::rtmp::handshake::accept(&mut server, Duration::from_secs(5))
                .await
                .is_err()
            {
                return;
            }
            let limits = DecoderLimits {
                max_message_size: 1 << 20,
                max_chunk_streams: 16,
            };
            let mut session = ServerSession::new(Connection::new(Box::new(server), limits));
            let Ok(request) = session.wait_for_publish().await else {
                return;
            };
            if session.accept_publish(&request).await.is_err() {
                return;
            }
            loop {
                match session.next_event().await {
                    Ok(PublisherEvent::Media(_)) => continue,
                    Ok(PublisherEvent::Unpublished | PublisherEvent::Closed) | Err(_) => break,
                }
            }
        };
        tokio::join!(feed, serve);
    });
});

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}
