//! Lists served over HTTP(S) (`[[lists]] url`): fetched at startup, then polled with
//! conditional requests (`If-None-Match`, `If-Modified-Since`). A new version is parsed and
//! checked like a reloaded file (format, `max_shrink`) before it replaces anything; then it is
//! written to the list's `path` (atomically: a temporary file renamed over it), which is the
//! cache a restart falls back to while the server is down, and swapped in whole.
//!
//! `https` uses rustls with the system roots, like rtmps. Redirects are not followed (the
//! error names the `Location`): a list's source is configured, not discovered.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header;
use hyper::http::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::list::ListSettings;
use super::{log_reload, Matcher};
use crate::rtmp::tls::TlsClient;

/// Largest list body accepted.
pub const MAX_LIST_BYTES: usize = 512 << 20;
/// Deadline of one fetch (connect, request, whole body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `[[lists]] poll`.
pub const DEFAULT_POLL: Duration = Duration::from_secs(60);

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not one hashgate fetches.
    #[error("{0}")]
    Url(String),
    /// Network, TLS or HTTP failure.
    #[error("{0}")]
    Transport(String),
    /// The server answered something other than 200 or 304.
    #[error("HTTP {status}{location}")]
    Status {
        /// The status.
        status: StatusCode,
        /// `: redirect to …` for redirects.
        location: String,
    },
    /// No answer in time.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
}

/// Validators of the copy in hand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// `ETag` of the copy.
    pub etag: Option<String>,
    /// `Last-Modified` of the copy.
    pub last_modified: Option<String>,
}

/// What a conditional GET brought.
#[derive(Debug)]
pub enum Fetched {
    /// A new version.
    Modified {
        /// The body.
        body: Bytes,
        /// Its validators.
        validators: Validators,
    },
    /// The copy in hand is current.
    NotModified,
}

/// Checks that `url` is one [`fetch`] can get.
pub fn check_url(url: &str) -> Result<(), FetchError> {
    target(url).map(|_| ())
}

struct Target {
    https: bool,
    host: String,
    port: u16,
    uri: Uri,
}

fn target(url: &str) -> Result<Target, FetchError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| FetchError::Url(format!("{url:?} is not a URL: {e}")))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(FetchError::Url(format!(
                "{url:?}: only http:// and https:// lists are fetched"
            )))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| FetchError::Url(format!("{url:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok(Target {
        https,
        host,
        port,
        uri,
    })
}

/// GETs `url`, conditionally on `validators`.
pub async fn fetch(
    url: &str,
    validators: &Validators,
    tls: &TlsClient,
) -> Result<Fetched, FetchError> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_now(url, validators, tls))
        .await
        .map_err(|_| FetchError::Timeout(FETCH_TIMEOUT))?
}

async fn fetch_now(
    url: &str,
    validators: &Validators,
    tls: &TlsClient,
) -> Result<Fetched, FetchError> {
    let t = target(url)?;
    let transport = |e: &dyn std::fmt::Display| FetchError::Transport(e.to_string());
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| FetchError::Transport(format!("connecting to {}:{}: {e}", t.host, t.port)))?;
    tcp.set_nodelay(true).map_err(|e| transport(&e))?;
    if t.https {
        let stream = tls.connect(&t.host, tcp).await.map_err(|e| transport(&e))?;
        exchange(stream, &t, validators).await
    } else {
        exchange(tcp, &t, validators).await
    }
}

async fn exchange<S>(stream: S, t: &Target, validators: &Validators) -> Result<Fetched, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let transport = |e: &dyn std::fmt::Display| FetchError::Transport(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| transport(&e))?;
    let driver = tokio::spawn(connection);
    let path = t
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let host = match (t.https, t.port) {
        (false, 80) | (true, 443) => t.host.clone(),
        _ => format!("{}:{}", t.host, t.port),
    };
    let mut request = Request::get(path).header(header::HOST, host).header(
        header::USER_AGENT,
        concat!("hashgate/", env!("CARGO_PKG_VERSION")),
    );
    if let Some(etag) = &validators.etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    if let Some(modified) = &validators.last_modified {
        request = request.header(header::IF_MODIFIED_SINCE, modified);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| transport(&e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| transport(&e))?;
    let status = response.status();
    let outcome = match status {
        StatusCode::NOT_MODIFIED => Ok(Fetched::NotModified),
        StatusCode::OK => {
            let header_text = |name: header::HeaderName| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let validators = Validators {
                etag: header_text(header::ETAG),
                last_modified: header_text(header::LAST_MODIFIED),
            };
            let body = Limited::new(response.into_body(), MAX_LIST_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    FetchError::Transport(format!(
                        "reading the body (at most {MAX_LIST_BYTES} bytes): {e}"
                    ))
                })?
                .to_bytes();
            Ok(Fetched::Modified { body, validators })
        }
        status => {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| format!(": redirect to {l:?} (not followed: configure that URL)"))
                .unwrap_or_default();
            Err(FetchError::Status { status, location })
        }
    };
    driver.abort();
    outcome
}

