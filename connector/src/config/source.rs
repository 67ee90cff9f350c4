//! The `source:` section: a Parquet path, folder, glob or object-store URL, or a PostgreSQL
//! table or query.

use std::path::Path;

use serde_saphyr::Spanned;

use super::issue::Loc;
use super::raw::{RawDiffMode, RawPostgres, RawSource};
use super::secret::{self, SecretString};
use super::store::{is_store_url, StoreConfig};
use super::validator::Validator;
use crate::quote::quote;

/// Which folders of a Parquet snapshot are read (`latest:` and `require_marker:`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderRule {
    /// Only the greatest of the folders the pattern's first wildcard matches.
    pub latest: bool,
    /// A folder counts only once this object is in it.
    pub marker: Option<String>,
}

impl FolderRule {
    pub fn is_plain(&self) -> bool {
        !self.latest && self.marker.is_none()
    }
}

/// Where a PostgreSQL source's diff is computed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DiffMode {
    #[default]
    InProcess,
    /// In the source database, with ebb's state in `state_schema` (the warehouse-side diff).
    Warehouse { state_schema: String },
}

/// What a PostgreSQL source reads.
/// The schema of the warehouse-side diff's bookkeeping tables when a mapping names none.
pub const DEFAULT_STATE_SCHEMA: &str = "ebb_state";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostgresRelation {
    Table { schema: Option<String>, name: String },
    Query(String),
}

#[derive(Clone, Debug)]
pub enum SourceConfig {
    /// An absolute path, folder or glob, or an object-store URL (`store` is then set).
    Parquet {
        pattern: String,
        store: Option<StoreConfig>,
        folders: FolderRule,
        loc: Loc,
    },
    /// The URL may hold a password, so it is a secret; messages use `state::redact_url`.
    Postgres {
        url: SecretString,
        relation: PostgresRelation,
        diff: DiffMode,
        loc: Loc,
    },
    /// The rows of `base`, each with the columns of the `lookup` row whose `key` equals the
    /// row's `column` (a left join), named `prefix` + the lookup's column name.
    Joined {
        base: Box<SourceConfig>,
        lookup: Box<SourceConfig>,
        join: JoinKeys,
    },
}

/// How a joined source matches rows: `base.column = lookup.key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinKeys {
    pub column: String,
    pub key: String,
    /// Prepended to the lookup's column names, as in `company.`.
    pub prefix: String,
}

impl SourceConfig {
    /// `diff: warehouse`, where the mapping asks for it.
    pub fn warehouse_diff(&self) -> Option<&str> {
        match self {
            SourceConfig::Postgres {
                diff: DiffMode::Warehouse { state_schema },
                ..
            } => Some(state_schema),
            SourceConfig::Postgres { .. } | SourceConfig::Parquet { .. } => None,
            SourceConfig::Joined { base, .. } => base.warehouse_diff(),
        }
    }

    /// What is risky but allowed about the source, each with where it is declared: a
    /// PostgreSQL connection to another machine whose TLS checks no certificate.
    pub fn warnings(&self) -> Vec<(&Loc, String)> {
        match self {
            SourceConfig::Parquet { .. } => Vec::new(),
            SourceConfig::Postgres { url, loc, .. } => crate::pg_url::unverified_tls(url.expose()).map(|w| (loc, w)).into_iter().collect(),
            SourceConfig::Joined { base, lookup, .. } => {
                let mut all = base.warnings();
                all.extend(lookup.warnings());
                all
            }
        }
    }

