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
//! - [`config`]: the generic sections of mapping files, validated with `file:line:column`
//!   errors, and secrets, and the `RecordShape` every destination's keys become; it knows
//!   no destination.
//! - [`spec`]: a whole mapping: the generic sections plus the destination's own block and keys.
//! - [`source`]: the `Source` trait, the Parquet source (local disk, or S3, GCS and Azure
//!   through `object_store`), the PostgreSQL source, and a source joined to a lookup source by
//!   key; [`column`] the logical column types they report; [`folders`] the snapshot folders a
//!   Parquet source chose; [`pg_url`] what ebb checks in a PostgreSQL URL.
//! - [`mapping`]: rows to canonical [`record::Record`]s, or rejections with reasons.
//! - [`hash`]: the versioned canonical hash kept in state; [`payload`] the acknowledged
//!   payloads kept with it, and their field-by-field changes.
//! - [`diff`]: pure selection of what to send against state, gone counts, duplicates, drift.
//! - [`state`]: the `StateStore` trait, its SQL written once for SQLite and PostgreSQL, and run locks.
//! - [`destination`]: the `Destination` trait, capabilities as data, and one module per
//!   destination owning its config, record keys, validation, limits, wire format and reply
//!   reading (Enterpret's webhooks, a customer-profiles API).
//! - [`retry`] and [`delivery`]: classification, backoff, splitting; [`pacing`]: the rate
//!   limit, shared per destination credential, slowed on 429s.
//! - [`sync`]: the only module that sees every seam: plan, deliver, commit.
//! - [`warehouse`]: the warehouse-side diff's SQL, one module per dialect (the row hash so far).
//! - [`standin`]: a local, strict stand-in for each destination.
//! - [`worker`]: `ebb worker`: schedules, triggers, metrics and shutdown for long-lived runs;
//!   [`tls`] its HTTPS identity.
//! - [`alerts`]: alert rules over a run and its history, sent to a webhook.
//! - [`init`]: a first mapping guessed from a source's schema and a sample of its rows.
//! - [`cli`]: the `ebb` commands; [`selection`] which mappings a command works on.
//! - [`quote`]: values quoted back in messages, cut to a readable length; [`panic`]: panics
//!   reported as the internal errors they are, failing the stage they happened in.

pub mod alerts;
pub mod calendar;
pub mod cli;
pub mod column;
pub mod config;
pub mod delivery;
pub mod destination;
pub mod diff;
pub mod error;
pub mod folders;
pub mod hash;
pub mod init;
pub mod mapping;
pub mod pacing;
pub mod panic;
pub mod payload;
pub mod pg_url;
pub mod quote;
pub mod record;
pub mod retry;
pub mod selection;
pub mod source;
pub mod spec;
pub mod standin;
pub mod state;
pub mod sync;
pub mod tls;
pub mod warehouse;
pub mod worker;

pub use error::Error;
