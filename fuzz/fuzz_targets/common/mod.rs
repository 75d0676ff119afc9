//! What the socket-level targets share: one runtime, and a client that writes its bytes while
//! draining the server's answers (so neither side's writes can block the other).

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// The runtime every input runs on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// Sends `bytes` as the client, then closes its side, reading answers until the server ends.
pub async fn feed(client: DuplexStream, bytes: Vec<u8>) {
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let write = async move {
        let _ = client_write.write_all(&bytes).await;
        let _ = client_write.shutdown().await;
    };
    let drain = async move {
        let mut sink = vec![0u8; 8192];
        while matches!(client_read.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    tokio::join!(write, drain);
}
