//! The webhook: `match`, `cut` and `uninspectable` events POSTed as JSON to an HTTP endpoint,
//! with a timeout, retries with exponential backoff, and an optional HMAC-SHA256 signature header
//! (`X-Hashgate-Signature: sha256=<hex of HMAC(secret, body)>`). It runs on its own thread with
//! its own queue: a slow or dead endpoint delays nothing but later webhook calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Calls queued before new ones are dropped (and counted).
const QUEUE: usize = 1000;

/// An `http://host[:port]/path` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
    path: String,
}

impl Endpoint {
    /// Parses the URL; only plain `http://` is supported (put a local TLS proxy in front of an
    /// https endpoint).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: the webhook must be an http:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("{url:?}: bad port"))?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("{url:?}: missing host"));
        }
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where to POST.
    pub endpoint: Endpoint,
    /// HMAC key for the signature header, if any.
    pub secret: Option<String>,
    /// Deadline of one attempt.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
}

/// The webhook's queue.
pub struct Webhook {
    tx: mpsc::SyncSender<String>,
    failed: Arc<AtomicU64>,
}

impl Webhook {
    /// Starts the delivery thread.
    pub fn start(settings: WebhookSettings) -> std::io::Result<Webhook> {
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        let failed = Arc::new(AtomicU64::new(0));
        let failed_count = failed.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("webhook".into())
            .spawn(move || {
                for body in rx {
                    if !runtime.block_on(deliver(&settings, &body)) {
                        failed_count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })?;
        Ok(Webhook { tx, failed })
    }

    /// Queues a JSON body. Never waits.
    pub fn post(&self, body: String) {
        if self.tx.try_send(body).is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Calls given up on (all attempts failed, or the queue was full).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// The signature header value for `body`.
pub fn signature(secret: &str, body: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

async fn deliver(settings: &WebhookSettings, body: &str) -> bool {
    let mut backoff = Duration::from_millis(500);
    for attempt in 0..=settings.retries {
        match tokio::time::timeout(settings.timeout, post_once(settings, body)).await {
            Ok(Ok(status)) if (200..300).contains(&status) => return true,
            Ok(Ok(status)) => tracing::warn!(attempt, status, "webhook refused the event"),
            Ok(Err(e)) => tracing::warn!(attempt, "webhook unreachable: {e}"),
            Err(_) => tracing::warn!(attempt, "webhook timed out after {:?}", settings.timeout),
        }
        if attempt < settings.retries {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    false
}

async fn post_once(settings: &WebhookSettings, body: &str) -> std::io::Result<u16> {
    let e = &settings.endpoint;
    let mut stream = tokio::net::TcpStream::connect((e.host.as_str(), e.port)).await?;
    stream.set_nodelay(true)?;
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: hashgate/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        e.path,
        e.host,
        e.port,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    if let Some(secret) = &settings.secret {
        request.push_str(&format!(
            "X-Hashgate-Signature: {}\r\n",
            signature(secret, body)
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    // The status line is all that is needed.
    while !response.windows(2).any(|w| w == b"\r\n") && response.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&response);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::other(format!("not an HTTP response: {:?}", line.lines().next()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls_only() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8080/hooks/cut"),
            Ok(Endpoint {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/hooks/cut".into()
            })
        );
        assert_eq!(
            Endpoint::parse("http://example.test").map(|e| (e.port, e.path)),
            Ok((80, "/".into()))
        );
        assert!(Endpoint::parse("https://example.test/x").is_err());
        assert!(Endpoint::parse("http://:80/").is_err());
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
