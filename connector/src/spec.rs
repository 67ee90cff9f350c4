//! A mapping file as a whole: one sync's spec. It puts the generic sections ([`crate::config`])
//! and the destination's own block ([`crate::destination`]) together, and checks what needs
//! both, such as a mode the destination must support.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::env::Env;
use crate::config::guards::RawGuards;
use crate::config::raw::{RawAlerts, RawAttribute, RawIdentity, RawSource};
use crate::config::schedule::RawTiming;
use crate::config::{
    yaml, AlertsConfig, AttrType, AttributeSource, ConfigErrors, ConfigIssue, CursorConfig, DeliveryConfig, Guards, JoinKeys, Loc, Mode,
    NullPolicy, PriorityConfig, RecordShape, Schedule, SourceConfig, Validator,
};
use crate::destination::keys::{RawFields, RawRecord};
use crate::destination::profiles::RawCompany;
use crate::destination::{DestinationConfig, RawDestination};
use crate::record::AttrValue;

/// An ebb mapping: one sync, from a warehouse table to a feedback platform.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ebb mapping")]
#[schemars(rename = "Mapping")]
pub struct RawMapping {
    /// Unique name of the sync; state is keyed by it.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Where the rows come from.
    #[schemars(with = "RawSource")]
    pub source: Spanned<RawSource>,
    /// Where the records go: one key, the destination's type.
    #[schemars(with = "RawDestination")]
    pub destination: Spanned<RawDestination>,
    /// What a run may do to the destination (default upsert).
    #[serde(default)]
    #[schemars(with = "Option<Mode>")]
    pub mode: Option<Spanned<Mode>>,
    /// Enterpret: the column holding the record id.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub id: Option<Spanned<String>>,
    /// Enterpret: the column holding the creation time.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub created_at: Option<Spanned<String>>,
    /// Enterpret: the typed attributes.
    #[serde(default)]
    #[schemars(with = "Option<crate::destination::keys::RawFieldsSchema>")]
    pub attributes: Option<Spanned<RawFields>>,
    /// Enterpret: whether a null attribute is left out or sent empty.
    #[serde(default)]
    #[schemars(with = "Option<NullPolicy>")]
    pub nulls: Option<Spanned<NullPolicy>>,
    /// Profiles: the column (or template) of the email address that identifies a profile.
    #[serde(default)]
    #[schemars(with = "Option<RawIdentity>")]
    pub email: Option<Spanned<RawIdentity>>,
    /// Profiles: the column with the person's name.
    #[serde(default)]
    #[schemars(with = "Option<RawAttribute>")]
    pub full_name: Option<Spanned<RawAttribute>>,
    /// Profiles: the typed customer properties.
    #[serde(default)]
    #[schemars(with = "Option<crate::destination::keys::RawFieldsSchema>")]
    pub properties: Option<Spanned<RawFields>>,
    /// Profiles: the segments, from a list column or split text.
    #[serde(default)]
    #[schemars(with = "Option<RawAttribute>")]
    pub segments: Option<Spanned<RawAttribute>>,
    /// Profiles: `company.` properties, from the row or from a joined source.
    #[serde(default)]
    #[schemars(with = "Option<RawCompany>")]
    pub company: Option<Spanned<RawCompany>>,
    /// Cron, five fields, UTC: when `ebb worker` runs this sync.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Spanned<String>>,
    /// A period such as `5m`: when `ebb worker` runs this sync.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub every: Option<Spanned<String>>,
    /// Run again as soon as the last run ends.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub continuous: Option<Spanned<bool>>,
    /// A duration such as `10m`: how long a run keeps starting batches, from its start. A run
    /// that reaches it finishes the batches in flight, commits them and ends `continued`; the
    /// next run goes on.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub max_run: Option<Spanned<String>>,
    /// Orders the records within each send group by a column: `{ column: last_seen_at, order:
    /// desc }` sends the most recently active people first. Rows with a null priority go last.
    #[serde(default)]
    #[schemars(with = "Option<crate::config::priority::RawPriority>")]
    pub priority: Option<Spanned<crate::config::priority::RawPriority>>,
    /// Where and when to raise alerts about this sync's runs.
    #[serde(default)]
    #[schemars(with = "Option<RawAlerts>")]
    pub alerts: Option<Spanned<RawAlerts>>,
    /// Limits on what one run may change. In mirror mode, a mapping without this block gets
    /// `max_delete_ratio: 0.1`; any block, even `{}`, replaces that default.
    #[serde(default)]
    #[schemars(with = "Option<RawGuards>")]
    pub guards: Option<Spanned<RawGuards>>,
    /// Keep the payload of each acknowledged record in state, for `ebb record` and `ebb
    /// preview --explain` (default true); false keeps no copy of the data in state.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub keep_payloads: Option<Spanned<bool>>,
    /// Labels to choose syncs by, as in `ebb sync mappings/ --select tag:crm`.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub tags: Option<Spanned<Vec<String>>>,
    /// A source of identities never to send (one column), read at the start of every run.
    #[serde(default)]
    #[schemars(with = "Option<RawSource>")]
    pub suppress: Option<Spanned<RawSource>>,
}

