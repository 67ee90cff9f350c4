//! PostgreSQL connection URLs, as both the source and the state store take them: the checks ebb
//! makes before sqlx connects, so that a mistake is named instead of surfacing as a bare
//! "No such file or directory" from deep inside the TLS setup.

use crate::quote::quote;

/// The URL parameters that name files sqlx reads when it connects over TLS.
const TLS_FILES: [&str; 3] = ["sslrootcert", "sslcert", "sslkey"];

/// What is wrong with a TLS file the URL names, if anything: it must exist and be readable.
pub fn tls_file_problem(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .filter(|(key, _)| TLS_FILES.contains(&key.as_ref()))
        .find_map(|(key, path)| match std::fs::File::open(path.as_ref()) {
            Ok(_) => None,
            Err(e) => Some(format!("cannot read {key} {}: {e}", quote(&path))),
        })
}

#[cfg(test)]
mod tests {
    use super::tls_file_problem;

    #[test]
    fn a_missing_tls_file_is_named_with_its_parameter() {
        let problem = tls_file_problem("postgres://u:pw@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        let problem = problem.expect("a problem");
        assert!(problem.starts_with("cannot read sslrootcert `/nonexistent/ca.pem`: "), "{problem}");
        assert!(!problem.contains("pw"));
        assert_eq!(tls_file_problem("postgres://h/db?sslmode=require"), None);
        assert_eq!(tls_file_problem("postgres://h/db"), None);
    }
}
