//! The benchmark's data: a `users` table as snapshot A, and snapshot B = A
//! with 1% of rows changed in one attribute, 0.5% deleted and 0.5% new. Its
//! `updated_at` moves with every change, as an application's does: the rows
//! B changed or added carry a time after every time in A, scattered over the
//! file in key order, not sorted.
//!
//! Every row is a pure function of (seed, key, version), so A and B are
//! written in one streaming pass each without holding a snapshot in memory,
//! and which rows change or go is decided per key: the truth file's counts are
//! exact, not estimates.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Array, Float64Array, Float64Builder, Int32Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

const PLANS: [&str; 4] = ["free", "starter", "pro", "enterprise"];
const FIRST: [&str; 8] = ["Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances"];
const LAST: [&str; 8] = [
    "Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen",
];
const TAGS: [&str; 8] = ["beta", "admin", "mobile", "api", "champion", "churn-risk", "sso", "eu"];
/// 2019-01-01T00:00:00Z; signups spread over the six years after it.
const SIGNUP_FROM_MICROS: i64 = 1_546_300_800_000_000;
const SIGNUP_SPAN_SECS: i64 = 6 * 365 * 86_400;
/// 2026-06-01T00:00:00Z: B's changes are made on this day, after every update in A.
pub const B_CHANGES_MICROS: i64 = 1_780_272_000_000_000;
/// A's rows were last updated up to this long after their signup.
const UPDATE_SPAN_SECS: i64 = 180 * 86_400;
const BATCH_ROWS: usize = 65_536;

/// What B holds relative to A, counted while writing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    pub seed: u64,
    pub rows_a: u64,
    pub rows_b: u64,
    /// In both, with one attribute different.
    pub changed: u64,
    /// In both and equal.
    pub unchanged: u64,
    /// In A only.
    pub deleted: u64,
    /// In B only.
    pub new: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Kept,
    Changed,
    Deleted,
}

/// Per key, from a generator of its own so the answer never depends on order.
fn fate(seed: u64, key: u64) -> Fate {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xFA7E);
    match rng.random_range(0..1000u32) {
        0..10 => Fate::Changed,
        10..15 => Fate::Deleted,
        _ => Fate::Kept,
    }
}

/// One user row.
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub plan: &'static str,
    pub arr: f64,
    pub seats: i32,
    pub signup_micros: i64,
    pub active: bool,
    pub tags: Vec<&'static str>,
    /// The mixed shape's extra columns: an account balance in cents, written as DuckDB writes
    /// `DECIMAL(12,2)`, and a float score.
    pub balance_cents: i64,
    pub score: f64,
    /// When the row last changed.
    pub updated_micros: i64,
}

/// When B changed or added the row of `key`: a second of the day of B's changes.
fn b_time(key: u64) -> i64 {
    B_CHANGES_MICROS + (key % 86_400) as i64 * 1_000_000
}

/// Version 1 differs from version 0 in exactly one attribute, chosen by key.
pub fn user(seed: u64, key: u64, version: u8) -> User {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(key.wrapping_mul(0xD1B5_4A32_D192_ED03)));
    let plan_idx = rng.random_range(0..PLANS.len());
    let seats = rng.random_range(1..500);
    let arr = (f64::from(seats) * [0.0, 120.0, 480.0, 1500.0][plan_idx] * rng.random_range(0.8..1.2) * 100.0).round() / 100.0;
    let n_tags = rng.random_range(0..4usize);
    let mut tags: Vec<&'static str> = (0..n_tags).map(|_| TAGS[rng.random_range(0..TAGS.len())]).collect();
    tags.dedup();
    let mut u = User {
        id: format!("usr_{key:09}"),
        email: format!("user{key}@example{}.com", key % 97),
        name: format!("{} {}", FIRST[rng.random_range(0..8)], LAST[rng.random_range(0..8)]),
        plan: PLANS[plan_idx],
        arr,
        seats,
        signup_micros: SIGNUP_FROM_MICROS + rng.random_range(0..SIGNUP_SPAN_SECS) * 1_000_000,
        active: rng.random_bool(0.8),
        tags,
        balance_cents: rng.random_range(-50_000..5_000_000),
        score: (rng.random_range(0.0..100.0f64) * 1000.0).round() / 1000.0,
        updated_micros: 0,
    };
    // Drawn last, so that every other value is what it was before the column existed.
    u.updated_micros = u.signup_micros + rng.random_range(0..UPDATE_SPAN_SECS) * 1_000_000;
    if version == 1 {
        u.updated_micros = b_time(key);
        match key % 4 {
            0 => u.seats += 1,
            1 => u.plan = PLANS[(plan_idx + 1) % PLANS.len()],
            2 => u.arr += 100.0,
            _ => u.active = !u.active,
        }
    }
    u
}

