//! The bookkeeping tables of a PostgreSQL source's database: its SQL is [`super::sql`]; this
//! runs it. The diff query reads the source inside a `READ ONLY` transaction like every other
//! read ([`PostgresSource::stream_around`]); only the tables in the state schema are written.

use std::sync::Arc;

use super::tables::{Coverage, DiffQuery, Gone, Opened, WarehouseCommit, WarehouseError, WarehouseTables};
use super::tables::{HASH_COLUMN, KEY_COLUMN, STORED_COLUMN};
use super::{bookkeeping, sql};
use crate::column::ColumnType;
use crate::config::PostgresRelation;
use crate::mapping::{KeyPart, RowKey};
use crate::source::postgres::{Around, Bind, PostgresSource};
use crate::source::{SourceBatch, SourceError};
use futures::stream::BoxStream;
use sqlx::{Connection, PgConnection, Row};

pub struct PgWarehouse {
    source: PostgresSource,
    schema: String,
    /// Commits come every 200 ms or so: they reuse one connection rather than each opening one.
    committer: tokio::sync::Mutex<Option<PgConnection>>,
}

impl PgWarehouse {
    pub fn new(source: PostgresSource, schema: String) -> PgWarehouse {
        PgWarehouse {
            source,
            schema,
            committer: tokio::sync::Mutex::new(None),
        }
    }

    fn err(&self, cause: impl Into<crate::source::BoxError>) -> WarehouseError {
        WarehouseError::Database {
            place: self.describe(),
            cause: cause.into(),
        }
    }

    async fn connect(&self) -> Result<PgConnection, WarehouseError> {
        self.source.connect().await.map_err(|e| match e {
            SourceError::Database { cause, .. } => self.err(cause),
            other => self.err(other),
        })
    }

    /// Whether the schema and its tables exist.
    async fn existing(&self, conn: &mut PgConnection) -> Result<(bool, bool), WarehouseError> {
        let schema: bool = sqlx::query_scalar(bookkeeping::schema_exists())
            .bind(&self.schema)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        if !schema {
            return Ok((false, false));
        }
        let tables: bool = sqlx::query_scalar(&bookkeeping::tables_exist(&self.schema))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok((true, tables))
    }

    /// Whether the key is a column of the table that a unique index covers: then no row shares
    /// its key with another, and the scan for duplicates is not needed.
    async fn unique_key(&self, conn: &mut PgConnection, key: &RowKey) -> Result<bool, WarehouseError> {
        let (PostgresRelation::Table { schema, name }, [KeyPart::Column(column)], false) =
            (self.source.relation(), key.parts.as_slice(), key.lowercase)
        else {
            return Ok(false);
        };
        let table = match schema {
            Some(schema) => format!("{}.{}", sql::quote_ident(schema), sql::quote_ident(name)),
            None => sql::quote_ident(name),
        };
        sqlx::query_scalar(sql::unique_column())
            .bind(table)
            .bind(column)
            .fetch_one(conn)
            .await
            .map_err(|e| self.err(e))
    }

