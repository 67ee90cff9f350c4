//! PostgreSQL tables and queries.
//!
//! Rows are streamed (`fetch`, never `fetch_all`) inside a `READ ONLY`
//! transaction and turned into Arrow batches of 8,192 rows, so memory stays
//! flat however large the table is, and the mapping sees the same columnar
//! input as from Parquet. Columns are cast on the server to a few wire types
//! (text, int8, float8, …), so one decoder per logical type is enough:
//! `uuid`, `json`, `jsonb`, `citext` and enums arrive as text, and `numeric`
//! as its exact decimal text (`decode.rs`).

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgRow, PgTypeKind};
use sqlx::{Column, ConnectOptions, Connection, Executor, PgConnection, TypeInfo};

use super::feed::{self, Feed};
use super::{ColumnType, Found, Since, Source, SourceBatch, SourceError, SourceSchema};
use crate::config::secret::SecretString;
use crate::config::PostgresRelation;

mod around;
mod cursor;
mod decode;
mod search_path;

pub use around::{Around, Bind};
pub use cursor::condition as cursor_condition;
pub use search_path::{quote_ident, SAFE_SEARCH_PATH};

use decode::Wire;

const BATCH_ROWS: usize = 8192;

/// How long a connection waits, parked, for the next read of the same run. A run reads the
/// schema, then the rows, moments apart; a worker's next run is minutes away, and a
/// connection that old may have been closed by the server or a proxy.
const PARKED_FOR: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Clone)]
pub struct PostgresSource {
    url: SecretString,
    relation: PostgresRelation,
    /// The run's log has said that this connection's TLS checks no certificate.
    warned: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The last read's connection, kept for the next: a connection costs a TLS handshake and
    /// a server process, about as long as reading a thousand rows.
    parked: std::sync::Arc<std::sync::Mutex<Option<(PgConnection, std::time::Instant)>>>,
}

/// The logical type and wire form of a PostgreSQL type, or `None` if ebb does not read it.
fn classify(type_name: &str, kind: &PgTypeKind) -> Option<(ColumnType, Wire)> {
    if matches!(kind, PgTypeKind::Enum(_)) {
        return Some((ColumnType::String, Wire::Text));
    }
    if let PgTypeKind::Array(element) = kind {
        let (inner, wire) = classify(element.name(), element.kind())?;
        return Some((ColumnType::List(Box::new(inner)), wire.list()?));
    }
    Some(match type_name.to_ascii_uppercase().as_str() {
        "TEXT" | "VARCHAR" | "BPCHAR" | "CHAR" | "NAME" | "CITEXT" | "UUID" | "JSON" | "JSONB" => (ColumnType::String, Wire::Text),
        "INT2" | "INT4" | "INT8" => (ColumnType::Int, Wire::Int),
        // Exact decimal text: the mapping reads it as a number, or keeps its scale as a string.
        "NUMERIC" => (ColumnType::Decimal, Wire::Numeric),
        "FLOAT4" | "FLOAT8" => (ColumnType::Float, Wire::Float),
        "BOOL" => (ColumnType::Bool, Wire::Bool),
        "DATE" => (ColumnType::Date, Wire::Date),
        "TIMESTAMP" | "TIMESTAMPTZ" => (ColumnType::Timestamp, Wire::Timestamp),
        _ => return None,
    })
}

impl PostgresSource {
    pub fn new(url: SecretString, relation: PostgresRelation) -> Self {
        Self {
            url,
            relation,
            warned: Default::default(),
            parked: Default::default(),
        }
    }

    /// The table or query the rows come from.
    pub fn relation(&self) -> &PostgresRelation {
        &self.relation
    }

    /// `host:port/db`, never the user or password.
    pub fn location(&self) -> String {
        match url::Url::parse(self.url.expose()) {
            Ok(u) => format!("{}:{}{}", u.host_str().unwrap_or("localhost"), u.port().unwrap_or(5432), u.path()),
            Err(_) => "an unparseable URL".to_string(),
        }
    }

    fn base_query(&self) -> String {
        match &self.relation {
            PostgresRelation::Table { schema: Some(s), name } => format!("SELECT * FROM {}.{}", quote_ident(s), quote_ident(name)),
            PostgresRelation::Table { schema: None, name } => format!("SELECT * FROM {}", quote_ident(name)),
            PostgresRelation::Query(q) => q.clone(),
        }
    }

