//! Any bytes, as a Parquet snapshot: ebb's reader and a mapping of every column must end in
//! rows mapped, rows rejected or an error, never a panic.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(outcome) = harness::read_and_map(data) {
        assert_eq!(outcome.rows, outcome.mapped + outcome.rejected, "every row read is mapped or rejected");
    }
});
