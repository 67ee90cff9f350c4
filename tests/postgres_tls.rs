//! PostgreSQL over TLS, for the source and for `--state`, against the local server (which has
//! TLS on, with a self-signed certificate for `localhost`). Each sslmode is checked by asking the
//! server itself whether the session is encrypted: the source's query reads `pg_stat_ssl` for its
//! own session, and the state store's sessions are found by their `application_name`.

use crate::common::*;
use ebb::state;

/// The server's certificate file, which is its own root, since it is self-signed.
async fn server_certificate() -> String {
    let admin = admin().await;
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(&admin).await.expect("SHOW ssl");
    assert_eq!(
        ssl, "on",
        "these tests need the PostgreSQL at DATABASE_URL to have TLS on (ssl = on)"
    );
    let file: String = sqlx::query_scalar("SHOW ssl_cert_file")
        .fetch_one(&admin)
        .await
        .expect("SHOW ssl_cert_file");
    let path = if file.starts_with('/') {
        file
    } else {
        let dir: String = sqlx::query_scalar("SHOW data_directory")
            .fetch_one(&admin)
            .await
            .expect("SHOW data_directory");
        format!("{dir}/{file}")
    };
    assert!(
        std::path::Path::new(&path).exists(),
        "the server's certificate {path} is readable here"
    );
    path
}

/// The test database's URL on `host`, with extra parameters.
fn url_on(host: &str, params: &str) -> String {
    let mut url = url::Url::parse(&database_url()).expect("DATABASE_URL is a URL");
    url.set_host(Some(host)).expect("a host");
    url.set_query(None);
    let mut text = url.to_string();
    if !params.is_empty() {
        text.push('?');
        text.push_str(params);
    }
    text
}

/// A mapping whose one record says whether the source's own session is encrypted.
fn probe_mapping(standin: &str) -> String {
    format!(
        r#"name: tls_probe
source:
  postgres:
    url: ${{PG_URL}}
    query: SELECT 'u1' AS user_id, TIMESTAMPTZ '2024-01-01 00:00:00+00' AS signup_at, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS tls
destination:
  enterpret:
    object: user
    api_key: ${{TEST_USERS_KEY:-local-users-key}}
    url: {standin}
id: user_id
created_at: signup_at
attributes:
  Tls: {{ column: tls, type: boolean }}
"#
    )
}

/// Whether the source read over TLS, as the server saw its session.
async fn source_used_tls(pg_url: &str) -> bool {
    let ws = Workspace::new();
    let si = stand_in().await;
    let mapping = ws.write("probe.yml", &probe_mapping(&si.url()));
    let store = ws.store().await;
    run_ok(&load_sync(&mapping, &[("PG_URL", pg_url)]), store.as_ref()).await;
    let held = si.records("users");
    assert_eq!(held.len(), 1, "{held:?}");
    held[0].attributes["Tls"]["b"][0].as_bool().expect("a boolean")
}

