//! The pace of requests to one destination credential.
//!
//! Requests are spaced evenly at the configured rate, just under it, so that no sliding minute
//! the destination counts ever sees more than the limit. A 429 without `Retry-After` halves the
//! pace and each acknowledged request wins a little of it back, up to the limit (AIMD, as TCP
//! does). A `Retry-After` holds every request of the credential until it is over, not just the
//! one that got it: the destination counts per key, so whoever asks next would get the same
//! answer.
//!
//! Hand-written rather than `governor`'s: its quota cannot change while requests wait, it knows
//! no pause, and its clock is not tokio's, so tests could not control time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// The share of the limit requests are paced at: the margin absorbs the jitter between when a
/// request leaves and when the destination counts it.
const HEADROOM: f64 = 0.995;
/// The slowest pace AIMD goes down to, as a share of the limit.
const FLOOR: f64 = 1.0 / 32.0;
/// How much of the limit each acknowledged request wins back after a slowdown: from half the
/// limit back to all of it in 25 requests.
const RECOVERY_STEP: f64 = 1.0 / 50.0;

/// One credential's pace, shared by every delivery that sends with it.
#[derive(Debug)]
pub struct Pacer(Mutex<Pace>);

#[derive(Debug)]
struct Pace {
    /// Requests per minute: the configured limit, and the pace now (at most the limit).
    limit: f64,
    rate: f64,
    /// The earliest time the next request may start.
    next: Instant,
    /// No request starts before this: a `Retry-After` the destination gave.
    paused_until: Option<Instant>,
    /// When the pace was last lowered: a 429 to a request sent before then was already
    /// answered for, so concurrent 429s lower it once.
    lowered_at: Option<Instant>,
}

impl Pace {
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(60.0 / (self.rate * HEADROOM))
    }
}

impl Pacer {
    pub fn new(requests_per_minute: u32) -> Pacer {
        let limit = f64::from(requests_per_minute.max(1));
        Pacer(Mutex::new(Pace {
            limit,
            rate: limit,
            next: Instant::now(),
            paused_until: None,
            lowered_at: None,
        }))
    }

    fn pace(&self) -> MutexGuard<'_, Pace> {
        crate::panic::lock(&self.0)
    }

    /// Waits for this request's turn.
    pub async fn ready(&self) {
        loop {
            let slot = {
                let mut pace = self.pace();
                let mut at = pace.next.max(Instant::now());
                if let Some(until) = pace.paused_until {
                    at = at.max(until);
                }
                pace.next = at + pace.interval();
                at
            };
            tokio::time::sleep_until(slot).await;
            // A pause that began while this request waited for its turn holds it too.
            match self.pace().paused_until {
                Some(until) if until > Instant::now() => continue,
                _ => return,
            }
        }
    }

    /// The destination asked for a wait (`Retry-After`): no request of this credential starts
    /// before it is over.
    pub fn hold(&self, wait: Duration) {
        let mut pace = self.pace();
        let until = Instant::now() + wait;
        pace.paused_until = Some(pace.paused_until.map_or(until, |p| p.max(until)));
    }

    /// The destination said 429, without saying how long to wait, to a request sent at `sent_at`.
    pub fn slow_down(&self, sent_at: Instant) {
        let mut pace = self.pace();
        if pace.lowered_at.is_some_and(|at| sent_at < at) {
            return;
        }
        pace.rate = (pace.rate / 2.0).max(pace.limit * FLOOR);
        pace.lowered_at = Some(Instant::now());
        tracing::info!(requests_per_minute = pace.rate.round() as u64, "throttled: slowing down");
    }

    /// The destination answered a request, and not with a wait: the pace may climb back.
    pub fn answered(&self) {
        let mut pace = self.pace();
        if pace.rate < pace.limit {
            pace.rate = (pace.rate + pace.limit * RECOVERY_STEP).min(pace.limit);
        }
    }

    /// The pace now, in requests per minute.
    pub fn requests_per_minute(&self) -> f64 {
        self.pace().rate
    }

    /// A second sync with the same credential and a lower limit lowers it for both.
    fn limit_to(&self, requests_per_minute: u32) {
        let mut pace = self.pace();
        let limit = f64::from(requests_per_minute.max(1));
        if limit < pace.limit {
            pace.limit = limit;
            pace.rate = pace.rate.min(limit);
        }
    }
}

