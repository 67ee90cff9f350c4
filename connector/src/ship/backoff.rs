//! How long a retry waits when the destination names no time: exponential, with jitter.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Exponential backoff with jitter, from `min` up to `max` per wait.
pub fn backoff(min: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let delays: Vec<Duration> = backoff(Duration::from_millis(100), Duration::from_secs(2)).take(10).collect();
        assert_eq!(delays.len(), 10);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(4)), "{delays:?}");
        assert!(delays[6] >= Duration::from_secs(2), "{delays:?}");
    }
}
