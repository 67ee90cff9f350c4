//! Any bytes, as a Parquet snapshot: ebb's reader and a mapping of every column must end in
//! rows mapped, rows rejected or an error, never a panic that reaches the caller.
//!
//! A panic inside a library that ebb catches, and reports as the run's internal error, is not
//! one: libFuzzer's hook would abort on it, so the hook here prints it and lets ebb handle it.
//! A panic that escapes ebb still aborts, in libfuzzer-sys's own `catch_unwind`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| eprintln!("caught by ebb: {info}")));
    });
    if let Some(outcome) = harness::read_and_map(data) {
        assert_eq!(outcome.rows, outcome.mapped + outcome.rejected, "every row read is mapped or rejected");
    }
});
