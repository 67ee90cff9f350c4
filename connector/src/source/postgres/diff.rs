//! The warehouse-side diff of a PostgreSQL source: its SQL is [`crate::warehouse::postgres`];
//! this runs it. The diff query reads the source inside a `READ ONLY` transaction like every
//! other read; only the bookkeeping tables in the state schema are ever written.

use std::sync::Arc;

use super::{search_path, select_list, PostgresSource};
use crate::config::PostgresRelation;
use crate::source::feed::{self, Feed};
use crate::source::WarehouseDiff;
use crate::source::{SourceBatch, SourceError, WarehouseRow};
use crate::warehouse::postgres as sql;
use crate::warehouse::{Coverage, DiffQuery, Gone, KeyPart, Opened, RowKey, WarehouseCommit, WarehouseError};
use futures::stream::BoxStream;
use sqlx::postgres::PgRow;
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
        let schema: bool = sqlx::query_scalar(sql::schema_exists())
            .bind(&self.schema)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        if !schema {
            return Ok((false, false));
        }
        let tables: bool = sqlx::query_scalar(&sql::tables_exist(&self.schema))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.err(e))?;
        Ok((true, tables))
    }

    /// Whether the key is a column of the table that a unique index covers: then no row shares
    /// its key with another, and the scan for duplicates is not needed.
    async fn unique_key(&self, conn: &mut PgConnection, key: &RowKey) -> Result<bool, WarehouseError> {
        let (PostgresRelation::Table { schema, name }, [KeyPart::Column(column)], false) =
            (&self.source.relation, key.parts.as_slice(), key.lowercase)
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

    /// The diff query's rows, decoded into batches and sent to `tx`.
    async fn read_changed(&self, query: &DiffQuery, feed: &Feed) -> Result<(), SourceError> {
        let mut conn = self.source.connect().await?;
        let wires = self.source.wires(&mut conn, &query.columns).await?;
        let select: Vec<String> = select_list(&query.columns, &wires)
            .into_iter()
            .map(|column| format!("ebb_src.{column}"))
            .collect();
        let mut txn = self.source.read_only(&mut conn).await?;
        let base = search_path::pin(&self.source, &mut txn).await.map_err(|e| self.source.err(e))?;
        let (text, params) = sql::changed_rows(&self.schema, &base, query, &select);
        tracing::debug!(sql = %text, "the warehouse's diff query");
        // The planner's cost of the hash expression over a big table turns JIT on, whose
        // compilation alone took 0.75 s of a 1M-row diff and won nothing back. Only this
        // transaction is affected.
        sqlx::query("SET LOCAL jit = off")
            .execute(&mut *txn)
            .await
            .map_err(|e| self.source.err(e))?;
        let mut statement = sqlx::query(&text)
            .bind(&query.sync)
            .bind(query.everything)
            .bind(&query.also)
            .bind(&query.salt);
        for text in &params.texts {
            statement = statement.bind(text);
        }
        let rows = statement.fetch(&mut *txn);
        self.source.pump(rows, &query.columns, &wires, 3, feed).await?;
        let _ = txn.rollback().await;
        Ok(())
    }
}

impl PgWarehouse {
    async fn commit_on(&self, conn: &mut PgConnection, sync: &str, commit: &WarehouseCommit<'_>) -> Result<(), WarehouseError> {
        let mut txn = conn.begin().await.map_err(|e| self.err(e))?;
        sqlx::query(sql::SAFE_SEARCH_PATH)
            .execute(&mut *txn)
            .await
            .map_err(|e| self.err(e))?;
        if commit.replace {
            sqlx::query(&sql::forget_records(&self.schema))
                .bind(sync)
                .execute(&mut *txn)
                .await
                .map_err(|e| self.err(e))?;
        }
        let (keys, sent_as, hashes): (Vec<&str>, Vec<&str>, Vec<String>) =
            commit.upserts.iter().map(|(k, s, h)| (k.as_str(), s.as_str(), hex(*h))).collect();
        let coverage = commit.coverage;
        sqlx::query(&sql::commit(&self.schema))
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
            .execute(&mut *txn)
            .await
            .map_err(|e| self.err(e))?;
        txn.commit().await.map_err(|e| self.err(e))
    }
}

