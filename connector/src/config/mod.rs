//! Mapping files: parsing, `${VAR}` interpolation and validation.
//!
//! A mapping is parsed into raw serde types (`raw.rs`), then validated into
//! [`Mapping`], whose values cannot be wrong (batch size in range, a parsed
//! URL, a known mode). Validation collects every problem rather than stopping
//! at the first, and each one carries `file:line:column` and the field path.
//! Checks that need the source's schema (does the column exist?) happen later,
//! in `mapping::compile`, and report through the same [`ConfigIssue`].

pub mod env;
mod raw;
pub mod schedule;
pub mod secret;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

use crate::quote::{quote, shorten, shorten_quoted, MAX_MESSAGE_CHARS, MAX_QUOTED_CHARS};
use crate::record::{AttrValue, Number};
use env::{interpolate, Env};
use raw::{RawAlerts, RawAttribute, RawAttributeSpec, RawDestination, RawEnterpret, RawMapping, RawPostgres, RawSource, RawWorkerConfig};
pub use schedule::Schedule;
use secret::SecretString;

/// The longest sync name.
pub const MAX_NAME_CHARS: usize = 100;

/// A place in a mapping file plus the field it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub line: u64,
    pub column: u64,
    pub field: String,
}

impl Loc {
    fn of<T>(spanned: &Spanned<T>, field: impl Into<String>) -> Loc {
        Loc {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            field: field.into(),
        }
    }
}

/// One problem in one mapping file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display().to_string();
        write!(f, "{}:{}:{}: ", shorten(&file, MAX_MESSAGE_CHARS), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", shorten(&self.field, MAX_MESSAGE_CHARS))?;
        }
        // Each message quotes its values cut already; this caps what is left.
        f.write_str(&shorten(&self.message, MAX_MESSAGE_CHARS))?;
        if let Some(hint) = &self.hint {
            write!(f, " (did you mean {}?)", quote(hint))?;
        }
        Ok(())
    }
}

/// Every problem found in one or more mapping files.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// The closest candidate to `wanted`, if one is close enough to be a typo.
pub fn did_you_mean<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let wanted_lower = wanted.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&wanted_lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Upsert,
    UpdateOnly,
    CreateOnly,
    /// Also delete records that left the snapshot; needs a destination that can delete.
    Mirror,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullPolicy {
    /// Leave a null attribute out of the record.
    Skip,
    /// Send a null attribute as an empty list.
    Send,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    User,
    Account,
}

/// The wire type of an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrType {
    String,
    Number,
    Boolean,
}

impl fmt::Display for AttrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttrType::String => "string",
            AttrType::Number => "number",
            AttrType::Boolean => "boolean",
        })
    }
}

/// A reference to a source column, with where the mapping names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnRef {
    pub name: String,
    pub loc: Loc,
}

/// What a PostgreSQL source reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostgresRelation {
    Table { schema: Option<String>, name: String },
    Query(String),
}

#[derive(Clone, Debug)]
pub enum SourceConfig {
    /// An absolute path, folder or glob.
    Parquet { pattern: String, loc: Loc },
    /// The URL may hold a password, so it is a secret; messages use `state::redact_url`.
    Postgres {
        url: SecretString,
        relation: PostgresRelation,
        loc: Loc,
    },
}

impl SourceConfig {
    /// Where the mapping declares the source, for errors about it.
    pub fn loc(&self) -> &Loc {
        match self {
            SourceConfig::Parquet { loc, .. } | SourceConfig::Postgres { loc, .. } => loc,
        }
    }
}

/// `[schema.]name` of plain identifiers, or `None`.
fn plain_table_name(text: &str) -> Option<(Option<String>, String)> {
    let ident = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    match text.split('.').collect::<Vec<_>>().as_slice() {
        [name] if ident(name) => Some((None, name.to_string())),
        [schema, name] if ident(schema) && ident(name) => Some((Some(schema.to_string()), name.to_string())),
        _ => None,
    }
}

#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    pub batch_size: usize,
    pub requests_per_minute: u32,
    pub concurrency: usize,
    pub retry_budget: Duration,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct EnterpretConfig {
    pub object: ObjectKind,
    pub api_key: SecretString,
    pub url: Url,
    pub delivery: DeliveryConfig,
}

#[derive(Clone, Debug)]
pub enum DestinationConfig {
    Enterpret(EnterpretConfig),
}

