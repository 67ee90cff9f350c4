//! The shared pace in PostgreSQL (see `state::pace` and migration 0015). Each turn is one
//! statement, so processes on different hosts are ordered by the row lock of the credential's
//! `rate_turns` row, and every time is the database's clock, not a host's.

use std::time::Duration;

use sqlx::PgPool;

use crate::state::pace::{Member, SharedPace};
use crate::state::StateError;

/// The share of the limit turns are spaced at, as for one process's pace.
pub(crate) const HEADROOM: f64 = 0.995;
/// How much of the limit each turn wins back after a slowdown.
const RECOVERY_STEP: f64 = 1.0 / 50.0;
/// The slowest pace a slowdown goes down to, as a share of the limit.
const FLOOR: f64 = 1.0 / 32.0;
/// How long a member counts after its last turn: a process that died stops lowering the limit
/// after this.
const LEASE_SECS: f64 = 10.0;

/// `$1` scope, `$2` member, `$3` its limit, `$4` headroom, `$5` recovery step, `$6` lease.
/// The member's lease is renewed; the limit is the lowest of every member whose lease is
/// current (a data-modifying CTE's row is not visible to its own statement, hence `$3` again).
/// SET reads the row as it was: the turn is the later of the next one free, now, and the end
/// of a hold; the next one free is a turn's interval later, at the pace before this turn's
/// step back up.
const TAKE_TURN: &str = "\
WITH renewed AS (
    INSERT INTO rate_members (scope, member, requests_per_minute, expires_at)
    VALUES ($1, $2, $3, clock_timestamp() + make_interval(secs => $6))
    ON CONFLICT (scope, member) DO UPDATE
        SET requests_per_minute = EXCLUDED.requests_per_minute, expires_at = EXCLUDED.expires_at
), lowest AS (
    SELECT LEAST($3, COALESCE(MIN(requests_per_minute), $3)) AS rpm
    FROM rate_members
    WHERE scope = $1 AND member <> $2 AND expires_at > clock_timestamp()
)
INSERT INTO rate_turns AS t (scope, next_at, turn_at)
SELECT $1, clock_timestamp() + make_interval(secs => 60.0 / (l.rpm * $4)), clock_timestamp() FROM lowest l
ON CONFLICT (scope) DO UPDATE SET
    turn_at = GREATEST(t.next_at, clock_timestamp(), COALESCE(t.paused_until, '-infinity')),
    next_at = GREATEST(t.next_at, clock_timestamp(), COALESCE(t.paused_until, '-infinity'))
        + make_interval(secs => 60.0 / (LEAST(COALESCE(t.rate, 'infinity'), (SELECT rpm FROM lowest)) * $4)),
    rate = CASE WHEN t.rate IS NULL OR t.rate + (SELECT rpm FROM lowest) * $5 >= (SELECT rpm FROM lowest) THEN NULL
                ELSE t.rate + (SELECT rpm FROM lowest) * $5 END
RETURNING GREATEST(EXTRACT(EPOCH FROM (t.turn_at - clock_timestamp())), 0)::float8";

/// `$1` scope, `$2` seconds to hold.
const HOLD: &str = "\
INSERT INTO rate_turns AS t (scope, next_at, turn_at, paused_until)
VALUES ($1, clock_timestamp(), clock_timestamp(), clock_timestamp() + make_interval(secs => $2))
ON CONFLICT (scope) DO UPDATE
    SET paused_until = GREATEST(COALESCE(t.paused_until, '-infinity'), EXCLUDED.paused_until)";

/// `$1` scope, `$2` the member's limit, `$3` floor, `$4` seconds since the request was sent.
/// A request sent before the last slowdown was answered for by it.
const SLOW_DOWN: &str = "\
UPDATE rate_turns
SET rate = GREATEST(COALESCE(LEAST(rate, $2), $2) / 2, $2 * $3), lowered_at = clock_timestamp()
WHERE scope = $1
  AND (lowered_at IS NULL OR lowered_at < clock_timestamp() - make_interval(secs => $4))
RETURNING rate";

/// The shared pace of a PostgreSQL state store.
pub struct PgPace {
    pub(super) pool: PgPool,
}

#[async_trait::async_trait]
impl SharedPace for PgPace {
    async fn take_turn(&self, member: &Member<'_>) -> Result<Duration, StateError> {
        let wait: f64 = sqlx::query_scalar(TAKE_TURN)
            .bind(member.scope)
            .bind(member.member)
            .bind(member.requests_per_minute.max(1.0))
            .bind(HEADROOM)
            .bind(RECOVERY_STEP)
            .bind(LEASE_SECS)
            .fetch_one(&self.pool)
            .await?;
        // The database computes it; a value no duration holds is no wait.
        Ok(Duration::try_from_secs_f64(wait).unwrap_or_default())
    }

    async fn hold(&self, scope: &str, wait: Duration) -> Result<(), StateError> {
        sqlx::query(HOLD).bind(scope).bind(wait.as_secs_f64()).execute(&self.pool).await?;
        Ok(())
    }

    async fn slow_down(&self, member: &Member<'_>, sent_ago: Duration) -> Result<Option<f64>, StateError> {
        let rate: Option<f64> = sqlx::query_scalar(SLOW_DOWN)
            .bind(member.scope)
            .bind(member.requests_per_minute.max(1.0))
            .bind(FLOOR)
            .bind(sent_ago.as_secs_f64())
            .fetch_optional(&self.pool)
            .await?;
        Ok(rate)
    }
}