    /// Where the mapping declares the source, for errors about it.
    pub fn loc(&self) -> &Loc {
        match self {
            SourceConfig::Parquet { loc, .. } | SourceConfig::Postgres { loc, .. } => loc,
            SourceConfig::Joined { base, .. } => base.loc(),
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
    pub fn source(&mut self, raw: &Spanned<RawSource>) -> SourceConfig {
        self.source_at(raw, "source")
    }

    /// A source written at `at` (`source`, or a joined one such as `company.source`).
    pub fn source_at(&mut self, raw: &Spanned<RawSource>, at: &str) -> SourceConfig {
        let source = &raw.value;
        if let (Some(cursor), false) = (&source.cursor, at == "source") {
            self.push(
                &Loc::of(cursor, format!("{at}.cursor")),
                "goes with the mapping's own `source:`: only its rows are narrowed by a cursor",
            );
        }
        match (&source.parquet, &source.postgres) {
            (Some(p), None) => self.parquet(p, source, at),
            (None, Some(pg)) => {
                let parquet_only = [
                    source.latest.as_ref().map(|l| Loc::of(l, format!("{at}.latest"))),
                    source.require_marker.as_ref().map(|m| Loc::of(m, format!("{at}.require_marker"))),
                    source.store.as_ref().map(|s| Loc::of(s, format!("{at}.store"))),
                ];
                for loc in parquet_only.into_iter().flatten() {
                    self.push(&loc, "goes with a `parquet:` source, not `postgres:`");
                }
                self.postgres(pg, &format!("{at}.postgres"))
            }
            _ => {
                let loc = Loc::of(raw, at);
                self.push(&loc, "give exactly one of `parquet` or `postgres`");
                SourceConfig::Parquet {
                    pattern: String::new(),
                    store: None,
                    folders: FolderRule::default(),
                    loc,
                }
            }
        }
    }

    fn parquet(&mut self, p: &Spanned<String>, source: &RawSource, at: &str) -> SourceConfig {
        let field = format!("{at}.parquet");
        let loc = Loc::of(p, field.clone());
        let Some(pattern) = self.interpolated(p, &field) else {
            // The unset variable is the problem; what the path would have been is unknown.
            return SourceConfig::Parquet {
                pattern: String::new(),
                store: None,
                folders: FolderRule::default(),
                loc,
            };
        };
        let folders = self.folder_rule(source, &pattern, at);
        if is_store_url(pattern.trim()) {
            let store = self.store_location(pattern.trim(), &loc, source.store.as_ref(), at);
            return SourceConfig::Parquet {
                pattern: pattern.trim().to_string(),
                store,
                folders,
                loc,
            };
        }
        if let Some(store) = &source.store {
            self.push(
                &Loc::of(store, format!("{at}.store")),
                "is for an object-store source (`s3://`, `gs://`, `az://`); this one is a local path",
            );
        }
        if pattern.trim().is_empty() {
            self.push(&loc, "must be a file, a folder, a glob or an s3://, gs:// or az:// URL");
        } else if pattern.contains("://") {
            self.push(
                &loc,
                "is not a local path, and ebb reads no such URL: use s3://, gs://, az:// or abfss://",
            );
        }
        let absolute = if Path::new(&pattern).is_absolute() {
            pattern
        } else {
            let base_dir = self.file().parent().map(Path::to_path_buf).unwrap_or_default();
            base_dir.join(pattern).to_string_lossy().into_owned()
        };
        SourceConfig::Parquet {
            pattern: absolute,
            store: None,
            folders,
            loc,
        }
    }

    /// `latest:` needs a wildcard in a folder of the path; a marker is a plain object name.
    fn folder_rule(&mut self, source: &RawSource, pattern: &str, at: &str) -> FolderRule {
        let latest = source.latest.as_ref().is_some_and(|l| l.value);
        if let (Some(l), true) = (&source.latest, latest) {
            if crate::folders::folder_wildcard(pattern).is_none() {
                self.push(
                    &Loc::of(l, format!("{at}.latest")),
                    "picks the newest folder that the path's first wildcard matches, and this path has no wildcard in a \
                     folder: write one, as in `users/dt=*/part-*.parquet`",
                );
            }
        }
        let marker = source.require_marker.as_ref().and_then(|m| {
            let field = format!("{at}.require_marker");
            let name = self.interpolated(m, &field)?;
            if name.is_empty() || name.contains(['/', '\\', '*', '?', '[']) {
                self.push(
                    &Loc::of(m, field),
                    "must be the name of an object in the folder, such as `_SUCCESS`",
                );
            }
            Some(name)
        });
        FolderRule { latest, marker }
    }

    fn postgres(&mut self, pg: &RawPostgres, at: &str) -> SourceConfig {
        let loc = Loc::of(&pg.url, format!("{at}.url"));
        if secret::password_written_out(&pg.url.value) {
            self.push(
                &loc,
                "holds a password written in the mapping: take it from the environment, as in `url: ${WAREHOUSE_URL}` or \
                 `postgres://user:${WAREHOUSE_PASSWORD}@host/db`, or leave it out (trust, .pgpass or PGPASSWORD)",
            );
        }
        let url = self.interpolated(&pg.url, &format!("{at}.url")).unwrap_or_default();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            self.push(&loc, "must be a postgres:// or postgresql:// URL");
        }
        let relation = match (&pg.table, &pg.query) {
            (Some(table), None) => {
                let table_loc = Loc::of(table, format!("{at}.table"));
                let text = self.interpolated(table, &format!("{at}.table")).unwrap_or_default();
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
                let text = self.interpolated(query, &format!("{at}.query")).unwrap_or_default();
                if text.trim().is_empty() {
                    self.push(&Loc::of(query, format!("{at}.query")), "must not be empty");
                }
                PostgresRelation::Query(text.trim().trim_end_matches(';').to_string())
            }
            _ => {
                let whole = Loc {
                    field: at.into(),
                    ..loc.clone()
                };
                self.push(&whole, "give exactly one of `table` or `query`");
                PostgresRelation::Query(String::new())
            }
        };
        let diff = self.diff_mode(pg, at);
        SourceConfig::Postgres {
            url: SecretString::new(url),
            relation,
            diff,
            loc,
        }
    }

    fn diff_mode(&mut self, pg: &RawPostgres, at: &str) -> DiffMode {
        let state_schema = match &pg.state_schema {
            None => DEFAULT_STATE_SCHEMA.to_string(),
            Some(schema) => {
                let field = format!("{at}.state_schema");
                let text = self.interpolated(schema, &field).unwrap_or_default();
                if plain_table_name(&text).is_none_or(|(s, _)| s.is_some()) {
                    self.push(&Loc::of(schema, field), format!("{} is not a plain schema name", quote(&text)));
                }
                text
            }
        };
        match pg.diff.as_ref().map(|d| d.value) {
            Some(RawDiffMode::Warehouse) => DiffMode::Warehouse { state_schema },
            Some(RawDiffMode::InProcess) | None => DiffMode::InProcess,
        }
    }
}
