//! The `ebb` binary as a user runs it: exit codes, messages, and secrets.

use crate::common::*;
use std::time::Duration;

fn users_source() -> String {
    fixture("users/pyarrow.parquet").display().to_string()
}

#[test]
fn bad_yaml_reports_file_line_and_column() {
    let ws = Workspace::new();
    let path = ws.write("broken.yml", "name: users\nsource:\n  parquet: x.parquet\n destination: [\n");
    let out = ebb(ws.path(), &["validate", "broken.yml"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.starts_with(&format!(
            "error: {}:",
            path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
        )),
        "{err}"
    );
    let position: Vec<&str> = first.split(':').collect();
    assert!(
        position.len() > 3 && position[2].parse::<u32>().is_ok() && position[3].parse::<u32>().is_ok(),
        "line:col in {first}"
    );
}

#[test]
fn validate_reports_every_problem_with_positions_and_hints() {
    let ws = Workspace::new();
    let yaml = format!(
        "name: users\nsource:\n  parquet: {}\ndestination:\n  enterpret:\n    object: user\n    api_key: ${{EBB_TEST_SURELY_UNSET}}\n    batch_size: 40\nmode: mirror\nid: user_idd\ncreated_at: signup_at\nattributes:\n  Name: full_nme\n  Active: {{ column: is_active, type: number }}\n",
        users_source()
    );
    ws.write("m.yml", &yaml);
    let out = ebb(ws.path(), &["validate", "m.yml"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    for want in [
        "m.yml:7:14: destination.enterpret.api_key: environment variable `EBB_TEST_SURELY_UNSET` is not set",
        "m.yml:8:17: destination.enterpret.batch_size: must be between 1 and 15, got 40",
        "m.yml:9:7: mode: `mirror` needs a destination that can delete records",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }

    // With the config fixed, the column checks run and every missing column is named.
    let fixed = yaml
        .replace("${EBB_TEST_SURELY_UNSET}", "${EBB_TEST_SURELY_UNSET:-k}")
        .replace("batch_size: 40", "batch_size: 10")
        .replace("mode: mirror", "mode: upsert");
    ws.write("m.yml", &fixed);
    let out = ebb(ws.path(), &["validate", "m.yml"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    for want in [
        "m.yml:10:5: id: column `user_idd` not found in",
        "(did you mean `user_id`?)",
        "m.yml:13:9: attributes.Name: column `full_nme` not found in",
        "(did you mean `full_name`?)",
        "attributes.Active.column: column `is_active` is boolean and cannot be coerced to number",
        "3 problems found",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn a_5_mb_column_name_gets_a_short_error() {
    let ws = Workspace::new();
    let huge = "c".repeat(5_000_000);
    let yaml = format!(
        "name: users\nsource:\n  parquet: {}\ndestination:\n  enterpret:\n    object: user\n    api_key: ${{K:-k}}\nid: {huge}\ncreated_at: signup_at\nattributes:\n  Name: {{ column: {huge} }}\n",
        users_source()
    );
    ws.write("m.yml", &yaml);
    let out = ebb(ws.path(), &["validate", "m.yml"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.len() < 2_000, "{} bytes of errors", err.len());
    assert!(
        err.contains("m.yml:8:5: id: column `ccccc") && err.contains("… (5000000 characters)` not found in"),
        "{err}"
    );
    assert!(err.contains("m.yml:11:9: attributes.Name.column: column `ccccc"), "{err}");
}

#[test]
fn unknown_keys_get_a_did_you_mean() {
    let ws = Workspace::new();
    ws.write("m.yml", "name: u\nsource:\n  parquet: x\ndestination:\n  enterpret:\n    object: user\n    api_key: ${TEST_KEY:-k}\nid: a\ncreated_at: b\nattributes:\n  A: { colum: x }\n");
    let out = ebb(ws.path(), &["validate", "m.yml"], &[]);
    let (_, err) = text(&out);
    assert!(
        err.contains("m.yml:11:") && err.contains("unknown field `colum`") && err.contains("(did you mean `column`?)"),
        "{err}"
    );
}

#[test]
fn unsupported_and_missing_sources_are_named() {
    let ws = Workspace::new();
    let yaml = format!(
        "name: odd\nsource:\n  parquet: {}\ndestination:\n  enterpret:\n    object: user\n    api_key: ${{TEST_KEY:-k}}\nid: id\ncreated_at: id\nattributes:\n  Blob: blob\n  Nested: nested\n",
        fixture("unsupported.parquet").display()
    );
    ws.write("m.yml", &yaml);
    let (_, err) = text(&ebb(ws.path(), &["validate", "m.yml"], &[]));
    assert!(err.contains("column `blob` has type Binary, which ebb cannot read"), "{err}");
    assert!(err.contains("column `nested` has type Struct"), "{err}");
    assert!(
        !err.contains("created_at: column `id` is string"),
        "a string created_at is allowed: {err}"
    );

    ws.write(
        "gone.yml",
        &yaml.replace(&fixture("unsupported.parquet").display().to_string(), "no/such/*.parquet"),
    );
    let out = ebb(ws.path(), &["validate", "gone.yml"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("gone.yml:3:12: source.parquet:") && err.contains("matches no Parquet file"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_column_sends_nothing() {
    let ws = Workspace::new();
    let si = stand_in().await;
    ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let missing = fixture("users_missing_column.parquet").display().to_string();
    let dir = ws.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || ebb(&dir, &["sync", "users.yml"], &[("USERS_SOURCE", &missing)]))
        .await
        .expect("join");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("users: failed") && stdout.contains("column `is_active` not found"),
        "{stdout}"
    );
    assert_eq!(si.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_appears_nowhere() {
    const KEY: &str = "sk-live-9f8e7d6c5b4a";
    let ws = Workspace::new();
    let si = stand_in_with(ebb::standin::StandInConfig {
        users_key: KEY.into(),
        ..Default::default()
    })
    .await;
    ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let src = users_source();
    let dir = ws.path().to_path_buf();
    let outputs = tokio::task::spawn_blocking(move || {
        let envs = [("USERS_SOURCE", src.as_str()), ("TEST_USERS_KEY", KEY)];
        let wrong = [("USERS_SOURCE", src.as_str()), ("TEST_USERS_KEY", "sk-live-wrong-0000")];
        vec![
            ebb(&dir, &["--log", "trace", "--log-format", "json", "sync", "users.yml"], &envs),
            ebb(&dir, &["--log", "trace", "sync", "--full", "users.yml"], &envs),
            ebb(&dir, &["--log", "debug", "preview", "users.yml", "--json"], &envs),
            ebb(&dir, &["--log", "debug", "test", "users.yml", "--records", "3"], &envs),
            ebb(&dir, &["--log", "debug", "status", "users.yml", "--json"], &envs),
            ebb(&dir, &["--log", "debug", "sync", "users.yml", "--full"], &wrong),
        ]
    })
    .await
    .expect("join");
    assert_eq!(outputs[0].status.code(), Some(0), "{:?}", text(&outputs[0]));
    assert_eq!(outputs[5].status.code(), Some(1), "a refused key fails the run");
    for out in &outputs {
        let (stdout, stderr) = text(out);
        assert!(
            !stdout.contains("sk-live") && !stderr.contains("sk-live"),
            "key leaked:\n{stdout}\n{stderr}"
        );
    }
    let (stdout, _) = text(&outputs[5]);
    assert!(stdout.contains("HTTP 401"), "{stdout}");
    let db = std::fs::read(ws.path().join(".ebb/state.db")).expect("state file");
    let wal = std::fs::read(ws.path().join(".ebb/state.db-wal")).unwrap_or_default();
    let needle = KEY.as_bytes();
    assert!(
        !db.windows(needle.len()).any(|w| w == needle) && !wal.windows(needle.len()).any(|w| w == needle),
        "key in the state database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_status_reset_round_trip() {
    let ws = Workspace::new();
    let si = stand_in().await;
    ws.write("users.yml", &users_yaml("users", &si.url(), ""));
    let bad = fixture("users_invalid.parquet").display().to_string();
    let dir = ws.path().to_path_buf();
    let (sync, status, status_json, reset, again) = tokio::task::spawn_blocking(move || {
        let envs = [("USERS_SOURCE", bad.as_str())];
        (
            ebb(&dir, &["sync", "users.yml"], &envs),
            ebb(&dir, &["status"], &envs),
            ebb(&dir, &["status", "users.yml", "--json"], &envs),
            ebb(&dir, &["reset", "users.yml"], &envs),
            ebb(&dir, &["sync", "users.yml"], &envs),
        )
    })
    .await
    .expect("join");
    let (out, err) = text(&sync);
    assert_eq!(sync.status.code(), Some(0), "rejected rows do not fail a run: {out}{err}");
    assert!(
        out.contains("users: completed") && out.contains("invalid 8") && out.contains("sent 2"),
        "{out}"
    );
    let (out, _) = text(&status);
    // Long reasons wrap at 100 columns: compare the words.
    let words = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("run 1 completed") && words.contains("id is null") && words.contains("is in the future"),
        "{out}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&status_json.stdout).expect("status --json is JSON");
    assert_eq!(doc[0]["sync"], "users");
    assert_eq!(doc[0]["runs"][0]["counts"]["invalid"], 8);
    assert_eq!(doc[0]["rejections"].as_array().map(Vec::len), Some(7));
    assert!(text(&reset).0.contains("forgot 2 records"));
    assert!(text(&again).0.contains("sent 2"));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(si.records("users").iter().all(|r| r.received_count == 2));
}

#[test]
fn preview_json_is_one_document_and_creates_no_state() {
    let ws = Workspace::new();
    ws.write("users.yml", &users_yaml("users", "http://127.0.0.1:9", ""));
    let out = ebb(
        ws.path(),
        &["preview", "users.yml", "--json", "--limit", "1"],
        &[("USERS_SOURCE", &users_source())],
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["counts"]["new"], 40);
    assert_eq!(doc["requests"].as_array().map(Vec::len), Some(1));
    // The body is exactly what would be POSTed: id, createdAt, attributes, in that order.
    let body = serde_json::to_string(&doc["requests"][0]["body"]).expect("body");
    assert!(body.starts_with("{\"users\":[{\"id\":\"u-00000\",\"createdAt\":"), "{body}");
    assert!(!ws.path().join(".ebb").exists(), "a preview must not create state");
}

#[test]
fn demo_runs_a_real_sync_twice() {
    let ws = Workspace::new();
    let out = ebb(ws.path(), &["demo"], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("sample-users: completed — sent 300 of 300 rows"), "{stdout}");
    assert!(stdout.contains("sample-users: completed — sent 0 of 300 rows"), "{stdout}");
    assert!(stdout.contains("the stand-in holds 300 users and 60 accounts"), "{stdout}");
}

#[test]
fn json_logs_are_one_json_object_per_line() {
    let ws = Workspace::new();
    ws.write("users.yml", &users_yaml("users", "http://127.0.0.1:9", ""));
    let out = ebb(
        ws.path(),
        &["--log", "info", "--log-format", "json", "preview", "users.yml"],
        &[("USERS_SOURCE", &users_source())],
    );
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.iter().any(|l| l.contains("plan ready")), "{err}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some() && v.get("fields").is_some(), "{line}");
    }
}

#[test]
fn the_quick_start_cargo_run_picks_the_ebb_binary() {
    // `cargo run -- demo` refuses to guess between ebb and ebb-bench without `default-run`.
    let manifest = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.lines().any(|l| l.trim() == "default-run = \"ebb\""),
        "Cargo.toml sets default-run = \"ebb\""
    );
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    assert!(readme.contains("cargo run -- demo"), "the README's quick start is what this checks");
}

#[test]
fn help_never_shows_a_password_held_in_ebb_state() {
    let ws = Workspace::new();
    let state = "postgres://ebb:hunter2-state-pw@db.internal/ebb";
    for args in [&["--help"][..], &["sync", "--help"], &["worker", "--help"], &["status", "--help"]] {
        let out = ebb(ws.path(), args, &[("EBB_STATE", state)]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(stdout.contains("--state"), "{args:?} documents --state: {stdout}");
        assert!(
            !stdout.contains("hunter2") && !stderr.contains("hunter2") && !stdout.contains("db.internal"),
            "{args:?}: {stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_command_fits_in_100_columns() {
    let ws = Workspace::new();
    let si = stand_in().await;
    // A long sync name and long reasons: the widest lines these commands print.
    let name = "customer-success-enterprise-accounts-weekly";
    ws.write("users.yml", &users_yaml(name, &si.url(), ""));
    let bad = fixture("users_invalid.parquet").display().to_string();
    let dir = ws.path().to_path_buf();
    let outputs = tokio::task::spawn_blocking(move || {
        let envs = [("USERS_SOURCE", bad.as_str())];
        let run = |args: &[&str]| ebb(&dir, args, &envs);
        assert_eq!(run(&["sync", "users.yml"]).status.code(), Some(0));
        assert_eq!(run(&["suppress", "users.yml", "u-00000"]).status.code(), Some(0));
        [
            ("sync", run(&["sync", "users.yml", "--full"])),
            ("status", run(&["status"])),
            ("history", run(&["history", name])),
            ("rejected", run(&["rejected", "users.yml"])),
            ("record", run(&["record", "users.yml", "u-00009"])),
            ("preview", run(&["preview", "users.yml"])),
            ("preview --explain", run(&["preview", "users.yml", "--explain"])),
            ("suppressed", run(&["suppressed", "users.yml"])),
        ]
    })
    .await
    .expect("join");
    for (command, out) in outputs {
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{command}: {stdout}{stderr}");
        assert!(!stdout.is_empty(), "{command} printed something");
        for line in stdout.lines() {
            assert!(
                line.chars().count() <= 100,
                "{command}: a line of {} columns:\n{line}",
                line.chars().count()
            );
        }
    }
}

/// `ebb preview … | head`: the reader goes away after a line, and ebb ends quietly (by
/// SIGPIPE, as other command-line tools do), not with "internal error: failed printing".
#[test]
fn output_into_a_pipe_closed_early_ends_quietly() {
    use std::io::Read;
    use std::sync::Arc;

    use arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    let ws = Workspace::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("signup_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ]));
    // 45 rows of 5 KB names: three request bodies of about 75 KB, more than a pipe holds.
    let ids: Vec<String> = (0..45).map(|i| format!("u-{i:03}")).collect();
    let names: Vec<String> = (0..45).map(|i| format!("{i}").repeat(5000)[..5000].to_string()).collect();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(names)),
            Arc::new(TimestampMicrosecondArray::from(vec![1_700_000_000_000_000; 45]).with_timezone("UTC")),
        ],
    )
    .expect("batch");
    let file = std::fs::File::create(ws.path().join("people.parquet")).expect("create");
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    ws.write(
        "people.yml",
        "name: people\nsource:\n  parquet: people.parquet\ndestination:\n  enterpret:\n    object: user\n    api_key: ${KEY:-local-users-key}\n    url: http://127.0.0.1:9\nid: user_id\ncreated_at: signup_at\nattributes:\n  Name: name\n",
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ebb"))
        .current_dir(ws.path())
        .args(["preview", "people.yml", "--limit", "3"])
        .env_remove("EBB_STATE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ebb starts");
    let mut head = [0u8; 64];
    child.stdout.take().expect("stdout").read_exact(&mut head).expect("the first bytes");
    let out = child.wait_with_output().expect("ebb ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("internal error"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}
