//! `ebb preview --explain`: for each record a run would send or delete, what changed since the
//! payload the destination last acknowledged, field by field.

use serde::Serialize;

use super::SyncJob;
use crate::error::Error;
use crate::payload::{self, FieldChange};
use crate::record::Record;
use crate::state::{StateStore, TrackedRecord};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Not in state: never acknowledged, so every field is new.
    New,
    /// In state with another hash.
    Changed,
    /// Left the source; mirror deletes it.
    Delete,
}

/// One record of a preview, explained.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub identity: String,
    pub action: Action,
    /// The run that last sent it and when (Unix seconds), if state knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sent: Option<LastSent>,
    /// What changes, field by field. For a changed record acknowledged before payloads were
    /// kept, there is nothing to compare with: `compared` is false and every field is listed.
    pub changes: Vec<FieldChange>,
    pub compared: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LastSent {
    pub run: Option<i64>,
    pub at: i64,
}

/// Explains `upserts` (in the order a run sends them) and then `deletes`.
pub async fn explain(sync: &SyncJob, store: &dyn StateStore, upserts: &[&Record], deletes: &[String]) -> Result<Vec<Explanation>, Error> {
    let ids: Vec<String> = upserts.iter().map(|r| r.id.clone()).chain(deletes.iter().cloned()).collect();
    let tracked = store.tracked(sync.name(), &ids).await?;
    let find = |id: &str| tracked.iter().find(|t| t.id == id);
    let mut out = Vec::with_capacity(ids.len());
    for record in upserts {
        out.push(upsert(record, find(&record.id))?);
    }
    for id in deletes {
        let before = find(id).map(TrackedRecord::acknowledged).transpose()?.flatten();
        let nothing = Record {
            id: id.clone(),
            created_at: before.as_ref().map_or(0, |b| b.created_at),
            attributes: Vec::new(),
        };
        out.push(Explanation {
            identity: id.clone(),
            action: Action::Delete,
            last_sent: find(id).map(last_sent),
            compared: before.is_some(),
            changes: before.map(|b| payload::field_changes(&b, &nothing)).unwrap_or_default(),
        });
    }
    Ok(out)
}

fn upsert(record: &Record, tracked: Option<&TrackedRecord>) -> Result<Explanation, Error> {
    let before = tracked.map(TrackedRecord::acknowledged).transpose()?.flatten();
    let (action, compared) = match (tracked, &before) {
        (None, _) => (Action::New, true),
        (Some(_), Some(_)) => (Action::Changed, true),
        (Some(_), None) => (Action::Changed, false),
    };
    let changes = match &before {
        Some(before) => payload::field_changes(before, record),
        None => everything(record),
    };
    Ok(Explanation {
        identity: record.id.clone(),
        action,
        last_sent: tracked.map(last_sent),
        changes,
        compared,
    })
}

/// Every field of `record` as added; `createdAt` too when the destination takes one.
fn everything(record: &Record) -> Vec<FieldChange> {
    let empty = Record {
        id: record.id.clone(),
        created_at: record.created_at,
        attributes: Vec::new(),
    };
    let created = (record.created_at != 0).then(|| FieldChange::Added {
        field: "createdAt".into(),
        to: record.created_at.into(),
    });
    created.into_iter().chain(payload::field_changes(&empty, record)).collect()
}

fn last_sent(tracked: &TrackedRecord) -> LastSent {
    LastSent {
        run: tracked.runs.first().copied(),
        at: tracked.synced_at,
    }
}
