//! The pace of requests to one destination credential.
//!
//! Requests are spaced evenly at the configured rate, just under it, so that no sliding minute
//! the destination counts ever sees more than the limit. A 429 without `Retry-After` halves the
//! pace and each acknowledged request wins a little of it back, up to the limit (AIMD, as TCP
//! does). A `Retry-After` holds every request of the credential until it is over, not just the
//! one that got it: the destination counts per key, so whoever asks next would get the same
//! answer.
//!
//! With PostgreSQL state, every process on the store shares the pace too: after its own turn,
//! a request takes the credential's next turn from the store (`state::pace`), and holds and
//! slowdowns reach every process. Together they never go past the lowest limit any of them
//! asks for, and one process alone takes every turn. If the store cannot give a turn, the
//! request goes at this process's own pace, which never passes the limit alone.
//!
//! Hand-written rather than `governor`'s: its quota cannot change while requests wait, it knows
//! no pause, and its clock is not tokio's, so tests could not control time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::state::pace::{Member, SharedPace};

/// The share of the limit requests are paced at: the margin absorbs the jitter between when a
/// request leaves and when the destination counts it.
const HEADROOM: f64 = 0.995;
/// The slowest pace AIMD goes down to, as a share of the limit.
const FLOOR: f64 = 1.0 / 32.0;
/// How much of the limit each acknowledged request wins back after a slowdown: from half the
/// limit back to all of it in 25 requests.
const RECOVERY_STEP: f64 = 1.0 / 50.0;

/// Limits from this one up are not shared between processes: a turn is a statement on one row
/// of the state store, which serves some thousands a second, and such a limit means "as fast
/// as it goes" (the benchmark mappings ask for a million).
const UNSHARED_FROM: f64 = 600_000.0;

/// One credential's pace, shared by every delivery that sends with it.
pub struct Pacer {
    pace: Mutex<Pace>,
    /// The pace of every process on a shared state store, when there is one.
    shared: Option<Shared>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("pace", &self.pace)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

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

/// This process as one member of a credential's shared pace.
struct Shared {
    pace: Arc<dyn SharedPace>,
    /// The rate scope as text: a digest of endpoint and key.
    scope: String,
    member: String,
    /// Whether the store failed the last time: said once, not for every request.
    failing: AtomicBool,
}

impl Shared {
    fn member(&self, requests_per_minute: f64) -> Member<'_> {
        Member {
            scope: &self.scope,
            member: &self.member,
            requests_per_minute,
        }
    }

    /// Logs a failure once until the store answers again; the request goes at the local pace.
    fn note<T>(&self, what: &str, result: Result<T, crate::state::StateError>) -> Option<T> {
        match result {
            Ok(value) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the shared pace is back");
                }
                Some(value)
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "could not {what} in the state store; pacing this process alone");
                }
                None
            }
        }
    }
}

impl Pacer {
    pub fn new(requests_per_minute: u32) -> Pacer {
        let limit = f64::from(requests_per_minute.max(1));
        Pacer {
            pace: Mutex::new(Pace {
                limit,
                rate: limit,
                next: Instant::now(),
                paused_until: None,
                lowered_at: None,
            }),
            shared: None,
        }
    }

    fn pace(&self) -> MutexGuard<'_, Pace> {
        crate::panic::lock(&self.pace)
    }

    /// Waits for this request's turn: this process's own, then, on a shared store, the
    /// credential's.
    pub async fn ready(&self) {
        self.local_turn().await;
        let Some(shared) = &self.shared else { return };
        let limit = self.pace().limit;
        if limit >= UNSHARED_FROM {
            return;
        }
        if let Some(wait) = shared.note("take a turn", shared.pace.take_turn(&shared.member(limit)).await) {
            tokio::time::sleep(wait).await;
            // A hold this process got while it waited holds it too.
            let paused = self.pace().paused_until;
            if let Some(until) = paused.filter(|u| *u > Instant::now()) {
                tokio::time::sleep_until(until).await;
            }
        }
    }

    async fn local_turn(&self) {
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
    /// before it is over, in this process or, on a shared store, in any.
    pub async fn hold(&self, wait: Duration) {
        {
            let mut pace = self.pace();
            let until = Instant::now() + wait;
            pace.paused_until = Some(pace.paused_until.map_or(until, |p| p.max(until)));
        }
        if let Some(shared) = &self.shared {
            shared.note("hold the shared pace", shared.pace.hold(&shared.scope, wait).await);
        }
    }

    /// The destination said 429, without saying how long to wait, to a request sent at `sent_at`.
    pub async fn slow_down(&self, sent_at: Instant) {
        let limit = {
            let mut pace = self.pace();
            if pace.lowered_at.is_none_or(|at| sent_at >= at) {
                pace.rate = (pace.rate / 2.0).max(pace.limit * FLOOR);
                pace.lowered_at = Some(Instant::now());
                tracing::info!(requests_per_minute = pace.rate.round() as u64, "throttled: slowing down");
            }
            pace.limit
        };
        if let Some(shared) = &self.shared {
            let lowered = shared.pace.slow_down(&shared.member(limit), sent_at.elapsed()).await;
            if let Some(Some(rate)) = shared.note("slow the shared pace down", lowered) {
                tracing::info!(requests_per_minute = rate.round() as u64, "throttled: every process slows down");
            }
        }
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
#[derive(Debug)]
pub struct Pacers {
    pacers: Mutex<HashMap<u64, Arc<Pacer>>>,
    /// This process, as a member of shared paces: its host and pid, and a random tag, since a
    /// process may hold more than one set of pacers.
    member: String,
}

impl Default for Pacers {
    fn default() -> Pacers {
        Pacers {
            pacers: Mutex::default(),
            member: format!("{}/{:08x}", crate::state::holder::me().label, rand::random::<u32>()),
        }
    }
}

impl Pacers {
    /// The pacer of the credential `scope` (see `DestinationSettings::rate_scope`), at the
    /// lowest limit any of its syncs asked for; on a store with a shared pace, a member of it.
    pub fn get(&self, scope: u64, requests_per_minute: u32, shared: Option<Arc<dyn SharedPace>>) -> Arc<Pacer> {
        let mut pacers = crate::panic::lock(&self.pacers);
        let pacer = pacers.entry(scope).or_insert_with(|| {
            let mut pacer = Pacer::new(requests_per_minute);
            pacer.shared = shared.map(|pace| Shared {
                pace,
                scope: format!("{scope:016x}"),
                member: self.member.clone(),
                failing: AtomicBool::new(false),
            });
            Arc::new(pacer)
        });
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
        pacer.slow_down(sent).await;
        assert_eq!(pacer.requests_per_minute(), 50.0);
        // Another request sent before the slowdown was answered for by it.
        pacer.slow_down(sent).await;
        assert_eq!(pacer.requests_per_minute(), 50.0);
        pacer.slow_down(Instant::now()).await;
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
            pacer.slow_down(Instant::now()).await;
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
        pacer.hold(Duration::from_secs(5)).await;
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
        let a = pacers.get(7, 100, None);
        let b = pacers.get(7, 60, None);
        let other = pacers.get(8, 100, None);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.requests_per_minute(), 60.0);
        assert_eq!(other.requests_per_minute(), 100.0);
    }
}