    /// A transaction that writes only ebb's own tables, with the safe search path.
    async fn writing<'c>(&self, conn: &'c mut PgConnection) -> Result<sqlx::Transaction<'c, sqlx::Postgres>, WarehouseError> {
        let mut txn = conn.begin().await.map_err(|e| self.err(e))?;
        sqlx::query(sql::SAFE_SEARCH_PATH)
            .execute(&mut *txn)
            .await
            .map_err(|e| self.err(e))?;
        Ok(txn)
    }

    /// A read-only transaction on the source's database, its search path pinned; returns it with
    /// the source's query as it must be written under that path.
    async fn reading<'c>(&self, conn: &'c mut PgConnection) -> Result<(sqlx::Transaction<'c, sqlx::Postgres>, String), WarehouseError> {
        let mut txn = self.source.read_only(conn).await.map_err(|e| self.err(e))?;
        let base = self.source.pin_search_path(&mut txn).await.map_err(|e| self.err(e))?;
        Ok((txn, base))
    }

    fn fenced(&self, ours: i64, newest: i64) -> WarehouseError {
        WarehouseError::Fenced {
            place: self.describe(),
            ours,
            newest,
        }
    }

    async fn commit_on(&self, conn: &mut PgConnection, sync: &str, commit: &WarehouseCommit<'_>) -> Result<(), WarehouseError> {
        let mut txn = self.writing(conn).await?;
        let (keys, sent_as, hashes): (Vec<&str>, Vec<&str>, Vec<String>) =
            commit.upserts.iter().map(|(k, s, h)| (k.as_str(), s.as_str(), hex(*h))).collect();
        let coverage = commit.coverage;
        let row = sqlx::query(&bookkeeping::commit(&self.schema))
            .bind(sync)
            .bind(keys)
            .bind(sent_as)
            .bind(hashes)
            .bind(commit.deletes)
            .bind(coverage.is_some())
            .bind(coverage.map_or(0, |c| i32::try_from(c.hash_version).unwrap_or(i32::MAX)))
            .bind(coverage.map(|c| c.salt.as_str()))
            .bind(coverage.map(|c| c.columns.as_str()))
            .bind(coverage.map(|c| c.destination.as_str()))
            .bind(commit.fence)
            .bind(commit.replace)
            .fetch_one(&mut *txn)
            .await
            .map_err(|e| self.err(e))?;
        let (recorded, newest): (bool, i64) = (row.try_get(0).map_err(|e| self.err(e))?, row.try_get(1).map_err(|e| self.err(e))?);
        if !recorded {
            return Err(self.fenced(commit.fence, newest));
        }
        txn.commit().await.map_err(|e| self.err(e))
    }

    /// Records a run's fencing token, unless a newer one is recorded.
    async fn record_fence(&self, conn: &mut PgConnection, sync: &str, fence: i64) -> Result<(), WarehouseError> {
        let mut txn = self.writing(conn).await?;
        let recorded = sqlx::query(&bookkeeping::record_fence(&self.schema))
            .bind(sync)
            .bind(fence)
            .fetch_optional(&mut *txn)
            .await
            .map_err(|e| self.err(e))?;
        if recorded.is_none() {
            let newest: i64 = sqlx::query_scalar(&bookkeeping::newest_fence(&self.schema))
                .bind(sync)
                .fetch_one(&mut *txn)
                .await
                .map_err(|e| self.err(e))?;
            return Err(self.fenced(fence, newest));
        }
        txn.commit().await.map_err(|e| self.err(e))
    }

    /// What the stored hashes of `sync` cover, and how many there are.
    async fn coverage(&self, conn: &mut PgConnection, sync: &str) -> Result<Opened, WarehouseError> {
        let row = sqlx::query(&bookkeeping::read_coverage(&self.schema))
            .bind(sync)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        let coverage = || -> Result<Option<Coverage>, sqlx::Error> {
            let Some(version) = row.try_get::<Option<i32>, _>(0)? else {
                return Ok(None);
            };
            Ok(Some(Coverage {
                hash_version: u32::try_from(version).unwrap_or(0),
                salt: row.try_get(1)?,
                columns: row.try_get(2)?,
                destination: row.try_get(3)?,
            }))
        };
        let coverage = coverage().map_err(|e| self.err(e))?;
        let records: i64 = row.try_get(4).map_err(|e| self.err(e))?;
        Ok(Opened {
            coverage,
            records: u64::try_from(records).unwrap_or(0),
        })
    }
}

/// The diff query's own columns, in front of the source's.
fn leading_columns() -> Vec<(String, ColumnType)> {
    vec![
        (KEY_COLUMN.to_string(), ColumnType::String),
        (HASH_COLUMN.to_string(), ColumnType::String),
        (STORED_COLUMN.to_string(), ColumnType::Bool),
    ]
}

fn hex(hash: u128) -> String {
    format!("{hash:032x}")
}

#[async_trait::async_trait]
impl WarehouseTables for PgWarehouse {
    fn describe(&self) -> String {
        format!("postgres {} schema {}", self.source.location(), self.schema)
    }

    async fn check_access(&self) -> Result<(), WarehouseError> {
        let mut conn = self.connect().await?;
        let (schema, tables) = self.existing(&mut conn).await?;
        for (what, check) in bookkeeping::privileges(&self.schema, schema, tables) {
            let query = format!("SELECT {check}");
            let granted: bool = sqlx::query_scalar(&query)
                .bind(&self.schema)
                .fetch_one(&mut conn)
                .await
                .map_err(|e| self.err(e))?;
            if !granted {
                return Err(WarehouseError::Privilege {
                    place: self.describe(),
                    missing: format!("the state needs {what}, which this user lacks"),
                });
            }
        }
        let _ = conn.close().await;
        Ok(())
    }