/// Which columns the snapshots have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// id, email, name, plan, arr, seats, signup_at, active, tags.
    #[default]
    Users,
    /// The same, plus `balance` (DECIMAL(12,2)) and `score` (a float): eight mixed attributes.
    Mixed,
}

pub fn schema(shape: Shape) -> Arc<Schema> {
    let mut fields = base_fields();
    if shape == Shape::Mixed {
        fields.push(Field::new("balance", DataType::Decimal128(12, 2), false));
        fields.push(Field::new("score", DataType::Float64, false));
    }
    Arc::new(Schema::new(fields))
}

fn base_fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
        Field::new("arr", DataType::Float64, false),
        Field::new("seats", DataType::Int32, false),
        Field::new("signup_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("active", DataType::Boolean, false),
        Field::new("tags", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
        Field::new("updated_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ]
}

/// The rows of snapshot A (`b == false`) or B, in key order, new rows last.
pub fn rows(seed: u64, n: u64, b: bool) -> impl Iterator<Item = User> {
    let new = if b { n / 200 } else { 0 };
    (0..n + new).filter_map(move |key| {
        if key >= n {
            let mut u = user(seed, key, 0);
            u.updated_micros = b_time(key);
            return Some(u);
        }
        match (b, fate(seed, key)) {
            (true, Fate::Deleted) => None,
            (true, Fate::Changed) => Some(user(seed, key, 1)),
            _ => Some(user(seed, key, 0)),
        }
    })
}

pub fn truth(seed: u64, n: u64) -> Truth {
    let mut t = Truth {
        seed,
        rows_a: n,
        new: n / 200,
        ..Truth::default()
    };
    for key in 0..n {
        match fate(seed, key) {
            Fate::Kept => t.unchanged += 1,
            Fate::Changed => t.changed += 1,
            Fate::Deleted => t.deleted += 1,
        }
    }
    t.rows_b = n - t.deleted + t.new;
    t
}

fn batch(users: &[User], shape: Shape) -> Result<RecordBatch> {
    let mut id = StringBuilder::new();
    let mut email = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut plan = StringBuilder::new();
    let mut arr = Float64Builder::new();
    let mut seats = Int32Builder::new();
    let mut signup = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut active = BooleanBuilder::new();
    let mut tags = ListBuilder::new(StringBuilder::new());
    let mut updated = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    for u in users {
        updated.append_value(u.updated_micros);
        id.append_value(&u.id);
        email.append_value(&u.email);
        name.append_value(&u.name);
        plan.append_value(u.plan);
        arr.append_value(u.arr);
        seats.append_value(u.seats);
        signup.append_value(u.signup_micros);
        active.append_value(u.active);
        for t in &u.tags {
            tags.values().append_value(t);
        }
        tags.append(true);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(email.finish()),
        Arc::new(name.finish()),
        Arc::new(plan.finish()),
        Arc::new(arr.finish()),
        Arc::new(seats.finish()),
        Arc::new(signup.finish()),
        Arc::new(active.finish()),
        Arc::new(tags.finish()),
        Arc::new(updated.finish()),
    ];
    if shape == Shape::Mixed {
        let balance =
            Decimal128Array::from_iter_values(users.iter().map(|u| i128::from(u.balance_cents))).with_precision_and_scale(12, 2)?;
        columns.push(Arc::new(balance));
        columns.push(Arc::new(Float64Array::from_iter_values(users.iter().map(|u| u.score))));
    }
    Ok(RecordBatch::try_new(schema(shape), columns)?)
}

/// Writes one snapshot as Parquet (snappy, 128k-row groups, like most writers' defaults).
pub fn write_parquet(path: &Path, shape: Shape, rows: impl Iterator<Item = User>) -> Result<u64> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(128 * 1024))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema(shape), Some(props))?;
    let mut chunk = Vec::with_capacity(BATCH_ROWS);
    let mut written = 0u64;
    for u in rows {
        chunk.push(u);
        if chunk.len() == BATCH_ROWS {
            writer.write(&batch(&chunk, shape)?)?;
            written += chunk.len() as u64;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        writer.write(&batch(&chunk, shape)?)?;
        written += chunk.len() as u64;
    }
    writer.close()?;
    Ok(written)
}

