//! Checking mapping files the one way `ebb validate` and the worker's reload both need: load and
//! validate each, build its sync, compile it against the source's schema, and refuse a sync
//! name that an earlier file already uses.

use std::path::{Path, PathBuf};

use super::SyncJob;
use crate::config::env::Env;
use crate::config::{yaml, ConfigErrors, ConfigIssue};
use crate::error::Error;
use crate::quote::quote;
use crate::spec::{self, Mapping};

/// A mapping that validated and compiled, or could not be compiled only because its source
/// could not be read now.
pub struct Checked {
    pub mapping: Mapping,
    /// The file's text, so that a reload can tell an edit from a touch.
    pub text: String,
    /// Why the mapping could not be checked against its source (an unreachable database), if so.
    /// Not the mapping's fault: the caller decides whether it counts.
    pub source_unchecked: Option<Error>,
    /// What makes the mapping's cursor slow on this source, if anything.
    pub cursor_warning: Option<String>,
}

/// Each file in order, with its mapping or every problem found in it.
pub async fn check_files(paths: &[PathBuf], env: &dyn Env) -> Vec<(PathBuf, Result<Checked, Vec<ConfigIssue>>)> {
    let mut out: Vec<(PathBuf, Result<Checked, Vec<ConfigIssue>>)> = Vec::with_capacity(paths.len());
    for path in paths {
        let mut checked = check_file(path, env).await;
        if let Ok(c) = &checked {
            let earlier = out
                .iter()
                .find_map(|(file, r)| r.as_ref().ok().filter(|o| o.mapping.name == c.mapping.name).map(|_| file));
            if let Some(other) = earlier {
                checked = Err(vec![name_taken(path, &c.mapping.name, other)]);
            }
        }
        out.push((path.clone(), checked));
    }
    out
}

async fn check_file(path: &Path, env: &dyn Env) -> Result<Checked, Vec<ConfigIssue>> {
    let text = yaml::read(path, "mapping").map_err(|ConfigErrors(issues)| issues)?;
    let mapping = spec::parse(path, &text, env).map_err(|ConfigErrors(issues)| issues)?;
    let sync = match SyncJob::from_mapping(mapping.clone()) {
        Ok(sync) => sync,
        Err(e) => return Err(vec![mapping.issue(mapping.source.loc(), e.to_string(), None)]),
    };
    let source_unchecked = match sync.compile().await {
        // A check creates and writes nothing.
        Ok(_) => sync.baseline.check_access().await.err(),
        Err(Error::Config(ConfigErrors(issues))) => return Err(issues),
        Err(e) => Some(e),
    };
    let cursor_warning = match (&mapping.cursor, &source_unchecked) {
        (Some(cursor), None) => sync.source.cursor_warning(&cursor.column).await,
        _ => None,
    };
    Ok(Checked {
        mapping,
        text,
        source_unchecked,
        cursor_warning,
    })
}

fn name_taken(path: &Path, name: &str, other: &Path) -> ConfigIssue {
    ConfigIssue {
        file: path.to_path_buf(),
        line: 1,
        column: 1,
        field: "name".into(),
        message: format!(
            "sync name {} is also used by {}; names must be unique",
            quote(name),
            other.display()
        ),
        hint: None,
    }
}
