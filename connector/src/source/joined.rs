//! A source joined to another (a left join): each row of the base gets the columns of the
//! lookup row whose key equals the row's join column, named with the join's prefix, as in
//! `company.name`. The lookup is read into memory once per run (it is the small side: the
//! accounts of the users) and matched by key as text, so an integer `42` and a string `"42"`
//! match. A key that two lookup rows share is ambiguous: the rows that point at it get no
//! lookup columns and carry a problem that rejects them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch, UInt32Builder};
use arrow::datatypes::{DataType, Field, Schema};
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::Mutex;

use super::{BoxError, ColumnType, Source, SourceBatch, SourceError, SourceSchema};
use crate::config::JoinKeys;
use crate::quote::{quote, shorten, MAX_QUOTED_CHARS};

type Columns = Vec<(String, ColumnType)>;

/// The lookup read for a run, with the columns it was read for.
type Cached = Mutex<Option<(Columns, Arc<Lookup>)>>;

pub struct JoinedSource {
    base: Box<dyn Source>,
    lookup: Arc<dyn Source>,
    join: Arc<JoinKeys>,
    /// The lookup as read for a run's columns; the passes of one run share it.
    table: Arc<Cached>,
}

/// The lookup source in memory: its columns (named with the prefix) and its rows by key.
struct Lookup {
    columns: Vec<(String, ArrayRef)>,
    rows: HashMap<String, Slot>,
    /// The lookup source, as messages name it.
    describe: String,
}

enum Slot {
    One(u32),
    /// The key's row count, when it is more than one.
    Many(usize),
}

impl JoinedSource {
    pub fn new(base: Box<dyn Source>, lookup: Box<dyn Source>, join: JoinKeys) -> JoinedSource {
        JoinedSource {
            base,
            lookup: Arc::from(lookup),
            join: Arc::new(join),
            table: Arc::default(),
        }
    }
}

#[async_trait::async_trait]
impl Source for JoinedSource {
    /// The rows' folders; the lookup's are not the snapshot's.
    fn folders(&self) -> Option<super::SnapshotFolders> {
        self.base.folders()
    }

    fn describe(&self) -> String {
        format!("{} joined with {}", self.base.describe(), self.lookup.describe())
    }

    async fn schema(&self) -> Result<SourceSchema, SourceError> {
        let prefix = &self.join.prefix;
        let mut schema = self.base.schema().await?;
        // A base column named like a lookup one could never be read; the lookup's wins.
        schema.columns.retain(|(name, _)| !name.starts_with(prefix.as_str()));
        let lookup = self.lookup.schema().await?;
        let named = |(name, detail): (String, String)| (format!("{prefix}{name}"), detail);
        schema
            .columns
            .extend(lookup.columns.into_iter().map(|(name, t)| (format!("{prefix}{name}"), t)));
        schema.unsupported.extend(lookup.unsupported.into_iter().map(named));
        schema.conflicts.extend(lookup.conflicts.into_iter().map(named));
        Ok(schema)
    }

    fn stream(&self, expected: Arc<Vec<(String, ColumnType)>>) -> BoxStream<'static, Result<SourceBatch, SourceError>> {
        let prefix = self.join.prefix.as_str();
        let (lookup_cols, base_cols): (Columns, Columns) = expected.iter().cloned().partition(|(name, _)| name.starts_with(prefix));
        let lookup_cols: Columns = lookup_cols
            .into_iter()
            .map(|(name, t)| (name[prefix.len()..].to_string(), t))
            .collect();
        let base = self.base.stream(Arc::new(base_cols));
        let (source, join, table) = (self.lookup.clone(), self.join.clone(), self.table.clone());
        let joined = async move {
            match cached_lookup(&table, source.as_ref(), lookup_cols, &join).await {
                Ok(lookup) => base.map(move |batch| batch.and_then(|b| attach(b, &lookup, &join))).boxed(),
                Err(e) => stream::iter([Err(e)]).boxed(),
            }
        };
        stream::once(joined).flatten().boxed()
    }
}

/// The lookup for these columns, read on the first pass of a run and shared by the others.
async fn cached_lookup(table: &Cached, source: &dyn Source, columns: Columns, join: &JoinKeys) -> Result<Arc<Lookup>, SourceError> {
    let mut cached = table.lock().await;
    if let Some((cols, lookup)) = cached.as_ref() {
        if *cols == columns {
            return Ok(lookup.clone());
        }
    }
    let lookup = Arc::new(read_lookup(source, &columns, join).await?);
    *cached = Some((columns, lookup.clone()));
    Ok(lookup)
}

