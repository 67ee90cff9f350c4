//! The `source:` section: a Parquet path, folder or glob, or a PostgreSQL table or query.

use std::path::Path;

use super::issue::Loc;
use super::raw::{RawPostgres, RawSource};
use super::secret::{self, SecretString};
use super::validator::Validator;
use crate::quote::quote;

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

impl Validator<'_> {
    pub fn source(&mut self, raw: &RawSource) -> SourceConfig {
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
                    let base_dir = self.file().parent().map(Path::to_path_buf).unwrap_or_default();
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
}
