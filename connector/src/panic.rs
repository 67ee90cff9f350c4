//! Panics are bugs, and are reported as errors: the stage that failed fails its run with
//! `internal error in <stage>: <message> (please report)`, and nothing acts on what that stage
//! did not finish. The hook keeps Rust's `thread … panicked at` text (and its backtrace hint)
//! off the user's terminal and log unless `RUST_BACKTRACE` asks for it; the message reaches the
//! user through the error, and the place it happened through a debug log line.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// The text a panic was raised with.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Whether the user asked for Rust's own panic report (`RUST_BACKTRACE` set, and not `0`).
fn backtrace_wanted() -> bool {
    std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0")
}

/// Installs the hook for the whole process. Call once, first thing.
pub fn install_hook() {
    if backtrace_wanted() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let place = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::debug!(place = %place, message = %panic_message(info.payload()), "panic (reported as an internal error)");
    }));
}

/// A panic caught where a stage runs: what the stage was, and the panic's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("internal error in {stage}: {message} (please report)")]
pub struct Internal {
    pub stage: String,
    pub message: String,
}

impl Internal {
    pub fn new(stage: &str, payload: &(dyn Any + Send)) -> Internal {
        Internal {
            stage: stage.to_string(),
            message: panic_message(payload),
        }
    }
}

/// Runs `work`, turning a panic in it into [`Internal`] for `stage`.
pub async fn catch<T>(stage: &str, work: impl Future<Output = T>) -> Result<T, Internal> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|payload| Internal::new(stage, payload.as_ref()))
}

/// What a blocking task that did not return says.
/// Locks `mutex`, and takes its data even if a holder panicked: every mutex in ebb guards data
/// that a panicking holder leaves whole (a map, a counter), and the panic itself already fails
/// the stage it happened in.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn joined(stage: &str, e: tokio::task::JoinError) -> Internal {
    match e.try_into_panic() {
        Ok(payload) => Internal::new(stage, payload.as_ref()),
        Err(_) => Internal {
            stage: stage.to_string(),
            message: "the task was cancelled".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_internal_error_that_names_its_stage() {
        let caught = catch("mapping", async { panic!("index {} out of range", 7) }).await;
        assert_eq!(
            caught.map_err(|e| e.to_string()),
            Err::<(), _>("internal error in mapping: index 7 out of range (please report)".to_string())
        );
        assert_eq!(catch("mapping", async { 5 }).await, Ok(5));
        let joined = tokio::spawn(async { std::panic::panic_any(42u8) }).await.expect_err("panicked");
        assert_eq!(super::joined("delivery", joined).message, "a panic without a message");
    }
}
