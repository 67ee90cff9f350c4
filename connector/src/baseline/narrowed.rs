//! A cursor's part in a baseline's plan: the run's scope, the rows pass 1 reads, and (for a
//! narrowed mirror run) every row's identity, so that records that left the source are found
//! without reading the rest of their rows.

use std::sync::Arc;

use futures::StreamExt;

use super::snapshot::SourceRows;
use super::Start;
use crate::cursor::{self, scope::Asked, Decision};
use crate::error::Error;
use crate::hash::id_key;
use crate::mapping::{CompiledMapping, KeyPart};
use crate::priority::PriorityColumn;
use crate::source::Source;
use crate::state::{IndexEntry, StoredCursor};

/// The run's cursor, once the mapping is checked and state is loaded. `state_usable`: the
/// baseline holds records for this destination, so rows it does not read can be taken as sent.
pub(super) fn decide(
    start: &Start,
    stored: Option<StoredCursor>,
    (asked, state_usable): (Asked, bool),
    destination: &str,
) -> Option<Decision> {
    let column = start.cursor.clone()?;
    let fingerprint = cursor::fingerprint(&start.compiled.fingerprint(), destination, &column);
    Some(cursor::decide(
        column,
        fingerprint,
        stored,
        (asked, state_usable),
        crate::state::now_secs(),
    ))
}

/// The rows pass 1 reads: with a cursor, the cursor column too, and on a cursor run only the
/// rows past the watermark (where the source can narrow; else every row); with a priority,
/// its column too.
pub(super) fn rows(
    source: &dyn Source,
    compiled: &CompiledMapping,
    decision: Option<&Decision>,
    priority: Option<&PriorityColumn>,
) -> SourceRows {
    let mut columns = match decision {
        Some(decision) => decision.read_columns(compiled.columns()),
        None => Arc::new(compiled.columns().to_vec()),
    };
    if let Some(p) = priority.filter(|p| !columns.iter().any(|(n, _)| *n == p.name)) {
        Arc::make_mut(&mut columns).push((p.name.clone(), p.ty.clone()));
    }
    let Some(decision) = decision else {
        return source.stream(columns);
    };
    match decision.since() {
        Some(since) => source
            .stream_since(Arc::clone(&columns), since)
            .unwrap_or_else(|| source.stream(columns)),
        None => source.stream(columns),
    }
}

/// Every row's identity key, sorted and without repeats (as index entries with no hash), and
/// how many rows there are: only the identity's columns are read.
pub(super) async fn every_identity(source: &dyn Source, compiled: &Arc<CompiledMapping>) -> Result<(Vec<IndexEntry>, u64), Error> {
    let key = compiled.row_key();
    let wanted: Vec<&str> = key
        .parts
        .iter()
        .filter_map(|p| match p {
            KeyPart::Column(name) => Some(name.as_str()),
            KeyPart::Text(_) => None,
        })
        .collect();
    let columns: Vec<_> = compiled
        .columns()
        .iter()
        .filter(|(n, _)| wanted.contains(&n.as_str()))
        .cloned()
        .collect();
    let mut stream = source.stream(Arc::new(columns));
    let (mut keys, mut rows) = (Vec::new(), 0u64);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.batch.num_rows() as u64;
        compiled.ids_batch(&batch, |id| keys.extend(id.map(|id| IndexEntry { key: id_key(id), hash: 0 })));
    }
    keys.sort_unstable_by_key(|e| e.key);
    keys.dedup_by_key(|e| e.key);
    Ok((keys, rows))
}