/// The pacers of one process (a worker, or one `ebb sync` of several mappings), by credential.
#[derive(Debug, Default)]
pub struct Pacers(Mutex<HashMap<u64, Arc<Pacer>>>);

impl Pacers {
    /// The pacer of the credential `scope` (see `DestinationSettings::rate_scope`), at the
    /// lowest limit any of its syncs asked for.
    pub fn get(&self, scope: u64, requests_per_minute: u32) -> Arc<Pacer> {
        let mut pacers = crate::panic::lock(&self.0);
        let pacer = pacers.entry(scope).or_insert_with(|| Arc::new(Pacer::new(requests_per_minute)));
        pacer.limit_to(requests_per_minute);
        Arc::clone(pacer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts `n` requests one after another and returns when each started, from the first.
    async fn starts(pacer: &Pacer, n: usize) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        for _ in 0..n {
            pacer.ready().await;
            out.push(t0.elapsed());
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_evenly_just_under_the_limit() {
        let pacer = Pacer::new(60);
        let at = starts(&pacer, 121).await;
        assert_eq!(at[0], Duration::ZERO, "the first request does not wait");
        // 120 intervals at 99.5% of 60 a minute.
        let total = at[120].as_secs_f64();
        assert!((120.5..121.0).contains(&total), "{total}");
        for window in at.windows(61) {
            assert!(window[60] - window[0] >= Duration::from_secs(60), "61 requests within a minute");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_without_retry_after_halves_the_pace_once_and_it_recovers_by_steps() {
        let pacer = Pacer::new(100);
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        pacer.slow_down(sent);
        assert_eq!(pacer.requests_per_minute(), 50.0);
        // Another request sent before the slowdown was answered for by it.
        pacer.slow_down(sent);
        assert_eq!(pacer.requests_per_minute(), 50.0);
        pacer.slow_down(Instant::now());
        assert_eq!(pacer.requests_per_minute(), 25.0);
        for _ in 0..10 {
            pacer.answered();
        }
        assert_eq!(pacer.requests_per_minute(), 45.0);
        for _ in 0..100 {
            pacer.answered();
        }
        assert_eq!(pacer.requests_per_minute(), 100.0, "back to the limit, never over it");
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_never_falls_below_its_floor() {
        let pacer = Pacer::new(64);
        for _ in 0..20 {
            pacer.slow_down(Instant::now());
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(pacer.requests_per_minute(), 2.0);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_requests_that_were_already_waiting_for_their_turn() {
        let pacer = Arc::new(Pacer::new(600));
        pacer.ready().await;
        let t0 = Instant::now();
        // Two requests take their turns (100 ms apart), then a reply says wait 5 s.
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let pacer = Arc::clone(&pacer);
                tokio::spawn(async move {
                    pacer.ready().await;
                    t0.elapsed()
                })
            })
            .collect();
        tokio::task::yield_now().await;
        pacer.hold(Duration::from_secs(5));
        for task in waiting {
            let started = task.await.expect("task");
            assert!(started >= Duration::from_secs(5), "started after {started:?}");
        }
        assert_eq!(
            pacer.requests_per_minute(),
            600.0,
            "a pause the destination asked for is not a slowdown"
        );
    }

    #[test]
    fn syncs_with_one_credential_share_a_pacer_at_the_lower_limit() {
        let pacers = Pacers::default();
        let a = pacers.get(7, 100);
        let b = pacers.get(7, 60);
        let other = pacers.get(8, 100);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.requests_per_minute(), 60.0);
        assert_eq!(other.requests_per_minute(), 100.0);
    }
}