/// A validated mapping: one sync.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub file: PathBuf,
    pub name: String,
    pub source: SourceConfig,
    /// `source.cursor:`: runs read only the rows that changed since the last one.
    pub cursor: Option<CursorConfig>,
    pub destination: DestinationConfig,
    pub mode: Mode,
    pub mode_loc: Option<Loc>,
    /// How a row becomes a record, from the destination's keys.
    pub record: RecordShape,
    /// When `ebb worker` runs it; `None` runs only on a trigger.
    pub schedule: Option<Schedule>,
    pub alerts: Option<AlertsConfig>,
    pub guards: Guards,
    /// Identities never to send, one column of them.
    pub suppress: Option<SourceConfig>,
    /// What `--select tag:NAME` picks it by.
    pub tags: Vec<String>,
    /// Whether commits keep each record's payload (sync tracking).
    pub keep_payloads: bool,
    /// `max_run:`: how long a run keeps starting batches.
    pub max_run: Option<std::time::Duration>,
    /// `priority:`: the column that orders records within each send group.
    pub priority: Option<crate::config::PriorityConfig>,
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

    /// The box of a run that nothing on the command line boxes: `max_run:`, else for a scheduled
    /// sync its period or the time from `now` to its next slot, so that a run never holds the
    /// sync past the next one.
    pub fn run_box(&self, now: chrono::DateTime<chrono::Utc>) -> Option<std::time::Duration> {
        self.max_run.or_else(|| self.schedule.as_ref()?.time_to_next_slot(now))
    }
}

/// The JSON Schema (draft 2020-12) of a mapping file, from the types the file is parsed into, so
/// that it cannot drift from what `ebb validate` accepts as syntax. Checks that need more than
/// the file (a column exists, an environment variable is set) stay `validate`'s.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(RawMapping).to_value()
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

/// `source.cursor:` and `priority:`, and what each cannot go with: a joined source diffed in
/// the warehouse, or moved by a lookup row; a priority where the warehouse picks the order.
fn source_orders(v: &mut Validator, raw: &RawMapping, source: &SourceConfig) -> (Option<CursorConfig>, Option<PriorityConfig>) {
    if let (Some(_), SourceConfig::Joined { .. }) = (source.warehouse_diff(), source) {
        v.push(
            source.loc(),
            "`diff: warehouse` diffs one table or query in the database, but a joined source (`company.source`) is joined \
             in ebb: write the join in `query:`, or use `diff: in_process`",
        );
    }
    let cursor = raw.source.value.cursor.as_ref().and_then(|c| v.cursor(c, "source"));
    if let (Some(cursor), SourceConfig::Joined { .. }) = (&cursor, source) {
        v.push(
            &cursor.loc,
            "a joined source's rows change when their lookup row does, which does not move their cursor: write the join \
             in `query:` with the greater of both tables' cursors, as in `GREATEST(u.updated_at, a.updated_at) AS updated_at`",
        );
    }
    let priority = raw.priority.as_ref().and_then(|p| v.priority(p));
    if let (Some(priority), Some(_)) = (&priority, source.warehouse_diff()) {
        v.push(
            &priority.loc,
            "`priority:` orders the records ebb diffs itself; with `diff: warehouse` the database finds the changed rows \
             and they go in the order it returns them: use `diff: in_process` to send by priority",
        );
    }
    (cursor, priority)
}

