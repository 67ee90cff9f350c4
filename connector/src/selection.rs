//! Which mappings a command works on, as dbt chooses models: files and folders on the command
//! line, narrowed by `--select` and `--exclude` (`tag:crm`, a sync name, a file name, or a
//! glob of either such as `crm-*`).
//!
//! Selection reads only a file's `name:` and `tags:`, leniently: a mapping that does not
//! validate can still be left out by its name or its tags, and one whose YAML cannot even be
//! read is kept, so that its error is shown rather than silently skipped.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::quote::quote;

/// Why a selection cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("--{flag} {}: {reason}", quote(.value))]
    BadSelector { flag: &'static str, value: String, reason: String },
    #[error("cannot list the mappings of {}: {source}", .folder.display())]
    Folder {
        folder: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("nothing selected: no mapping of {searched} matches {criteria}")]
    NothingSelected { searched: String, criteria: String },
    /// A folder named on the command line holds no `*.yml` or `*.yaml` file: a command that did
    /// nothing must not pass for one that checked or ran everything.
    #[error("no mappings in {}", .folder.display())]
    NoMappings { folder: PathBuf },
}

/// One `--select` or `--exclude` value.
#[derive(Clone, Debug)]
enum Selector {
    /// `tag:NAME`: mappings whose `tags:` hold it.
    Tag(String),
    /// A sync name or a file name (with or without `.yml`), or a glob of them.
    Name(glob::Pattern),
}

impl Selector {
    fn parse(flag: &'static str, value: &str) -> Result<Self, SelectionError> {
        let bad = |reason: &str| SelectionError::BadSelector {
            flag,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if let Some(tag) = value.strip_prefix("tag:") {
            if tag.is_empty() {
                return Err(bad("a tag name follows `tag:`"));
            }
            return Ok(Selector::Tag(tag.to_string()));
        }
        if value.is_empty() {
            return Err(bad("give a sync name, a file name, or tag:NAME"));
        }
        if let Some((method, _)) = value.split_once(':') {
            return Err(bad(&format!("`{method}:` is not a selector; use tag:NAME, or a sync or file name")));
        }
        glob::Pattern::new(value)
            .map(Selector::Name)
            .map_err(|e| bad(&format!("not a valid pattern: {}", e.msg)))
    }

    fn matches(&self, file: &Path, head: &Head) -> bool {
        match self {
            Selector::Tag(tag) => head.tags.iter().any(|t| t == tag),
            Selector::Name(pattern) => {
                let by_name = head.name.as_deref().is_some_and(|n| pattern.matches(n));
                let by_file = [file.file_stem(), file.file_name()]
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.to_str())
                    .any(|s| pattern.matches(s));
                by_name || by_file
            }
        }
    }
}

/// The `--select` and `--exclude` of one command.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    select: Vec<Selector>,
    exclude: Vec<Selector>,
    /// As written, for messages.
    criteria: Vec<String>,
}

/// What selection reads of a mapping: its name and tags, and nothing else.
#[derive(Debug, Default, Deserialize)]
struct Head {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

impl Selection {
    pub fn new(select: &[String], exclude: &[String]) -> Result<Self, SelectionError> {
        let parse_all = |flag, values: &[String]| values.iter().map(|v| Selector::parse(flag, v)).collect::<Result<Vec<_>, _>>();
        let criteria = select
            .iter()
            .map(|s| format!("--select {s}"))
            .chain(exclude.iter().map(|e| format!("--exclude {e}")))
            .collect();
        Ok(Selection {
            select: parse_all("select", select)?,
            exclude: parse_all("exclude", exclude)?,
            criteria,
        })
    }

    /// No `--select` and no `--exclude`: every mapping given.
    pub fn is_everything(&self) -> bool {
        self.select.is_empty() && self.exclude.is_empty()
    }

    /// Whether the mapping in `file`, whose text is `text`, is selected. Text that is not
    /// readable YAML is selected, so that the command reports it.
    pub fn picks(&self, file: &Path, text: &str) -> bool {
        if self.is_everything() {
            return true;
        }
        let Ok(head) = serde_saphyr::from_str::<Head>(text) else {
            return true;
        };
        let selected = self.select.is_empty() || self.select.iter().any(|s| s.matches(file, &head));
        selected && !self.exclude.iter().any(|s| s.matches(file, &head))
    }

