//! ebb: a reverse-ETL connector. It keeps a customer-feedback platform's copy
//! of users and accounts in step with a warehouse table: Enterpret's records, or
//! customer profiles in the style of EnjoyHQ.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! source ──batches──▶ mapping ──records──▶ hash + diff ──changes──▶ delivery ──▶ destination
//! (Parquet,            (YAML)               (state)    (upserts,   (retry, split,   (Enterpret,
//!  PostgreSQL,                                          deletes)    rate limit)      profiles)
//!  joined)
//!                                  state ◀──────────── commit of acknowledged records
//! ```
//!
//! The modules, in pipeline order:
//!
//! - **Read** — [`source`]: the `Source` trait, Parquet (local disk, or S3, GCS and Azure
//!   through `object_store`), PostgreSQL, and a source joined to a lookup source by key;
//!   [`column`] the logical column types they report; [`folders`] the snapshot folders a
//!   Parquet source chose; [`pg_url`] what ebb checks in a PostgreSQL URL; [`calendar`] the
//!   date range every reader and the mapping share.
//! - **Map** — [`mapping`]: rows to canonical [`record::Record`]s, or rejections with reasons,
//!   as [`config`] (the generic sections of a mapping, validated with `file:line:column`
//!   errors; a leaf that knows no source, state or destination) and [`spec`] (a whole mapping:
//!   those sections plus the destination's own block) describe them.
//! - **Diff** — [`hash`]: the versioned canonical hash kept in state; [`payload`] the
//!   acknowledged payloads kept with it; [`diff`]: what to send against state, gone counts,
//!   duplicates, drift; [`warehouse`]: the warehouse-side diff's SQL (`diff: warehouse`).
//! - **Ship** — [`delivery`]: one batch's requests until each is settled (the pace, the lock's
//!   proof before every attempt, retries, splits); [`retry`] the classification of a reply;
//!   [`pacing`] the rate limit shared per credential; [`destination`]: the `Destination` trait,
//!   capabilities as data, and one module per destination owning its config, keys, limits,
//!   wire format and reply reading.
//! - **Commit** — [`state`]: the `StateStore` trait, its SQL written once for SQLite and
//!   PostgreSQL, run locks and run history.
//! - [`sync`] is the only module that sees every seam: plan, send, commit.
//!
//! Around them: [`worker`] (`ebb worker`: schedules, triggers, metrics, the status page and its
//! HTTP surface; [`tls`] its HTTPS identity), [`cli`] (the `ebb` commands; [`selection`] which
//! mappings a command works on; [`init`] a first mapping guessed from a source), [`alerts`]
//! (rules over a run, sent to a webhook), [`standin`] (a strict local stand-in for each
//! destination), [`quote`] (values quoted back in messages) and [`panic`] (panics reported as
//! the internal errors they are).

pub mod alerts;
pub mod baseline;
pub mod calendar;
pub mod cli;
pub mod column;
pub mod config;
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
