//! Mapping files: parsing, `${VAR}` interpolation and validation, one file per section.
//!
//! A mapping is parsed into raw serde types (`raw.rs`, each destination's own in its module),
//! then validated into types whose values cannot be wrong (batch size in range, a parsed URL, a
//! known mode). Validation collects every problem rather than stopping at the first, and each
//! one carries `file:line:column` and the field path ([`issue`]). The whole mapping is put
//! together in the `spec` module, which knows the destinations; nothing here does. Checks that
//! need the source's schema (does the column exist?) happen later, in `mapping::compile`, and
//! report through the same [`ConfigIssue`].

pub mod alerts;
pub mod attributes;
pub mod cursor;
pub mod env;
pub mod guards;
pub mod issue;
pub mod pii;
pub mod priority;
pub mod raw;
pub mod schedule;
pub mod secret;
pub mod sending;
pub mod shape;
pub mod source;
pub mod store;
pub mod validator;
pub mod yaml;

use serde::Deserialize;
use serde_saphyr::Spanned;

pub use alerts::{load_worker_config, AlertsConfig, RowCountChange, WorkerConfig, DEFAULT_RETENTION};
pub use attributes::{AttrType, Attribute, AttributeSource, ColumnRef, ValueRule};
pub use cursor::{CursorConfig, Lag};
pub use guards::{GuardBlocked, Guards, Planned, GUARD_NAMES};
pub use issue::{did_you_mean, ConfigErrors, ConfigIssue, Loc};
pub use pii::Pii;
pub use priority::{PriorityConfig, SortOrder};
pub use schedule::{whole_seconds, Schedule};
pub use sending::{DeliveryConfig, DeliveryLimits, RawDelivery};
pub use shape::{Identity, IdentitySource, Join, RecordShape, Template, TemplatePart};
pub use source::{DiffMode, JoinKeys, PostgresRelation, SourceConfig, DEFAULT_STATE_SCHEMA};
pub use validator::Validator;

/// The longest sync name.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest tag.
pub const MAX_TAG_CHARS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Create new records and update changed ones.
    Upsert,
    /// Only update records already sent by this sync.
    UpdateOnly,
    /// Only create records not yet sent; changes are not sent.
    CreateOnly,
    /// Also delete records that left the snapshot; needs a destination that can delete.
    Mirror,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NullPolicy {
    /// Leave a null attribute out of the record.
    Skip,
    /// Send a null attribute as an empty list.
    Send,
}

impl Validator<'_> {
    /// The sync's name. It keys state and names lock files, so it stays short enough for a file name.
    pub fn sync_name(&mut self, raw: &Spanned<String>) -> String {
        let name = self.interpolated(raw, "name").unwrap_or_default();
        if name.is_empty()
            || name.len() > MAX_NAME_CHARS
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            self.push(
                &Loc::of(raw, "name"),
                format!("must be 1 to {MAX_NAME_CHARS} letters, digits, `_`, `-` and `.`"),
            );
        }
        name
    }

    /// `tags:`: short labels, so that `tag:NAME` on a command line can name them.
    pub fn tags(&mut self, raw: &Spanned<Vec<String>>) -> Vec<String> {
        let mut tags: Vec<String> = Vec::with_capacity(raw.value.len());
        for tag in &raw.value {
            let fits = !tag.is_empty()
                && tag.chars().count() <= MAX_TAG_CHARS
                && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !fits {
                let message = format!(
                    "tag {} must be 1 to {MAX_TAG_CHARS} letters, digits, `_`, `-` and `.`",
                    crate::quote::quote(tag)
                );
                self.push(&Loc::of(raw, "tags"), message);
            } else if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        tags
    }
}
