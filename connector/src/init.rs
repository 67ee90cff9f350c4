//! `ebb init`: a first mapping from a source's schema, as `dbt init` and Census's model
//! pickers start one. The identity and the creation time are guessed from column names and a
//! sample of rows; every other column the destination can take becomes a typed field. Secrets
//! are `${VAR}` placeholders, never values. What cannot be guessed is a `TODO` that says so.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;

use crate::column::ColumnType;
use crate::source::{Source, SourceError, SourceSchema};

/// How many rows the identity guess looks at.
pub const SAMPLE_ROWS: usize = 10_000;

/// The destinations `ebb init` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitDestination {
    EnterpretUsers,
    EnterpretAccounts,
    Profiles,
}

/// What a mapping's `source:` block says, as `init` writes it.
pub struct InitSource<'a> {
    /// The block's lines after `source:`, indented, ready to write.
    pub block: String,
    /// The source, to read the schema and the sample from.
    pub source: &'a dyn Source,
}

/// A mapping's text, and what a person must still decide.
#[derive(Debug)]
pub struct Draft {
    pub text: String,
    /// Each key left as `TODO`, with why.
    pub todos: Vec<String>,
    /// Rows the identity guess sampled.
    pub sampled: usize,
}

/// Writes a mapping named `name` for `destination` from the source's schema and a sample.
pub async fn draft(name: &str, from: &InitSource<'_>, destination: InitDestination) -> Result<Draft, SourceError> {
    let schema = from.source.schema().await?;
    let candidates = identity_candidates(&schema, destination);
    let (verdicts, sampled) = sample(from.source, &candidates).await?;
    let identity = candidates.iter().zip(&verdicts).find(|(_, ok)| **ok).map(|((c, _), _)| c.clone());
    let mut w = Writer::default();
    w.line("# yaml-language-server: $schema=./ebb.schema.json");
    w.line(&format!(
        "# Written by `ebb init` from {} (identity guessed from {sampled} rows).",
        from.source.describe()
    ));
    w.line("# Check it with `ebb validate`, and see what a run would send with `ebb preview`.");
    w.line(&format!("name: {}", yaml_scalar(name)));
    w.line("source:");
    w.text(&from.block);
    let mut used: Vec<String> = Vec::new();
    match destination {
        InitDestination::EnterpretUsers | InitDestination::EnterpretAccounts => {
            enterpret(&mut w, &schema, destination, identity, &mut used, sampled)
        }
        InitDestination::Profiles => profiles(&mut w, &schema, identity, &mut used, sampled),
    }
    let unsupported: Vec<String> = schema.unsupported.iter().map(|(n, t)| format!("{n} ({t})")).collect();
    if !unsupported.is_empty() {
        w.line(&format!("# Not mapped, of types ebb does not read: {}", unsupported.join(", ")));
    }
    Ok(Draft {
        text: w.out,
        todos: w.todos,
        sampled,
    })
}

#[derive(Default)]
struct Writer {
    out: String,
    todos: Vec<String>,
}

impl Writer {
    fn line(&mut self, line: &str) {
        self.out.push_str(line);
        self.out.push('\n');
    }

    fn text(&mut self, block: &str) {
        self.out.push_str(block);
        if !block.ends_with('\n') {
            self.out.push('\n');
        }
    }

    /// `key: TODO  # TODO: why`, and the same said to the person running `init`.
    fn todo(&mut self, key: &str, why: &str) {
        self.line(&format!("{key}: TODO  # TODO: {why}"));
        self.todos.push(format!("{key}: {why}"));
    }
}

fn enterpret(
    w: &mut Writer,
    schema: &SourceSchema,
    destination: InitDestination,
    identity: Option<String>,
    used: &mut Vec<String>,
    sampled: usize,
) {
    let (object, key_var) = match destination {
        InitDestination::EnterpretAccounts => ("account", "ENTERPRET_ACCOUNTS_API_KEY"),
        _ => ("user", "ENTERPRET_USERS_API_KEY"),
    };
    w.line("destination:");
    w.line("  enterpret:");
    w.line(&format!("    object: {object}"));
    w.line(&format!("    api_key: ${{{key_var}}}"));
    w.line("    url: ${ENTERPRET_URL:-https://api.enterpret.com}");
    match identity {
        Some(id) => {
            w.line(&format!("id: {}", yaml_scalar(&id)));
            used.push(id);
        }
        None => w.todo("id", &no_identity(object, sampled)),
    }
    match created_at_column(schema) {
        Some(column) => {
            w.line(&format!("created_at: {}", yaml_scalar(&column)));
            used.push(column);
        }
        None => w.todo(
            "created_at",
            "no timestamp or date column named created*, signup* or *_at; name the column with each record's creation time",
        ),
    }
    fields(
        w,
        "attributes",
        schema,
        used,
        &[ValueKind::Number, ValueKind::Boolean, ValueKind::List],
    );
}