    async fn open(&self, sync: &str, fence: Option<i64>) -> Result<Opened, WarehouseError> {
        let mut conn = self.connect().await?;
        if self.existing(&mut conn).await? != (true, true) {
            for statement in bookkeeping::create_state(&self.schema) {
                sqlx::query(&statement).execute(&mut conn).await.map_err(|e| self.err(e))?;
            }
        }
        if let Some(fence) = fence {
            self.record_fence(&mut conn, sync, fence).await?;
        }
        let opened = self.coverage(&mut conn, sync).await?;
        let _ = conn.close().await;
        Ok(opened)
    }

    async fn duplicate_keys(&self, key: &RowKey) -> Result<Vec<String>, WarehouseError> {
        let mut conn = self.connect().await?;
        if self.unique_key(&mut conn, key).await? {
            return Ok(Vec::new());
        }
        let (mut txn, base) = self.reading(&mut conn).await?;
        let (text, params) = sql::duplicate_keys(&base, key);
        let mut statement = sqlx::query_scalar(&text);
        for text in &params.texts {
            statement = statement.bind(text);
        }
        let keys = statement.fetch_all(&mut *txn).await.map_err(|e| self.err(e))?;
        let _ = txn.rollback().await;
        Ok(keys)
    }

    fn changed(&self, query: Arc<DiffQuery>) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        let (schema, mut columns) = (self.schema.clone(), query.columns.clone());
        // The cursor comes back for the watermark; the row hash covers only the mapped columns.
        if let Some(cursor) = query.cursor.as_ref().filter(|(name, _)| !columns.iter().any(|(n, _)| n == name)) {
            columns.push(cursor.clone());
        }
        let write = move |base: &str, select: &[String]| {
            let select: Vec<String> = select.iter().map(|column| format!("ebb_src.{column}")).collect();
            let (text, params) = sql::changed_rows(&schema, base, &query, &select);
            let mut binds = vec![
                Bind::Text(query.sync.clone()),
                Bind::Bool(query.everything),
                Bind::Texts(query.also.clone()),
                Bind::Text(query.salt.clone()),
            ];
            binds.extend(params.texts.into_iter().map(Bind::Text));
            (text, binds)
        };
        self.source.stream_around(Around {
            leading: leading_columns(),
            columns,
            write: Box::new(write),
        })
    }

    async fn gone(&self, sync: &str, key: &RowKey) -> Result<Vec<Gone>, WarehouseError> {
        let mut conn = self.connect().await?;
        let (mut txn, base) = self.reading(&mut conn).await?;
        let (text, params) = sql::gone(&self.schema, &base, key);
        let mut statement = sqlx::query_as(&text).bind(sync);
        for text in &params.texts {
            statement = statement.bind(text);
        }
        let rows: Vec<(String, String)> = statement.fetch_all(&mut *txn).await.map_err(|e| self.err(e))?;
        let _ = txn.rollback().await;
        Ok(rows.into_iter().map(|(key, sent_as)| Gone { key, sent_as }).collect())
    }

    async fn commit(&self, sync: &str, commit: &WarehouseCommit<'_>) -> Result<(), WarehouseError> {
        let mut committer = self.committer.lock().await;
        let mut conn = match committer.take() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        // A connection that failed is dropped rather than reused.
        self.commit_on(&mut conn, sync, commit).await?;
        *committer = Some(conn);
        Ok(())
    }

    async fn reset(&self, sync: &str) -> Result<u64, WarehouseError> {
        let mut conn = self.connect().await?;
        if self.existing(&mut conn).await? != (true, true) {
            return Ok(0);
        }
        let mut txn = self.writing(&mut conn).await?;
        let forgotten = sqlx::query(&bookkeeping::forget_records(&self.schema))
            .bind(sync)
            .execute(&mut *txn)
            .await
            .map_err(|e| self.err(e))?
            .rows_affected();
        sqlx::query(&bookkeeping::forget_coverage(&self.schema))
            .bind(sync)
            .execute(&mut *txn)
            .await
            .map_err(|e| self.err(e))?;
        txn.commit().await.map_err(|e| self.err(e))?;
        Ok(forgotten)
    }
}
