//! Inspection: from the relay's video tap to hashed frames, off the relay's path.
//!
//! [`flv`] (`rtmp::video_tag`) reads video tag bodies (classic FLV and Enhanced RTMP); `params`
//! reads what a sequence header configures; `decoder` turns coded frames into luma planes with
//! FFmpeg; `onscreen` picks a live stream's frames (the frame on screen at random points of
//! stream time, the wall clock as backstop; `flicker` reports timestamps that try to steer
//! it), `sampler` a file's; `dull` reports samples that keep coming out featureless while the
//! stream spends bits; `stream` is one stream's state machine; `pool` runs them on worker threads
//! fed by the relay's bounded taps, fairly and at the live edge; `file` does the same for video
//! files. `audio` is the soundtrack's path: decoded, resampled, fingerprinted.

pub mod admission;
pub mod audio;
pub mod audio_pool;
pub mod decoder;
pub mod dull;
pub mod file;
pub mod flicker;
pub mod onscreen;
pub mod params;
pub mod pool;
pub mod sampler;
pub mod stream;

/// Video tag bodies: the parser lives with the protocol ([`crate::rtmp::video_tag`]), shared
/// with the relay.
pub use crate::rtmp::video_tag as flv;
