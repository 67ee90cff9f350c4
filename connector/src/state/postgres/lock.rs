//! The PostgreSQL run lock: a session-level advisory lock on a connection of its
//! own, and a lease that outlives the session.
//!
//! The advisory lock keeps two live sessions from holding a sync at once. But
//! the server frees it the moment the session ends, and a session ends when its
//! connection drops, while the process that held it may still be sending. So:
//!
//! - The holder renews a lease row (`run_leases`) every [`HEARTBEAT_EVERY`] on the
//!   lock's own session, in a statement that also checks that this session still
//!   holds the advisory lock. A renewal that fails, or does not answer within
//!   [`CHECK_TIMEOUT`], loses the lock: the run stops starting requests at once
//!   and drops the ones in flight.
//! - Record hashes and schedule claims are written on that same session, so they
//!   are written only while the lock is held.
//! - A run that gets the advisory lock takes the lease over only if it was
//!   released, ran out ([`LEASE`] after its last renewal), belongs to a hold of
//!   this process that has ended, or belongs to a process on this machine that
//!   has certainly died. Otherwise the last holder may still be sending, and the
//!   sync counts as running. This is Consul's "lock delay".

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Row};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

use super::PostgresStore;
use crate::state::holder;
use crate::state::lock::{Held, LockLost, LockWatch, RunLock};
use crate::state::{LockCause, StateError};

/// How long a lease lasts after its last renewal.
pub const LEASE: Duration = Duration::from_secs(15);
/// How often a holder renews its lease and checks that it still holds the lock.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// A check that takes longer than this counts as a lost lock.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
// A holder notices a loss within HEARTBEAT_EVERY + CHECK_TIMEOUT of its last renewal; the rest
// of the lease is the time it has to drop its requests in flight before anyone else starts.
const _: () = assert!(HEARTBEAT_EVERY.as_secs() + CHECK_TIMEOUT.as_secs() + 5 <= LEASE.as_secs());

/// How long `try_lock` waits for a lock that may be on its way to release: far longer than
/// the server takes to notice a closed session, far shorter than any run that holds a lock.
const LOCK_RELEASE_GRACE: Duration = Duration::from_millis(200);
/// SQLSTATE of a lock wait cut off by `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// `EXISTS` exactly when this session holds the advisory lock whose key text is the placeholder.
macro_rules! held_by_this_session {
    ($key:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted \
             AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(",
            $key,
            ", 0))"
        )
    };
}

/// Renews the lease if, and only if, this session holds the sync's advisory lock.
const RENEW: &str = concat!(
    "UPDATE run_leases SET heartbeat_at = now() WHERE sync = $1 AND token = $2 AND ",
    held_by_this_session!("$3")
);
const HOLDS: &str = concat!("SELECT ", held_by_this_session!("$1"));
const RELEASE: &str = "UPDATE run_leases SET released_at = now() WHERE sync = $1 AND token = $2";

/// Holds of this process that have ended, by token: a run that takes a sync's lock right after
/// another run of this process let go of it never waits for that run's lease to run out.
fn ended() -> &'static StdMutex<HashMap<String, Instant>> {
    static ENDED: OnceLock<StdMutex<HashMap<String, Instant>>> = OnceLock::new();
    ENDED.get_or_init(StdMutex::default)
}

fn mark_ended(token: &str) {
    let mut ended = crate::panic::lock(ended());
    let now = Instant::now();
    // Past its lease a token no longer matters, so the map stays small in a long-lived worker.
    ended.retain(|_, at| now.duration_since(*at) < LEASE);
    ended.insert(token.to_string(), now);
}

fn has_ended(token: &str) -> bool {
    crate::panic::lock(ended()).contains_key(token)
}

/// The lease as a run that just got the advisory lock finds it.
enum Lease {
    Taken {
        token: String,
        /// The sync's fencing token: see [`crate::state::RunLock::fence`].
        fence: i64,
    },
    /// The last holder may still be sending.
    Busy { holder: String, left: Duration },
}

/// Takes the lease over unless its last holder may still be running. Called only while holding
/// the advisory lock, so no other taker can race it, and the last holder, whose renewals need
/// that lock, cannot renew meanwhile.
async fn take_lease(session: &mut PgConnection, sync: &str) -> Result<Lease, sqlx::Error> {
    let current = sqlx::query(
        "SELECT token, holder, process, released_at IS NOT NULL AS released, \
         EXTRACT(EPOCH FROM (now() - heartbeat_at))::float8 AS age_secs FROM run_leases WHERE sync = $1",
    )
    .bind(sync)
    .fetch_optional(&mut *session)
    .await?;
    if let Some(row) = current {
        let token: String = row.get("token");
        let age = Duration::from_secs_f64(row.get::<f64, _>("age_secs").max(0.0));
        let over =
            row.get::<bool, _>("released") || age >= LEASE || has_ended(&token) || holder::is_certainly_dead(row.get::<&str, _>("process"));
        if !over {
            return Ok(Lease::Busy {
                holder: row.get("holder"),
                left: LEASE - age,
            });
        }
    }
    let token = format!("{:032x}", rand::random::<u128>());
    let me = holder::me();
    let fence: i64 = sqlx::query_scalar(
        "INSERT INTO run_leases (sync, token, holder, process, heartbeat_at, fence) \
         VALUES ($1, $2, $3, $4, now(), floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint) \
         ON CONFLICT (sync) DO UPDATE SET token = excluded.token, holder = excluded.holder, process = excluded.process, \
         heartbeat_at = excluded.heartbeat_at, released_at = NULL, fence = GREATEST(run_leases.fence + 1, excluded.fence) RETURNING fence",
    )
    .bind(sync)
    .bind(&token)
    .bind(&me.label)
    .bind(&me.process)
    .fetch_one(&mut *session)
    .await?;
    Ok(Lease::Taken { token, fence })
}