fn validate(v: &mut Validator, raw: &RawMapping) -> Mapping {
    let name = v.sync_name(&raw.name);
    let source = v.source(&raw.source);
    let (destination, record) = raw.destination.value.validate(v, &raw.record_keys());
    let source = joined(source, &record);
    let (cursor, priority) = source_orders(v, raw, &source);
    let mode = raw.mode.as_ref().map(|m| m.value).unwrap_or(Mode::Upsert);
    let mode_loc = raw.mode.as_ref().map(|m| Loc::of(m, "mode"));
    check_mode(v, mode, &mode_loc, &destination);
    check_types(v, &record, &destination);
    let schedule = v.schedule(RawTiming {
        schedule: &raw.schedule,
        every: &raw.every,
        continuous: &raw.continuous,
    });
    let alerts = raw.alerts.as_ref().and_then(|a| v.alerts(a));
    let guards = match (&raw.guards, mode) {
        (Some(guards), _) => v.guards(guards),
        (None, Mode::Mirror) => Guards::mirror_default(),
        (None, _) => Guards::default(),
    };
    let suppress = raw.suppress.as_ref().map(|s| v.source_at(s, "suppress"));
    let tags = raw.tags.as_ref().map(|t| v.tags(t)).unwrap_or_default();
    Mapping {
        file: v.file().to_path_buf(),
        name,
        source,
        cursor,
        destination,
        mode,
        mode_loc,
        record,
        schedule,
        alerts,
        guards,
        suppress,
        tags,
        keep_payloads: raw.keep_payloads.as_ref().is_none_or(|k| k.value),
        max_run: raw.max_run.as_ref().and_then(|m| v.max_run(m)),
        priority,
    }
}

impl RawMapping {
    fn record_keys(&self) -> RawRecord<'_> {
        RawRecord {
            at: Loc::of(&self.destination, "destination"),
            id: &self.id,
            created_at: &self.created_at,
            attributes: &self.attributes,
            nulls: &self.nulls,
            email: &self.email,
            full_name: &self.full_name,
            properties: &self.properties,
            segments: &self.segments,
            company: &self.company,
        }
    }
}

/// The mapping's source, joined with the record's lookup source if it has one.
fn joined(source: SourceConfig, record: &RecordShape) -> SourceConfig {
    match &record.join {
        None => source,
        Some(join) => SourceConfig::Joined {
            base: Box::new(source),
            lookup: Box::new(join.lookup.clone()),
            join: JoinKeys {
                column: join.column.name.clone(),
                key: join.key.name.clone(),
                prefix: join.prefix.clone(),
            },
        },
    }
}

/// A `type:` the destination has no such values for is refused here.
fn check_types(v: &mut Validator, record: &RecordShape, destination: &DestinationConfig) {
    let types = destination.capabilities().value_types;
    for field in &record.fields {
        let ty = match &field.source {
            AttributeSource::Column { ty: Some(ty), .. } => *ty,
            AttributeSource::Constant(value) => constant_type(value),
            AttributeSource::Column { ty: None, .. } => continue,
        };
        if !types.contains(&ty) {
            let takes = types.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
            v.push(&field.loc, format!("this destination has no `{ty}` values; it takes {takes}"));
        }
    }
}

fn constant_type(value: &AttrValue) -> AttrType {
    match value {
        AttrValue::S(_) => AttrType::String,
        AttrValue::N(_) => AttrType::Number,
        AttrValue::B(_) => AttrType::Boolean,
        AttrValue::D(_) => AttrType::Date,
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
