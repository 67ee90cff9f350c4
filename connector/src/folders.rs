//! The folders of a Parquet snapshot that `latest:` or `require_marker:` chose. A leaf, so that
//! runs in `state` and reports in `sync` can carry them without importing `source`.

/// The folders of a snapshot that `latest:` or `require_marker:` chose, as paths under the
/// bucket (`users/dt=2026-11-30/`) or on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotFolders {
    /// The folders read.
    pub read: Vec<String>,
    /// Folders passed over for lack of their marker: with `latest`, those newer than the one read.
    pub skipped: Vec<String>,
}

impl SnapshotFolders {
    /// `users/dt=2026-11-30/ (skipped users/dt=2026-12-01/: no marker yet)`, for summaries.
    pub fn summary(&self) -> String {
        let mut text = match self.read.as_slice() {
            [one] => one.clone(),
            many => format!(
                "{} folders, {} to {}",
                many.len(),
                many.first().map_or("", String::as_str),
                many.last().map_or("", String::as_str)
            ),
        };
        if !self.skipped.is_empty() {
            text.push_str(&format!(" (skipped, no marker yet: {})", self.skipped.join(", ")));
        }
        text
    }
}
