//! The ship stage: getting pass 2's records to the destination.
//!
//! - [`batches`]: the baseline's records and the planned deletes, cut into batches as big as
//!   the destination takes, on a task of their own.
//! - [`requests`]: one batch's requests until each record is settled: the pace, the lock's
//!   proof before every attempt, retries within a time budget, and per-record outcomes
//!   (acknowledged, rejected with the destination's reason, or failed).
//! - `split.rs`: a batch refused whole (400, 413) is sent again in halves to find the records at
//!   fault.
//! - [`backoff`]: how long a retry waits when the destination names no time.
//! - [`pacing`]: the rate limit, shared by every run that uses the same credential.
//!
//! What a reply means (deliver, retry, split, reject, stop) is the destination's to say: each
//! destination reads its own replies, over the shared policy of [`crate::destination::reply`].

pub mod backoff;
pub mod batches;
pub mod pacing;
pub mod requests;
mod split;
#[cfg(test)]
mod tests;

pub use requests::{AttemptObserver, BatchOutcome, Delivery};
