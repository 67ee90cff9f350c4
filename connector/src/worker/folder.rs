//! The mappings folder: its files, a fingerprint to notice edits by, and checking them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{InvalidMapping, Shared};
use crate::config::env::ProcessEnv;
use crate::selection::{self, Selection};
use crate::spec::Mapping;
use crate::sync::{self};

/// Mapping files directly in the folder, sorted, so reloads see them in a stable order. A folder
/// that cannot be listed now (being replaced by a deploy) has none until the next reload.
fn mapping_files(dir: &Path) -> Vec<PathBuf> {
    selection::folder_files(dir).unwrap_or_default()
}

/// Names, sizes and modification times of the mapping files: what polling compares. Every
/// file counts, selected or not: an edit may add or remove the tag a worker selects by.
pub(super) fn folder_fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    mapping_files(dir)
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
            let modified = meta.and_then(|m| m.modified().ok());
            (p, len, modified)
        })
        .collect()
}

/// The valid mappings of a folder by sync name, with their files and text.
pub(super) type ValidMappings = BTreeMap<String, (PathBuf, Mapping, String)>;

/// Checks every mapping file of the folder as `ebb validate` does; a name used twice makes the
/// later file invalid. A source that cannot be reached is not the mapping's fault: the sync is
/// kept, and its runs fail until the source is back.
pub(super) async fn scan(dir: &Path, selection: &Selection) -> (ValidMappings, Vec<InvalidMapping>) {
    let mut valid: ValidMappings = BTreeMap::new();
    let mut invalid = Vec::new();
    let files = selection.picked(mapping_files(dir));
    for (file, checked) in sync::check::check_files(&files, &ProcessEnv).await {
        match checked {
            Ok(c) => {
                if let Some(e) = &c.source_unchecked {
                    tracing::warn!(sync = %c.mapping.name, error = %e, "cannot check the mapping against its source now; will retry at each run");
                }
                valid.insert(c.mapping.name.clone(), (file, c.mapping, c.text));
            }
            Err(issues) => invalid.push(InvalidMapping {
                file,
                errors: issues.iter().map(ToString::to_string).collect(),
            }),
        }
    }
    for bad in &invalid {
        for e in &bad.errors {
            tracing::error!(file = %bad.file.display(), "mapping skipped: {e}");
        }
    }
    (valid, invalid)
}

pub(super) fn spawn_polling(shared: Arc<Shared>, every: Duration, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut seen = folder_fingerprint(&shared.dir);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let now = folder_fingerprint(&shared.dir);
            if now != seen {
                tracing::info!("mappings folder changed; reloading");
                seen = now;
                shared.reload().await;
            }
        }
    });
}