/// Waits for the session-level advisory lock of `key`, as long as the session's `lock_timeout` allows.
async fn advisory_lock(session: &mut PgConnection, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(session)
        .await
        .map(|_| ())
}

/// What identifies one hold.
#[derive(Clone)]
struct HoldId {
    sync: String,
    token: String,
    /// The advisory lock's key text.
    key: String,
    /// The store's URL, password masked.
    store: String,
}

impl HoldId {
    fn lost(&self, cause: impl Into<String>) -> LockLost {
        LockLost {
            store: self.store.clone(),
            cause: cause.into(),
        }
    }
}

type Session = Arc<Mutex<Option<PgConnection>>>;

/// The PostgreSQL part of a [`RunLock`]: the session that holds the advisory lock, and its heartbeat.
pub(in crate::state) struct PgHold {
    id: HoldId,
    session: Session,
    watch: LockWatch,
    pool: PgPool,
    heartbeat: CancellationToken,
    ended: bool,
}

/// The lock's session, borrowed for a write that may happen only while the lock is held.
pub(in crate::state) type HeldSession<'a> = MappedMutexGuard<'a, PgConnection>;

impl PgHold {
    pub(in crate::state) fn of(lock: &RunLock) -> Result<&PgHold, StateError> {
        lock.held::<PgHold>().ok_or(StateError::Lock(LockCause::OtherStore))
    }

    /// The session, unless the lock is already known to be lost.
    pub(in crate::state) async fn session(&self) -> Result<HeldSession<'_>, StateError> {
        self.watch.check()?;
        MutexGuard::try_map(self.session.lock().await, Option::as_mut)
            .map_err(|_| StateError::LockLost(self.id.lost("the lock was released")))
    }

    /// What a failed write on the session means: if the session no longer holds the lock, the
    /// lock is lost and nothing of the write happened; otherwise it is the write's own error.
    pub(in crate::state) async fn failed(&self, session: &mut HeldSession<'_>, e: sqlx::Error) -> StateError {
        let holds = tokio::time::timeout(CHECK_TIMEOUT, async {
            sqlx::query_scalar::<_, bool>(HOLDS)
                .bind(&self.id.key)
                .fetch_one(&mut **session)
                .await
        })
        .await;
        if matches!(holds, Ok(Ok(true))) {
            return StateError::from(e);
        }
        let lost = self.id.lost(e.to_string());
        self.watch.lose(lost.clone());
        StateError::LockLost(lost)
    }

    /// Ends the hold: marks the lease released, so no one waits for it, and closes the session,
    /// which frees the advisory lock.
    fn end(&mut self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        if std::mem::replace(&mut self.ended, true) {
            return None;
        }
        mark_ended(&self.id.token);
        self.heartbeat.cancel();
        let (id, session, pool, lost) = (self.id.clone(), self.session.clone(), self.pool.clone(), self.watch.is_lost());
        Some(async move {
            let conn = session.lock().await.take();
            let mut released = false;
            if let (Some(mut conn), false) = (conn, lost) {
                let update = sqlx::query(RELEASE).bind(&id.sync).bind(&id.token).execute(&mut conn);
                released = matches!(tokio::time::timeout(CHECK_TIMEOUT, update).await, Ok(Ok(_)));
                let _ = conn.close().await;
            }
            if !released {
                // The run has stopped, so the lease may go even though its session has gone.
                let update = sqlx::query(RELEASE).bind(&id.sync).bind(&id.token).execute(&pool);
                let _ = tokio::time::timeout(CHECK_TIMEOUT, update).await;
            }
        })
    }
}

#[async_trait::async_trait]
impl Held for PgHold {
    async fn release(mut self: Box<Self>) {
        if let Some(end) = self.end() {
            end.await;
        }
    }
}

impl Drop for PgHold {
    fn drop(&mut self) {
        if let Some(end) = self.end() {
            // Without a runtime the session is simply dropped, which ends it too.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(end);
            }
        }
    }
}

/// How long one renewal proves the lock held, counted from when it was sent: until the next
/// renewal is due and has had its time to answer.
const PROVEN_FOR: Duration = Duration::from_secs(HEARTBEAT_EVERY.as_secs() + CHECK_TIMEOUT.as_secs());