/// Whether every session the state store opened is encrypted, as the server sees them.
async fn state_used_tls(url_params: &str, host: &str) -> bool {
    let schema = TempSchema::new("ebb_tls");
    let app = schema.name.clone();
    let url = url_on(host, &format!("{url_params}&application_name={app}&schema={}", schema.name));
    let store = state::open(&url, false)
        .await
        .unwrap_or_else(|e| panic!("state opens over {url_params}: {e}"));
    store.ping().await.expect("ping");
    let (sessions, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = $1",
    )
    .bind(&app)
    .fetch_one(&admin().await)
    .await
    .expect("pg_stat_ssl");
    assert!(sessions > 0, "the store keeps a session open");
    drop(store);
    sessions == encrypted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_connects_over_tls_in_every_sslmode_that_asks_for_it() {
    let root = server_certificate().await;
    assert!(
        source_used_tls(&url_on("127.0.0.1", "")).await,
        "the default (prefer) uses TLS when the server offers it"
    );
    assert!(source_used_tls(&url_on("127.0.0.1", "sslmode=require")).await);
    // verify-ca on a name the certificate holds: sqlx 0.8 checks the name in verify-ca too
    // (launchbadge/sqlx#3793), which is stricter than libpq, never looser.
    assert!(source_used_tls(&url_on("localhost", &format!("sslmode=verify-ca&sslrootcert={root}"))).await);
    assert!(source_used_tls(&url_on("localhost", &format!("sslmode=verify-full&sslrootcert={root}"))).await);
    assert!(
        !source_used_tls(&url_on("127.0.0.1", "sslmode=disable")).await,
        "sslmode=disable reads in plain text, so the probe can tell the two apart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_store_connects_over_tls_in_every_sslmode_that_asks_for_it() {
    let root = server_certificate().await;
    assert!(state_used_tls("sslmode=prefer", "127.0.0.1").await);
    assert!(state_used_tls("sslmode=require", "127.0.0.1").await);
    assert!(state_used_tls(&format!("sslmode=verify-ca&sslrootcert={root}"), "localhost").await);
    assert!(state_used_tls(&format!("sslmode=verify-full&sslrootcert={root}"), "localhost").await);
    assert!(!state_used_tls("sslmode=disable", "127.0.0.1").await);
}

/// `ebb validate` on the probe mapping with this source URL: its exit code and stderr.
fn validate_with(pg_url: &str) -> (Option<i32>, String) {
    let ws = Workspace::new();
    let mapping = ws.write("probe.yml", &probe_mapping("http://127.0.0.1:9"));
    let out = ebb(
        ws.path(),
        &["validate", mapping.to_str().expect("utf-8 path")],
        &[("PG_URL", pg_url)],
    );
    (out.status.code(), text(&out).1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_the_roots_or_the_name_do_not_vouch_for_is_refused() {
    let root = server_certificate().await;
    let other_ca = fixture("tls/other_ca.pem");
    let other_ca = other_ca.to_str().expect("utf-8 path");

    let (code, err) = validate_with(&url_on("localhost", &format!("sslmode=verify-full&sslrootcert={root}")));
    assert_eq!(code, Some(0), "the control case validates: {err}");

    let (code, err) = validate_with(&url_on("localhost", &format!("sslmode=verify-ca&sslrootcert={other_ca}")));
    assert_ne!(code, Some(0));
    assert!(err.contains("invalid peer certificate: UnknownIssuer"), "{err}");

    let (code, err) = validate_with(&url_on("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={root}")));
    assert_ne!(code, Some(0), "the certificate names localhost, not 127.0.0.1");
    assert!(err.contains(r#"certificate not valid for name "127.0.0.1""#), "{err}");

    let (code, err) = validate_with(&url_on("localhost", "sslmode=verify-ca&sslrootcert=/nonexistent/root.pem"));
    assert_ne!(code, Some(0));
    assert!(err.contains("/nonexistent/root.pem"), "a missing root file is named: {err}");

    let ws = Workspace::new();
    let state = url_on("localhost", &format!("sslmode=verify-full&sslrootcert={other_ca}"));
    let out = ebb(ws.path(), &["history", "any", "--state", &state], &[]);
    let (_, err) = text(&out);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "the state store refuses it too: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_with_a_root_verifies_the_chain_as_libpq_does() {
    let root = server_certificate().await;
    let other_ca = fixture("tls/other_ca.pem");
    let other_ca = other_ca.to_str().expect("utf-8 path");
    let (code, err) = validate_with(&url_on("localhost", &format!("sslmode=require&sslrootcert={root}")));
    assert_eq!(code, Some(0), "the server's own root vouches for it: {err}");
    let (code, err) = validate_with(&url_on("localhost", &format!("sslmode=require&sslrootcert={other_ca}")));
    assert_ne!(code, Some(0), "require with a root that signed nothing of the server's");
    assert!(err.contains("invalid peer certificate: UnknownIssuer"), "{err}");
    // The state store reads the URL the same way.
    let ws = Workspace::new();
    let state = url_on("localhost", &format!("sslmode=require&sslrootcert={other_ca}"));
    let (_, err) = text(&ebb(ws.path(), &["history", "any", "--state", &state], &[]));
    assert!(err.contains("invalid peer certificate: UnknownIssuer"), "{err}");
    // Without a root, require encrypts and checks nothing, as libpq's does.
    assert!(source_used_tls(&url_on("127.0.0.1", "sslmode=require")).await);
}

#[test]
fn a_connection_to_another_machine_that_checks_no_certificate_is_warned_of() {
    let password = "hunter2-tls-warning";
    for params in ["sslmode=require", "sslmode=prefer", ""] {
        let mut url = url_on("db.invalid", params);
        url = url.replacen("://postgres@", &format!("://postgres:{password}@"), 1);
        let (_, err) = validate_with(&url);
        assert!(
            err.contains("warning: ") && err.contains("connection to db.invalid checks no certificate") && err.contains("verify-full"),
            "{params}: {err}"
        );
        assert!(!err.contains(password), "{err}");
        // Each run says it too, in its log.
        let ws = Workspace::new();
        let mapping = ws.write("probe.yml", &probe_mapping("http://127.0.0.1:9"));
        let out = ebb(ws.path(), &["sync", mapping.to_str().expect("path")], &[("PG_URL", &url)]);
        let (_, err) = text(&out);
        assert!(err.contains("connection to db.invalid checks no certificate"), "{err}");
        assert!(!err.contains(password), "{err}");
    }
    let root = fixture("tls/other_ca.pem");
    let verified = url_on("db.invalid", &format!("sslmode=verify-full&sslrootcert={}", root.display()));
    let (_, err) = validate_with(&verified);
    assert!(!err.contains("warning: "), "{err}");
}

#[test]
fn passwords_never_print_from_a_url_that_does_not_parse_or_from_its_parameters() {
    let ws = Workspace::new();
    for state in [
        "postgres://ebb:hunter2-unparsable@[db/x",
        "postgres://ebb:hunter2-unparsable@db:99999/x",
        "postgres://ebb@db.invalid/x?password=hunter2-unparsable",
    ] {
        let (out, err) = text(&ebb(ws.path(), &["history", "any", "--state", state], &[]));
        assert!(!format!("{out}{err}").contains("hunter2"), "{state}: {out}{err}");
    }
    // Written into a mapping as a parameter, a password is refused like one in the user part.
    let written = probe_mapping("http://127.0.0.1:9").replace("${PG_URL}", "postgres://ebb@127.0.0.1/test?password=hunter2-unparsable");
    let mapping = ws.write("written.yml", &written);
    let out = ebb(ws.path(), &["validate", mapping.to_str().expect("path")], &[]);
    let (_, err) = text(&out);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("holds a password written in the mapping") && !err.contains("hunter2"),
        "{err}"
    );
}
