//! What an attempt got back, and what to do about it: the shared policy, a pure function of the
//! outcome, part of the destination seam. A destination may read more from its own replies
//! (`Destination::classify`); the ship stage ([`crate::ship`]) acts on the answer.
//!
//! Like Vector's `HttpRetryLogic`: 429, 408, 5xx (but 501) and transport
//! errors are retried; 400 and 413 split the batch to isolate the records at
//! fault; 3xx (never followed), 401, 403, 404 and 501 fail the run, because every later
//! request would fail the same way; any other 4xx rejects the records it carried.

use std::time::Duration;

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryAction {
    Delivered,
    Retry {
        after: Option<Duration>,
    },
    /// The batch (or its size) was refused: try its halves, and reject a single record.
    Split,
    /// Some records were refused, by their position in the request, each with the
    /// destination's reason; the others were acknowledged.
    Partial {
        refused: Vec<(usize, String)>,
    },
    /// Some records were refused, by position, each with the destination's reason, and nothing
    /// in the request was applied: those are rejected and the others are sent again.
    RefusedSome {
        refused: Vec<(usize, String)>,
    },
    Reject,
    Fatal,
}

pub fn classify(attempt: &Attempt) -> RetryAction {
    match attempt {
        Attempt::Transport(_) => RetryAction::Retry { after: None },
        Attempt::Response { status, retry_after, .. } => match *status {
            200..=299 => RetryAction::Delivered,
            429 => RetryAction::Retry { after: *retry_after },
            408 => RetryAction::Retry { after: None },
            400 | 413 | 422 => RetryAction::Split,
            // A redirect is never followed, and every later request would get it too.
            300..=399 | 401 | 403 | 404 | 405 | 501 => RetryAction::Fatal,
            500..=599 => RetryAction::Retry { after: *retry_after },
            _ => RetryAction::Reject,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, retry_after: Option<u64>) -> Attempt {
        Attempt::Response {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            body: String::new(),
        }
    }

    #[test]
    fn classification_table() {
        let cases = [
            (resp(200, None), RetryAction::Delivered),
            (resp(204, None), RetryAction::Delivered),
            (
                resp(429, Some(7)),
                RetryAction::Retry {
                    after: Some(Duration::from_secs(7)),
                },
            ),
            (resp(429, None), RetryAction::Retry { after: None }),
            (resp(500, None), RetryAction::Retry { after: None }),
            (
                resp(503, Some(2)),
                RetryAction::Retry {
                    after: Some(Duration::from_secs(2)),
                },
            ),
            (resp(501, None), RetryAction::Fatal),
            (resp(400, None), RetryAction::Split),
            (resp(413, None), RetryAction::Split),
            (resp(401, None), RetryAction::Fatal),
            (resp(403, None), RetryAction::Fatal),
            (resp(404, None), RetryAction::Fatal),
            (resp(409, None), RetryAction::Reject),
            (Attempt::Transport("connection refused".into()), RetryAction::Retry { after: None }),
        ];
        for (attempt, want) in cases {
            assert_eq!(classify(&attempt), want, "{attempt:?}");
        }
    }
}