impl DestinationConfig {
    /// Who the records go to, as stored with a sync's state: the type, the URL without
    /// credentials, query or fragment, and the object. Never a key: a rotated key is the same
    /// destination.
    pub fn fingerprint(&self) -> String {
        match self {
            DestinationConfig::Enterpret(e) => {
                let object = match e.object {
                    ObjectKind::User => "users",
                    ObjectKind::Account => "accounts",
                };
                format!("enterpret {object} at {}", bare_url(&e.url))
            }
        }
    }
}

/// `scheme://host[:port]/path`, for naming a destination: no userinfo, query or fragment.
fn bare_url(url: &Url) -> String {
    let mut bare = url.clone();
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    bare.set_query(None);
    bare.set_fragment(None);
    bare.as_str().trim_end_matches('/').to_string()
}

#[derive(Clone, Debug)]
pub enum AttributeSource {
    Column {
        column: ColumnRef,
        ty: Option<AttrType>,
        split: Option<String>,
        list: bool,
    },
    Constant(AttrValue),
}

#[derive(Clone, Debug)]
pub struct Attribute {
    pub name: String,
    pub source: AttributeSource,
    pub loc: Loc,
}

/// Where alerts about a sync's runs go, and what raises one.
#[derive(Clone, Debug)]
pub struct AlertsConfig {
    /// May carry a token (Slack's do), so it is a secret.
    pub webhook_url: SecretString,
    pub on_failure: bool,
    pub rejected_ratio_above: Option<f64>,
    pub on_full_resync: bool,
    pub row_count_change: Option<RowCountChange>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowCountChange {
    pub percent_above: f64,
    pub last_runs: usize,
}

/// A validated `ebb worker --config` file.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub alerts: Option<AlertsConfig>,
    pub retention: Duration,
}

/// How long run history is kept unless the worker config says otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            alerts: None,
            retention: DEFAULT_RETENTION,
        }
    }
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
        match &self.destination {
            DestinationConfig::Enterpret(e) => &e.delivery,
        }
    }
}

/// The text of a file, or one issue saying why it cannot be read.
fn read(path: &Path, what: &str) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigIssue {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read {what}: {e}"),
            hint: None,
        }])
    })
}

/// Reads and validates one mapping file.
pub fn load(path: &Path, env: &dyn Env) -> Result<Mapping, ConfigErrors> {
    let text = read(path, "mapping")?;
    parse(path, &text, env)
}

/// Reads and validates an `ebb worker --config` file.
pub fn load_worker_config(path: &Path, env: &dyn Env) -> Result<WorkerConfig, ConfigErrors> {
    let text = read(path, "the worker config")?;
    let raw: RawWorkerConfig = serde_saphyr::from_str(&text).map_err(|e| ConfigErrors(vec![yaml_issue(path, &e)]))?;
    let mut v = Validator {
        file: path.to_path_buf(),
        env,
        issues: Vec::new(),
    };
    let alerts = raw.alerts.as_ref().and_then(|a| v.alerts(a));
    let retention = match &raw.retention {
        None => DEFAULT_RETENTION,
        Some(text) => match humantime::parse_duration(text.value.trim()) {
            Ok(d) if d >= Duration::from_secs(3600) => d,
            Ok(_) => {
                v.push(&Loc::of(text, "retention"), "must be at least 1h");
                DEFAULT_RETENTION
            }
            Err(e) => {
                v.push(
                    &Loc::of(text, "retention"),
                    format!("{} is not a duration such as `14d`: {e}", quote(&text.value)),
                );
                DEFAULT_RETENTION
            }
        },
    };
    if v.issues.is_empty() {
        Ok(WorkerConfig { alerts, retention })
    } else {
        Err(ConfigErrors(v.issues))
    }
}

/// Parses and validates mapping text; `path` names it in errors and anchors relative paths.
pub fn parse(path: &Path, text: &str, env: &dyn Env) -> Result<Mapping, ConfigErrors> {
    let raw: RawMapping = serde_saphyr::from_str(text).map_err(|e| ConfigErrors(vec![yaml_issue(path, &e)]))?;
    Validator {
        file: path.to_path_buf(),
        env,
        issues: Vec::new(),
    }
    .mapping(raw)
}