    /// Those of `files` this selection picks; a file that cannot be read is kept, for the
    /// command to report.
    pub fn picked(&self, files: Vec<PathBuf>) -> Vec<PathBuf> {
        files
            .into_iter()
            .filter(|file| std::fs::read_to_string(file).map_or(true, |text| self.picks(file, &text)))
            .collect()
    }

    /// The mapping files that `paths` name (a folder stands for its `*.yml` and `*.yaml` files,
    /// sorted) which this selection picks. A file that cannot be read is kept, for the command
    /// to report. Selecting nothing out of something is an error: a scheduled `ebb sync
    /// --select tag:crn` must fail, not succeed doing nothing.
    pub fn files(&self, paths: &[PathBuf]) -> Result<Vec<PathBuf>, SelectionError> {
        let mut all = Vec::new();
        for path in paths {
            if path.is_dir() {
                let found = folder_files(path)?;
                if found.is_empty() {
                    return Err(SelectionError::NoMappings { folder: path.clone() });
                }
                all.extend(found);
            } else if !all.contains(path) {
                all.push(path.clone());
            }
        }
        let picked = self.picked(all);
        if picked.is_empty() && !self.is_everything() {
            let searched = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
            return Err(SelectionError::NothingSelected {
                searched,
                criteria: self.criteria.join(" "),
            });
        }
        Ok(picked)
    }
}

/// The mapping files directly in `folder`, sorted so that runs and reloads see a stable order.
pub fn folder_files(folder: &Path) -> Result<Vec<PathBuf>, SelectionError> {
    let entries = std::fs::read_dir(folder).map_err(|source| SelectionError::Folder {
        folder: folder.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(select: &[&str], exclude: &[&str]) -> Selection {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Selection::new(&owned(select), &owned(exclude)).expect("valid selectors")
    }

    const CRM: &str = "name: crm-users\ntags: [crm, hourly]\nsource: { parquet: x }\n";
    const BILLING: &str = "name: billing\ntags: [daily]\n";

    #[test]
    fn tags_names_files_and_globs_select_and_exclude_wins() {
        let crm = Path::new("m/users.yml");
        let billing = Path::new("m/billing.yml");
        let by_tag = selection(&["tag:crm"], &[]);
        assert!(by_tag.picks(crm, CRM) && !by_tag.picks(billing, BILLING));
        let by_name = selection(&["billing"], &[]);
        assert!(!by_name.picks(crm, CRM) && by_name.picks(billing, BILLING));
        assert!(selection(&["users"], &[]).picks(crm, CRM), "the file's stem selects too");
        assert!(selection(&["users.yml"], &[]).picks(crm, CRM), "and its file name");
        assert!(selection(&["crm-*"], &[]).picks(crm, CRM), "a glob of names");
        let both = selection(&["tag:crm", "billing"], &[]);
        assert!(both.picks(crm, CRM) && both.picks(billing, BILLING), "selectors add up");
        let excluded = selection(&["tag:hourly"], &["crm-users"]);
        assert!(!excluded.picks(crm, CRM), "exclude wins over select");
        assert!(selection(&[], &["tag:daily"]).picks(crm, CRM), "exclude alone keeps the rest");
    }

    #[test]
    fn a_file_that_is_not_yaml_is_kept_so_its_error_is_seen() {
        assert!(selection(&["tag:crm"], &[]).picks(Path::new("bad.yml"), "name: [unclosed\n"));
    }

    #[test]
    fn a_bad_selector_says_what_is_wrong() {
        let err = Selection::new(&["path:mappings".into()], &[]).expect_err("unknown method");
        assert_eq!(
            err.to_string(),
            "--select `path:mappings`: `path:` is not a selector; use tag:NAME, or a sync or file name"
        );
        let err = Selection::new(&[], &["tag:".into()]).expect_err("empty tag");
        assert!(err.to_string().contains("a tag name follows `tag:`"), "{err}");
    }
}
