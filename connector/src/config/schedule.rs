//! When a sync runs by itself: a cron expression, a fixed period, or continuously.
//!
//! Every schedule is cut into *slots*, instants every worker computes alike
//! from the schedule and the clock alone (a cron tick, a multiple of the
//! period since the Unix epoch). Workers sharing a state store claim a slot
//! before running it, which is what makes a due run happen exactly once
//! however many workers there are, and what coalesces slots missed while a
//! run was still going into one run after it.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use serde_saphyr::Spanned;

use super::issue::Loc;
use super::validator::Validator;
use crate::quote::quote;

/// The shortest gap between two runs of a `continuous: true` sync, so that a source
/// with nothing to send is not read in a tight loop.
pub const CONTINUOUS_FLOOR: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub enum Schedule {
    /// `schedule: "*/15 * * * *"`: five fields, minute granularity, UTC.
    Cron { expression: String, cron: Box<Cron> },
    /// `every: 5m`: slots at multiples of the period since the Unix epoch.
    Every(Duration),
    /// `continuous: true`: again as soon as the last run ends, at most once per floor.
    Continuous,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        match (self, other) {
            (Schedule::Cron { expression: a, .. }, Schedule::Cron { expression: b, .. }) => a == b,
            (Schedule::Every(a), Schedule::Every(b)) => a == b,
            (Schedule::Continuous, Schedule::Continuous) => true,
            _ => false,
        }
    }
}

impl Schedule {
    /// A five-field cron expression; seconds and years are refused, as the schedule has
    /// minute granularity.
    pub fn cron(expression: &str) -> Result<Schedule, String> {
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser.parse(expression).map_err(|e| {
            format!(
                "{} is not a five-field cron expression (minute hour day month weekday): {e}",
                quote(expression)
            )
        })?;
        // A pattern such as "0 0 30 2 *" parses but never fires; say so now rather than never run.
        if cron.find_next_occurrence(&Utc::now(), false).is_err() {
            return Err(format!("{} never fires", quote(expression)));
        }
        Ok(Schedule::Cron {
            expression: expression.trim().to_string(),
            cron: Box::new(cron),
        })
    }

    /// A period such as `30s`, `5m`, `1h 30m`; at least one second.
    pub fn every(text: &str) -> Result<Schedule, String> {
        whole_seconds(text, "the period").map(Schedule::Every)
    }

    /// The length of a slot where slots are periodic: the period, or the continuous floor.
    fn period_secs(&self) -> Option<i64> {
        match self {
            Schedule::Cron { .. } => None,
            Schedule::Every(p) => Some(p.as_secs() as i64),
            Schedule::Continuous => Some(CONTINUOUS_FLOOR.as_secs() as i64),
        }
    }

    /// A worker run's default box: the period, or for a cron schedule the time from `now` to
    /// its next slot (at least a second); a continuous sync's runs are not boxed.
    pub fn time_to_next_slot(&self, now: DateTime<Utc>) -> Option<Duration> {
        match self {
            Schedule::Every(period) => Some(*period),
            Schedule::Cron { .. } => {
                let next = self.next_after(now)?;
                let secs = (next - now).num_seconds().max(1);
                Some(Duration::from_secs(secs as u64))
            }
            Schedule::Continuous => None,
        }
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, .. } => cron.find_next_occurrence(&t, false).ok(),
            _ => {
                let p = self.period_secs()?;
                Utc.timestamp_opt((t.timestamp().div_euclid(p) + 1) * p, 0).single()
            }
        }
    }

    /// The latest slot at or before `t`: the one a run starting at `t` is for.
    pub fn latest_due(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, .. } => cron.find_previous_occurrence(&t, true).ok(),
            _ => {
                let p = self.period_secs()?;
                Utc.timestamp_opt(t.timestamp().div_euclid(p) * p, 0).single()
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron { expression, .. } => write!(f, "cron \"{expression}\" (UTC)"),
            Schedule::Every(p) => write!(f, "every {}", humantime::format_duration(*p)),
            Schedule::Continuous => write!(f, "continuous (at most every {}s)", CONTINUOUS_FLOOR.as_secs()),
        }
    }
}

/// The timing keys of a mapping as written.
#[derive(Clone, Copy, Debug)]
pub struct RawTiming<'a> {
    pub schedule: &'a Option<Spanned<String>>,
    pub every: &'a Option<Spanned<String>>,
    pub continuous: &'a Option<Spanned<bool>>,
}

