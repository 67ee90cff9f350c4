//! The folders of a Parquet snapshot that `latest:` or `require_marker:` chose, and where in a
//! pattern that folder is. A leaf, so that runs in `state`, reports in `sync` and the checks of
//! `config` can use them without importing `source`.

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

/// `(base, folder, rest)` of a pattern whose first wildcard is in a folder, not in the file
/// name: `users/`, `dt=*` and `part-*.parquet` of `users/dt=*/part-*.parquet`. `rest` is empty
/// when the pattern ends with the folder. `None` when no folder has a wildcard.
pub fn folder_wildcard(pattern: &str) -> Option<(&str, &str, &str)> {
    let mut offset = 0;
    let segments: Vec<&str> = pattern.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len() || (i + 2 == segments.len() && segments[i + 1].is_empty());
        if segment.contains(['*', '?', '[']) {
            if last && !pattern.ends_with('/') {
                return None;
            }
            let rest = pattern.get(offset + segment.len() + 1..).unwrap_or("");
            return Some((&pattern[..offset], segment, rest));
        }
        offset += segment.len() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_is_the_segment_of_the_first_wildcard() {
        assert_eq!(
            folder_wildcard("users/dt=*/part-*.parquet"),
            Some(("users/", "dt=*", "part-*.parquet"))
        );
        assert_eq!(folder_wildcard("/data/exports/*/"), Some(("/data/exports/", "*", "")));
        assert_eq!(folder_wildcard("a/*/b/*/c.parquet"), Some(("a/", "*", "b/*/c.parquet")));
        assert_eq!(folder_wildcard("users/part-*.parquet"), None);
        assert_eq!(folder_wildcard("users/dt=2026-11-30/"), None);
    }
}
