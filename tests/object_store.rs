//! Parquet read straight from an object store, against a real S3-compatible server on 127.0.0.1
//! (s3s-fs, signatures checked): a sync from the bucket equals the same sync from the local
//! files, only the mapped columns and the footers are fetched, `latest` and `require_marker`
//! choose the folder, each failure of the store is named without a secret, and a run killed
//! mid-read leaves state as it was. GCS and Azure go through the same code: their URLs and
//! credential variables reach the request, and an unreachable endpoint is named.

use crate::common::s3;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;
use ebb::state::{RunStatus, StateStore};
use s3::{S3Server, SECRET_KEY};

/// The fixture users (written by DuckDB in two parts), in the day folders a warehouse export makes.
fn duckdb_part(n: usize) -> PathBuf {
    fixture(&format!("users_duckdb/part-{n}.parquet"))
}

/// The users mapping of the other tests, with `source` as its source block.
fn users_mapping(name: &str, source: &str, url: &str) -> String {
    users_yaml(name, url, "").replace("  parquet: ${USERS_SOURCE}\n", source)
}

/// A source block over the test server.
fn s3_source(url: &str, extra: &str) -> String {
    format!("  parquet: {url}\n{extra}  store:\n    region: us-east-1\n    endpoint: ${{S3_ENDPOINT}}\n    allow_http: true\n")
}

