//! The publisher's session as the server runs it: a valid plain handshake, then arbitrary bytes
//! as chunks (connect, createStream, publish, media, control messages). It ends with a publish
//! and the stream's events, or an error, never a panic or a hang.
#![no_main]

mod common;

use std::time::Duration;

use hashgate::rtmp::chunk::DecoderLimits;
use hashgate::rtmp::connection::Connection;
use hashgate::rtmp::server::{PublisherEvent, ServerSession};
use libfuzzer_sys::fuzz_target;

const PACKET: usize = 1536;

fuzz_target!(|data: &[u8]| {
    common::runtime().block_on(async {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let mut bytes = vec![3u8];
        bytes.extend_from_slice(&[0u8; PACKET * 2]);
        bytes.extend_from_slice(data);
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
        tokio::join!(common::feed(client, bytes), serve);
    });
});
