//! The server side of the RTMP handshake (plain and digest variants) against arbitrary client
//! bytes: it ends with a handshake or an error, never a panic or a hang.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let runtime = hashgate_fuzz_runtime();
    runtime.block_on(async {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let data = data.to_vec();
        // Writing and draining the answers at once: neither side's writes can block the other.
        let write = async move {
            let _ = client_write.write_all(&data).await;
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
            let result =
                hashgate::rtmp::handshake::accept(&mut server, Duration::from_secs(5)).await;
            // Dropping the server's end lets the feeder's reads end.
            drop(server);
            result
        };
        let (_, _result) = tokio::join!(feed, serve);
    });
});

fn hashgate_fuzz_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}
