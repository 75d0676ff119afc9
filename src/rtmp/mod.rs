//! RTMP, written for this project on tokio and bytes: the protocol and nothing else.
//!
//! `handshake` → `chunk` (codec) → `connection` (messages, protocol control) → `server` (the
//! broadcaster's session) and `client` (our publish to the platform). `amf0` and `message` are
//! the vocabulary, `aggregate` reads type 22 to the bottom; `video_tag` reads video message bodies; `url` and `tls` get bytes to the
//! right place.

pub mod aggregate;
pub mod amf0;
pub mod chunk;
pub mod client;
pub mod connection;
pub mod error;
pub mod handshake;
pub mod message;
pub mod server;
pub mod tls;
pub mod url;
pub mod video_tag;

pub use error::RtmpError;
pub use message::Message;