fn profiles(w: &mut Writer, schema: &SourceSchema, identity: Option<String>, used: &mut Vec<String>, sampled: usize) {
    w.line("destination:");
    w.line("  profiles:");
    w.line("    token: ${PROFILES_TOKEN}");
    w.line("    url: ${PROFILES_URL:-https://api.enjoyhq.com/v1}");
    match identity {
        Some(email) if email == "email" => {
            w.line("email: email");
            used.push(email);
        }
        // No email column: a pseudonymous address per record keeps real ones out.
        Some(id) => {
            w.line(&format!(
                "email: {{ template: {} }}  # a pseudonymous address per {id}",
                yaml_scalar(&format!("user-{{{id}}}@customers.invalid"))
            ));
            used.push(id);
        }
        None => w.todo("email", &no_identity("profile", sampled)),
    }
    let named = ["full_name", "name", "display_name", "person_name"];
    match named
        .into_iter()
        .find(|n| schema.column(n) == Some(&ColumnType::String) && !used.iter().any(|u| u == n))
    {
        Some(name) => {
            w.line(&format!("full_name: {name}"));
            used.push(name.to_string());
        }
        None => w.todo(
            "full_name",
            "no text column named full_name, name or display_name; name the column with each person's name",
        ),
    }
    let segments = schema
        .columns
        .iter()
        .find(|(n, t)| matches!(n.as_str(), "segments" | "tags") && t.is_list() && !used.contains(n));
    if let Some((column, _)) = segments {
        w.line(&format!("segments: {}", yaml_scalar(column)));
        used.push(column.clone());
    }
    let lists: Vec<String> = schema
        .columns
        .iter()
        .filter(|(n, t)| t.is_list() && !used.contains(n))
        .map(|(n, _)| n.clone())
        .collect();
    fields(w, "properties", schema, used, &[ValueKind::Number, ValueKind::Date]);
    if !lists.is_empty() {
        w.line(&format!(
            "# Not mapped: list columns, which profiles take only as `segments`: {}",
            lists.join(", ")
        ));
    }
}

fn no_identity(what: &str, sampled: usize) -> String {
    format!("no column looks like the {what}'s identity (unique and never null in a sample of {sampled} rows); name it")
}

/// The typed values a destination takes besides text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Number,
    Boolean,
    Date,
    List,
}

/// Every column not `used` as a field of `section`, typed where the destination has the type.
fn fields(w: &mut Writer, section: &str, schema: &SourceSchema, used: &[String], kinds: &[ValueKind]) {
    let mut lines = Vec::new();
    for (name, ty) in schema.columns.iter().filter(|(n, _)| !used.contains(n)) {
        let column = yaml_scalar(name);
        let kind = match ty {
            ColumnType::List(_) => ValueKind::List,
            ColumnType::Int | ColumnType::UInt | ColumnType::Float | ColumnType::Decimal => ValueKind::Number,
            ColumnType::Bool => ValueKind::Boolean,
            ColumnType::Date | ColumnType::Timestamp => ValueKind::Date,
            ColumnType::String => {
                lines.push(format!("  {column}: {column}"));
                continue;
            }
            // No value to type it by: the shorthand takes the column's type once it has values.
            ColumnType::Null => {
                lines.push(format!("  {column}: {column}  # every value is null so far"));
                continue;
            }
        };
        let spec = match (kind, kinds.contains(&kind)) {
            (ValueKind::List, true) => format!("{{ column: {column}, list: true }}"),
            (ValueKind::List, false) => continue,
            (ValueKind::Number, true) => format!("{{ column: {column}, type: number }}"),
            (ValueKind::Boolean, true) => format!("{{ column: {column}, type: boolean }}"),
            (ValueKind::Date, true) => format!("{{ column: {column}, type: date }}"),
            // The destination has no such type: sent as text.
            (_, false) => column.clone(),
        };
        lines.push(format!("  {column}: {spec}"));
    }
    if lines.is_empty() {
        return;
    }
    w.line(&format!("{section}:"));
    for line in lines {
        w.line(&line);
    }
}

/// The columns that could be the identity, in the order they are tried.
fn identity_candidates(schema: &SourceSchema, destination: InitDestination) -> Vec<(String, ColumnType)> {
    let named: &[&str] = match destination {
        InitDestination::EnterpretUsers => &["user_id", "id"],
        InitDestination::EnterpretAccounts => &["account_id", "id"],
        InitDestination::Profiles => &["email", "user_id", "id"],
    };
    let id_like = |t: &ColumnType| matches!(t, ColumnType::String | ColumnType::Int | ColumnType::UInt);
    let mut out: Vec<(String, ColumnType)> = named
        .iter()
        .filter_map(|n| schema.column(n).filter(|t| id_like(t)).map(|t| (n.to_string(), t.clone())))
        .collect();
    for (name, ty) in &schema.columns {
        if name.ends_with("_id") && id_like(ty) && !out.iter().any(|(n, _)| n == name) {
            out.push((name.clone(), ty.clone()));
        }
    }
    out
}