fn yaml_issue(path: &Path, e: &serde_saphyr::Error) -> ConfigIssue {
    let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    // serde-saphyr's message repeats the position and may quote the source
    // line; keep only the first line of its text.
    let full = e.to_string();
    // Its messages quote names from the file (an unknown field), which may be of any length.
    let mut message = shorten_quoted(full.lines().next().unwrap_or("invalid YAML").trim());
    if let Some(stripped) = message.strip_prefix("error: ") {
        message = stripped.to_string();
    }
    if let Some(rest) = message.strip_prefix("line ") {
        // "line 15 column 11: unknown field …": the position is already in front.
        if let Some((_, text)) = rest.split_once(": ") {
            message = text.to_string();
        }
    }
    if let Some((kept, _)) = message.split_once(", set DuplicateKeyPolicy") {
        // Advice meant for programs embedding the parser, not for mapping authors.
        message = kept.to_string();
    }
    let hint = unknown_name_hint(&message);
    ConfigIssue {
        file: path.to_path_buf(),
        line,
        column,
        field: String::new(),
        message,
        hint,
    }
}

/// serde says "unknown field `colum`, expected one of `column`, `value`";
/// turn that list into a did-you-mean.
fn unknown_name_hint(message: &str) -> Option<String> {
    let rest = message
        .split("unknown field `")
        .nth(1)
        .or_else(|| message.split("unknown variant `").nth(1))?;
    let wanted = rest.split('`').next()?;
    let expected = message.split("expected ").nth(1)?;
    let expected = expected.strip_prefix("one of ").unwrap_or(expected);
    let candidates: Vec<&str> = expected
        .split(',')
        .map(|c| c.trim().trim_matches('`'))
        .filter(|c| !c.is_empty())
        .collect();
    did_you_mean(wanted, candidates)
}

struct Validator<'a> {
    file: PathBuf,
    env: &'a dyn Env,
    issues: Vec<ConfigIssue>,
}

