//! ebb: a reverse-ETL connector. It keeps a customer-feedback platform's copy
//! of users and accounts in step with a warehouse table: Enterpret's records, or
//! customer profiles in the style of EnjoyHQ.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! source ──batches──▶ mapping ──records──▶ baseline ──changes──▶ ship ──requests──▶ destination
//! (Parquet,            (YAML)               (diff: state     (batches, pace,     (Enterpret,
//!  PostgreSQL,                               store hashes    retries, splits)     profiles)
//!  joined)                                   or warehouse
//!                                            tables)
//!                      baseline ◀──── commit of acknowledged records, fenced by the run lock
//! ```
//!
//! The modules, in pipeline order: read → map → diff (baseline) → ship → commit.
//!
//! - **Read** — [`source`]: the `Source` trait, Parquet (local disk, or S3, GCS and Azure
//!   through `object_store`), PostgreSQL, and a source joined to a lookup source by key. A
//!   source reads rows and knows nothing of state. [`column`](mod@column) the logical column types they
//!   report; [`folders`] the snapshot folders a Parquet source chose; [`pg_url`] what ebb checks
//!   in a PostgreSQL URL; [`calendar`] the date range every reader and the mapping share.
//! - **Map** — [`mapping`]: rows to canonical [`record::Record`]s, or rejections with reasons,
//!   as [`config`] (the generic sections of a mapping, validated with `file:line:column`
//!   errors; a leaf that knows no source, state or destination) and [`spec`] (a whole mapping:
//!   those sections plus the destination's own block) describe them.
//! - **Diff** — [`baseline`]: what the destination already has, behind one `Baseline` trait
//!   chosen once per sync: the state store's hashes (the in-process diff, over [`hash`] and
//!   [`diff`]) or the warehouse's bookkeeping tables (`diff: warehouse`). It plans (new,
//!   changed, unchanged, gone), hands pass 2 its records and commits what was acknowledged;
//!   [`payload`] the acknowledged payloads kept with the hashes; [`cursor`] which rows a run
//!   reads when the mapping names a `cursor:` column, and the watermark a completed run leaves.
//! - **Ship** — [`ship`]: pass 2's records in batches, one batch's requests until each record is
//!   settled (the pace, the lock's proof before every attempt, retries, splits, per-record
//!   outcomes) and the rate limit shared per credential; [`destination`]: the `Destination`
//!   trait, what a reply means, capabilities as data, and one module per destination owning its
//!   config, keys, limits, wire format and reply reading.
//! - **Commit** — [`state`]: the `StateStore` trait, its SQL written once for SQLite and
//!   PostgreSQL, run locks with their fencing tokens, and run history; the baseline commits
//!   through it, or with its token.
//! - [`sync`] is the only module that sees every seam: a `SyncJob` (source, baseline,
//!   destination), plan, send, commit.
//!
//! Around them: [`worker`] (`ebb worker`: schedules, triggers, metrics, the status page and its
//! HTTP surface; [`tls`] its HTTPS identity), [`cli`] (the `ebb` commands; [`selection`] which
//! mappings a command works on; [`init`] a first mapping guessed from a source), [`alerts`]
//! (rules over a run, sent to a webhook), [`standin`] (a strict local stand-in for each
//! destination), [`quote`] (values quoted back in messages) and [`panic`](mod@panic) (panics reported as
//! the internal errors they are).

pub mod alerts;
pub mod baseline;
pub mod calendar;
pub mod cli;
pub mod column;
pub mod config;
pub mod cursor;
pub mod destination;
pub mod diff;
pub mod error;
pub mod folders;
pub mod hash;
pub mod init;
pub mod mapping;
pub mod panic;
pub mod payload;
pub mod pg_url;
pub mod priority;
pub mod quote;
pub mod record;
pub mod selection;
pub mod ship;
pub mod source;
pub mod spec;
pub mod standin;
pub mod state;
pub mod sync;
pub mod tls;
pub mod worker;

pub use error::Error;
