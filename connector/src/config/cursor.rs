//! `source.cursor:`, the column that says which rows changed, and how far to trust it.
//!
//! None of these keys changes what a record becomes, so none is part of the mapping's
//! fingerprint: changing `lag` or `full_every` resends nothing. Whether a run reads only the
//! rows past the cursor, or every row, is decided per run (`crate::cursor`).

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::issue::Loc;
use super::validator::Validator;
use crate::quote::quote;

/// A full diff at least this often, unless the mapping says otherwise.
pub const DEFAULT_FULL_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How far behind the watermark a time cursor re-reads, unless the mapping says otherwise:
/// a transaction that took its `updated_at` before the last run read and committed after it.
pub const DEFAULT_TIME_LAG: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Cursor")]
pub struct RawCursor {
    /// A `timestamp`, `timestamptz`, `date` or integer column that moves whenever the row changes
    /// (`updated_at`). Runs read only rows at or past the last run's largest value, less `lag`.
    #[schemars(with = "String")]
    pub column: Spanned<String>,
    /// How far behind the watermark to read again, for late commits and clock skew: a duration
    /// (`5m`, the default for time cursors) or, for an integer cursor, a number (default 0).
    #[serde(default)]
    #[schemars(with = "Option<RawLag>")]
    pub lag: Option<Spanned<RawLag>>,
    /// A full diff (every row read) at least this often, to catch rows changed without their
    /// cursor moving (default `24h`; at least `1s`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub full_every: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Lag")]
pub enum RawLag {
    Units(i64),
    Duration(String),
}

/// How far behind the watermark a run reads again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lag {
    /// For a timestamp or date cursor.
    Duration(Duration),
    /// For an integer cursor, in its own units.
    Units(i64),
    /// Not written: the default for the column's type.
    Default,
}

/// A checked `cursor:` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorConfig {
    pub column: String,
    pub lag: Lag,
    pub full_every: Duration,
    pub loc: Loc,
    /// Where `lag` is written, for the error when it does not suit the column's type.
    pub lag_loc: Option<Loc>,
}

impl Validator<'_> {
    pub fn cursor(&mut self, raw: &Spanned<RawCursor>, at: &str) -> Option<CursorConfig> {
        let c = &raw.value;
        let field = format!("{at}.cursor.column");
        let column = self.interpolated(&c.column, &field)?;
        if column.trim().is_empty() {
            self.push(&Loc::of(&c.column, field), "must name a column");
            return None;
        }
        let lag_loc = c.lag.as_ref().map(|l| Loc::of(l, format!("{at}.cursor.lag")));
        let lag = match (&c.lag, &lag_loc) {
            (None, _) | (_, None) => Lag::Default,
            (Some(l), Some(loc)) => self.lag(&l.value, loc),
        };
        let full_every = match &c.full_every {
            None => DEFAULT_FULL_EVERY,
            Some(text) => {
                let loc = Loc::of(text, format!("{at}.cursor.full_every"));
                match humantime::parse_duration(text.value.trim()) {
                    Ok(d) if d >= Duration::from_secs(1) => d,
                    Ok(_) => {
                        self.push(&loc, "must be at least 1s");
                        DEFAULT_FULL_EVERY
                    }
                    Err(e) => {
                        self.push(&loc, format!("{} is not a duration such as `24h`: {e}", quote(&text.value)));
                        DEFAULT_FULL_EVERY
                    }
                }
            }
        };
        Some(CursorConfig {
            column,
            lag,
            full_every,
            loc: Loc::of(raw, format!("{at}.cursor")),
            lag_loc,
        })
    }

    fn lag(&mut self, raw: &RawLag, loc: &Loc) -> Lag {
        match raw {
            RawLag::Units(n) if *n >= 0 => Lag::Units(*n),
            RawLag::Units(n) => {
                self.push(loc, format!("must not be negative, got {n}"));
                Lag::Default
            }
            RawLag::Duration(text) => match humantime::parse_duration(text.trim()) {
                Ok(d) => Lag::Duration(d),
                Err(e) => {
                    self.push(loc, format!("{} is not a duration such as `5m`: {e}", quote(text)));
                    Lag::Default
                }
            },
        }
    }
}
