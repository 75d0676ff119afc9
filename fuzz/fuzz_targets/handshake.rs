//! The server side of the RTMP handshake (plain and digest variants) against arbitrary client
//! bytes: it ends with a handshake or an error, never a panic or a hang.
#![no_main]

mod common;

use std::time::Duration;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::runtime().block_on(async {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let serve = async move {
            let result =
                hashgate::rtmp::handshake::accept(&mut server, Duration::from_secs(5)).await;
            // Dropping the server's end lets the feeder's reads end.
            drop(server);
            result
        };
        let (_, _result) = tokio::join!(common::feed(client, data.to_vec()), serve);
    });
});