/// Renews the lease every HEARTBEAT_EVERY; the first renewal that fails loses the lock.
async fn heartbeat(id: HoldId, session: Session, watch: LockWatch, stop: CancellationToken) {
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = tokio::time::sleep(HEARTBEAT_EVERY) => {}
        }
        let sent = tokio::time::Instant::now();
        let renewal = async {
            let mut guard = session.lock().await;
            let Some(conn) = guard.as_mut() else { return Ok(true) };
            let renewed = sqlx::query(RENEW)
                .bind(&id.sync)
                .bind(&id.token)
                .bind(&id.key)
                .execute(conn)
                .await?;
            Ok::<bool, sqlx::Error>(renewed.rows_affected() == 1)
        };
        let outcome = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            outcome = tokio::time::timeout(CHECK_TIMEOUT, renewal) => outcome,
        };
        let cause = match outcome {
            Ok(Ok(true)) => {
                watch.renewed(sent + PROVEN_FOR);
                continue;
            }
            Ok(Ok(false)) => "the session no longer holds the lock".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("the state store did not answer within {}s", CHECK_TIMEOUT.as_secs()),
        };
        watch.lose(id.lost(cause));
        return;
    }
}

impl PostgresStore {
    /// Session-level advisory locks belong to a session, so each lock gets a connection of its
    /// own, outside the pool. A killed process's session is ended by the server.
    async fn lock_session(&self) -> Result<PgConnection, StateError> {
        self.options.connect().await.map_err(|e| StateError::Lock(e.into()))
    }

    /// Keyed by schema too, so that stores in different schemas of one database do not block each other.
    fn lock_key(&self, sync: &str) -> String {
        format!("ebb:{}:{sync}", self.schema)
    }

    fn hold(&self, sync: &str, key: String, (token, fence): (String, i64), session: PgConnection) -> RunLock {
        let id = HoldId {
            sync: sync.to_string(),
            token,
            key,
            store: self.display_url.clone(),
        };
        let session: Session = Arc::new(Mutex::new(Some(session)));
        // The lease was written just now, by the statement that took it.
        let watch = LockWatch::proven_until(tokio::time::Instant::now() + PROVEN_FOR);
        let stop = CancellationToken::new();
        tokio::spawn(heartbeat(id.clone(), session.clone(), watch.clone(), stop.clone()));
        let hold = PgHold {
            id,
            session,
            watch: watch.clone(),
            pool: self.pool.clone(),
            heartbeat: stop,
            ended: false,
        };
        RunLock::new(sync, watch, hold).fenced(fence)
    }

    pub(super) async fn try_lock_session(&self, sync: &str) -> Result<Option<RunLock>, StateError> {
        let lock_err = |e: sqlx::Error| StateError::Lock(e.into());
        let mut session = self.lock_session().await?;
        let key = self.lock_key(sync);
        // The server frees a session's advisory locks when it notices the session has gone,
        // a moment after its holder dropped the connection or exited, not at once. So "try"
        // waits that moment, rather than report a run that has already ended as running.
        sqlx::query(&format!("SET lock_timeout = '{}ms'", LOCK_RELEASE_GRACE.as_millis()))
            .execute(&mut session)
            .await
            .map_err(lock_err)?;
        let taken = advisory_lock(&mut session, &key).await;
        match taken {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => return Ok(None),
            Err(e) => return Err(lock_err(e)),
        }
        // Only the advisory lock was to be waited for briefly; writes on this session wait as long as they need.
        sqlx::query("RESET lock_timeout").execute(&mut session).await.map_err(lock_err)?;
        match take_lease(&mut session, sync).await.map_err(lock_err)? {
            Lease::Taken { token, fence } => Ok(Some(self.hold(sync, key, (token, fence), session))),
            Lease::Busy { holder, left } => {
                tracing::info!(
                    sync,
                    holder = %holder,
                    lease_left_ms = left.as_millis() as u64,
                    "the last run's state connection dropped and it may still be sending; the sync counts as running until its lease runs out"
                );
                let _ = session.close().await;
                Ok(None)
            }
        }
    }

    pub(super) async fn lock_session_waiting(&self, sync: &str) -> Result<RunLock, StateError> {
        let lock_err = |e: sqlx::Error| StateError::Lock(e.into());
        let mut session = self.lock_session().await?;
        let key = self.lock_key(sync);
        advisory_lock(&mut session, &key).await.map_err(lock_err)?;
        loop {
            match take_lease(&mut session, sync).await.map_err(lock_err)? {
                Lease::Taken { token, fence } => return Ok(self.hold(sync, key, (token, fence), session)),
                Lease::Busy { holder, left } => {
                    tracing::info!(sync, holder = %holder, lease_left_ms = left.as_millis() as u64, "waiting for the last run's lease to run out");
                    tokio::time::sleep(left.min(Duration::from_secs(1))).await;
                }
            }
        }
    }
}