/// The key, hash and stored flag of each of the diff query's rows (its first three columns).
pub(super) fn warehouse_rows(rows: &[PgRow]) -> Result<Vec<WarehouseRow>, String> {
    rows.iter()
        .map(|row| {
            let key: Option<String> = row.try_get(0).map_err(|e| e.to_string())?;
            let hash: String = row.try_get(1).map_err(|e| e.to_string())?;
            let stored: bool = row.try_get(2).map_err(|e| e.to_string())?;
            let hash = u128::from_str_radix(&hash, 16).map_err(|_| format!("the row hash {hash:?} is not 32 hex digits"))?;
            Ok(WarehouseRow { key, hash, stored })
        })
        .collect()
}

fn hex(hash: u128) -> String {
    format!("{hash:032x}")
}

#[async_trait::async_trait]
impl WarehouseDiff for PgWarehouse {
    fn describe(&self) -> String {
        format!("postgres {} schema {}", self.source.location(), self.schema)
    }

    async fn check_access(&self) -> Result<(), WarehouseError> {
        let mut conn = self.connect().await?;
        let (schema, tables) = self.existing(&mut conn).await?;
        for (what, check) in sql::privileges(&self.schema, schema, tables) {
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

    async fn open(&self, sync: &str) -> Result<Opened, WarehouseError> {
        let mut conn = self.connect().await?;
        if self.existing(&mut conn).await? != (true, true) {
            for statement in sql::create_state(&self.schema) {
                sqlx::query(&statement).execute(&mut conn).await.map_err(|e| self.err(e))?;
            }
        }
        let row = sqlx::query(&sql::read_coverage(&self.schema))
            .bind(sync)
            .fetch_one(&mut conn)
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
        let _ = conn.close().await;
        Ok(Opened {
            coverage,
            records: u64::try_from(records).unwrap_or(0),
        })
    }

    async fn duplicate_keys(&self, key: &RowKey) -> Result<Vec<String>, WarehouseError> {
        let mut conn = self.connect().await?;
        if self.unique_key(&mut conn, key).await? {
            return Ok(Vec::new());
        }
        let mut txn = self.source.read_only(&mut conn).await.map_err(|e| self.err(e))?;
        let base = search_path::pin(&self.source, &mut txn).await.map_err(|e| self.err(e))?;
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
        let this = PgWarehouse::new(self.source.clone(), self.schema.clone());
        feed::spawn(crate::source::Source::describe(&self.source), move |feed| async move {
            this.read_changed(&query, &feed).await
        })
    }

    async fn gone(&self, sync: &str, key: &RowKey) -> Result<Vec<Gone>, WarehouseError> {
        let mut conn = self.connect().await?;
        let mut txn = self.source.read_only(&mut conn).await.map_err(|e| self.err(e))?;
        let base = search_path::pin(&self.source, &mut txn).await.map_err(|e| self.err(e))?;
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
        let mut txn = conn.begin().await.map_err(|e| self.err(e))?;
        sqlx::query(sql::SAFE_SEARCH_PATH)
            .execute(&mut *txn)
            .await
            .map_err(|e| self.err(e))?;
        let forgotten = sqlx::query(&sql::forget_records(&self.schema))
            .bind(sync)
            .execute(&mut *txn)
            .await
            .map_err(|e| self.err(e))?
            .rows_affected();
        sqlx::query(&sql::forget_coverage(&self.schema))
            .bind(sync)
            .execute(&mut *txn)
            .await
            .map_err(|e| self.err(e))?;
        txn.commit().await.map_err(|e| self.err(e))?;
        Ok(forgotten)
    }
}
