//! Inspection: from the relay's video tap to hashed frames, off the relay's path.
//!
//! `flv` reads video tag bodies (classic FLV and Enhanced RTMP); `decoder` turns them into luma
//! planes with FFmpeg; `sampler` picks frames by stream time; `pool` runs all of it on worker
//! threads fed by the relay's bounded taps; `file` does the same for video files.

pub mod decoder;
pub mod file;
pub mod flv;
pub mod pool;
pub mod sampler;
pub mod stream;
