//! Destinations: where records go.
//!
//! A [`Destination`] turns records into one request and makes one attempt to
//! send it. Batching, splitting, retries and rate limits live in `delivery`,
//! shared by every destination; what a destination can do is data in
//! [`Capabilities`], so the planner never assumes one destination's shape.

pub mod enterpret;

use std::time::Duration;

use crate::config::DestinationConfig;
use crate::record::Record;

/// What a destination can do, known before anything is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Most records in one request.
    pub max_batch_records: usize,
    /// Largest request body in bytes.
    pub max_request_bytes: usize,
    /// Whether records can be deleted (needed by `mode: mirror`).
    pub can_delete: bool,
}

/// A request ready to go. Holds no secret: headers are added by `send`.
#[derive(Clone, Debug)]
pub struct PreparedRequest {
    pub method: &'static str,
    pub url: String,
    pub body: Vec<u8>,
    pub records: usize,
    /// The run that sends it, as `sync/run id`: sent as the [`RUN_HEADER`] header, so that a
    /// request in the destination's logs can be matched with ebb's run history. `None` for
    /// previews and test sends, which are not runs.
    pub run: Option<String>,
}

/// The header that names the run a request belongs to.
pub const RUN_HEADER: &str = "x-ebb-run";

/// What one attempt got back.
#[derive(Clone, Debug)]
pub enum Attempt {
    Response {
        status: u16,
        retry_after: Option<Duration>,
        /// The response body, truncated to a few KB.
        body: String,
    },
    /// No HTTP response: connection refused, reset, timed out.
    Transport(String),
}

impl Attempt {
    pub fn status(&self) -> Option<u16> {
        match self {
            Attempt::Response { status, .. } => Some(*status),
            Attempt::Transport(_) => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("cannot encode the request: {0}")]
    Encode(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

#[async_trait::async_trait]
pub trait Destination: Send + Sync {
    /// A short name for messages, such as `enterpret users`.
    fn describe(&self) -> String;
    fn capabilities(&self) -> Capabilities;
    /// The request that would carry these records. Pure: `preview` shows exactly this.
    fn prepare(&self, records: &[&Record]) -> Result<PreparedRequest, DestinationError>;
    /// One attempt, no retries.
    async fn send(&self, request: &PreparedRequest) -> Attempt;
    /// A one-line account of a failed attempt, in the destination's own terms.
    fn explain(&self, attempt: &Attempt) -> String {
        match attempt {
            Attempt::Response { status, body, .. } => format!("HTTP {status}: {}", truncate(body, 300)),
            Attempt::Transport(e) => e.clone(),
        }
    }
}

/// Capabilities from configuration alone, for validation before anything is built.
pub fn capabilities_of(config: &DestinationConfig) -> Capabilities {
    match config {
        DestinationConfig::Enterpret(c) => enterpret::capabilities(c),
    }
}

pub fn build(config: &DestinationConfig) -> Result<Box<dyn Destination>, DestinationError> {
    match config {
        DestinationConfig::Enterpret(c) => Ok(Box::new(enterpret::Enterpret::new(c.clone())?)),
    }
}

pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
