//! Statements written around a source's query by a caller that reads its rows joined with tables
//! of its own: a baseline kept in the same database (`diff: warehouse`). The rows are read as
//! [`super::PostgresSource::stream`] reads them (a `READ ONLY` transaction, the columns checked
//! for drift, the same batches), with the caller's own columns in front.

use futures::stream::BoxStream;

use super::decode::Wire;
use super::search_path;
use super::{select_list, PostgresSource};
use crate::source::feed::{self, Feed};
use crate::source::{ColumnType, Source, SourceBatch, SourceError};

/// A value bound to a statement's placeholder.
#[derive(Clone, Debug)]
pub enum Bind {
    Text(String),
    Bool(bool),
    Texts(Vec<String>),
}

/// Writes the statement from the source's own query (as it must be written under the pinned
/// search path) and the select list of the source's columns; returns it with its binds.
pub type WriteAround = Box<dyn FnOnce(&str, &[String]) -> (String, Vec<Bind>) + Send>;

/// A statement over the source's rows.
pub struct Around {
    /// The columns the statement puts before the source's own, each text, boolean or integer.
    pub leading: Vec<(String, ColumnType)>,
    /// The source's columns, checked and read as `stream` reads them.
    pub columns: Vec<(String, ColumnType)>,
    pub write: WriteAround,
}

impl PostgresSource {
    /// Streams the rows of the statement `around` writes: `leading`'s columns, then `columns`.
    pub fn stream_around(&self, around: Around) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        let source = self.clone();
        feed::spawn(self.describe(), move |feed| async move { source.read_around(around, &feed).await })
    }

    /// Pins the search path of a transaction on the source's database, as every statement
    /// written around the source's query runs with it, and returns that query as it must be
    /// written under it.
    pub async fn pin_search_path(&self, txn: &mut sqlx::PgConnection) -> Result<String, sqlx::Error> {
        search_path::pin(self, txn).await
    }

    async fn read_around(&self, around: Around, feed: &Feed) -> Result<(), SourceError> {
        let Around { leading, columns, write } = around;
        let mut conn = self.connect().await?;
        let mut wires: Vec<Wire> = leading.iter().map(|(_, t)| leading_wire(t)).collect();
        let source_wires = self.wires(&mut conn, &columns).await?;
        let select = select_list(&columns, &source_wires);
        wires.extend(source_wires);
        let mut expected = leading;
        expected.extend(columns);
        let mut txn = self.read_only(&mut conn).await?;
        let base = search_path::pin(self, &mut txn).await.map_err(|e| self.err(e))?;
        let (text, binds) = write(&base, &select);
        tracing::debug!(sql = %text, "a statement around the source's query");
        // The planner's cost of a hash expression over a big table turns JIT on, whose
        // compilation alone took 0.75 s of a 1M-row diff and won nothing back. Only this
        // transaction is affected.
        sqlx::query("SET LOCAL jit = off")
            .execute(&mut *txn)
            .await
            .map_err(|e| self.err(e))?;
        let mut statement = sqlx::query(&text);
        for bind in binds {
            statement = match bind {
                Bind::Text(text) => statement.bind(text),
                Bind::Bool(flag) => statement.bind(flag),
                Bind::Texts(texts) => statement.bind(texts),
            };
        }
        let rows = statement.fetch(&mut *txn);
        self.pump(rows, &expected, &wires, feed).await?;
        let _ = txn.rollback().await;
        Ok(())
    }
}

fn leading_wire(t: &ColumnType) -> Wire {
    match t {
        ColumnType::Bool => Wire::Bool,
        ColumnType::Int => Wire::Int,
        _ => Wire::Text,
    }
}
