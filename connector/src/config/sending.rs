//! The delivery settings every destination embeds: batch size, rate, concurrency, retry budget
//! and timeout. A destination gives its own limits and defaults; the keys and their checks are
//! the same for all.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::validator::Validator;

#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    pub batch_size: usize,
    pub requests_per_minute: u32,
    pub concurrency: usize,
    pub retry_budget: Duration,
    pub timeout: Duration,
}

/// The delivery keys as written in a destination's block.
#[derive(Clone, Copy, Debug)]
pub struct RawDelivery<'a> {
    pub batch_size: &'a Option<Spanned<i64>>,
    pub requests_per_minute: &'a Option<Spanned<i64>>,
    pub concurrency: &'a Option<Spanned<i64>>,
    pub retry_budget_secs: &'a Option<Spanned<i64>>,
    pub timeout_secs: &'a Option<Spanned<i64>>,
}

/// What a destination allows and what it defaults to.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryLimits {
    pub max_batch_size: usize,
    pub default_batch_size: usize,
    pub default_requests_per_minute: u32,
}

impl Validator<'_> {
    /// The delivery settings under `prefix` (such as `destination.enterpret`).
    pub fn delivery(&mut self, raw: RawDelivery<'_>, prefix: &str, limits: DeliveryLimits) -> DeliveryConfig {
        let field = |name: &str| format!("{prefix}.{name}");
        let max_batch = i64::try_from(limits.max_batch_size).unwrap_or(i64::MAX);
        let default_batch = i64::try_from(limits.default_batch_size).unwrap_or(max_batch);
        let secs = |v: i64| Duration::from_secs(v.unsigned_abs());
        DeliveryConfig {
            batch_size: self.int_in(raw.batch_size, &field("batch_size"), 1..=max_batch, default_batch) as usize,
            requests_per_minute: self.int_in(
                raw.requests_per_minute,
                &field("requests_per_minute"),
                1..=1_000_000,
                i64::from(limits.default_requests_per_minute),
            ) as u32,
            concurrency: self.int_in(raw.concurrency, &field("concurrency"), 1..=64, 4) as usize,
            retry_budget: secs(self.int_in(raw.retry_budget_secs, &field("retry_budget_secs"), 1..=86_400, 120)),
            timeout: secs(self.int_in(raw.timeout_secs, &field("timeout_secs"), 1..=600, 30)),
        }
    }
}