impl Validator<'_> {
    /// `schedule`, `every` or `continuous`: at most one of them.
    pub fn schedule(&mut self, raw: RawTiming<'_>) -> Option<Schedule> {
        let given = [
            raw.schedule.as_ref().map(|s| Loc::of(s, "schedule")),
            raw.every.as_ref().map(|s| Loc::of(s, "every")),
            raw.continuous.as_ref().filter(|c| c.value).map(|c| Loc::of(c, "continuous")),
        ];
        let mut given: Vec<&Loc> = given.iter().flatten().collect();
        given.sort_by_key(|l| (l.line, l.column));
        if let Some(second) = given.get(1) {
            self.push(second, "give only one of `schedule`, `every` and `continuous`");
            return None;
        }
        if let Some(text) = raw.schedule {
            let expression = self.interpolated(text, "schedule")?;
            return Schedule::cron(&expression)
                .map_err(|e| self.push(&Loc::of(text, "schedule"), e))
                .ok();
        }
        if let Some(text) = raw.every {
            let period = self.interpolated(text, "every")?;
            return Schedule::every(&period).map_err(|e| self.push(&Loc::of(text, "every"), e)).ok();
        }
        raw.continuous.as_ref().filter(|c| c.value).map(|_| Schedule::Continuous)
    }

    /// `max_run`: how long a run keeps starting batches.
    pub fn max_run(&mut self, text: &Spanned<String>) -> Option<Duration> {
        let value = self.interpolated(text, "max_run")?;
        whole_seconds(&value, "a run's box")
            .map_err(|e| self.push(&Loc::of(text, "max_run"), e))
            .ok()
    }
}

/// A duration such as `30s`, `5m`, `1h 30m`: a whole number of seconds, at least one. `what`
/// names it in the error.
pub fn whole_seconds(text: &str, what: &str) -> Result<Duration, String> {
    let period = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{} is not a duration such as `30s`, `5m` or `1h`: {e}", quote(text)))?;
    if period < Duration::from_secs(1) || period.subsec_nanos() != 0 {
        return Err(format!("{}: {what} must be a whole number of seconds, at least 1s", quote(text)));
    }
    Ok(period)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn cron_slots_are_minute_ticks_in_utc() {
        let s = Schedule::cron("*/15 * * * *").expect("valid");
        assert_eq!(s.next_after(at("2026-11-23T10:07:30Z")), Some(at("2026-11-23T10:15:00Z")));
        assert_eq!(s.next_after(at("2026-11-23T10:15:00Z")), Some(at("2026-11-23T10:30:00Z")));
        assert_eq!(s.latest_due(at("2026-11-23T10:15:00Z")), Some(at("2026-11-23T10:15:00Z")));
        assert_eq!(s.latest_due(at("2026-11-23T10:29:59Z")), Some(at("2026-11-23T10:15:00Z")));
        assert_eq!(s.to_string(), "cron \"*/15 * * * *\" (UTC)");
    }

    #[test]
    fn bad_cron_expressions_are_refused_with_the_reason() {
        for bad in ["*/15 * * *", "0 */15 * * * *", "61 * * * *", "every day", "0 0 30 2 *"] {
            let err = Schedule::cron(bad).expect_err(bad);
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn periodic_slots_align_to_the_epoch_so_every_worker_agrees() {
        let s = Schedule::every("5m").expect("valid");
        assert_eq!(s.next_after(at("2026-11-23T10:07:30Z")), Some(at("2026-11-23T10:10:00Z")));
        assert_eq!(s.latest_due(at("2026-11-23T10:07:30Z")), Some(at("2026-11-23T10:05:00Z")));
        assert_eq!(s.latest_due(at("2026-11-23T10:10:00Z")), Some(at("2026-11-23T10:10:00Z")));
        assert_eq!(
            Schedule::every("1h 30m").expect("valid"),
            Schedule::Every(Duration::from_secs(5400))
        );
        assert_eq!(s.to_string(), "every 5m");
        let c = Schedule::Continuous;
        assert_eq!(c.next_after(at("2026-11-23T10:00:01Z")), Some(at("2026-11-23T10:00:05Z")));
    }

    #[test]
    fn bad_periods_are_refused() {
        for bad in ["5 minutes please", "500ms", "0s", "1.5s", ""] {
            assert!(Schedule::every(bad).is_err(), "{bad}");
        }
    }
}
