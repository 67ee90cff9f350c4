//! The suppression list: identities a sync never sends again, not upserted and not re-created,
//! until a person lifts them. It is not part of the diff state, so `--full` and `reset` keep it.

use serde::Serialize;

/// Why an identity is suppressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressReason {
    /// A mirror run deleted it at the destination.
    Mirror,
    /// `ebb delete` deleted it at the destination.
    Delete,
    /// `ebb suppress`.
    Manual,
    /// The mapping's suppression source lists it.
    Source,
}

impl SuppressReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressReason::Mirror => "mirror",
            SuppressReason::Delete => "delete",
            SuppressReason::Manual => "manual",
            SuppressReason::Source => "source",
        }
    }

    pub fn parse(s: &str) -> Option<SuppressReason> {
        Some(match s {
            "mirror" => SuppressReason::Mirror,
            "delete" => SuppressReason::Delete,
            "manual" => SuppressReason::Manual,
            "source" => SuppressReason::Source,
            _ => return None,
        })
    }
}

/// One suppressed identity: when, why and by which run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Suppression {
    pub id: String,
    pub reason: SuppressReason,
    pub run: Option<i64>,
    /// Unix seconds.
    pub at: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SuppressionRow {
    pub id: String,
    pub reason: String,
    pub run_id: Option<i64>,
    pub suppressed_at: i64,
}

impl TryFrom<SuppressionRow> for Suppression {
    type Error = super::StateError;

    fn try_from(r: SuppressionRow) -> Result<Suppression, super::StateError> {
        let reason = SuppressReason::parse(&r.reason).ok_or_else(|| {
            super::StateError::Damaged(format!(
                "suppression of {} has an unknown reason {}",
                crate::quote::quote(&r.id),
                crate::quote::quote(&r.reason)
            ))
        })?;
        Ok(Suppression {
            id: r.id,
            reason,
            run: r.run_id,
            at: r.suppressed_at,
        })
    }
}

/// Adds identities; one already suppressed keeps its first reason. `$1` sync, `$2` id,
/// `$3` reason, `$4` run, `$5` now.
pub(crate) const SUPPRESS: &str = "INSERT INTO suppressions (sync, id, reason, run_id, suppressed_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (sync, id) DO NOTHING";