    /// A failure to reach or read the source, naming it without credentials.
    pub fn err(&self, e: impl Into<super::BoxError>) -> SourceError {
        SourceError::Database {
            source_name: self.describe(),
            cause: e.into(),
        }
    }

    /// A connection of its own to the source's database, with the TLS the URL asks for.
    pub async fn connect(&self) -> Result<PgConnection, SourceError> {
        if let Some(problem) = crate::pg_url::tls_file_problem(self.url.expose()) {
            return Err(self.err(problem));
        }
        let options: PgConnectOptions = crate::pg_url::connect_options(self.url.expose()).map_err(|e| self.err(e))?;
        if let Some(warning) = crate::pg_url::unverified_tls(self.url.expose()) {
            if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!("{warning}");
            }
        }
        // Reading a big table takes a while by nature: sqlx's "slow statement" warning, with the
        // whole query, would greet every large sync. ebb's own logs say what a user sees.
        let options = options.log_slow_statements(log::LevelFilter::Debug, std::time::Duration::from_secs(1));
        options.connect().await.map_err(|e| self.err(e))
    }

    /// A parked connection that still answers, or a new one.
    async fn reuse_or_connect(&self) -> Result<PgConnection, SourceError> {
        let parked = crate::panic::lock(&self.parked).take();
        if let Some((mut conn, at)) = parked {
            if at.elapsed() < PARKED_FOR && conn.ping().await.is_ok() {
                return Ok(conn);
            }
            let _ = conn.close().await;
        }
        self.connect().await
    }

    /// Keeps `conn` for the next read; one is enough (a second read at once connects).
    async fn park(&self, conn: PgConnection) {
        let displaced = crate::panic::lock(&self.parked).replace((conn, std::time::Instant::now()));
        if let Some((old, _)) = displaced {
            let _ = old.close().await;
        }
    }

    /// Column names, logical types and wire forms, from a prepared (never executed) statement.
    async fn columns(&self, conn: &mut PgConnection) -> Result<Vec<(String, Result<(ColumnType, Wire), String>)>, SourceError> {
        let described = conn.describe(&self.base_query()).await.map_err(|e| self.err(e))?;
        Ok(described
            .columns()
            .iter()
            .map(|c| {
                let info = c.type_info();
                let class = classify(info.name(), info.kind()).ok_or_else(|| info.name().to_lowercase());
                (c.name().to_string(), class)
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Source for PostgresSource {
    fn describe(&self) -> String {
        match &self.relation {
            PostgresRelation::Table { schema, name } => {
                format!(
                    "postgres {} table {}{name}",
                    self.location(),
                    schema.as_ref().map(|s| format!("{s}.")).unwrap_or_default()
                )
            }
            PostgresRelation::Query(_) => format!("postgres {} query", self.location()),
        }
    }

    async fn schema(&self) -> Result<SourceSchema, SourceError> {
        let mut conn = self.reuse_or_connect().await?;
        let columns = self.columns(&mut conn).await?;
        self.park(conn).await;
        let mut schema = SourceSchema::default();
        for (name, class) in columns {
            match class {
                Ok((t, _)) => schema.columns.push((name, t)),
                Err(type_name) => schema.unsupported.push((name, type_name)),
            }
        }
        Ok(schema)
    }

    fn stream(&self, expected: Arc<Vec<(String, ColumnType)>>) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        let source = self.clone();
        feed::spawn(
            self.describe(),
            move |feed| async move { source.read_all(&expected, None, &feed).await },
        )
    }

    async fn cursor_warning(&self, column: &str) -> Option<String> {
        let PostgresRelation::Table { schema, name } = &self.relation else {
            return None;
        };
        let table = match schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(name)),
            None => quote_ident(name),
        };
        let mut conn = self.connect().await.ok()?;
        let indexed = cursor::has_leading_index(&mut conn, &table, column).await;
        let _ = conn.close().await;
        match indexed {
            Ok(true) | Err(_) => None,
            Ok(false) => Some(format!(
                "no index of {table} leads with the cursor column {}: each cursor run scans the whole table \
                 (CREATE INDEX ON {table} ({}))",
                crate::quote::quote(column),
                quote_ident(column)
            )),
        }
    }

    fn stream_since(
        &self,
        expected: Arc<Vec<(String, ColumnType)>>,
        since: Since,
    ) -> Option<BoxStream<'static, Result<SourceBatch, SourceError>>> {
        let source = self.clone();
        let read = move |feed| async move { source.read_all(&expected, Some(&since), &feed).await };
        Some(feed::spawn(self.describe(), read))
    }
}