/// A timestamp or date column named `created*`, else `signup*`, else `*_at`.
fn created_at_column(schema: &SourceSchema) -> Option<String> {
    let timed: Vec<&String> = schema
        .columns
        .iter()
        .filter(|(_, t)| matches!(t, ColumnType::Timestamp | ColumnType::Date))
        .map(|(n, _)| n)
        .collect();
    let by = |test: &dyn Fn(&str) -> bool| timed.iter().find(|n| test(&n.to_lowercase())).map(|n| n.to_string());
    by(&|n| n.starts_with("created"))
        .or_else(|| by(&|n| n.starts_with("signup") || n.starts_with("signed_up")))
        .or_else(|| by(&|n| n.ends_with("_at")))
}

/// Per candidate, whether it is unique and never null in the first [`SAMPLE_ROWS`] rows; and
/// how many rows were sampled.
async fn sample(source: &dyn Source, candidates: &[(String, ColumnType)]) -> Result<(Vec<bool>, usize), SourceError> {
    if candidates.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let mut seen: Vec<HashSet<String>> = vec![HashSet::new(); candidates.len()];
    let mut ok = vec![true; candidates.len()];
    let mut rows = 0;
    let mut stream = source.stream(Arc::new(candidates.to_vec()));
    let options = FormatOptions::default();
    while rows < SAMPLE_ROWS {
        let Some(batch) = stream.next().await else { break };
        let batch = batch?.batch;
        let take = batch.num_rows().min(SAMPLE_ROWS - rows);
        for (i, column) in batch.columns().iter().enumerate().take(candidates.len()) {
            let Ok(format) = ArrayFormatter::try_new(column.as_ref(), &options) else {
                ok[i] = false;
                continue;
            };
            for row in 0..take {
                ok[i] &= !column.is_null(row) && seen[i].insert(format.value(row).to_string());
            }
        }
        rows += take;
    }
    // An empty sample proves nothing: guess by name alone.
    Ok((ok, rows))
}

/// A YAML scalar for `text`: plain when it is a simple word, else double-quoted (JSON's
/// escapes are YAML's).
pub fn yaml_scalar(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '.' || c == '/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !matches!(text, "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "TODO");
    if plain {
        text.to_string()
    } else {
        serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_that_yaml_would_misread_are_quoted() {
        assert_eq!(yaml_scalar("user_id"), "user_id");
        assert_eq!(yaml_scalar("../data/users.parquet"), "../data/users.parquet");
        assert_eq!(yaml_scalar("first name"), "\"first name\"");
        assert_eq!(yaml_scalar("yes"), "\"yes\"");
        assert_eq!(yaml_scalar("a: b"), "\"a: b\"");
        assert_eq!(yaml_scalar("user-{id}@x"), "\"user-{id}@x\"");
        assert_eq!(yaml_scalar("say \"hi\""), "\"say \\\"hi\\\"\"");
    }

    fn schema(columns: &[(&str, ColumnType)]) -> SourceSchema {
        SourceSchema {
            columns: columns.iter().map(|(n, t)| (n.to_string(), t.clone())).collect(),
            ..SourceSchema::default()
        }
    }

    #[test]
    fn identity_candidates_follow_the_documented_order() {
        let s = schema(&[
            ("org_id", ColumnType::Int),
            ("id", ColumnType::String),
            ("user_id", ColumnType::String),
            ("email", ColumnType::String),
            ("score_id", ColumnType::Float),
        ]);
        let names = |d| identity_candidates(&s, d).into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(InitDestination::EnterpretUsers), ["user_id", "id", "org_id"]);
        assert_eq!(names(InitDestination::EnterpretAccounts), ["id", "org_id", "user_id"]);
        assert_eq!(names(InitDestination::Profiles), ["email", "user_id", "id", "org_id"]);
    }

    #[test]
    fn created_at_prefers_created_then_signup_then_at() {
        let s = schema(&[
            ("updated_at", ColumnType::Timestamp),
            ("signup_date", ColumnType::Date),
            ("created", ColumnType::Int),
        ]);
        assert_eq!(created_at_column(&s).as_deref(), Some("signup_date"), "created is no timestamp");
        let s = schema(&[("updated_at", ColumnType::Timestamp), ("Created_On", ColumnType::Date)]);
        assert_eq!(created_at_column(&s).as_deref(), Some("Created_On"));
        assert_eq!(created_at_column(&schema(&[("x", ColumnType::Int)])), None);
    }
}
