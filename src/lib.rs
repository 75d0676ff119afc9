//! hashgate: a live-stream interception proxy.
//!
//! Broadcasters publish RTMP to hashgate; hashgate forwards each stream unchanged to the
//! platform's ingest and branches its video off towards inspection. The data path, top to
//! bottom:
//!
//! - [`rtmp`]: the protocol (handshake, chunk codec, AMF0, publisher and upstream sessions);
//! - [`relay`]: per-stream forwarding, the queue that keeps the first GOP, the video tap;
//! - [`config`]: `config.toml`, its defaults and its validation;
//! - [`cli`]: the command-line front end `main.rs` calls.

#![warn(missing_docs)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod events;
pub mod gate;
pub mod hash;
pub mod inspect;
pub mod matcher;
pub mod metrics;
pub mod relay;
pub mod replay;
pub mod rtmp;
pub mod verdict;
