//! Replay: publishes a media file to an RTMP server the way a broadcaster would (demuxed by
//! `source`, sent with the project's own RTMP client), paced in real time or as fast as the
//! server takes it, and reports whether the server cut it. Used by `hashgate replay`,
//! `hashgate demo` and the tests.

pub mod source;
mod timestamps;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::rtmp::chunk::DecoderLimits;
use crate::rtmp::client::{PublishTarget, UpstreamEvent, UpstreamPublisher};
use crate::rtmp::tls::TlsClient;
use crate::rtmp::url::RtmpUrl;
use crate::rtmp::{Message, RtmpError};
pub use source::{MediaSource, SourceError};

/// How to publish.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Server application URL (`rtmp[s]://host[:port]/app`).
    pub url: RtmpUrl,
    /// Stream key.
    pub key: String,
    /// Send each message at its time (a live broadcaster), or as fast as the server reads.
    pub realtime: bool,
    /// Start over at the end of the file until stopped.
    pub looped: bool,
    /// After the last message, how long to wait for the server's verdict before unpublishing.
    pub linger: Duration,
    /// Timeout of each step of the connection and of each write.
    pub timeout: Duration,
}

/// How a replay ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Everything was sent and the stream unpublished (or it was stopped with `--loop`).
    Completed {
        /// Stream time of the last message sent, in milliseconds.
        sent_ms: u32,
    },
    /// The server ended the publish with an error status: a cut, or a refused publish.
    Cut {
        /// Stream time of the last message sent before the cut, in milliseconds.
        sent_ms: u32,
        /// The status code (`NetStream.Publish.Rejected`, ...).
        code: String,
        /// The server's description.
        reason: String,
    },
    /// The replay failed for another reason (network, unreadable file).
    Failed(String),
}

impl Outcome {
    fn from_error(error: RtmpError, sent_ms: u32) -> Outcome {
        match error {
            RtmpError::Refused { code, description } => Outcome::Cut {
                sent_ms,
                code,
                reason: description,
            },
            other => Outcome::Failed(other.to_string()),
        }
    }
}

/// Publishes `source` as `options` say. `progress` gets the stream time of each message sent.
pub async fn publish(
    source: MediaSource,
    options: &ReplayOptions,
    tls: Option<&TlsClient>,
    stop: CancellationToken,
    mut progress: impl FnMut(u32),
) -> Outcome {
    let target = PublishTarget {
        url: options.url.clone(),
        stream_key: options.key.clone(),
        publish_type: "live".into(),
        fourcc_list: None,
    };
    let limits = DecoderLimits::default();
    let mut up = match UpstreamPublisher::publish(&target, tls, limits, options.timeout).await {
        Ok(up) => up,
        Err(e) => return Outcome::from_error(e, 0),
    };
    for msg in &source.header {
        up.queue_media(msg);
    }
    let mut messages = source.spawn(options.looped);
    let started = Instant::now();
    let mut first_ts: Option<u32> = None;
    let mut sent_ms = 0u32;
    let mut pending: Option<Message> = None;
    let end = loop {
        if pending.is_none() {
            pending = match messages.recv().await {
                Some(Ok(msg)) => Some(msg),
                Some(Err(e)) => break Err(Outcome::Failed(e)),
                None => break Ok(()),
            };
        }
        let Some(msg) = pending.as_ref() else {
            continue;
        };
        let first = *first_ts.get_or_insert(msg.timestamp);
        let due = options.realtime.then(|| {
            started + Duration::from_millis(u64::from(msg.timestamp.saturating_sub(first)))
        });
        tokio::select! {
            biased;
            _ = stop.cancelled() => break Ok(()),
            event = up.next_event() => match event {
                Ok(UpstreamEvent::Nothing) => {}
                Ok(UpstreamEvent::Closed) => {
                    break Err(Outcome::Failed("the server closed the connection".into()))
                }
                Err(e) => break Err(Outcome::from_error(e, sent_ms)),
            },
            _ = sleep_until(due) => {
                if let Some(msg) = pending.take() {
                    up.queue_media(&msg);
                    sent_ms = msg.timestamp;
                    progress(sent_ms);
                }
                if let Err(e) = write(&mut up, options.timeout).await {
                    // A server that cuts says why and closes; the reason may still be readable.
                    break Err(reason_after_write_error(&mut up, e, sent_ms).await);
                }
            }
        }
    };
    if let Err(outcome) = end {
        return outcome;
    }
    // Give the server time to rule on the last frames before leaving.
    let linger = tokio::time::sleep(options.linger);
    tokio::pin!(linger);
    loop {
        tokio::select! {
            _ = &mut linger => break,
            _ = stop.cancelled() => break,
            event = up.next_event() => match event {
                Ok(UpstreamEvent::Nothing) => {}
                Ok(UpstreamEvent::Closed) => break,
                Err(e) => return Outcome::from_error(e, sent_ms),
            },
        }
    }
    // Everything was sent; a server that does not take the unpublish cleanly changes nothing.
    let _ = tokio::time::timeout(options.timeout, up.unpublish()).await;
    Outcome::Completed { sent_ms }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due.into()).await;
    }
}

async fn write(up: &mut UpstreamPublisher, limit: Duration) -> Result<(), RtmpError> {
    tokio::time::timeout(limit, up.flush())
        .await
        .map_err(|_| RtmpError::Timeout("writing to the server"))?
}

async fn reason_after_write_error(
    up: &mut UpstreamPublisher,
    error: RtmpError,
    sent_ms: u32,
) -> Outcome {
    let deadline = tokio::time::sleep(Duration::from_secs(1));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return Outcome::from_error(error, sent_ms),
            event = up.next_event() => match event {
                Ok(UpstreamEvent::Nothing) => {}
                Ok(UpstreamEvent::Closed) => return Outcome::from_error(error, sent_ms),
                Err(e @ RtmpError::Refused { .. }) => return Outcome::from_error(e, sent_ms),
                Err(_) => return Outcome::from_error(error, sent_ms),
            },
        }
    }
}
