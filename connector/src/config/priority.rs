//! `priority:`, the column that orders the records within each send group: during a long
//! first sync, `priority: { column: last_seen_at, order: desc }` sends the most recently
//! active people first. Which group a record is in (stale copies, new, resends) comes first;
//! the priority orders within it. It changes no record, so it is no part of the mapping's
//! fingerprint.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::issue::Loc;
use super::validator::Validator;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Priority")]
pub struct RawPriority {
    /// A timestamp, date or number column of the source. Rows with a null (or NaN) go last.
    #[schemars(with = "String")]
    pub column: Spanned<String>,
    /// `asc` sends the smallest values first, as SQL's ORDER BY does (the default); `desc`,
    /// the largest.
    #[serde(default)]
    #[schemars(with = "Option<SortOrder>")]
    pub order: Option<Spanned<SortOrder>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// A checked `priority:` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorityConfig {
    pub column: String,
    pub order: SortOrder,
    pub loc: Loc,
}

impl Validator<'_> {
    pub fn priority(&mut self, raw: &Spanned<RawPriority>) -> Option<PriorityConfig> {
        let column = self.interpolated(&raw.value.column, "priority.column")?;
        if column.trim().is_empty() {
            self.push(&Loc::of(&raw.value.column, "priority.column"), "must name a column");
            return None;
        }
        Some(PriorityConfig {
            column,
            order: raw.value.order.as_ref().map_or(SortOrder::Asc, |o| o.value),
            loc: Loc::of(raw, "priority"),
        })
    }
}
