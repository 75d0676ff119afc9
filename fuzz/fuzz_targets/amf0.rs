//! AMF0 decoding of command bodies: no panic, and whatever decodes re-encodes to bytes that
//! decode to the same encoding (the relay re-encodes what it forwards).
#![no_main]

use bytes::Bytes;
use hashgate::rtmp::amf0;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(values) = amf0::decode_all(Bytes::copy_from_slice(data)) else {
        return;
    };
    let once = amf0::encode_all(&values);
    let again = amf0::decode_all(once.clone()).expect("our own encoding decodes");
    assert_eq!(amf0::encode_all(&again), once, "encoding is stable");
});
