//! `ebb suppress`, `ebb unsuppress`, `ebb suppressed` and `ebb delete`: a sync's suppression
//! list, and deletes at the destination that a person asks for.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::{load, open_store, print_json};
use crate::config::env::Env;
use crate::destination::DestinationError;
use crate::error::Error;
use crate::mapping::normalise_identity;
use crate::quote::quote;
use crate::record::Change;
use crate::ship::pacing::Pacers;
use crate::ship::Delivery;
use crate::state::{Commit, SuppressReason};
use crate::sync::SyncJob;

/// The identities as the mapping's destination keys them (an email lower-cased), or what is wrong.
pub(super) fn identities(sync: &SyncJob, given: &[String]) -> Result<Vec<String>, Error> {
    let kind = sync.destination.capabilities().identity;
    given
        .iter()
        .map(|id| normalise_identity(kind, id).map_err(|why| Error::Usage(format!("{}: {why}", quote(id)))))
        .collect()
}

pub(super) async fn suppress(state_url: &str, path: &Path, ids: &[String], env: &dyn Env) -> Result<ExitCode, Error> {
    let sync = SyncJob::from_mapping(load(path, env)?)?;
    let ids = identities(&sync, ids)?;
    let store = open_store(state_url, false).await?;
    let added = store.suppress(sync.name(), &ids, SuppressReason::Manual, None).await?;
    println!(
        "{}: suppressed {added} ({} already were); no run sends them until `ebb unsuppress`",
        sync.name(),
        ids.len() as u64 - added
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn unsuppress(state_url: &str, path: &Path, ids: &[String], env: &dyn Env) -> Result<ExitCode, Error> {
    let sync = SyncJob::from_mapping(load(path, env)?)?;
    let ids = identities(&sync, ids)?;
    let store = open_store(state_url, false).await?;
    let lifted = store.unsuppress(sync.name(), &ids).await?;
    println!(
        "{}: lifted {lifted} of {}; the next run sends those still in the source",
        sync.name(),
        ids.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn list(state_url: &str, path: &Path, json: bool, env: &dyn Env) -> Result<ExitCode, Error> {
    let mapping = load(path, env)?;
    let store = open_store(state_url, true).await?;
    let list = store.suppressions(&mapping.name).await?;
    if json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: {} suppressed", mapping.name, list.len());
    for s in &list {
        let when = chrono::DateTime::<chrono::Utc>::from_timestamp(s.at, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_default();
        let run = s.run.map(|r| format!(" by run {r}")).unwrap_or_default();
        println!("  {}  {}  {when}{run}", s.id, s.reason.as_str());
    }
    Ok(ExitCode::SUCCESS)
}

/// Deletes identities at the destination now; each one acknowledged leaves state and is
/// suppressed, so that no run sends it again.
pub(super) async fn delete(state_url: &str, path: &Path, ids: &[String], env: &dyn Env) -> Result<ExitCode, Error> {
    let sync = SyncJob::from_mapping(load(path, env)?)?;
    let capabilities = sync.destination.capabilities();
    if !capabilities.can_delete {
        return Err(DestinationError::Unsupported(sync.destination.describe(), "delete records").into());
    }
    let ids = identities(&sync, ids)?;
    let store = open_store(state_url, false).await?;
    let lock = store
        .try_lock(sync.name())
        .await?
        .ok_or_else(|| Error::AlreadyRunning(sync.name().to_string()))?;
    let config = sync.mapping.delivery();
    // The credential's pace, shared with the workers on a PostgreSQL store.
    let pacer = Pacers::default().get(
        sync.mapping.destination.rate_scope(),
        config.requests_per_minute,
        store.shared_pace(),
    );
    let delivery = Delivery::new(Arc::clone(&sync.destination), pacer, config.retry_budget);
    let changes: Vec<Change> = ids.iter().map(|id| Change::Delete { id: id.clone() }).collect();
    let (mut deleted, mut problems) = (Vec::new(), Vec::new());
    for batch in changes.chunks(capabilities.deletes_per_request.max(1)) {
        let outcome = delivery.deliver(batch).await;
        deleted.extend(outcome.acked.iter().map(|&i| batch[i].id().to_string()));
        problems.extend(outcome.rejected.into_iter().map(|(i, why)| (batch[i].id().to_string(), why)));
        if let Some(fatal) = outcome.fatal {
            problems.extend(outcome.failed.iter().map(|&i| (batch[i].id().to_string(), fatal.clone())));
        }
    }
    let destination = sync.mapping.destination.fingerprint();
    let commit = Commit {
        upserted: &[],
        deleted: &deleted,
        destination: &destination,
        replace: false,
        suppress_deleted: Some((SuppressReason::Delete, None)),
        sent: None,
    };
    if !deleted.is_empty() {
        store.commit(&lock, &commit).await?;
    }
    lock.release().await;
    for id in &deleted {
        println!("{id}: deleted, and suppressed");
    }
    for (id, why) in &problems {
        println!("{id}: not deleted: {why}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