/// Reads the whole lookup source and indexes its rows by key.
async fn read_lookup(source: &dyn Source, columns: &Columns, join: &JoinKeys) -> Result<Lookup, SourceError> {
    let describe = source.describe();
    let mut stream = source.stream(Arc::new(columns.clone()));
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch?.batch);
    }
    let failed = |cause: arrow::error::ArrowError| SourceError::Read {
        path: describe.clone(),
        cause: Box::new(cause) as BoxError,
    };
    let mut arrays = Vec::with_capacity(columns.len());
    for (name, _) in columns {
        arrays.push((name.clone(), concat_column(&batches, name).map_err(failed)?));
    }
    let key = arrays
        .iter()
        .find(|(name, _)| *name == join.key)
        .map(|(_, a)| key_text(a))
        .transpose()
        .map_err(failed)?;
    let mut rows: HashMap<String, Slot> = HashMap::new();
    if let Some(keys) = key {
        let keys = keys.as_string::<i32>();
        for (i, key) in keys.iter().enumerate() {
            let Some(key) = key.filter(|k| !k.trim().is_empty()) else {
                continue;
            };
            rows.entry(key.to_string())
                .and_modify(|slot| {
                    *slot = match slot {
                        Slot::One(_) => Slot::Many(2),
                        Slot::Many(n) => Slot::Many(*n + 1),
                    }
                })
                .or_insert(Slot::One(i as u32));
        }
    }
    let columns = arrays.into_iter().map(|(name, a)| (format!("{}{name}", join.prefix), a)).collect();
    Ok(Lookup { columns, rows, describe })
}

/// One column of every batch, as one array of the first batch's type (the parts of a snapshot
/// may encode one logical type differently).
fn concat_column(batches: &[RecordBatch], name: &str) -> Result<ArrayRef, arrow::error::ArrowError> {
    let parts: Vec<&ArrayRef> = batches.iter().filter_map(|b| b.column_by_name(name)).collect();
    let Some(first) = parts.first() else {
        return Ok(new_null_array(&DataType::Null, 0));
    };
    let target = match first.data_type() {
        DataType::Dictionary(_, value) => value.as_ref().clone(),
        other => other.clone(),
    };
    let cast: Vec<ArrayRef> = parts.iter().map(|a| arrow::compute::cast(a, &target)).collect::<Result<_, _>>()?;
    let refs: Vec<&dyn Array> = cast.iter().map(|a| a.as_ref()).collect();
    arrow::compute::concat(&refs)
}

/// A key column as text, so that keys of different types match.
fn key_text(array: &ArrayRef) -> Result<ArrayRef, arrow::error::ArrowError> {
    arrow::compute::cast(array, &DataType::Utf8)
}

/// The batch with the lookup's columns added, matched row by row.
fn attach(sb: SourceBatch, lookup: &Lookup, join: &JoinKeys) -> Result<SourceBatch, SourceError> {
    let failed = |cause: arrow::error::ArrowError| SourceError::Read {
        path: sb.origin.to_string(),
        cause: Box::new(cause) as BoxError,
    };
    let rows = sb.batch.num_rows();
    let keys = match sb.batch.column_by_name(&join.column) {
        Some(column) => key_text(column).map_err(failed)?,
        None => new_null_array(&DataType::Utf8, rows),
    };
    let keys = keys.as_string::<i32>();
    let mut indices = UInt32Builder::with_capacity(rows);
    let mut problems: Option<Vec<Option<String>>> = None;
    for row in 0..rows {
        let slot = keys.is_valid(row).then(|| lookup.rows.get(keys.value(row))).flatten();
        match slot {
            Some(Slot::One(i)) => indices.append_value(*i),
            Some(Slot::Many(n)) => {
                indices.append_null();
                let noun = join.prefix.trim_end_matches('.');
                let problem = format!(
                    "ambiguous {noun}: {} {} is the key of {n} rows of {}",
                    quote(&join.key),
                    quote(keys.value(row)),
                    shorten(&lookup.describe, MAX_QUOTED_CHARS)
                );
                problems.get_or_insert_with(|| vec![None; rows])[row] = Some(problem);
            }
            None => indices.append_null(),
        }
    }
    let indices = indices.finish();
    let mut fields: Vec<Field> = sb.batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = sb.batch.columns().to_vec();
    for (name, array) in &lookup.columns {
        let taken = if array.data_type() == &DataType::Null {
            new_null_array(&DataType::Null, rows)
        } else {
            arrow::compute::take(array.as_ref(), &indices, None).map_err(failed)?
        };
        fields.push(Field::new(name, taken.data_type().clone(), true));
        columns.push(taken);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(failed)?;
    Ok(SourceBatch {
        batch,
        origin: sb.origin,
        first_row: sb.first_row,
        problems,
    })
}
