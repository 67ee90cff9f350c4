//! Which files make a snapshot: every file the pattern matches, or, with `latest:` and
//! `require_marker:`, those of one folder (or of the folders that are complete).
//!
//! Warehouses export one folder per run (`dt=2026-11-30/`) and write a marker (`_SUCCESS`) when
//! it is complete. The folder is the path segment that holds the pattern's first wildcard. The
//! choice is made here, the same way for local paths and object stores, over a [`Listing`].

use std::path::PathBuf;

use glob::{MatchOptions, Pattern};

use crate::config::source::FolderRule;
use crate::folders::folder_wildcard;
use crate::source::store::Object;
use crate::source::{SnapshotFolders, SourceError};

/// `*` and `?` stop at `/`, as in a shell and as the local glob does; `**` crosses folders.
pub(super) const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// What a folder's files must match when the pattern ends at the folder (`users/dt=*/`).
const ANY_PARQUET: &str = "**/*.parquet";

/// A file of a snapshot, as the folder rule sees it: its `/`-separated path or key.
pub(super) trait Named {
    fn path(&self) -> &str;
}

impl Named for PathBuf {
    fn path(&self) -> &str {
        // Paths that are not UTF-8 never match a pattern, which is UTF-8 text.
        self.to_str().unwrap_or_default()
    }
}

impl Named for Object {
    fn path(&self) -> &str {
        &self.key
    }
}

/// Where a snapshot's files are: a folder on disk or a bucket. Paths are `/`-separated text.
#[async_trait::async_trait]
pub(super) trait Listing: Sync {
    /// A file as this place knows it: a path on disk, an object with its size.
    type Part: Named + Send;

    /// The names of the folders right under `dir` (which ends with `/`, or is empty for a
    /// bucket's root).
    async fn subfolders(&self, dir: &str) -> Result<Vec<String>, SourceError>;
    /// Every file under `dir`, at any depth.
    async fn list(&self, dir: &str) -> Result<Vec<Self::Part>, SourceError>;
    /// Whether a file is at `path`.
    async fn exists(&self, path: &str) -> Result<bool, SourceError>;
    /// The files the whole pattern matches, with no folder rule (the pattern is a file, a
    /// folder or a glob).
    async fn plain(&self) -> Result<Vec<Self::Part>, SourceError>;
}

/// The files of the snapshot, and the folders chosen when a rule chose them.
pub(super) struct Resolved<P> {
    pub parts: Vec<P>,
    pub folders: Option<SnapshotFolders>,
}

fn glob(text: &str, pattern: &str) -> Result<Pattern, SourceError> {
    Pattern::new(text).map_err(|e| SourceError::BadGlob {
        pattern: pattern.to_string(),
        message: e.msg.to_string(),
    })
}

/// The snapshot's files under `rule`.
pub(super) async fn resolve<L: Listing>(listing: &L, pattern: &str, rule: &FolderRule) -> Result<Resolved<L::Part>, SourceError> {
    if rule.is_plain() {
        return Ok(Resolved {
            parts: listing.plain().await?,
            folders: None,
        });
    }
    let Some((base, folder, rest)) = folder_wildcard(pattern) else {
        return marked_place(listing, pattern, rule).await;
    };
    let folder_glob = glob(folder, pattern)?;
    let rest_glob = glob(if rest.is_empty() { ANY_PARQUET } else { rest }, pattern)?;
    let mut names: Vec<String> = listing
        .subfolders(base)
        .await?
        .into_iter()
        .filter(|name| folder_glob.matches_with(name, MATCH))
        .collect();
    names.sort();
    if rule.latest {
        names.reverse();
    }
    let mut chosen = SnapshotFolders::default();
    let mut parts = Vec::new();
    for name in names {
        let dir = format!("{base}{name}/");
        let listed = listing.list(&dir).await?;
        if let Some(marker) = &rule.marker {
            let marker_path = format!("{dir}{marker}");
            if !listed.iter().any(|p| p.path() == marker_path) {
                chosen.skipped.push(dir);
                continue;
            }
        }
        let matched: Vec<L::Part> = listed
            .into_iter()
            .filter(|p| {
                p.path()
                    .strip_prefix(dir.as_str())
                    .is_some_and(|rel| rest_glob.matches_with(rel, MATCH))
            })
            .collect();
        if matched.is_empty() && rule.latest {
            return Err(SourceError::EmptyFolder {
                folder: dir,
                rest: rest_glob.as_str().to_string(),
            });
        }
        parts.extend(matched);
        chosen.read.push(dir);
        if rule.latest {
            break;
        }
    }
    finish(pattern, rule, parts, chosen)
}