/// PostgreSQL COPY text format: tab-separated, `\N` for null, backslash escapes.
fn copy_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

pub fn copy_line(u: &User, out: &mut String) {
    use std::fmt::Write;
    copy_text(out, &u.id);
    out.push('\t');
    copy_text(out, &u.email);
    out.push('\t');
    copy_text(out, &u.name);
    out.push('\t');
    out.push_str(u.plan);
    // `{}` on f64 prints the shortest text that reads back as the same value.
    let _ = write!(out, "\t{}\t{}\t{}\t{}\t{{", u.arr, u.seats, u.signup_micros, u.active);
    for (i, t) in u.tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(t);
    }
    let _ = writeln!(out, "}}\t{}", u.updated_micros);
}

/// Creates `{schema}.{table}` and loads it with COPY; the signup time goes in
/// as epoch microseconds and is converted by the server.
pub async fn load_postgres(url: &str, schema: &str, table: &str, rows: impl Iterator<Item = User>) -> Result<u64> {
    use sqlx::{Connection, Executor, PgConnection};
    let mut conn = PgConnection::connect(url).await.context("connecting to PostgreSQL")?;
    let ddl = format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         DROP TABLE IF EXISTS \"{schema}\".\"{table}\";
         CREATE UNLOGGED TABLE \"{schema}\".\"{table}_load\" (id text, email text, name text, plan text, arr float8, seats int4,
             signup_us int8, active bool, tags text[], updated_us int8);"
    );
    conn.execute(ddl.as_str()).await?;
    let mut copy = conn.copy_in_raw(&format!("COPY \"{schema}\".\"{table}_load\" FROM STDIN")).await?;
    let mut buf = String::with_capacity(1 << 20);
    let mut n = 0u64;
    for u in rows {
        copy_line(&u, &mut buf);
        n += 1;
        if buf.len() > (1 << 20) - 512 {
            copy.send(std::mem::take(&mut buf).into_bytes()).await?;
            buf.reserve(1 << 20);
        }
    }
    if !buf.is_empty() {
        copy.send(buf.into_bytes()).await?;
    }
    copy.finish().await?;
    let finish = format!(
        "CREATE TABLE \"{schema}\".\"{table}\" AS SELECT id, email, name, plan, arr, seats,
             'epoch'::timestamptz + signup_us * interval '1 microsecond' AS signup_at, active, tags,
             'epoch'::timestamptz + updated_us * interval '1 microsecond' AS updated_at FROM \"{schema}\".\"{table}_load\";
         ALTER TABLE \"{schema}\".\"{table}\" ADD PRIMARY KEY (id);
         DROP TABLE \"{schema}\".\"{table}_load\";
         ANALYZE \"{schema}\".\"{table}\";"
    );
    conn.execute(finish.as_str()).await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_exact() {
        let t = truth(7, 20_000);
        assert_eq!(t, truth(7, 20_000));
        assert_eq!(rows(7, 20_000, false).count() as u64, t.rows_a);
        assert_eq!(rows(7, 20_000, true).count() as u64, t.rows_b);
        assert_eq!(t.changed + t.unchanged + t.deleted, t.rows_a);
        // About 1% and 0.5%, from a fair draw.
        assert!((150..250).contains(&t.changed), "{t:?}");
        assert!((60..140).contains(&t.deleted), "{t:?}");
        let a: Vec<User> = rows(7, 100, false).collect();
        let again: Vec<User> = rows(7, 100, false).collect();
        assert!(a
            .iter()
            .zip(&again)
            .all(|(x, y)| x.id == y.id && x.arr == y.arr && x.tags == y.tags));
    }
}
