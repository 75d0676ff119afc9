//! Image input (`hashgate hash`, list building): any bytes decode within the size and memory
//! caps or give an error; decoded images hash with PDQ.
#![no_main]

use hashgate::hash::image_input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rgb) = image_input::decode_rgb(data, "fuzz") {
        let luma = image_input::luma(&rgb);
        let _ = hashgate::hash::pdq::pdq(&luma).hash();
    }
});
