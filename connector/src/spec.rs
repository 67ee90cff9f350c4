//! A mapping file as a whole: one sync's spec. It puts the generic sections ([`crate::config`])
//! and the destination's own block ([`crate::destination`]) together, and checks what needs
//! both, such as a mode the destination must support.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::env::Env;
use crate::config::raw::{RawAlerts, RawAttribute, RawSource};
use crate::config::schedule::RawTiming;
use crate::config::{
    yaml, AlertsConfig, Attribute, ColumnRef, ConfigErrors, ConfigIssue, DeliveryConfig, Loc, Mode, NullPolicy, Schedule, SourceConfig,
    Validator,
};
use crate::destination::{DestinationConfig, RawDestination};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMapping {
    /// Unique name of the sync; state is keyed by it.
    pub name: Spanned<String>,
    pub source: Spanned<RawSource>,
    pub destination: Spanned<RawDestination>,
    #[serde(default)]
    pub mode: Option<Spanned<Mode>>,
    /// Column holding the record id.
    pub id: Spanned<String>,
    /// Column holding the creation time.
    pub created_at: Spanned<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, Spanned<RawAttribute>>,
    #[serde(default)]
    pub nulls: Option<Spanned<NullPolicy>>,
    /// Cron, five fields, UTC: when `ebb worker` runs this sync.
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// A period such as `5m`: when `ebb worker` runs this sync.
    #[serde(default)]
    pub every: Option<Spanned<String>>,
    /// Run again as soon as the last run ends.
    #[serde(default)]
    pub continuous: Option<Spanned<bool>>,
    #[serde(default)]
    pub alerts: Option<Spanned<RawAlerts>>,
}

/// A validated mapping: one sync.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub file: PathBuf,
    pub name: String,
    pub source: SourceConfig,
    pub destination: DestinationConfig,
    pub mode: Mode,
    pub mode_loc: Option<Loc>,
    pub id: ColumnRef,
    pub created_at: ColumnRef,
    /// Sorted by name.
    pub attributes: Vec<Attribute>,
    pub nulls: NullPolicy,
    /// When `ebb worker` runs it; `None` runs only on a trigger.
    pub schedule: Option<Schedule>,
    pub alerts: Option<AlertsConfig>,
}

impl Mapping {
    /// An issue at `loc` in this mapping's file.
    pub fn issue(&self, loc: &Loc, message: impl Into<String>, hint: Option<String>) -> ConfigIssue {
        ConfigIssue {
            file: self.file.clone(),
            line: loc.line,
            column: loc.column,
            field: loc.field.clone(),
            message: message.into(),
            hint,
        }
    }

    pub fn delivery(&self) -> &DeliveryConfig {
        self.destination.delivery()
    }
}

/// Reads and validates one mapping file.
pub fn load(path: &Path, env: &dyn Env) -> Result<Mapping, ConfigErrors> {
    let text = yaml::read(path, "mapping")?;
    parse(path, &text, env)
}

/// Parses and validates mapping text; `path` names it in errors and anchors relative paths.
pub fn parse(path: &Path, text: &str, env: &dyn Env) -> Result<Mapping, ConfigErrors> {
    let raw: RawMapping = yaml::from_str(path, text)?;
    let mut v = Validator::new(path, env);
    let mapping = validate(&mut v, &raw);
    v.finish(mapping)
}

fn validate(v: &mut Validator, raw: &RawMapping) -> Mapping {
    let name = v.sync_name(&raw.name);
    let source = v.source(&raw.source.value);
    let destination = raw.destination.value.validate(v);
    let mode = raw.mode.as_ref().map(|m| m.value).unwrap_or(Mode::Upsert);
    let mode_loc = raw.mode.as_ref().map(|m| Loc::of(m, "mode"));
    check_mode(v, mode, &mode_loc, &destination);
    let id = v.column_ref(&raw.id, "id");
    let created_at = v.column_ref(&raw.created_at, "created_at");
    let attributes = raw.attributes.iter().filter_map(|(name, spec)| v.attribute(name, spec)).collect();
    let schedule = v.schedule(RawTiming {
        schedule: &raw.schedule,
        every: &raw.every,
        continuous: &raw.continuous,
    });
    let alerts = raw.alerts.as_ref().and_then(|a| v.alerts(a));
    Mapping {
        file: v.file().to_path_buf(),
        name,
        source,
        destination,
        mode,
        mode_loc,
        id,
        created_at,
        attributes,
        nulls: raw.nulls.as_ref().map(|n| n.value).unwrap_or(NullPolicy::Skip),
        schedule,
        alerts,
    }
}

/// A mode the destination's capabilities do not allow is refused here, before anything runs.
fn check_mode(v: &mut Validator, mode: Mode, loc: &Option<Loc>, destination: &DestinationConfig) {
    if mode == Mode::Mirror && !destination.capabilities().can_delete {
        let loc = loc.clone().unwrap_or(Loc {
            line: 1,
            column: 1,
            field: "mode".into(),
        });
        v.push(
            &loc,
            "`mirror` needs a destination that can delete records, and this destination has no delete API; use `upsert`",
        );
    }
}
