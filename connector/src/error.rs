//! The top-level error: one variant per stage, so the CLI can say where a
//! run failed (`source: …`, `destination: …`) and what to do about it.

use crate::config::ConfigErrors;
use crate::destination::DestinationError;
use crate::source::SourceError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("source: {0}")]
    Source(#[from] SourceError),
    #[error("schema drift: {0}")]
    Drift(#[from] crate::diff::Drift),
    #[error("state: {0}")]
    State(#[from] StateError),
    /// The warehouse-side diff's state (`diff: warehouse`).
    #[error("warehouse state: {0}")]
    Warehouse(#[from] crate::state::WarehouseError),
    #[error("destination: {0}")]
    Destination(#[from] DestinationError),
    #[error("interrupted")]
    Interrupted,
    /// A guard stopped the run before anything was sent.
    #[error("{0}")]
    Blocked(#[from] crate::config::GuardBlocked),
    #[error("sync {} is already running: another ebb process holds its lock", crate::quote::quote(.0))]
    AlreadyRunning(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("cannot write the JSON output: {0}")]
    Json(#[source] serde_json::Error),
    #[error("{0}")]
    Selection(#[from] crate::selection::SelectionError),
    /// The worker's `--tls-cert` and `--tls-key` cannot serve HTTPS.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsSetupError),
    /// A command's argument that cannot be used, and why.
    #[error("{0}")]
    Usage(String),
    /// A panic: a bug, which failed the stage it happened in.
    #[error("{0}")]
    Internal(#[from] crate::panic::Internal),
}

impl Error {
    /// What a person can do about it, where there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Config(_) => Some("fix the mapping, then check it with `ebb validate`"),
            Error::Source(e) => Some(e.hint()),
            Error::Drift(_) => {
                Some("nothing was sent; fix the source, or run `ebb reset MAPPING` to accept the new schema and resend everything")
            }
            Error::State(StateError::LockLost(_)) => Some(
                "the run stopped and committed nothing more; the next run sends what was not committed (check the state database's connections)",
            ),
            Error::State(_) => Some("check --state / EBB_STATE"),
            Error::Warehouse(crate::state::WarehouseError::Privilege { .. }) => Some(
                "grant the privilege named, or point `state_schema:` at a schema this user may write to; the source itself is only read",
            ),
            Error::Warehouse(crate::state::WarehouseError::Fenced { .. }) => Some(
                "another run took the sync over while this one was paused or cut off: this run committed nothing more, and the next run sends again whatever is still not in step",
            ),
            Error::Warehouse(_) => Some("check the source's url and that its user may use the `state_schema:`"),
            Error::Destination(_) => Some("records not acknowledged stay unsynced and are sent by the next run"),
            Error::AlreadyRunning(_) => Some("nothing was done; pass --wait to wait for the other run to finish"),
            Error::Selection(crate::selection::SelectionError::NoMappings { .. }) => {
                Some("a folder stands for the `*.yml` and `*.yaml` files directly in it; name the files, or the folder that holds them")
            }
            Error::Selection(_) => Some("`tag:NAME` selects by a mapping's `tags:`; a name is its `name:` or its file name, and may be a glob"),
            Error::Internal(_) => Some(
                "a bug in ebb: nothing was deleted or suppressed, and state keeps only what was acknowledged; RUST_BACKTRACE=1 shows where it happened",
            ),
            Error::Tls(_) => Some("--tls-cert takes a PEM file of the certificate chain, server first; --tls-key the PEM private key"),
            Error::Interrupted | Error::Blocked(_) | Error::Io { .. } | Error::Json(_) | Error::Usage(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_failure_gets_the_hint_that_fits_it() {
        let database = Error::Source(SourceError::Database {
            source_name: "postgres db:5432/warehouse table users".into(),
            cause: "connection refused".into(),
        });
        let hint = database.hint().unwrap_or_default();
        assert!(hint.contains("url") && !hint.contains("Parquet"), "{hint}");
        let parquet = Error::Source(SourceError::NoFiles {
            pattern: "/data/*.parquet".into(),
        });
        assert!(parquet.hint().unwrap_or_default().contains("Parquet"));
        let Error::Source(inner) = &database else {
            unreachable!("built as a source error")
        };
        let cause = std::error::Error::source(inner).map(ToString::to_string);
        assert_eq!(
            cause.as_deref(),
            Some("connection refused"),
            "the cause is kept as the error's source"
        );
    }
}
