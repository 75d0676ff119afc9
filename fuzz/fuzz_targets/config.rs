//! The configuration file parser and its validation: any text gives a config or an error
//! naming the key, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = hashgate::config::Config::parse(text, std::path::Path::new("fuzz.toml"));
    let _ = hashgate::config::parse_duration(text);
    let _ = hashgate::config::parse_size(text);
});
