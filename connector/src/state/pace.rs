//! One pace per destination credential for every process on a shared state store: several
//! `ebb worker` hosts, and `ebb sync` runs beside them, against one API key. The PostgreSQL
//! store keeps it (`postgres/pace.rs`); SQLite state is one host's, and each process keeps its
//! own pace (`ship::pacing`).

use std::time::Duration;

use super::StateError;

/// Who asks for a turn of a credential's requests, and at what limit.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    /// The credential's rate scope, as text: a digest of endpoint and key, never the key.
    pub scope: &'a str,
    /// This process, for as long as it runs.
    pub member: &'a str,
    /// The lowest limit this process's syncs with the credential ask for.
    pub requests_per_minute: f64,
}

/// Turns of a credential's requests, shared through the state store.
#[async_trait::async_trait]
pub trait SharedPace: Send + Sync {
    /// Takes the credential's next turn and returns how long from now it starts. Turns are
    /// spaced at the pace now: at most the lowest limit of any process sending with the
    /// credential, lower after a slowdown, and never inside a hold.
    async fn take_turn(&self, member: &Member<'_>) -> Result<Duration, StateError>;
    /// A `Retry-After`: no process takes a turn of the credential before `wait` is over.
    async fn hold(&self, scope: &str, wait: Duration) -> Result<(), StateError>;
    /// A 429 without `Retry-After` to a request sent `sent_ago`: halves the pace for every
    /// process, once for all the requests sent before the last slowdown. Returns the pace now,
    /// if this call lowered it.
    async fn slow_down(&self, member: &Member<'_>, sent_ago: Duration) -> Result<Option<f64>, StateError>;
}
