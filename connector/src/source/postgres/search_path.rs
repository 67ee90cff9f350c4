//! The search path the statements ebb writes around a source's query run with (see
//! [`super::Around`]): `pg_catalog, pg_temp` wherever ebb wrote the whole
//! statement, so that no function, operator or type is found in a schema another role can
//! create in.
//!
//! A table source named without its schema is looked up once, under the session's own path,
//! and then named in full. A `query:` is the user's SQL, written for their search path: it runs
//! under that path with `pg_catalog` put first and `pg_temp` last; ebb's own parts of the
//! statement name the catalog's functions in full either way.

use sqlx::PgConnection;

use super::PostgresSource;
use crate::config::PostgresRelation;

/// Every statement ebb writes in full, and every write to its bookkeeping tables, runs with this
/// search path, so that no function, operator or type is found in a schema another role can
/// create in.
pub const SAFE_SEARCH_PATH: &str = "SET LOCAL search_path = pg_catalog, pg_temp";

/// An identifier as PostgreSQL reads it back exactly: in double quotes, inner ones doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Sets the transaction's search path, and returns the source's query as it must be written
/// under it.
pub(super) async fn pin(source: &PostgresSource, txn: &mut PgConnection) -> Result<String, sqlx::Error> {
    match &source.relation {
        PostgresRelation::Table { schema: None, name } => {
            let schema: Option<String> = sqlx::query_scalar(
                "SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
                 ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)",
            )
            .bind(quote_ident(name))
            .fetch_optional(&mut *txn)
            .await?;
            sqlx::query(SAFE_SEARCH_PATH).execute(&mut *txn).await?;
            Ok(match schema {
                Some(schema) => format!("SELECT * FROM {}.{}", quote_ident(&schema), quote_ident(name)),
                // Not there: the statement fails and says so, as it would have.
                None => source.base_query(),
            })
        }
        PostgresRelation::Table { .. } => {
            sqlx::query(SAFE_SEARCH_PATH).execute(&mut *txn).await?;
            Ok(source.base_query())
        }
        PostgresRelation::Query(_) => {
            let path: String = sqlx::query_scalar("SELECT pg_catalog.current_setting('search_path')")
                .fetch_one(&mut *txn)
                .await?;
            let path = match path.trim() {
                "" => "pg_catalog, pg_temp".to_string(),
                path => format!("pg_catalog, {path}, pg_temp"),
            };
            sqlx::query("SELECT pg_catalog.set_config('search_path', $1, true)")
                .bind(path)
                .execute(&mut *txn)
                .await?;
            Ok(source.base_query())
        }
    }
}
