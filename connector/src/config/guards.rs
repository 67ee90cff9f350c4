//! `guards:`: limits on what one run may change, so that no run deletes or rewrites in bulk by
//! mistake. A run whose plan passes a limit sends nothing; a person can let it through once
//! (`ebb sync --allow-guard NAME`) after looking at the preview.

use std::fmt;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::issue::Loc;
use super::validator::Validator;

/// The guards' names, as `--allow-guard` takes them.
pub const GUARD_NAMES: &[&str] = &["max_deletes", "max_delete_ratio", "max_change_ratio", "allow_empty_source"];

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Guards")]
pub struct RawGuards {
    /// Most deletes in one run.
    #[serde(default)]
    #[schemars(with = "Option<i64>")]
    pub max_deletes: Option<Spanned<i64>>,
    /// Most deletes over the records in state, 0 to 1.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub max_delete_ratio: Option<Spanned<f64>>,
    /// Most new, changed and deleted records over the records in state, 0 or more: new records
    /// can take it past 1, so 2 means up to twice the records in state.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub max_change_ratio: Option<Spanned<f64>>,
    /// In mirror mode, let a snapshot of no rows through (it deletes everything).
    #[serde(default)]
    pub allow_empty_source: Option<bool>,
}

/// None applies unless it is set, but in mirror mode: there, a mapping without `guards:` gets
/// [`Guards::mirror_default`], and `allow_empty_source` is always on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Guards {
    pub max_deletes: Option<u64>,
    pub max_delete_ratio: Option<f64>,
    pub max_change_ratio: Option<f64>,
    pub allow_empty_source: bool,
    /// These are the mirror mode's default, the mapping having no `guards:` block.
    pub defaulted: bool,
}

/// The share of the records in state that a mirror run without `guards:` may delete.
pub const MIRROR_MAX_DELETE_RATIO: f64 = 0.1;

/// What a run's plan would do, as the guards see it.
#[derive(Clone, Copy, Debug)]
pub struct Planned {
    pub source_rows: u64,
    pub new: u64,
    pub changed: u64,
    pub deletes: u64,
    /// Records in state before the run.
    pub in_state: u64,
    pub mirror: bool,
}

/// The guard a plan passed, with the planned count and the limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("blocked by guard `{guard}`: {planned}, over the limit of {limit}; nothing was sent (look at `ebb preview`, then `ebb sync --allow-guard {guard}` lets one run through)")]
pub struct GuardBlocked {
    pub guard: &'static str,
    pub planned: String,
    pub limit: String,
}

impl Guards {
    /// What a mirror mapping without a `guards:` block gets: no run deletes more than a tenth of
    /// what state holds unless someone lets it through. Any `guards:` block, even an empty
    /// one, replaces it.
    pub fn mirror_default() -> Guards {
        Guards {
            max_delete_ratio: Some(MIRROR_MAX_DELETE_RATIO),
            defaulted: true,
            ..Guards::default()
        }
    }

    /// The guards in force, one line each, as `preview` shows them.
    pub fn describe(&self, mirror: bool) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(max) = self.max_deletes {
            lines.push(format!("max_deletes {max}"));
        }
        if let Some(max) = self.max_delete_ratio {
            let default = match self.defaulted {
                true => " (mirror mode's default; a `guards:` block replaces it)",
                false => "",
            };
            lines.push(format!("max_delete_ratio {}{default}", Percent(max)));
        }
        if let Some(max) = self.max_change_ratio {
            lines.push(format!("max_change_ratio {}", Percent(max)));
        }
        if mirror && !self.allow_empty_source {
            lines.push("allow_empty_source false (an empty snapshot is refused in mirror mode)".to_string());
        }
        lines
    }

    /// The first guard the plan passes that `allowed` does not let through.
    pub fn check(&self, p: &Planned, allowed: &dyn Fn(&str) -> bool) -> Option<GuardBlocked> {
        let blocked =
            |guard: &'static str, planned: String, limit: String| (!allowed(guard)).then_some(GuardBlocked { guard, planned, limit });
        if p.mirror && p.source_rows == 0 && !self.allow_empty_source {
            let planned = format!(
                "the snapshot has no rows, so mirror mode would delete all {} records in state",
                p.in_state
            );
            if let Some(b) = blocked(
                "allow_empty_source",
                planned,
                "0 empty snapshots unless `guards.allow_empty_source: true`".into(),
            ) {
                return Some(b);
            }
        }
        if let Some(max) = self.max_deletes.filter(|max| p.deletes > *max) {
            let planned = format!("{} delete{} planned", p.deletes, if p.deletes == 1 { "" } else { "s" });
            if let Some(b) = blocked("max_deletes", planned, format!("{max}")) {
                return Some(b);
            }
        }
        // A ratio over an empty state means nothing: the first run, or the one after a reset.
        if p.in_state == 0 {
            return None;
        }
        let ratio = |n: u64| n as f64 / p.in_state as f64;
        let share = |n: u64, what: &str| format!("{n} {what} of {} records in state ({})", p.in_state, Percent(ratio(n)));
        if let Some(max) = self.max_delete_ratio.filter(|max| ratio(p.deletes) > *max) {
            if let Some(b) = blocked("max_delete_ratio", share(p.deletes, "deletes"), Percent(max).to_string()) {
                return Some(b);
            }
        }
        let changes = p.new + p.changed + p.deletes;
        if let Some(max) = self.max_change_ratio.filter(|max| ratio(changes) > *max) {
            return blocked(
                "max_change_ratio",
                share(changes, "new, changed and deleted"),
                Percent(max).to_string(),
            );
        }
        None
    }
}

