//! Errors of the RTMP layer: each says what the peer did wrong, in one line.

use super::amf0::AmfError;
use super::message::{CommandError, ShortControl};

/// Everything that can go wrong speaking RTMP with one peer.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A step did not finish in time.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The handshake is not RTMP.
    #[error("bad handshake: {0}")]
    Handshake(String),
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// Set Chunk Size outside 1..=2^31-1.
    #[error("invalid chunk size {0} (allowed 1..=2147483647)")]
    InvalidChunkSize(u32),
    /// A message header announced more bytes than `max_message_size`.
    #[error("message of {size} bytes exceeds limit max_message_size = {limit}")]
    MessageTooLarge {
        /// Size announced by the header.
        size: u32,
        /// Configured limit.
        limit: usize,
    },
    /// Messages in progress hold too many bytes together.
    #[error("messages in progress exceed {0} bytes (limit 2 x max_message_size)")]
    ReassemblyTooLarge(usize),
    /// More distinct chunk streams than `max_chunk_streams`.
    #[error("more than {0} chunk streams (limit max_chunk_streams)")]
    TooManyChunkStreams(usize),
    /// A compressed chunk header on a chunk stream that has had no full header.
    #[error("chunk of type {fmt} on chunk stream {csid} before any full header")]
    MissingHeader {
        /// Chunk header type.
        fmt: u8,
        /// Chunk stream id.
        csid: u32,
    },
    /// A protocol control message too short for its type.
    #[error(transparent)]
    ShortControl(#[from] ShortControl),
    /// An AMF body that does not decode.
    #[error("malformed AMF0: {0}")]
    Amf(#[from] AmfError),
    /// A command that does not decode.
    #[error("malformed command: {0}")]
    Command(#[from] CommandError),
    /// The peer broke the command sequence (e.g. publish before connect).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The server refused a step (connect, createStream, publish).
    // Escaped: the platform's text goes into our log lines.
    #[error("refused by server: {}: {}", code.escape_debug(), description.escape_debug())]
    Refused {
        /// Status code (`NetStream.Publish.BadName`, …) or command name.
        code: String,
        /// Human description sent by the server.
        description: String,
    },
    /// A URL that is not `rtmp://` or `rtmps://host[:port]/app`.
    #[error("bad RTMP URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Forwarding fell more than `limits.max_upstream_lag` behind live, waiting on the platform.
    #[error("the platform reads too slowly: the stream fell {lag_s:.1} s behind live waiting for it (limits.max_upstream_lag)")]
    Behind {
        /// How far behind live the platform made the stream.
        lag_s: f64,
    },
    /// TLS setup failed (certificate files, server name).
    #[error("TLS: {0}")]
    Tls(String),
}

impl RtmpError {
    /// True when the error only means the peer went away.
    pub fn is_disconnect(&self) -> bool {
        match self {
            RtmpError::Closed => true,
            RtmpError::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }

    /// What a broadcaster is told when this error ended its platform leg: what happened, never
    /// where (the platform's ingest address is the operator's business, not the broadcaster's).
    pub fn broadcaster_reason(&self) -> String {
        match self {
            RtmpError::Refused { code, .. } => format!("the platform refused the stream ({code})"),
            RtmpError::Timeout(_) => "the platform did not answer in time".into(),
            RtmpError::Behind { .. } => "the platform is not keeping up with the stream".into(),
            _ => "the connection to the platform failed".into(),
        }
    }
}