impl Validator<'_> {
    fn push(&mut self, loc: &Loc, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            file: self.file.clone(),
            line: loc.line,
            column: loc.column,
            field: loc.field.clone(),
            message: message.into(),
            hint: None,
        });
    }

    fn interpolated(&mut self, value: &Spanned<String>, field: &str) -> Option<String> {
        self.interpolated_at(&value.value, &Loc::of(value, field))
    }

    fn interpolated_at(&mut self, value: &str, loc: &Loc) -> Option<String> {
        match interpolate(value, self.env) {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(loc, e.to_string());
                None
            }
        }
    }

    fn int_in(&mut self, value: &Option<Spanned<i64>>, field: &str, range: std::ops::RangeInclusive<i64>, default: i64) -> i64 {
        match value {
            None => default,
            Some(v) if range.contains(&v.value) => v.value,
            Some(v) => {
                self.push(
                    &Loc::of(v, field),
                    format!("must be between {} and {}, got {}", range.start(), range.end(), v.value),
                );
                default
            }
        }
    }

    fn column_ref(&mut self, value: &Spanned<String>, field: &str) -> ColumnRef {
        let loc = Loc::of(value, field);
        let name = self.interpolated(value, field).unwrap_or_default();
        if name.trim().is_empty() {
            self.push(&loc, "must name a column");
        }
        ColumnRef { name, loc }
    }

    /// A secret field: it must come from the environment, and `fix` shows how. Its value is
    /// never quoted back, in this error or any other.
    fn secret(&mut self, value: &Spanned<String>, field: &str, fix: &str) -> Option<SecretString> {
        if secret::written_out(&value.value) {
            self.push(
                &Loc::of(value, field),
                format!(
                    "is a secret, and a secret must not be written in a mapping: take it from the environment, as in \
                     `{fix}` (`${{VAR:-default}}` is allowed for the keys of a local stand-in)"
                ),
            );
            return None;
        }
        self.interpolated(value, field).map(SecretString::new)
    }

    fn mapping(mut self, raw: RawMapping) -> Result<Mapping, ConfigErrors> {
        let name_loc = Loc::of(&raw.name, "name");
        let name = self.interpolated(&raw.name, "name").unwrap_or_default();
        // The name keys state and names lock files, so it stays short enough for a file name.
        if name.is_empty()
            || name.len() > MAX_NAME_CHARS
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            self.push(
                &name_loc,
                format!("must be 1 to {MAX_NAME_CHARS} letters, digits, `_`, `-` and `.`"),
            );
        }
        let source = self.source(&raw.source.value);
        let destination = match &raw.destination.value {
            RawDestination::Enterpret(e) => DestinationConfig::Enterpret(self.enterpret(e)),
        };
        let mode = raw.mode.as_ref().map(|m| m.value).unwrap_or(Mode::Upsert);
        let mode_loc = raw.mode.as_ref().map(|m| Loc::of(m, "mode"));
        self.check_mode(mode, &mode_loc, &destination);
        let id = self.column_ref(&raw.id, "id");
        let created_at = self.column_ref(&raw.created_at, "created_at");
        let attributes = raw
            .attributes
            .iter()
            .filter_map(|(name, spec)| self.attribute(name, spec))
            .collect();
        let schedule = self.schedule(&raw);
        let alerts = raw.alerts.as_ref().and_then(|a| self.alerts(a));
        let mapping = Mapping {
            file: self.file.clone(),
            name,
            source,
            destination,
            mode,
            mode_loc,
            id,
            created_at,
            attributes,
            nulls: raw.nulls.map(|n| n.value).unwrap_or(NullPolicy::Skip),
            schedule,
            alerts,
        };
        if self.issues.is_empty() {
            Ok(mapping)
        } else {
            Err(ConfigErrors(self.issues))
        }
    }

    fn source(&mut self, raw: &RawSource) -> SourceConfig {
        match raw {
            RawSource::Parquet(p) => {
                let loc = Loc::of(p, "source.parquet");
                let pattern = self.interpolated(p, "source.parquet").unwrap_or_default();
                if pattern.trim().is_empty() {
                    self.push(&loc, "must be a file, a folder or a glob");
                }
                let absolute = if Path::new(&pattern).is_absolute() {
                    pattern
                } else {
                    let base_dir = self.file.parent().map(Path::to_path_buf).unwrap_or_default();
                    base_dir.join(pattern).to_string_lossy().into_owned()
                };
                SourceConfig::Parquet { pattern: absolute, loc }
            }
            RawSource::Postgres(pg) => self.postgres(pg),
        }
    }

    fn postgres(&mut self, pg: &RawPostgres) -> SourceConfig {
        let loc = Loc::of(&pg.url, "source.postgres.url");
        if secret::password_written_out(&pg.url.value) {
            self.push(
                &loc,
                "holds a password written in the mapping: take it from the environment, as in `url: ${WAREHOUSE_URL}` or \
                 `postgres://user:${WAREHOUSE_PASSWORD}@host/db`, or leave it out (trust, .pgpass or PGPASSWORD)",
            );
        }
        let url = self.interpolated(&pg.url, "source.postgres.url").unwrap_or_default();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            self.push(&loc, "must be a postgres:// or postgresql:// URL");
        }
        let relation = match (&pg.table, &pg.query) {
            (Some(table), None) => {
                let table_loc = Loc::of(table, "source.postgres.table");
                let text = self.interpolated(table, "source.postgres.table").unwrap_or_default();
                match plain_table_name(&text) {
                    Some((schema, name)) => PostgresRelation::Table { schema, name },
                    None => {
                        self.push(
                            &table_loc,
                            format!("{} is not a plain `[schema.]name`; use `query:` for anything else", quote(&text)),
                        );
                        PostgresRelation::Table {
                            schema: None,
                            name: String::new(),
                        }
                    }
                }
            }
            (None, Some(query)) => {
                let text = self.interpolated(query, "source.postgres.query").unwrap_or_default();
                if text.trim().is_empty() {
                    self.push(&Loc::of(query, "source.postgres.query"), "must not be empty");
                }
                PostgresRelation::Query(text.trim().trim_end_matches(';').to_string())
            }
            _ => {
                let whole = Loc {
                    field: "source.postgres".into(),
                    ..loc.clone()
                };
                self.push(&whole, "give exactly one of `table` or `query`");
                PostgresRelation::Query(String::new())
            }
        };
        SourceConfig::Postgres {
            url: SecretString::new(url),
            relation,
            loc,
        }
    }

    fn enterpret(&mut self, e: &RawEnterpret) -> EnterpretConfig {
        let p = "destination.enterpret";
        let fix = match e.object.value {
            ObjectKind::User => "api_key: ${ENTERPRET_USERS_API_KEY}",
            ObjectKind::Account => "api_key: ${ENTERPRET_ACCOUNTS_API_KEY}",
        };
        let api_key = self.secret(&e.api_key, &format!("{p}.api_key"), fix);
        if api_key.as_ref().is_some_and(SecretString::is_empty) {
            self.push(&Loc::of(&e.api_key, format!("{p}.api_key")), "must not be empty");
        }
        let url = match &e.url {
            None => Url::parse("https://api.enterpret.com").ok(),
            Some(u) => self.http_url(u, &format!("{p}.url")),
        };
        let delivery = DeliveryConfig {
            batch_size: self.int_in(&e.batch_size, &format!("{p}.batch_size"), 1..=15, 15) as usize,
            requests_per_minute: self.int_in(&e.requests_per_minute, &format!("{p}.requests_per_minute"), 1..=1_000_000, 100) as u32,
            concurrency: self.int_in(&e.concurrency, &format!("{p}.concurrency"), 1..=64, 4) as usize,
            retry_budget: Duration::from_secs(self.int_in(&e.retry_budget_secs, &format!("{p}.retry_budget_secs"), 1..=86_400, 120) as u64),
            timeout: Duration::from_secs(self.int_in(&e.timeout_secs, &format!("{p}.timeout_secs"), 1..=600, 30) as u64),
        };
        EnterpretConfig {
            object: e.object.value,
            api_key: api_key.unwrap_or_else(|| SecretString::new("")),
            url: url.unwrap_or_else(|| Url::parse("http://invalid.invalid").expect("static URL")),
            delivery,
        }
    }

    fn http_url(&mut self, value: &Spanned<String>, field: &str) -> Option<Url> {
        let loc = Loc::of(value, field);
        let text = self.interpolated(value, field)?;
        match Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
            Ok(_) => {
                self.push(&loc, "must be an http:// or https:// URL");
                None
            }
            Err(err) => {
                self.push(&loc, format!("is not a valid URL: {err}"));
                None
            }
        }
    }

    fn check_mode(&mut self, mode: Mode, loc: &Option<Loc>, destination: &DestinationConfig) {
        if mode == Mode::Mirror && !crate::destination::capabilities_of(destination).can_delete {
            let loc = loc.clone().unwrap_or(Loc {
                line: 1,
                column: 1,
                field: "mode".into(),
            });
            self.push(
                &loc,
                "`mirror` needs a destination that can delete records, and this destination has no delete API; use `upsert`",
            );
        }
    }

    fn schedule(&mut self, raw: &RawMapping) -> Option<Schedule> {
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
        if let Some(text) = &raw.schedule {
            let expression = self.interpolated(text, "schedule")?;
            return Schedule::cron(&expression)
                .map_err(|e| self.push(&Loc::of(text, "schedule"), e))
                .ok();
        }
        if let Some(text) = &raw.every {
            let period = self.interpolated(text, "every")?;
            return Schedule::every(&period).map_err(|e| self.push(&Loc::of(text, "every"), e)).ok();
        }
        raw.continuous.as_ref().filter(|c| c.value).map(|_| Schedule::Continuous)
    }

    fn alerts(&mut self, raw: &Spanned<RawAlerts>) -> Option<AlertsConfig> {
        let a = &raw.value;
        let url_loc = Loc::of(&a.webhook_url, "alerts.webhook_url");
        let url = self.secret(&a.webhook_url, "alerts.webhook_url", "webhook_url: ${ALERT_WEBHOOK_URL}")?;
        match Url::parse(url.expose()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            // The URL is not quoted back: it may hold a token.
            _ => self.push(&url_loc, "must be an http:// or https:// URL"),
        }
        let rejected_ratio_above = match &a.rejected_ratio_above {
            Some(r) if !(0.0..=1.0).contains(&r.value) => {
                self.push(
                    &Loc::of(r, "alerts.rejected_ratio_above"),
                    format!("must be a share between 0 and 1, got {}", r.value),
                );
                None
            }
            other => other.as_ref().map(|r| r.value),
        };
        let row_count_change = a.row_count_change.as_ref().map(|c| {
            let percent = &c.value.percent_above;
            if !(percent.value > 0.0 && percent.value.is_finite()) {
                self.push(
                    &Loc::of(percent, "alerts.row_count_change.percent_above"),
                    format!("must be a positive percentage, got {}", percent.value),
                );
            }
            let last_runs = self.int_in(&c.value.last_runs, "alerts.row_count_change.last_runs", 1..=100, 5) as usize;
            RowCountChange {
                percent_above: percent.value,
                last_runs,
            }
        });
        Some(AlertsConfig {
            webhook_url: url,
            on_failure: a.on_failure.unwrap_or(true),
            rejected_ratio_above,
            on_full_resync: a.on_full_resync.unwrap_or(true),
            row_count_change,
        })
    }

    fn attribute(&mut self, name: &str, spec: &Spanned<RawAttribute>) -> Option<Attribute> {
        let field = format!("attributes.{}", shorten(name, MAX_QUOTED_CHARS));
        let loc = Loc::of(spec, field.clone());
        if name.trim().is_empty() {
            self.push(&loc, "attribute names must not be empty");
            return None;
        }
        let source = match &spec.value {
            RawAttribute::Column(column) => {
                let name = self.interpolated_at(column, &loc)?;
                AttributeSource::Column {
                    column: ColumnRef { name, loc: loc.clone() },
                    ty: None,
                    split: None,
                    list: false,
                }
            }
            RawAttribute::Spec(s) => match (&s.column, &s.value) {
                (Some(_), Some(_)) => {
                    self.push(&loc, "give either `column` or `value`, not both");
                    return None;
                }
                (None, None) => {
                    self.push(&loc, "needs `column` (a source column) or `value` (a constant)");
                    return None;
                }
                (Some(column), None) => self.column_attribute(s, column, &loc)?,
                (None, Some(value)) => self.constant_attribute(s, value, &loc)?,
            },
        };
        Some(Attribute {
            name: name.to_string(),
            source,
            loc,
        })
    }

    /// `{ column, type, split, list }`.
    fn column_attribute(&mut self, s: &RawAttributeSpec, column: &str, loc: &Loc) -> Option<AttributeSource> {
        if s.split.is_some() && s.list == Some(true) {
            self.push(loc, "`split` makes a list from text; it cannot be combined with `list: true`");
            return None;
        }
        if s.split.as_deref() == Some("") {
            self.push(loc, "`split` needs a non-empty delimiter");
            return None;
        }
        let col_loc = Loc {
            field: format!("{}.column", loc.field),
            ..loc.clone()
        };
        let name = self.interpolated_at(column, &col_loc)?;
        Some(AttributeSource::Column {
            column: ColumnRef { name, loc: col_loc },
            ty: s.ty,
            split: s.split.clone(),
            list: s.list.unwrap_or(false),
        })
    }

    /// `{ value, type }`.
    fn constant_attribute(&mut self, s: &RawAttributeSpec, value: &serde_json::Value, loc: &Loc) -> Option<AttributeSource> {
        if s.split.is_some() || s.list.is_some() {
            self.push(loc, "`split` and `list` apply to columns, not to a constant `value`");
            return None;
        }
        match constant(value, s.ty) {
            Ok(v) => Some(AttributeSource::Constant(v)),
            Err(msg) => {
                let value_loc = Loc {
                    field: format!("{}.value", loc.field),
                    ..loc.clone()
                };
                self.push(&value_loc, msg);
                None
            }
        }
    }
}

