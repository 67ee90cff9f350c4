//! `ebb validate`: every mapping loaded, built and compiled against its source, and sync names unique.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::env::Env;
use crate::sync;

pub(super) async fn validate(paths: &[PathBuf], env: &dyn Env) -> ExitCode {
    let mut all = Vec::new();
    for (_, checked) in sync::check::check_files(paths, env).await {
        match checked {
            Ok(c) => {
                for (loc, warning) in c.mapping.source.warnings() {
                    eprintln!("warning: {}", c.mapping.issue(loc, warning, None));
                }
                if let (Some(warning), Some(cursor)) = (&c.cursor_warning, &c.mapping.cursor) {
                    eprintln!("warning: {}", c.mapping.issue(&cursor.loc, warning.as_str(), None));
                }
                // `validate` is run to check the source too: one it cannot read is a problem.
                if let Some(e) = c.source_unchecked {
                    all.push(c.mapping.issue(c.mapping.source.loc(), e.to_string(), None));
                }
            }
            Err(issues) => all.extend(issues),
        }
    }
    if all.is_empty() {
        for path in paths {
            println!("ok: {}", path.display());
        }
        ExitCode::SUCCESS
    } else {
        for issue in &all {
            eprintln!("error: {issue}");
        }
        eprintln!("{} problem{} found", all.len(), if all.len() == 1 { "" } else { "s" });
        ExitCode::FAILURE
    }
}
