//! Which identities a run must not send: the sync's suppression list in state, and the
//! mapping's suppression source (one column of identities, read at the start of every run).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::DataType;
use futures::StreamExt;

use super::SyncJob;
use crate::config::{ConfigErrors, SourceConfig};
use crate::error::Error;
use crate::hash::id_key;
use crate::mapping::normalise_identity;
use crate::quote::quote;
use crate::source::{self, BoxError, ColumnType, Source, SourceError};
use crate::state::StateStore;

/// The identities a run holds back, by key, and those of the suppression source that the list
/// does not hold yet (a run adds them; a preview does not).
#[derive(Default)]
pub(super) struct Suppressed {
    pub keys: HashSet<u128>,
    pub from_source: Vec<String>,
}

pub(super) async fn suppressed(sync: &SyncJob, store: &dyn StateStore) -> Result<Suppressed, Error> {
    let mut held = Suppressed {
        keys: store.suppressions(sync.name()).await?.iter().map(|s| id_key(&s.id)).collect(),
        from_source: Vec::new(),
    };
    if let Some(config) = &sync.mapping.suppress {
        for id in read_list(sync, config).await? {
            if held.keys.insert(id_key(&id)) {
                held.from_source.push(id);
            }
        }
    }
    Ok(held)
}

/// The suppression source's one column, checked against its schema; reads no rows.
pub(super) async fn list_column(sync: &SyncJob, source: &dyn Source, config: &SourceConfig) -> Result<(String, ColumnType), Error> {
    let schema = source.schema().await?;
    match schema.columns.as_slice() {
        [(name, t @ (ColumnType::String | ColumnType::Int | ColumnType::UInt))] => Ok((name.clone(), t.clone())),
        [(name, t)] => Err(list_issue(
            sync,
            config,
            format!("its column {} is {t}; identities are text or integers", quote(name)),
        )),
        columns => Err(list_issue(
            sync,
            config,
            format!(
                "it has {} readable columns; it must have one, of identities (select just that column)",
                columns.len()
            ),
        )),
    }
}

fn list_issue(sync: &SyncJob, config: &SourceConfig, message: String) -> Error {
    let message = format!(
        "the suppression source {}: {message}",
        source::build(config).map(|s| s.describe()).unwrap_or_default()
    );
    Error::Config(ConfigErrors(vec![sync.mapping.issue(config.loc(), message, None)]))
}

/// Every identity the suppression source lists, normalised like the mapping's; one that is
/// not an identity is skipped with a warning.
async fn read_list(sync: &SyncJob, config: &SourceConfig) -> Result<Vec<String>, Error> {
    let source = source::build(config)?;
    let column = list_column(sync, source.as_ref(), config).await?;
    let kind = sync.destination.capabilities().identity;
    let mut stream = source.stream(Arc::new(vec![column.clone()]));
    let mut ids = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let Some(array) = batch.batch.column_by_name(&column.0) else {
            continue;
        };
        let text = arrow::compute::cast(array, &DataType::Utf8).map_err(|e| SourceError::Read {
            path: batch.origin.to_string(),
            cause: Box::new(e) as BoxError,
        })?;
        for value in text.as_string::<i32>().iter().flatten() {
            match normalise_identity(kind, value) {
                Ok(id) => ids.push(id),
                Err(why) => tracing::warn!(sync = %sync.name(), %why, "a suppression source row is not an identity; skipped"),
            }
        }
    }
    Ok(ids)
}
