//! The `WHERE` that narrows a read to the rows past a cursor.
//!
//! The bound is written as a literal of no declared type, so that PostgreSQL reads it as the
//! column's own type (`timestamp`, `timestamptz`, `date` or an integer) and an index that leads
//! with the column serves the read. The literal is made here from an integer, never from text
//! a user wrote. A `timestamp` column is compared as the wall-clock time its binary form holds,
//! which is how ebb decodes it: the literal's `+00` is ignored for it, and honoured for a
//! `timestamptz`.

use super::quote_ident;
use crate::calendar;
use crate::source::{ColumnType, Since};

/// `"column" >= literal OR "column" IS NULL`, or `None` when the bound is before anything the
/// column can hold (every row is read then).
pub fn condition(since: &Since, expected: &[(String, ColumnType)]) -> Option<String> {
    let (_, ty) = expected.iter().find(|(name, _)| *name == since.column)?;
    let literal = match ty {
        ColumnType::Timestamp => {
            let secs = since.from.div_euclid(1_000_000);
            if !calendar::secs_in_range(secs) {
                return None;
            }
            let nanos = (since.from.rem_euclid(1_000_000) * 1000) as u32;
            format!("'{}'", calendar::timestamp_text(secs, nanos))
        }
        ColumnType::Date => {
            if !calendar::day_in_range(since.from) {
                return None;
            }
            format!("'{}'", calendar::date_text(since.from))
        }
        ColumnType::Int | ColumnType::UInt => since.from.to_string(),
        _ => return None,
    };
    let column = quote_ident(&since.column);
    // The catalog's operator, whatever the session's search path holds.
    Some(format!("({column} OPERATOR(pg_catalog.>=) {literal} OR {column} IS NULL)"))
}

/// Whether an index of `table` (quoted, as written under the session's search path) has
/// `column` as its first key.
pub(super) async fn has_leading_index(conn: &mut sqlx::PgConnection, table: &str, column: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE i.indrelid = to_regclass($1) AND a.attname = $2)",
    )
    .bind(table)
    .bind(column)
    .fetch_one(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since(from: i64) -> Since {
        Since {
            column: "updated_at".into(),
            from,
        }
    }

    #[test]
    fn the_bound_is_a_literal_of_the_columns_type() {
        let ts = [("updated_at".to_string(), ColumnType::Timestamp)];
        assert_eq!(
            condition(&since(1_796_665_602_228_081), &ts).unwrap(),
            "(\"updated_at\" OPERATOR(pg_catalog.>=) '2026-12-07 17:46:42.228081+00' OR \"updated_at\" IS NULL)"
        );
        assert_eq!(condition(&since(i64::MIN), &ts), None);
        let date = [("updated_at".to_string(), ColumnType::Date)];
        assert!(condition(&since(20_000), &date).unwrap().contains("'2024-10-04'"));
        let int = [("updated_at".to_string(), ColumnType::Int)];
        assert!(condition(&since(-5), &int).unwrap().contains(">=) -5 OR"));
        assert_eq!(condition(&since(1), &[]), None);
    }
}
