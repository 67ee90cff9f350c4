//! What ebb's requests to a destination will not do, against real servers that try: follow a
//! redirect (with the API key and the records) to another host, read a 50 MB reply into memory,
//! or go out over plain HTTP to another machine or with a secret in the URL.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{fixture, text, users_yaml, Workspace};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

const API_KEY: &str = "sk-outbound-4d5e6f7a8b9c";

/// Serves `app` on a free loopback port.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A server that counts what reaches it, and whether any request carried the API key.
async fn elsewhere() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (hits, keys) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, k) = (hits.clone(), keys.clone());
    let app = Router::new().fallback(any(move |headers: HeaderMap| {
        let (h, k) = (h.clone(), k.clone());
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            if headers.values().any(|v| v.as_bytes() == API_KEY.as_bytes()) {
                k.fetch_add(1, Ordering::SeqCst);
            }
            StatusCode::OK
        }
    }));
    (serve(app).await, hits, keys)
}

/// `ebb sync` of the 40 users to `url`, as a child process in folder `dir`.
fn sync(dir: &std::path::Path, url: &str) -> std::process::Output {
    std::fs::write(dir.join("users.yml"), users_yaml("users", url, "")).expect("mapping");
    let source = fixture("users/pyarrow.parquet");
    common::ebb(
        dir,
        &["--state", "state.db", "sync", "users.yml"],
        &[("USERS_SOURCE", source.to_str().expect("path")), ("TEST_USERS_KEY", API_KEY)],
    )
}

#[tokio::test]
async fn a_redirect_is_never_followed_and_fails_the_run_naming_where_it_pointed() {
    for status in [301u16, 302, 307, 308] {
        let (target, hits, keys) = elsewhere().await;
        let to = format!("http://{target}/collect?token=t0psecret");
        let app = Router::new().fallback(any(move || {
            let to = to.clone();
            async move {
                let code = StatusCode::from_u16(status).expect("status");
                (code, [("location", to)], "moved").into_response()
            }
        }));
        let addr = serve(app).await;
        let ws = Workspace::new();
        let dir = ws.path().to_path_buf();
        let out = tokio::task::spawn_blocking(move || sync(&dir, &format!("http://{addr}")))
            .await
            .expect("join");
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{status}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("answered {status}, a redirect to 127.0.0.1")) && stderr.contains("never follows redirects"),
            "{status}: {stderr}"
        );
        assert!(!stderr.contains("t0psecret"), "the Location's query was printed: {stderr}");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "{status}: the redirect was followed");
        assert_eq!(keys.load(Ordering::SeqCst), 0);
        // Nothing was acknowledged, so nothing is recorded as synced.
        let status_out = common::ebb(ws.path(), &["--state", "state.db", "status", "users.yml", "--json"], &[]);
        let (json, _) = text(&status_out);
        assert!(!json.contains("\"synced\":40"), "{json}");
    }
}

/// A reply of `size` bytes of `x`, sent in pieces.
fn big_reply(status: StatusCode, size: usize) -> Response {
    let piece = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    let pieces = size / piece.len();
    let stream = futures::stream::iter((0..pieces).map(move |_| Ok::<_, std::io::Error>(piece.clone())));
    (status, Body::from_stream(stream)).into_response()
}

/// `ebb sync ARGS` of the 40 fixture users in folder `dir`, as a child still to be spawned.
fn ebb_sync(dir: &std::path::Path, args: &[&str]) -> std::process::Command {
    let source = fixture("users/pyarrow.parquet");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ebb"));
    command
        .current_dir(dir)
        .args(["--state", "state.db", "sync"])
        .args(args)
        .env_remove("EBB_LOG")
        .env_remove("EBB_STATE")
        .env("USERS_SOURCE", source.to_str().expect("path"))
        .env("TEST_USERS_KEY", API_KEY);
    command
}

