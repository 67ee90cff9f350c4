//! ebb's integration tests, as one test binary (as ripgrep's `tests/tests.rs` does): `common`
//! and the crate's test build are compiled once rather than once per file. Each module is one
//! concern; `cargo test NAME` still picks tests by name, `cargo test -- web::` by module.

mod common;

mod cli;
mod compose;
mod config_errors;
mod cursor;
mod docs;
mod edge_values;
mod fencing;
mod http_api;
mod init;
mod mirror;
mod object_store;
mod outbound;
mod pacing;
mod parquet_types;
mod partial_reads;
mod pii;
mod postgres_source;
mod postgres_tls;
mod postgres_values;
mod profiles;
mod rejected;
mod robustness;
mod run_box;
mod run_lock;
mod scale;
mod schema;
mod selection;
mod state_store;
mod sync_engine;
mod tracking;
mod warehouse_diff;
mod warehouse_sync;
mod web;
mod worker;
