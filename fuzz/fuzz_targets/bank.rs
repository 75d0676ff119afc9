//! Media bank files: refused with a reason or read whole, never a panic or a runaway
//! allocation. The input is decoded as it is, and again sealed with its own SHA-256 so the
//! fuzzer reaches the structure behind the checksum; a bank read is indexed and searched.
#![no_main]

use hashgate::bank::file::decode;
use hashgate::bank::features::Feature;
use hashgate::bank::{CheckSettings, FrameFeatures, IndexedBank};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let _ = decode(data, "fuzz.hgb");
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&Sha256::digest(data));
    if let Ok(bank) = decode(&sealed, "fuzz.hgb") {
        // The bank's own first frame, shifted, as the frame checked: pairs, votes, RANSAC.
        let features = bank.frames.first().map_or_else(Vec::new, |f| {
            f.features
                .iter()
                .map(|s| Feature {
                    x: f32::from(s.x) + 3.0,
                    y: f32::from(s.y),
                    level: 0,
                    angle: 0.0,
                    descriptor: s.descriptor,
                })
                .collect()
        });
        let indexed = IndexedBank::new(bank);
        let frame = FrameFeatures {
            width: 512,
            height: 288,
            features,
        };
        let _ = indexed.best(&frame, &CheckSettings::default());
    }
});