fn finish<P>(pattern: &str, rule: &FolderRule, parts: Vec<P>, chosen: SnapshotFolders) -> Result<Resolved<P>, SourceError> {
    if let (true, Some(marker)) = (chosen.read.is_empty(), &rule.marker) {
        if !chosen.skipped.is_empty() {
            return Err(SourceError::NoMarkedFolder {
                pattern: pattern.to_string(),
                marker: marker.clone(),
                without: chosen.skipped,
            });
        }
    }
    if parts.is_empty() {
        return Err(SourceError::NoFiles {
            pattern: pattern.to_string(),
        });
    }
    Ok(Resolved {
        parts,
        folders: Some(chosen),
    })
}

/// A marker with a pattern that has no wildcard in a folder: the one folder the files are in
/// must have it.
async fn marked_place<L: Listing>(listing: &L, pattern: &str, rule: &FolderRule) -> Result<Resolved<L::Part>, SourceError> {
    let parts = listing.plain().await?;
    let Some(marker) = &rule.marker else {
        // `latest` without a folder wildcard is refused when the mapping is checked.
        return Ok(Resolved { parts, folders: None });
    };
    let is_one_file = parts.len() == 1 && parts[0].path() == pattern;
    let dir = if pattern.contains(['*', '?', '[']) || is_one_file {
        pattern.rsplit_once('/').map(|(dir, _)| format!("{dir}/")).unwrap_or_default()
    } else {
        format!("{}/", pattern.trim_end_matches('/'))
    };
    if !listing.exists(&format!("{dir}{marker}")).await? {
        return Err(SourceError::NoMarkedFolder {
            pattern: pattern.to_string(),
            marker: marker.clone(),
            without: vec![dir],
        });
    }
    Ok(Resolved {
        parts,
        folders: Some(SnapshotFolders {
            read: vec![dir],
            skipped: Vec::new(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Keys of a bucket, as a listing sees them.
    struct Keys(BTreeSet<String>);

    impl Keys {
        fn of(keys: &[&str]) -> Keys {
            Keys(keys.iter().map(|k| k.to_string()).collect())
        }
    }

    fn part(key: &str) -> Object {
        Object {
            key: key.to_string(),
            size: 1,
        }
    }

    #[async_trait::async_trait]
    impl Listing for Keys {
        type Part = Object;

        async fn subfolders(&self, dir: &str) -> Result<Vec<String>, SourceError> {
            let names: BTreeSet<String> = self
                .0
                .iter()
                .filter_map(|k| k.strip_prefix(dir)?.split_once('/').map(|(name, _)| name.to_string()))
                .collect();
            Ok(names.into_iter().collect())
        }
        async fn list(&self, dir: &str) -> Result<Vec<Object>, SourceError> {
            Ok(self.0.iter().filter(|k| k.starts_with(dir)).map(|k| part(k)).collect())
        }
        async fn exists(&self, path: &str) -> Result<bool, SourceError> {
            Ok(self.0.contains(path))
        }
        async fn plain(&self) -> Result<Vec<Object>, SourceError> {
            Ok(self.0.iter().filter(|k| k.ends_with(".parquet")).map(|k| part(k)).collect())
        }
    }

    const DAYS: &[&str] = &[
        "users/dt=2026-11-29/part-0.parquet",
        "users/dt=2026-11-29/part-1.parquet",
        "users/dt=2026-11-29/_SUCCESS",
        "users/dt=2026-11-30/part-0.parquet",
        "users/dt=2026-11-30/_SUCCESS",
        "users/dt=2026-12-01/part-0.parquet",
        "users/other/part-0.parquet",
    ];

    fn keys(resolved: &Resolved<Object>) -> Vec<&str> {
        resolved.parts.iter().map(Named::path).collect()
    }

    fn rule(latest: bool, marker: Option<&str>) -> FolderRule {
        FolderRule {
            latest,
            marker: marker.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn latest_reads_the_greatest_folder_by_name() {
        let got = resolve(&Keys::of(DAYS), "users/dt=*/part-*.parquet", &rule(true, None))
            .await
            .expect("resolves");
        assert_eq!(keys(&got), ["users/dt=2026-12-01/part-0.parquet"]);
        assert_eq!(got.folders.expect("chosen").read, ["users/dt=2026-12-01/"]);
    }

    #[tokio::test]
    async fn a_marker_skips_the_newer_unfinished_folders() {
        let got = resolve(&Keys::of(DAYS), "users/dt=*/part-*.parquet", &rule(true, Some("_SUCCESS")))
            .await
            .expect("resolves");
        assert_eq!(keys(&got), ["users/dt=2026-11-30/part-0.parquet"]);
        let folders = got.folders.expect("chosen");
        assert_eq!(folders.read, ["users/dt=2026-11-30/"]);
        assert_eq!(folders.skipped, ["users/dt=2026-12-01/"]);
    }

    #[tokio::test]
    async fn without_latest_a_marker_keeps_every_finished_folder() {
        let got = resolve(&Keys::of(DAYS), "users/dt=*/", &rule(false, Some("_SUCCESS")))
            .await
            .expect("resolves");
        assert_eq!(
            keys(&got),
            [
                "users/dt=2026-11-29/part-0.parquet",
                "users/dt=2026-11-29/part-1.parquet",
                "users/dt=2026-11-30/part-0.parquet"
            ]
        );
        assert_eq!(got.folders.expect("chosen").skipped, ["users/dt=2026-12-01/"]);
    }

    #[tokio::test]
    async fn no_finished_folder_and_an_empty_newest_folder_are_errors() {
        let unfinished = Keys::of(&["users/dt=1/part-0.parquet", "users/dt=2/part-0.parquet"]);
        let err = resolve(&unfinished, "users/dt=*/part-*.parquet", &rule(true, Some("_SUCCESS")))
            .await
            .err()
            .expect("no folder has its marker");
        assert!(
            matches!(&err, SourceError::NoMarkedFolder { without, .. } if without.len() == 2),
            "{err}"
        );
        let empty = Keys::of(&["users/dt=1/part-0.parquet", "users/dt=2/notes.txt"]);
        let err = resolve(&empty, "users/dt=*/part-*.parquet", &rule(true, None))
            .await
            .err()
            .expect("empty");
        assert!(
            matches!(&err, SourceError::EmptyFolder { folder, .. } if folder == "users/dt=2/"),
            "{err}"
        );
        let none = resolve(&Keys::of(&[]), "users/dt=*/part-*.parquet", &rule(true, None))
            .await
            .err()
            .expect("none");
        assert!(matches!(none, SourceError::NoFiles { .. }));
    }

    #[tokio::test]
    async fn a_plain_folder_with_a_marker_needs_it_in_that_folder() {
        let keys = Keys::of(&["users/dt=1/part-0.parquet"]);
        let err = resolve(&keys, "users/dt=1/", &rule(false, Some("_SUCCESS")))
            .await
            .err()
            .expect("unmarked");
        assert!(
            matches!(&err, SourceError::NoMarkedFolder { without, .. } if without == &["users/dt=1/"]),
            "{err}"
        );
        let marked = Keys::of(&["users/dt=1/part-0.parquet", "users/dt=1/_SUCCESS"]);
        let got = resolve(&marked, "users/dt=1/part-*.parquet", &rule(false, Some("_SUCCESS")))
            .await
            .expect("marked");
        assert_eq!(got.folders.expect("chosen").read, ["users/dt=1/"]);
    }

    #[test]
    fn any_parquet_matches_at_any_depth_and_star_stays_in_its_folder() {
        let any = Pattern::new(ANY_PARQUET).expect("pattern");
        assert!(any.matches_with("part-0.parquet", MATCH));
        assert!(any.matches_with("region=eu/part-0.parquet", MATCH));
        assert!(!Pattern::new("*.parquet").expect("pattern").matches_with("a/b.parquet", MATCH));
    }
}
