//! hashgate: a live-stream interception proxy.
//!
//! Broadcasters publish RTMP to hashgate; hashgate forwards each stream unchanged to the
//! platform's ingest and branches its video off towards inspection. The data path, top to
//! bottom:
//!
//! - [`rtmp`]: the protocol (handshake, chunk codec, AMF0, publisher and upstream sessions);
//! - [`relay`]: per-stream forwarding, the queue that keeps the first GOP, the delay buffer, the
//!   video tap;
//! - [`inspect`]: video tags to decoded, sampled frames on worker threads;
//! - [`hash`]: PDQ (and its dihedrals, letterbox crop) and the image_hasher algorithms;
//! - [`matcher`]: hash lists, their formats, the exact index, live reload;
//! - [`bank`]: media banks, the second matcher (local features with geometric verification);
//! - [`verdict`]: the policy that turns matches into cuts, key blocks and probation; coverage
//!   (a stream inspection cannot see is not let through silently);
//! - [`events`]: the JSON-lines event log, webhook and evidence.
//!
//! Around it:
//!
//! - [`gate`]: the data path assembled from a config;
//! - [`registry`]: live streams, blocked keys and probation, by stream key in its normal form;
//!   [`cluster`]: the same state shared by a fleet of instances through Redis;
//! - [`admin`]: the HTTP API; [`metrics`]: the Prometheus counters every stage bumps (a module of
//!   its own rather than under `admin`, since the data path writes it and `admin` only reads);
//! - [`replay`]: media files published like a broadcaster; [`demo`]: the end-to-end demo;
//! - [`config`]: `config.toml`, its defaults and its validation; [`units`]: durations and sizes;
//! - [`cli`]: the command-line front end `main.rs` calls.

#![warn(missing_docs)]

pub mod admin;
pub mod bank;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod events;
pub mod gate;
pub mod hash;
pub mod inspect;
pub mod locks;
pub mod matcher;
pub mod memory;
pub mod metrics;
pub mod registry;
pub mod relay;
pub mod replay;
pub mod rtmp;
pub mod units;
pub mod verdict;