struct Percent(f64);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // To a tenth of a percent, so 0.55 reads as 55%, not 55.000000000000007%.
        let pct = (self.0 * 1000.0).round() / 10.0;
        if pct.fract() == 0.0 {
            write!(f, "{pct:.0}%")
        } else {
            write!(f, "{pct:.1}%")
        }
    }
}

impl Validator<'_> {
    pub fn guards(&mut self, raw: &Spanned<RawGuards>) -> Guards {
        let g = &raw.value;
        let ratio = |v: &mut Validator, value: &Option<Spanned<f64>>, field: &str, most: f64, shape: &str| -> Option<f64> {
            let value = value.as_ref()?;
            if !(0.0..=most).contains(&value.value) {
                v.push(&Loc::of(value, format!("guards.{field}")), shape);
                return None;
            }
            Some(value.value)
        };
        let share = "must be a share from 0 to 1, such as 0.05";
        let over_state = "must be 0 or more, such as 0.5 (new records can take it past 1: 2 means up to twice the records in state)";
        let max_deletes = g.max_deletes.as_ref().and_then(|m| {
            let n = u64::try_from(m.value).ok();
            if n.is_none() {
                self.push(&Loc::of(m, "guards.max_deletes"), "must be 0 or more");
            }
            n
        });
        Guards {
            max_deletes,
            max_delete_ratio: ratio(self, &g.max_delete_ratio, "max_delete_ratio", 1.0, share),
            max_change_ratio: ratio(self, &g.max_change_ratio, "max_change_ratio", f64::MAX, over_state),
            allow_empty_source: g.allow_empty_source.unwrap_or(false),
            defaulted: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(new: u64, changed: u64, deletes: u64, in_state: u64) -> Planned {
        Planned {
            source_rows: 10,
            new,
            changed,
            deletes,
            in_state,
            mirror: true,
        }
    }

    #[test]
    fn each_guard_names_itself_the_planned_count_and_the_limit() {
        let none = |_: &str| false;
        let guards = Guards {
            max_deletes: Some(3),
            max_delete_ratio: Some(0.05),
            max_change_ratio: Some(0.5),
            allow_empty_source: false,
            defaulted: false,
        };
        let b = guards.check(&planned(0, 0, 4, 1000), &none).expect("blocked");
        assert_eq!(
            (b.guard, b.planned.as_str(), b.limit.as_str()),
            ("max_deletes", "4 deletes planned", "3")
        );
        let b = guards.check(&planned(0, 0, 3, 20), &none).expect("blocked");
        assert_eq!(
            (b.guard, b.planned.as_str(), b.limit.as_str()),
            ("max_delete_ratio", "3 deletes of 20 records in state (15%)", "5%")
        );
        let b = guards.check(&planned(6, 5, 0, 20), &none).expect("blocked");
        assert_eq!(b.guard, "max_change_ratio");
        assert!(
            b.to_string().starts_with(
                "blocked by guard `max_change_ratio`: 11 new, changed and deleted of 20 records in state (55%), over the limit of 50%"
            ),
            "{b}"
        );
        assert_eq!(guards.check(&planned(5, 5, 0, 20), &none), None, "at the limit passes");
        assert_eq!(
            guards.check(&planned(100, 0, 0, 0), &none),
            None,
            "ratios do not apply to an empty state"
        );
        let empty = Planned {
            source_rows: 0,
            ..planned(0, 0, 3, 3)
        };
        assert_eq!(guards.check(&empty, &none).map(|b| b.guard), Some("allow_empty_source"));
        let upsert = Planned {
            mirror: false,
            deletes: 0,
            ..empty
        };
        assert_eq!(
            guards.check(&upsert, &none).map(|b| b.guard),
            None,
            "an empty snapshot deletes nothing outside mirror mode"
        );
        assert_eq!(
            Guards::default().check(&empty, &none).map(|b| b.guard),
            Some("allow_empty_source"),
            "always on in mirror mode"
        );
        let allowed = |g: &str| g == "allow_empty_source";
        assert_eq!(
            guards.check(&empty, &allowed).map(|b| b.guard),
            Some("max_delete_ratio"),
            "letting one guard through leaves the others on"
        );
    }
}