impl PostgresSource {
    /// How each expected column is read, or the drift that stops the run before anything is read.
    async fn wires(&self, conn: &mut PgConnection, expected: &[(String, ColumnType)]) -> Result<Vec<Wire>, SourceError> {
        let columns = self.columns(conn).await?;
        super::check_part(expected, &self.describe(), |name| match columns.iter().find(|(n, _)| n == name) {
            None => Found::Missing,
            Some((_, Ok((t, wire)))) => Found::Readable(t.clone(), *wire),
            Some((_, Err(type_name))) => Found::Unsupported(type_name.clone()),
        })
    }

    async fn read_all(&self, expected: &[(String, ColumnType)], since: Option<&Since>, feed: &Feed) -> Result<(), SourceError> {
        let mut conn = self.reuse_or_connect().await?;
        let wires = self.wires(&mut conn, expected).await?;
        let narrowed = since.and_then(|s| cursor::condition(s, expected));
        let sql = format!(
            "SELECT {} FROM ({}) AS ebb_source{}",
            select_list(expected, &wires).join(", "),
            self.base_query(),
            narrowed.map(|c| format!(" WHERE {c}")).unwrap_or_default()
        );
        let mut txn = self.read_only(&mut conn).await?;
        let rows = sqlx::query(&sql).fetch(&mut *txn);
        self.pump(rows, expected, &wires, feed).await?;
        // Read-only: nothing to keep, so end the transaction without committing. Only a
        // connection whose transaction ended cleanly is parked for the next read.
        if txn.rollback().await.is_ok() {
            self.park(conn).await;
        }
        Ok(())
    }

    /// A transaction that cannot write: every read of the source runs in one.
    pub async fn read_only<'c>(&self, conn: &'c mut PgConnection) -> Result<sqlx::Transaction<'c, sqlx::Postgres>, SourceError> {
        let mut txn = conn.begin().await.map_err(|e| self.err(e))?;
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *txn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(txn)
    }

    /// Turns `rows` into batches of `BATCH_ROWS` and sends them until the rows end or the
    /// consumer is gone. Each row holds `expected`'s columns in order, read as `wires`.
    async fn pump(
        &self,
        mut rows: BoxStream<'_, Result<PgRow, sqlx::Error>>,
        expected: &[(String, ColumnType)],
        wires: &[Wire],
        feed: &Feed,
    ) -> Result<(), SourceError> {
        let origin: Arc<str> = Arc::from(self.describe());
        let mut pending: Vec<PgRow> = Vec::with_capacity(BATCH_ROWS);
        let mut first_row = 0u64;
        loop {
            let row = rows.try_next().await.map_err(|e| self.err(e))?;
            let done = row.is_none();
            pending.extend(row);
            if pending.len() == BATCH_ROWS || (done && !pending.is_empty()) {
                let (batch, problems) = decode::to_batch(expected, wires, &pending, 0).map_err(|e| self.err(e))?;
                let n = pending.len() as u64;
                pending.clear();
                let batch = SourceBatch {
                    batch,
                    origin: origin.clone(),
                    first_row,
                    problems,
                };
                if feed.send(batch).await.is_err() {
                    return Ok(());
                }
                first_row += n;
            }
            if done {
                return Ok(());
            }
        }
    }
}

/// The expected columns, each cast to its wire form.
fn select_list(expected: &[(String, ColumnType)], wires: &[Wire]) -> Vec<String> {
    expected
        .iter()
        .zip(wires)
        .map(|((name, _), wire)| format!("{q}{} AS {q}", wire.cast(), q = quote_ident(name)))
        .collect()
}
