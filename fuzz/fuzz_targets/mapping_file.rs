//! Any text, as a mapping file: parsed, then checked against a source of every type; an error
//! at worst, never a panic.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        harness::parse_and_check(text);
    }
});
