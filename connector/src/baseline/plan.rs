//! Pass 1's result, whichever baseline made it, and what both baselines do alike with
//! duplicate ids.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use super::BaselineRun;
use crate::config::Identity;
use crate::cursor::CursorRun;
use crate::diff::Duplicate;
use crate::error::Error;
use crate::hash::id_key;
use crate::mapping::CompiledMapping;
use crate::quote::{quote, shorten, MAX_QUOTED_CHARS};
use crate::record::Record;
use crate::source::Source;
use crate::state::{RejectionStage, RunCounts, StoredRejection, MAX_STORED_REJECTIONS};

/// Pass 1's result: what to send, and the counts so far.
pub struct Plan {
    /// The mapped records of pass 1's candidates, in source order, when they fit the budget:
    /// pass 2 takes them instead of reading the source again.
    pub(super) kept: Mutex<Option<Vec<Record>>>,
    pub compiled: Arc<CompiledMapping>,
    pub counts: RunCounts,
    /// The first rejections, for storage and display; `counts.invalid` is exact.
    pub rejections: Vec<StoredRejection>,
    /// How many upserts pass 2 sends.
    pub(super) to_send: usize,
    /// Ids to delete at the destination, sorted, sent after the upserts: in mirror mode, the
    /// records ebb sent that left the source.
    pub(super) to_delete: Arc<Vec<String>>,
    /// Identities of the suppression source that the suppression list does not hold yet.
    pub suppress_from_source: Vec<String>,
    /// Records in the baseline for this destination before the run.
    pub in_state: usize,
    /// Every record is sent, whatever was sent before: the baseline was empty, set aside, or
    /// of another mapping or hash version.
    pub sends_everything: bool,
    /// The destination the stored state was for, when it was not this one: the run started
    /// from an empty baseline and sends everything.
    pub state_was_for: Option<String>,
    /// The baseline's side of the run: pass 2's records and the commits.
    pub baseline: Box<dyn BaselineRun>,
    /// With `source.cursor:`, which rows were read and the watermark the run will leave.
    pub cursor: Option<Arc<CursorRun>>,
}

impl Plan {
    /// The plan, once its counts are logged.
    pub(super) fn logged(self, sync: &str) -> Plan {
        let c = &self.counts;
        tracing::info!(
            sync = %sync,
            source = c.source,
            invalid = c.invalid,
            new = c.new,
            changed = c.changed,
            unchanged = c.unchanged,
            gone = c.gone,
            to_send = self.to_send,
            to_delete = self.to_delete.len(),
            diff = self.baseline.kind(),
            cursor = self.cursor.as_ref().map(|c| c.summary().scope),
            changed_without_cursor = self.cursor.as_ref().and_then(|c| c.changed_without_cursor()),
            "plan ready"
        );
        self
    }

    /// Upserts planned.
    pub fn to_send(&self) -> usize {
        self.to_send
    }

    /// Deletes planned.
    pub fn to_delete(&self) -> &[String] {
        &self.to_delete
    }

    /// The deletes, shared with pass 2 rather than copied.
    pub fn deletes(&self) -> Arc<Vec<String>> {
        Arc::clone(&self.to_delete)
    }

    /// Every change planned: upserts and deletes.
    pub fn changes(&self) -> usize {
        self.to_send + self.to_delete.len()
    }

    /// The records pass 1 kept, once: pass 2 takes them.
    pub fn take_kept(&self) -> Option<Vec<Record>> {
        crate::panic::lock(&self.kept).take()
    }
}

/// Counts every row of a duplicate id as invalid and records why, by the id's text.
pub(super) async fn reject_duplicates(
    (source, compiled, identity): (&dyn Source, &CompiledMapping, Identity),
    duplicates: &[Duplicate],
    rejected_ids: &[(u128, String)],
    counts: &mut RunCounts,
    rejections: &mut Vec<StoredRejection>,
) -> Result<(), Error> {
    if duplicates.is_empty() {
        return Ok(());
    }
    let mut texts: HashMap<u128, String> = duplicates
        .iter()
        .filter_map(|d| {
            let i = rejected_ids.binary_search_by_key(&d.key, |(k, _)| *k).ok()?;
            Some((d.key, rejected_ids[i].1.clone()))
        })
        .collect();
    let missing: HashSet<u128> = duplicates.iter().map(|d| d.key).filter(|k| !texts.contains_key(k)).collect();
    if !missing.is_empty() {
        texts.extend(ids_of(source, compiled, &missing).await?);
    }
    // What the destination keys records on, as people call it: an id, or an email.
    let label = match identity {
        Identity::Id => "id",
        Identity::Email => "email",
    };
    for d in duplicates {
        counts.invalid += u64::from(d.valid);
        if rejections.len() >= MAX_STORED_REJECTIONS {
            continue;
        }
        // The text can only be missing if the source changed between reads.
        let id = texts.get(&d.key).cloned().unwrap_or_else(|| format!("{:032x}", d.key));
        rejections.push(StoredRejection {
            stage: RejectionStage::Mapping,
            record_id: Some(id.clone()),
            position: format!("{label} {}", shorten(&id, MAX_QUOTED_CHARS)),
            reason: format!(
                "{label} {} occurs {} times in the snapshot; every occurrence is rejected",
                quote(&id),
                d.occurrences
            ),
        });
    }
    Ok(())
}

/// The ids of `keys`, found by reading the source's id column again. Only runs when a
/// snapshot has duplicate ids, which pass 1 knows by key but not by text.
async fn ids_of(source: &dyn Source, compiled: &CompiledMapping, keys: &HashSet<u128>) -> Result<HashMap<u128, String>, Error> {
    let mut found = HashMap::new();
    let mut stream = source.stream(Arc::new(compiled.columns().to_vec()));
    while let Some(batch) = stream.next().await {
        compiled.ids_batch(&batch?, |id| {
            if let Some(id) = id {
                let key = id_key(id);
                if keys.contains(&key) && !found.contains_key(&key) {
                    found.insert(key, id.to_string());
                }
            }
        });
        if found.len() == keys.len() {
            break;
        }
    }
    Ok(found)
}