/// Writes `body` to `path` atomically: a temporary file beside it, synced, renamed over it.
pub fn write_cache(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "list".into());
    // Unique: instances sharing a volume never write into each other's temporary file.
    let tmp_name = format!(
        ".{name}.{}.{:08x}.fetching",
        std::process::id(),
        rand::random::<u32>()
    );
    let tmp = match dir {
        Some(dir) => dir.join(tmp_name),
        None => tmp_name.into(),
    };
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(body)?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Fetches every URL list once before the lists are loaded: a good copy replaces the cache;
/// when the server cannot be reached or sends a list that does not parse, the cache stays and
/// is enforced (with a warning). A URL list with neither is an error: starting without it
/// would fail open. Returns each list's validators, for the pollers.
pub async fn prefetch(lists: &[ListSettings]) -> anyhow::Result<Vec<Validators>> {
    let tls = TlsClient::new(None)?;
    let mut out = Vec::new();
    for settings in lists.iter().filter(|s| s.enabled) {
        let Some(url) = &settings.url else {
            out.push(Validators::default());
            continue;
        };
        let name = settings.name();
        let fetched = fetch(url, &Validators::default(), &tls).await;
        let problem = match fetched {
            Ok(Fetched::Modified { body, validators }) => {
                match super::list::HashList::from_text(
                    settings.clone(),
                    &settings.path,
                    &String::from_utf8_lossy(&body),
                ) {
                    Ok(list) => {
                        // Guarded like a reload against the cache: a server that sends an empty
                        // or gutted list at startup does not replace the good copy.
                        let cached = settings
                            .path
                            .is_file()
                            .then(|| super::list::HashList::load(settings.clone()).ok())
                            .flatten()
                            .map_or(0, |l| l.len());
                        if let Err(e) = super::shrink_check(settings, cached, list.len(), false) {
                            tracing::warn!(list = %name, url = %url, "the fetched list is refused ({e}); enforcing the cached copy");
                            out.push(Validators::default());
                            continue;
                        }
                        write_cache(&settings.path, &body).map_err(|e| {
                            anyhow::anyhow!(
                                "list {name}: caching {} fetched from {url}: {e}",
                                settings.path.display()
                            )
                        })?;
                        tracing::info!(list = %name, url = %url, entries = list.len(), "hash list fetched");
                        out.push(validators);
                        continue;
                    }
                    Err(e) => format!("the list it sent does not parse: {e}"),
                }
            }
            Ok(Fetched::NotModified) => "it answered 304 to an unconditional request".into(),
            Err(e) => e.to_string(),
        };
        if !settings.path.is_file() {
            anyhow::bail!(
                "list {name}: cannot fetch {url} ({problem}) and there is no cached copy at {}",
                settings.path.display()
            );
        }
        tracing::warn!(list = %name, url = %url, cache = %settings.path.display(), "cannot fetch the list ({problem}); enforcing the cached copy");
        out.push(Validators::default());
    }
    Ok(out)
}

/// Polls every URL list of `matcher` on its own schedule until the matcher is dropped.
/// `validators` are [`prefetch`]'s.
pub fn poll(matcher: &Arc<Matcher>, validators: Vec<Validators>) -> anyhow::Result<()> {
    let tls = TlsClient::new(None)?;
    for (index, (settings, mut validators)) in matcher
        .settings()
        .iter()
        .cloned()
        .zip(validators)
        .enumerate()
    {
        let Some(url) = settings.url.clone() else {
            continue;
        };
        let every = settings.poll.unwrap_or(DEFAULT_POLL);
        let weak = Arc::downgrade(matcher);
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(every).await;
                let Some(matcher) = weak.upgrade() else {
                    return;
                };
                match fetch(&url, &validators, &tls).await {
                    Ok(Fetched::NotModified) => {}
                    Ok(Fetched::Modified {
                        body,
                        validators: v,
                    }) => {
                        let m = matcher.clone();
                        let applied =
                            tokio::task::spawn_blocking(move || m.apply_fetched(index, &body))
                                .await;
                        match applied {
                            Ok(outcome) => {
                                if outcome.result.is_ok() {
                                    validators = v;
                                }
                                log_reload(&outcome);
                            }
                            Err(e) => {
                                tracing::error!(list = %settings.name(), "applying the fetched list failed: {e}")
                            }
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(list = %settings.name(), url = %url, "cannot fetch the list: {e}; the version in force stays");
                        }
                        failing = true;
                        continue;
                    }
                }
                if failing {
                    tracing::info!(list = %settings.name(), url = %url, "list server answers again");
                    failing = false;
                }
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host() {
        assert!(check_url("https://lists.example/gifct.pdq").is_ok());
        assert!(check_url("http://127.0.0.1:8080/a?b=c").is_ok());
        assert!(check_url("ftp://lists.example/a").is_err());
        assert!(check_url("/etc/passwd").is_err());
        assert!(check_url("not a url").is_err());
        let t = target("http://[::1]:81/x").expect("ipv6");
        assert_eq!((t.host.as_str(), t.port), ("::1", 81));
    }

    #[test]
    fn the_cache_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("hashgate-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("list.pdq");
        write_cache(&path, b"one").expect("write");
        write_cache(&path, b"two").expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        assert_eq!(
            std::fs::read_dir(&dir).expect("ls").count(),
            1,
            "no temporary left"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