/// Environment variables for a child `ebb` or an in-process load.
type Vars = Vec<(&'static str, String)>;

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Both stores' records, which must be equal: (id, hash).
async fn state_of(store: &dyn StateStore, name: &str) -> Vec<(String, u128)> {
    let mut records = store.records(name).await.expect("records");
    records.sort();
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_from_a_bucket_equals_the_same_sync_from_the_local_files() {
    let server = S3Server::start();
    let ws = Workspace::new();
    for n in 0..2 {
        let key = format!("users/dt=2026-11-30/part-{n}.parquet");
        server.put("exports", &key, &duckdb_part(n));
        let local = ws.path().join("local").join(&key);
        std::fs::create_dir_all(local.parent().expect("folder")).expect("local folder");
        std::fs::copy(duckdb_part(n), &local).expect("local copy");
    }
    let (remote_si, local_si) = (stand_in().await, stand_in().await);
    let remote = ws.write(
        "remote.yml",
        &users_mapping("users", &s3_source("s3://exports/users/dt=*/part-*.parquet", ""), &remote_si.url()),
    );
    let local = ws.write(
        "local.yml",
        &users_mapping("users", "  parquet: local/users/dt=*/part-*.parquet\n", &local_si.url()),
    );
    let env = server.env();
    let (remote_state, local_state) = (Workspace::new(), Workspace::new());
    let (remote_store, local_store) = (remote_state.store().await, local_state.store().await);
    let from_bucket = run_ok(&load_sync(&remote, &pairs(&env)), remote_store.as_ref()).await;
    let from_disk = run_ok(&load_sync(&local, &pairs(&env)), local_store.as_ref()).await;

    assert!(from_bucket.counts.sent > 0, "{from_bucket:?}");
    assert_eq!(from_bucket.counts, from_disk.counts);
    let held = |si: &ebb::standin::StandIn| {
        let mut records: Vec<String> = si
            .records("users")
            .iter()
            .map(|r| format!("{} {} {}", r.id, r.created_at, r.attributes))
            .collect();
        records.sort();
        records
    };
    assert_eq!(held(&remote_si), held(&local_si), "the same records reached the destination");
    let remote_hashes = state_of(remote_store.as_ref(), "users").await;
    assert!(!remote_hashes.is_empty());
    assert_eq!(
        remote_hashes,
        state_of(local_store.as_ref(), "users").await,
        "the same state hashes"
    );
    assert!(server.served.gets() > 0, "the rows came from the server");
}

/// The generator's snapshot A of 20,000 rows in the bucket as `users/a.parquet`, and its size.
fn generated_in_bucket(server: &S3Server, ws: &Workspace) -> (PathBuf, u64) {
    let (data, _) = generate(ws, 20_000);
    let a = data.join("a.parquet");
    server.put("bench", "users/a.parquet", &a);
    let size = std::fs::metadata(&a).expect("size").len();
    (a, size)
}

/// The generator's columns a narrow mapping reads.
const NARROW_COLUMNS: [&str; 3] = ["id", "signup_at", "plan"];

/// The bench users mapping reading only [`NARROW_COLUMNS`], delivered as fast as the stand-in takes it.
fn narrow_mapping(url: &str, source: &str) -> String {
    format!(
        "name: narrow\nsource:\n{source}destination:\n  enterpret:\n    object: user\n    api_key: ${{K:-local-users-key}}\n    url: {url}\n\
         \x20   batch_size: 15\n    requests_per_minute: 1000000\n    concurrency: 8\n\
         id: id\ncreated_at: signup_at\nattributes:\n  plan: plan\n"
    )
}

/// The compressed bytes of `columns` in the file, over every row group.
fn column_bytes(path: &Path, columns: &[&str]) -> u64 {
    let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).expect("file")).expect("parquet");
    let metadata = parquet::file::reader::FileReader::metadata(&reader);
    metadata
        .row_groups()
        .iter()
        .flat_map(|group| group.columns())
        .filter(|chunk| columns.contains(&chunk.column_path().string().as_str()))
        .map(|chunk| chunk.compressed_size() as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reads_footers_only_and_a_run_fetches_only_the_mapped_columns() {
    let server = S3Server::start();
    let ws = Workspace::new();
    let (file, size) = generated_in_bucket(&server, &ws);
    let si = stand_in().await;
    let path = ws.write("narrow.yml", &narrow_mapping(&si.url(), &s3_source("s3://bench/users/", "")));
    let env = server.env();

    let dir = ws.path().to_path_buf();
    let (validate_env, validate_path) = (env.clone(), path.clone());
    let out = tokio::task::spawn_blocking(move || ebb(&dir, &["validate", validate_path.to_str().expect("utf-8")], &pairs(&validate_env)))
        .await
        .expect("validate ran");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let footer_bytes = server.served.bytes();
    assert!(
        footer_bytes > 0 && footer_bytes <= 128 * 1024 && footer_bytes * 10 < size,
        "validate fetched {footer_bytes} bytes of a {size}-byte file"
    );

    server.served.reset();
    let store = ws.store().await;
    let report = run_ok(&load_sync(&path, &pairs(&env)), store.as_ref()).await;
    assert_eq!(report.counts.sent, 20_000);
    // The run's schema check reads the footer once, for both passes; then the mapped columns'
    // chunks, and at most the small gaps between them that are cheaper to read than to skip.
    let (read, mapped) = (server.served.bytes(), column_bytes(&file, &NARROW_COLUMNS));
    let gaps = 3 * 64 * 1024;
    assert!(
        read >= mapped && read <= mapped + footer_bytes + gaps && read < size * 2 / 3,
        "{read} bytes fetched for {mapped} bytes of mapped columns in a {size}-byte file"
    );
}

/// Three daily exports; the newest is still being written (no `_SUCCESS`).
fn three_days(server: &S3Server) {
    server.put("exports", "users/dt=2026-11-29/part-0.parquet", &duckdb_part(0));
    server.put_bytes("exports", "users/dt=2026-11-29/_SUCCESS", b"");
    server.put("exports", "users/dt=2026-11-30/part-0.parquet", &duckdb_part(1));
    server.put_bytes("exports", "users/dt=2026-11-30/_SUCCESS", b"");
    server.put("exports", "users/dt=2026-12-01/part-0.parquet", &fixture("users/pyarrow.parquet"));
}

fn rows_of(path: &Path) -> u64 {
    let file = std::fs::File::open(path).expect("fixture");
    let reader = parquet::file::reader::SerializedFileReader::new(file).expect("parquet");
    parquet::file::reader::FileReader::metadata(&reader).file_metadata().num_rows() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_reads_the_newest_folder_and_a_marker_skips_an_unfinished_one() {
    let server = S3Server::start();
    three_days(&server);
    let ws = Workspace::new();
    let si = stand_in().await;
    let env = server.env();
    let marked = ws.write(
        "marked.yml",
        &users_mapping(
            "marked",
            &s3_source(
                "s3://exports/users/dt=*/part-*.parquet",
                "  latest: true\n  require_marker: _SUCCESS\n",
            ),
            &si.url(),
        ),
    );
    let (dir, state, run_env, path) = (ws.path().to_path_buf(), ws.state_url(), env.clone(), marked.clone());
    let (sync, preview, status) = tokio::task::spawn_blocking(move || {
        let env = pairs(&run_env);
        let path = path.to_str().expect("utf-8");
        (
            ebb(&dir, &["--state", &state, "sync", path], &env),
            ebb(&dir, &["--state", &state, "preview", path], &env),
            ebb(&dir, &["--state", &state, "status", path], &env),
        )
    })
    .await
    .expect("commands ran");
    let said = "read users/dt=2026-11-30/ (skipped, no marker yet: users/dt=2026-12-01/)";
    for (what, out) in [("sync", &sync), ("preview", &preview), ("status", &status)] {
        let (stdout, stderr) = text(out);
        assert!(out.status.success(), "{what}: {stdout}{stderr}");
        assert!(stdout.contains(said), "{what} names the folder read and the one skipped:\n{stdout}");
    }
    let expected = rows_of(&duckdb_part(1));
    assert_eq!(si.records("users").len() as u64, expected, "only 2026-11-30's rows were sent");
    let store = ws.store().await;
    let runs = store.runs(Some("marked"), 1).await.expect("runs");
    let folders = runs[0].folders.clone().expect("the run history keeps the folders");
    assert_eq!(
        (folders.read, folders.skipped),
        (vec!["users/dt=2026-11-30/".to_string()], vec!["users/dt=2026-12-01/".to_string()])
    );

    // Without a marker, the newest folder is read as it is.
    let newest = ws.write(
        "newest.yml",
        &users_mapping(
            "newest",
            &s3_source("s3://exports/users/dt=*/part-*.parquet", "  latest: true\n"),
            &si.url(),
        ),
    );
    let report = run_ok(&load_sync(&newest, &pairs(&env)), store.as_ref()).await;
    assert_eq!(report.folders.expect("chosen").read, ["users/dt=2026-12-01/"]);
    assert_eq!(report.counts.source, rows_of(&fixture("users/pyarrow.parquet")));

    // Once the export finishes, the marked sync moves on to it.
    server.put_bytes("exports", "users/dt=2026-12-01/_SUCCESS", b"");
    let report = run_ok(&load_sync(&marked, &pairs(&env)), store.as_ref()).await;
    let folders = report.folders.expect("chosen");
    assert_eq!(
        (folders.read.as_slice(), folders.skipped.len()),
        (&["users/dt=2026-12-01/".to_string()][..], 0)
    );
}

/// `ebb validate` of `mapping` with `env`: its output, which must name the failure.
fn validate(ws: &Workspace, mapping: &str, env: &[(&'static str, String)]) -> String {
    let path = ws.write("check.yml", mapping);
    let out = ebb(ws.path(), &["validate", path.to_str().expect("utf-8")], &pairs(env));
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "validate should fail:\n{stdout}{stderr}");
    format!("{stdout}{stderr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_of_the_store_is_named_without_a_secret() {
    let server = S3Server::start();
    three_days(&server);
    server.put_bytes(
        "exports",
        "broken/part-0.parquet",
        b"this is not a parquet file at all, not even close",
    );
    let ws = Workspace::new();
    let good = server.env();
    let with = |name: &'static str, value: &str| {
        let mut env = good.clone();
        env.retain(|(k, _)| *k != name);
        env.push((name, value.to_string()));
        env
    };
    let wrong_secret = "wrong-secret-never-printed";
    let mapping = |url: &str, extra: &str| users_mapping("errors", &s3_source(url, extra), "http://127.0.0.1:9");
    let cases: Vec<(String, Vars, &str)> = vec![
        (
            mapping("s3://exports/users/dt=*/part-*.parquet", ""),
            with("AWS_SECRET_ACCESS_KEY", wrong_secret),
            "s3://exports/users/dt=*/part-*.parquet: access denied: the secret key does not match the access key id",
        ),
        (
            mapping("s3://exports/users/dt=*/part-*.parquet", ""),
            with("AWS_ACCESS_KEY_ID", "AKIDNOTKNOWNHERE"),
            "access denied: the store does not know this access key id",
        ),
        (
            mapping("s3://no-such-bucket/users/*.parquet", ""),
            good.clone(),
            "s3://no-such-bucket/users/*.parquet: no such bucket",
        ),
        (
            mapping("s3://exports/nothing/*.parquet", ""),
            good.clone(),
            "s3://exports/nothing/*.parquet: matches no Parquet file",
        ),
        (
            mapping("s3://exports/broken/", ""),
            good.clone(),
            "s3://exports/broken/part-0.parquet: Parquet error: Invalid Parquet file. Corrupt footer",
        ),
        (
            mapping("s3://exports/users/dt=2026-12-01/", "  require_marker: _SUCCESS\n"),
            good.clone(),
            "no folder has its marker `_SUCCESS` yet (1 without it: users/dt=2026-12-01/)",
        ),
    ];
    let dir = ws.path().to_path_buf();
    let outputs = tokio::task::spawn_blocking(move || {
        let ws = Workspace {
            dir: tempfile::tempdir_in(&dir).expect("dir"),
        };
        cases
            .into_iter()
            .map(|(m, env, want)| (validate(&ws, &m, &env), want))
            .collect::<Vec<_>>()
    })
    .await
    .expect("validations ran");
    for (output, want) in outputs {
        assert!(output.contains(want), "wanted `{want}` in:\n{output}");
        for secret in [SECRET_KEY, wrong_secret] {
            assert!(!output.contains(secret), "a secret was printed:\n{output}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_in_the_environment_the_chain_says_it_found_none() {
    let server = S3Server::start();
    three_days(&server);
    let ws = Workspace::new();
    let path = ws.write(
        "check.yml",
        &users_mapping(
            "nocreds",
            &s3_source("s3://exports/users/dt=*/part-*.parquet", ""),
            "http://127.0.0.1:9",
        ),
    );
    let endpoint = server.endpoint.clone();
    let out = tokio::task::spawn_blocking(move || {
        // The chain's next stop is the instance metadata service: absent (a timeout) or, in
        // some sandboxes, refusing; either way the error says no credentials were found.
        std::process::Command::new(env!("CARGO_BIN_EXE_ebb"))
            .current_dir(ws.path())
            .arg("validate")
            .arg(&path)
            .env("S3_ENDPOINT", endpoint)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .output()
            .expect("ebb runs")
    })
    .await
    .expect("validate ran");
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("s3://exports/users/dt=*/part-*.parquet: no credentials: none in the environment"),
        "{stdout}{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_read_leaves_state_as_it_was() {
    let server = S3Server::start();
    let ws = Workspace::new();
    let (data, truth) = generate(&ws, 20_000);
    server.put("bench", "users/snapshot.parquet", &data.join("a.parquet"));
    let si = stand_in().await;
    let path = ws.write(
        "narrow.yml",
        &narrow_mapping(&si.url(), &s3_source("s3://bench/users/snapshot.parquet", "")),
    );
    let env = server.env();
    let store = ws.store().await;
    run_ok(&load_sync(&path, &pairs(&env)), store.as_ref()).await;
    let before = state_of(store.as_ref(), "narrow").await;
    let received = si.stats().records_received;

    // Snapshot B lands; the next run's reads crawl, and it is killed once it has begun them.
    server.put("bench", "users/snapshot.parquet", &data.join("b.parquet"));
    server.served.reset();
    server.served.get_delay_ms.store(400, Ordering::SeqCst);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ebb"))
        .current_dir(ws.path())
        .args(["--state", &ws.state_url(), "sync"])
        .arg(&path)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ebb starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // The schema check's footer was answered and the row data's GETs are waiting in the server.
    while server.served.gets_begun.load(Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < deadline, "the run never began reading");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.served.gets(), 1, "only the footer was answered when the run was killed");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert_eq!(state_of(store.as_ref(), "narrow").await, before, "nothing was committed");
    assert_eq!(si.stats().records_received, received, "nothing was sent");

    server.served.get_delay_ms.store(0, Ordering::SeqCst);
    let report = run_ok(&load_sync(&path, &pairs(&env)), store.as_ref()).await;
    let t = |k: &str| truth[k].as_u64().unwrap_or_else(|| panic!("truth has {k}"));
    assert_eq!(report.counts.new, t("new"), "{report:?}");
    assert_eq!(report.status, RunStatus::Completed);
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// A stand-in for a GCS or Azure endpoint: answers every request with `status` and `body`, and
/// keeps each request's `Authorization` header.
struct Refuser {
    port: u16,
    auth: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Refuser {
    async fn start(status: u16, body: &'static str) -> Refuser {
        let auth = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&auth);
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let seen = std::sync::Arc::clone(&seen);
            async move {
                let header = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                seen.lock().expect("lock").push(header);
                (axum::http::StatusCode::from_u16(status).expect("status"), body)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Refuser { port, auth }
    }

    fn authorizations(&self) -> Vec<String> {
        self.auth.lock().expect("lock").clone()
    }
}

/// A service-account key file as GCP issues one, with a fresh RSA key (made by openssl).
fn service_account_file(ws: &Workspace) -> PathBuf {
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "ebb-test",
        "private_key_id": "ebb-test-key-id",
        "private_key": String::from_utf8(out.stdout).expect("PEM"),
        "client_email": "ebb-reader@ebb-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "http://127.0.0.1:9/token"
    });
    let path = ws.path().join("service-account.json");
    std::fs::write(&path, key.to_string()).expect("key file");
    path
}

fn cloud_mapping(url: &str, port: u16) -> String {
    users_mapping(
        "cloud",
        &format!("  parquet: {url}\n  store:\n    endpoint: http://127.0.0.1:{port}\n    allow_http: true\n"),
        "http://127.0.0.1:9",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_takes_google_application_credentials_and_names_an_unreachable_endpoint() {
    let ws = Workspace::new();
    let key = service_account_file(&ws).display().to_string();
    let refuser = Refuser::start(
        403,
        r#"{"error": {"code": 403, "message": "no", "errors": [{"reason": "forbidden"}]}}"#,
    )
    .await;
    let closed = closed_port();
    let env = vec![("GOOGLE_APPLICATION_CREDENTIALS", key)];
    let (dir, port) = (ws.path().to_path_buf(), refuser.port);
    let (refused, unreachable) = tokio::task::spawn_blocking(move || {
        let ws = Workspace {
            dir: tempfile::tempdir_in(&dir).expect("dir"),
        };
        (
            validate(&ws, &cloud_mapping("gs://ebb-exports/users/*.parquet", port), &env),
            validate(&ws, &cloud_mapping("gs://ebb-exports/users/*.parquet", closed), &env),
        )
    })
    .await
    .expect("validations ran");
    assert!(
        refused.contains("gs://ebb-exports/users/*.parquet: access denied: this identity may not read the bucket"),
        "{refused}"
    );
    let auth = refuser.authorizations();
    let jwt = auth
        .first()
        .and_then(|a| a.strip_prefix("Bearer "))
        .expect("a bearer token was sent");
    let claims = jwt.split('.').nth(1).expect("a JWT");
    use base64::Engine as _;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).expect("base64");
    assert!(
        String::from_utf8_lossy(&claims).contains("ebb-reader@ebb-test.iam.gserviceaccount.com"),
        "the token is the service account's"
    );
    assert!(
        unreachable.contains(&format!("cannot reach the store at 127.0.0.1:{closed}")),
        "{unreachable}"
    );
    assert!(!refused.contains("PRIVATE KEY") && !unreachable.contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_takes_its_account_variables_and_names_an_unreachable_endpoint() {
    use base64::Engine as _;
    let ws = Workspace::new();
    let account_key = base64::engine::general_purpose::STANDARD.encode("ebb-azure-account-key-never-printed");
    let refuser = Refuser::start(
        403,
        "<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code><Message>x</Message></Error>",
    )
    .await;
    let closed = closed_port();
    let env = vec![
        ("AZURE_STORAGE_ACCOUNT_NAME", "ebbtest".to_string()),
        ("AZURE_STORAGE_ACCOUNT_KEY", account_key.clone()),
    ];
    let (dir, port) = (ws.path().to_path_buf(), refuser.port);
    let (refused, unreachable, abfss) = tokio::task::spawn_blocking(move || {
        let ws = Workspace {
            dir: tempfile::tempdir_in(&dir).expect("dir"),
        };
        (
            validate(&ws, &cloud_mapping("az://exports/users/*.parquet", port), &env),
            validate(&ws, &cloud_mapping("az://exports/users/*.parquet", closed), &env),
            validate(
                &ws,
                &cloud_mapping("abfss://exports@ebbtest.dfs.core.windows.net/users/", closed),
                &env,
            ),
        )
    })
    .await
    .expect("validations ran");
    assert!(
        refused.contains("az://exports/users/*.parquet: access denied: the store did not accept the credentials"),
        "{refused}"
    );
    let auth = refuser.authorizations();
    assert!(
        auth.iter().any(|a| a.starts_with("SharedKey ebbtest:")),
        "signed with the account's key: {auth:?}"
    );
    assert!(
        unreachable.contains(&format!("cannot reach the store at 127.0.0.1:{closed}")),
        "{unreachable}"
    );
    assert!(abfss.contains(&format!("cannot reach the store at 127.0.0.1:{closed}")), "{abfss}");
    for output in [&refused, &unreachable, &abfss] {
        assert!(!output.contains(&account_key), "{output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_snapshots_choose_their_folder_the_same_way() {
    let ws = Workspace::new();
    let day = |name: &str, from: &Path, marked: bool| {
        let dir = ws.path().join("exports/users").join(name);
        std::fs::create_dir_all(&dir).expect("folder");
        std::fs::copy(from, dir.join("part-0.parquet")).expect("copy");
        if marked {
            std::fs::write(dir.join("_SUCCESS"), b"").expect("marker");
        }
    };
    day("dt=2026-11-29", &duckdb_part(0), true);
    day("dt=2026-11-30", &duckdb_part(1), true);
    day("dt=2026-12-01", &fixture("users/pyarrow.parquet"), false);
    let si = stand_in().await;
    let path = ws.write(
        "local.yml",
        &users_mapping(
            "local",
            "  parquet: exports/users/dt=*/part-*.parquet\n  latest: true\n  require_marker: _SUCCESS\n",
            &si.url(),
        ),
    );
    let store = ws.store().await;
    let report = run_ok(&load_sync(&path, &[]), store.as_ref()).await;
    let folders = report.folders.expect("chosen");
    let base = ws.path().join("exports/users").display().to_string();
    assert_eq!(folders.read, [format!("{base}/dt=2026-11-30/")]);
    assert_eq!(folders.skipped, [format!("{base}/dt=2026-12-01/")]);
    assert_eq!(report.counts.source, rows_of(&duckdb_part(1)));
}