/// A constant attribute: a scalar or a list of one kind, checked against `type` if given.
fn constant(value: &serde_json::Value, ty: Option<AttrType>) -> Result<AttrValue, String> {
    use serde_json::Value as J;
    let items: Vec<&J> = match value {
        J::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let inferred = match items.first() {
        Some(J::Bool(_)) => AttrType::Boolean,
        Some(J::Number(_)) => AttrType::Number,
        _ => AttrType::String,
    };
    let target = ty.unwrap_or(inferred);
    let bad = |item: &J| format!("cannot use {} as a {target} constant", shorten(&item.to_string(), MAX_QUOTED_CHARS));
    match target {
        AttrType::String => items
            .iter()
            .map(|i| match i {
                J::String(s) => Ok(s.clone()),
                J::Number(n) => Ok(n.to_string()),
                J::Bool(b) => Ok(b.to_string()),
                other => Err(bad(other)),
            })
            .collect::<Result<_, _>>()
            .map(AttrValue::S),
        AttrType::Number => items
            .iter()
            .map(|i| match i {
                J::Number(n) => n
                    .as_i64()
                    .map(Number::Int)
                    .or_else(|| n.as_f64().and_then(Number::from_f64))
                    .ok_or_else(|| bad(i)),
                J::String(s) => s.trim().parse::<f64>().ok().and_then(Number::from_f64).ok_or_else(|| bad(i)),
                other => Err(bad(other)),
            })
            .collect::<Result<_, _>>()
            .map(AttrValue::N),
        AttrType::Boolean => items
            .iter()
            .map(|i| match i {
                J::Bool(b) => Ok(*b),
                other => Err(bad(other)),
            })
            .collect::<Result<_, _>>()
            .map(AttrValue::B),
    }
}