/// The peak resident memory of a finished child, in KiB, as the kernel counted it.
// `wait4` reaps the child, which `Child::wait` would not know.
#[allow(clippy::zombie_processes)]
fn run_measured(dir: &std::path::Path, url: &str) -> (std::process::ExitStatus, i64) {
    use std::os::unix::process::ExitStatusExt;
    std::fs::create_dir_all(dir).expect("folder");
    std::fs::write(
        dir.join("users.yml"),
        users_yaml("users", url, "    batch_size: 1\n    requests_per_minute: 60000\n"),
    )
    .expect("mapping");
    let child = ebb_sync(dir, &["users.yml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ebb starts");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, by pid, with valid pointers.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    (std::process::ExitStatus::from_raw(status), usage.ru_maxrss)
}

#[tokio::test]
async fn a_fifty_megabyte_reply_is_read_no_further_than_a_mebibyte() {
    const HUGE: usize = 50 * 1024 * 1024;
    let small = serve(Router::new().fallback(any(|| async { big_reply(StatusCode::OK, 64 * 1024) }))).await;
    let huge = serve(Router::new().fallback(any(|| async { big_reply(StatusCode::OK, HUGE) }))).await;
    let ws = Workspace::new();
    let path = ws.path().to_path_buf();
    let (small_run, huge_run) = tokio::task::spawn_blocking(move || {
        let small_run = run_measured(&path.join("small"), &format!("http://{small}"));
        let huge_run = run_measured(&path.join("huge"), &format!("http://{huge}"));
        (small_run, huge_run)
    })
    .await
    .expect("join");
    assert!(small_run.0.success() && huge_run.0.success(), "{small_run:?} {huge_run:?}");
    let grown_kib = huge_run.1 - small_run.1;
    eprintln!(
        "peak RSS: {} KiB with small replies, {} KiB with 50 MB ones",
        small_run.1, huge_run.1
    );
    assert!(grown_kib < 16 * 1024, "a 50 MB reply raised peak memory by {grown_kib} KiB");
}

#[test]
fn validate_refuses_clear_http_to_another_machine_and_secrets_in_a_destination_url() {
    let ws = Workspace::new();
    let source = fixture("users/pyarrow.parquet");
    let validate = |url: &str, extra: &str| {
        ws.write("users.yml", &users_yaml("users", url, extra));
        let out = common::ebb(
            ws.path(),
            &["validate", "users.yml"],
            &[("USERS_SOURCE", source.to_str().expect("path"))],
        );
        let (stdout, stderr) = text(&out);
        (out.status.success(), stdout + &stderr)
    };
    let (ok, said) = validate("http://feedback.example.com", "");
    assert!(
        !ok && said.contains("is http:// to another machine") && said.contains("allow_http: true"),
        "{said}"
    );
    let (ok, said) = validate("http://feedback.example.com", "    allow_http: true\n");
    assert!(ok, "allowed on purpose: {said}");
    for local in [
        "http://127.0.0.1:8787",
        "http://localhost:8787",
        "http://[::1]:8787",
        "https://feedback.example.com",
    ] {
        let (ok, said) = validate(local, "");
        assert!(ok, "{local}: {said}");
    }
    for secret in [
        "https://ebb:t0psecret@feedback.example.com",
        "https://t0psecret@feedback.example.com",
        "https://feedback.example.com/v1?api_key=t0psecret",
    ] {
        let (ok, said) = validate(secret, "");
        assert!(
            !ok && said.contains("must not hold a user name, password or query string"),
            "{secret}: {said}"
        );
        assert!(!said.contains("t0psecret"), "the secret was quoted back: {said}");
    }
}

#[tokio::test]
async fn a_retry_after_date_far_off_fails_its_batch_and_holds_no_other_sync_of_the_key() {
    // The destination asks sync `a`'s requests to come back in a day, by date, and takes `b`'s.
    let app = Router::new().fallback(any(|headers: HeaderMap| async move {
        let run = headers.get("x-ebb-run").and_then(|v| v.to_str().ok()).unwrap_or("");
        if run.starts_with("a/") {
            let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc2822();
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", tomorrow)], "slow down").into_response();
        }
        (StatusCode::OK, "{}").into_response()
    }));
    let addr = serve(app).await;
    let ws = Workspace::new();
    let url = format!("http://{addr}");
    ws.write("a.yml", &users_yaml("a", &url, ""));
    ws.write("b.yml", &users_yaml("b", &url, ""));
    // Held for the day (or the hour it is capped at), `b` would never finish in this bound;
    // the child is killed then, so that the test fails rather than waits.
    let mut child = ebb_sync(ws.path(), &["a.yml", "b.yml", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ebb starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the syncs of one key were held by a wait no run would take");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let out = child.wait_with_output().expect("output");
    let (stdout, stderr) = text(&out);
    let reports: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    let by_name = |name: &str| {
        reports
            .as_array()
            .and_then(|r| r.iter().find(|r| r["sync"] == name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(by_name("a")["status"], "failed", "{reports}");
    assert!(by_name("a")["error"].as_str().unwrap_or("").contains("unreachable"), "{reports}");
    assert_eq!(by_name("b")["status"], "completed", "{reports}");
    assert_eq!(by_name("b")["counts"]["sent"], 40, "{reports}");
}
