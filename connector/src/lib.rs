//! ebb: a reverse-ETL connector. It keeps a customer-feedback platform's copy
//! of users and accounts in step with a warehouse table.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! source ──batches──▶ mapping ──records──▶ hash + diff ──changes──▶ delivery ──▶ destination
//!   (Parquet)          (YAML)               (state)                (retry, split,   (Enterpret)
//!                                                                   rate limit)
//!                                  state ◀──────────── commit of acknowledged records
//! ```
//!
//! - [`config`]: mapping files, validation with `file:line:column` errors, secrets.
//! - [`source`]: the `Source` trait and the Parquet source.
//! - [`mapping`]: rows to canonical [`record::Record`]s, or rejections with reasons.
//! - [`hash`]: the versioned canonical hash kept in state.
//! - [`state`]: the `StateStore` trait, the SQLite and PostgreSQL stores, and run locks.
//! - [`destination`]: the `Destination` trait and Enterpret's webhooks.
//! - [`retry`] and [`delivery`]: classification, backoff, splitting, rate limit.
//! - [`sync`]: the only module that sees every seam: plan, deliver, commit.
//! - [`standin`]: a local, strict stand-in for the destination.
//! - [`worker`]: `ebb worker`: schedules, triggers, metrics and shutdown for long-lived runs.
//! - [`alerts`]: alert rules over a run and its history, sent to a webhook.
//! - [`cli`]: the `ebb` commands.
//! - [`quote`]: values quoted back in messages, cut to a readable length.

pub mod alerts;
pub mod cli;
pub mod column;
pub mod config;
pub mod delivery;
pub mod destination;
pub mod error;
pub mod hash;
pub mod mapping;
pub mod pg_url;
pub mod quote;
pub mod record;
pub mod retry;
pub mod source;
pub mod spec;
pub mod standin;
pub mod state;
pub mod sync;
pub mod worker;

pub use error::Error;
