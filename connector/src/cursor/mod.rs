//! Cursor-narrowed diffs (`source.cursor:`): which rows a run reads, and the watermark a
//! completed run leaves for the next.
//!
//! A cursor run reads only the rows whose cursor is at or past the last completed run's
//! watermark less `lag` (and rows with no cursor), then diffs them against the baseline as any
//! run does, so a row whose cursor moved but whose record did not is still not sent. Rows it
//! does not read are unchanged by assumption; a full diff, at least every `full_every`, reads
//! every row and counts the rows that changed without their cursor moving, so a team learns
//! when its `updated_at` cannot be trusted.
//!
//! - [`decide`] (`scope.rs`): full diff or narrowed read, from the stored watermark, the
//!   mapping's fingerprint and the run's options.
//! - [`CursorRead`] (`read.rs`): what pass 1 learns of the cursor as it reads: the largest
//!   value, the cursors of the records to send, the rows changed below the old watermark.
//! - [`CursorRun`] (`run.rs`): the watermark a run leaves: only a completed one moves it, never
//!   past a planned record the destination did not acknowledge.

mod read;
mod run;
pub mod scope;

use crate::column::ColumnType;
use crate::config::{ConfigErrors, CursorConfig, Lag};
use crate::quote::quote;
use crate::source::since::is_cursor_type;
use crate::source::SourceSchema;
use crate::spec::Mapping;

pub use read::{Clock, CursorRead, Seen};
pub use run::{CursorRun, CursorSummary};
pub use scope::{decide, Decision, FullReason, Scope};

/// The cursor column as the source has it: checked once per run, with the mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorColumn {
    pub name: String,
    pub ty: ColumnType,
    /// How far behind the watermark a run reads again, in the column's unit.
    pub lag: i64,
    pub config: CursorConfig,
}

/// The mapping's cursor column, checked against the source's schema: it must be there, of a
/// type that orders (timestamp, date, integer), with a `lag:` of the kind that type takes.
pub fn check(mapping: &Mapping, schema: &SourceSchema) -> Result<Option<CursorColumn>, ConfigErrors> {
    let Some(config) = &mapping.cursor else { return Ok(None) };
    let fail = |loc, message: String| ConfigErrors(vec![mapping.issue(loc, message, None)]);
    let Some(ty) = schema.column(&config.column) else {
        let (message, hint) = schema.missing(&config.column);
        return Err(ConfigErrors(vec![mapping.issue(&config.loc, message, hint)]));
    };
    if !is_cursor_type(ty) {
        return Err(fail(
            &config.loc,
            format!(
                "column {} is {ty}: a cursor is a timestamp, timestamptz, date or integer column",
                quote(&config.column)
            ),
        ));
    }
    let lag_loc = config.lag_loc.as_ref().unwrap_or(&config.loc);
    let lag = lag_in_units(config.lag, ty).map_err(|message| fail(lag_loc, message))?;
    Ok(Some(CursorColumn {
        name: config.column.clone(),
        ty: ty.clone(),
        lag,
        config: config.clone(),
    }))
}

impl CursorColumn {
    /// The run's clock in this column's unit, at `now` (Unix seconds); an integer cursor has none.
    pub fn clock(&self, now: i64) -> Option<Clock> {
        const DAY_MICROS: i64 = 86_400_000_000;
        match self.ty {
            ColumnType::Timestamp => Some(Clock {
                now: now.saturating_mul(1_000_000),
                day: DAY_MICROS,
            }),
            ColumnType::Date => Some(Clock {
                now: now.div_euclid(86_400),
                day: 1,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
impl CursorColumn {
    /// An integer cursor `name` with `lag`, for tests of the scope and the watermark.
    pub(crate) fn integer(name: &str, lag: i64) -> CursorColumn {
        CursorColumn {
            name: name.into(),
            ty: ColumnType::Int,
            lag,
            config: CursorConfig {
                column: name.into(),
                lag: Lag::Units(lag),
                full_every: std::time::Duration::from_secs(3600),
                loc: crate::config::Loc {
                    line: 1,
                    column: 1,
                    field: "source.cursor".into(),
                },
                lag_loc: None,
            },
        }
    }
}

/// `lag` in the unit of a cursor of type `ty`: microseconds, days or the integer's own.
fn lag_in_units(lag: Lag, ty: &ColumnType) -> Result<i64, String> {
    let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    match (lag, ty) {
        (Lag::Default, ColumnType::Timestamp) => Ok(micros(crate::config::cursor::DEFAULT_TIME_LAG)),
        (Lag::Default, _) => Ok(0),
        (Lag::Duration(d), ColumnType::Timestamp) => Ok(micros(d)),
        // A date cursor re-reads the watermark's own day already; a lag adds whole days.
        (Lag::Duration(d), ColumnType::Date) => Ok((d.as_secs() / 86_400) as i64),
        (Lag::Duration(_), _) => Err(format!(
            "is a duration, but the cursor column is {ty}: give an integer cursor's lag as a number in its own units"
        )),
        (Lag::Units(n), ColumnType::Int | ColumnType::UInt) => Ok(n),
        (Lag::Units(_), _) => Err(format!(
            "is a number, but the cursor column is {ty}: give it as a duration such as `5m`"
        )),
    }
}

/// A digest of what a watermark is only good for: the mapping as compiled, the destination
/// and the cursor column with its type. Another one makes the next run a full diff.
pub fn fingerprint(mapping: &str, destination: &str, column: &CursorColumn) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    for part in [mapping, destination, &column.name, &column.ty.to_string()] {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part.as_bytes());
    }
    digest.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lag_is_in_the_columns_unit_and_must_be_of_its_kind() {
        let five_minutes = Lag::Duration(std::time::Duration::from_secs(300));
        assert_eq!(lag_in_units(five_minutes, &ColumnType::Timestamp), Ok(300_000_000));
        assert_eq!(lag_in_units(five_minutes, &ColumnType::Date), Ok(0));
        assert_eq!(
            lag_in_units(Lag::Duration(std::time::Duration::from_secs(2 * 86_400)), &ColumnType::Date),
            Ok(2)
        );
        assert_eq!(lag_in_units(Lag::Default, &ColumnType::Timestamp), Ok(300_000_000));
        assert_eq!(lag_in_units(Lag::Default, &ColumnType::Int), Ok(0));
        assert_eq!(lag_in_units(Lag::Units(10), &ColumnType::Int), Ok(10));
        assert!(lag_in_units(five_minutes, &ColumnType::Int)
            .unwrap_err()
            .contains("number in its own units"));
        assert!(lag_in_units(Lag::Units(10), &ColumnType::Timestamp).unwrap_err().contains("`5m`"));
    }
}
