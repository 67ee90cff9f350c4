//! PII controls: a hashed attribute is sent as the HMAC-SHA256 of its value under the salt, the same on
//! every run; a redacted one is never sent. Neither value, nor the salt, shows up raw in a log
//! line, a rejection, a preview, the status or the state database.

use std::collections::BTreeSet;

use crate::common::*;
use arrow::array::{Array, AsArray};
use hmac::{Hmac, Mac};

const SALT: &str = "s4lt-for-the-pii-test-0123456789abcdef";

/// Every value of a string column of a fixture.
fn column(file: &str, name: &str) -> Vec<String> {
    let file = std::fs::File::open(fixture(file)).expect("fixture");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let mut values = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let array = batch.column_by_name(name).expect("column");
        let array = arrow::compute::cast(array, &arrow::datatypes::DataType::Utf8).expect("text");
        let strings = array.as_string::<i32>();
        values.extend(
            (0..strings.len())
                .filter(|&i| strings.is_valid(i))
                .map(|i| strings.value(i).to_string()),
        );
    }
    values
}

fn mapping(url: &str) -> String {
    format!(
        r#"name: pii
source:
  parquet: ${{USERS_SOURCE}}
destination:
  enterpret:
    object: user
    api_key: ${{TEST_USERS_KEY:-local-users-key}}
    url: {url}
id: user_id
created_at: signup_at
attributes:
  Email: {{ column: email, hash: hmac-sha256, salt_env: PII_SALT }}
  Name: {{ column: full_name, redact: true }}
  Age: {{ column: age, type: number }}
"#
    )
}

#[tokio::test]
async fn hashed_values_are_stable_and_neither_they_nor_redacted_ones_nor_the_salt_appear_raw_anywhere() {
    let si = stand_in().await;
    let ws = Workspace::new();
    ws.write("m.yml", &mapping(&si.url()));
    let source = fixture("users_invalid.parquet").display().to_string();
    let state = ws.state_url();
    let envs = [("USERS_SOURCE", source.as_str()), ("PII_SALT", SALT), ("EBB_STATE", state.as_str())];
    let dir = ws.path().to_path_buf();
    let run = |args: &'static [&'static str]| {
        let (dir, envs) = (dir.clone(), envs.map(|(k, v)| (k, v.to_string())));
        tokio::task::spawn_blocking(move || {
            let out = ebb(&dir, args, &envs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
            let (stdout, stderr) = text(&out);
            (out.status.code(), stdout, stderr)
        })
    };
    let mut seen = String::new();
    let mut outputs = Vec::new();
    for args in [
        &["--log", "trace", "preview", "m.yml", "--json"][..],
        &["--log", "trace", "sync", "m.yml"],
        &["--log", "trace", "sync", "m.yml", "--json"],
        &["--log", "trace", "status", "m.yml", "--json"],
        &["--log", "trace", "test", "m.yml", "--records", "3"],
        &["validate", "m.yml"],
    ] {
        let (code, stdout, stderr) = run(args).await.expect("ran");
        assert_eq!(code, Some(0), "{args:?}: {stdout}{stderr}");
        seen.push_str(&stdout);
        seen.push_str(&stderr);
        outputs.push(stdout);
    }
    let again: serde_json::Value = serde_json::from_str(&outputs[2]).expect("the second sync's JSON");
    assert_eq!(again[0]["counts"]["sent"], 0, "the second sync sent nothing: the hashes are stable");
    let raw_state = std::fs::read(ws.path().join("state.db")).expect("state file");
    let wal = std::fs::read(ws.path().join("state.db-wal")).unwrap_or_default();
    let state_text = String::from_utf8_lossy(&[raw_state, wal].concat()).to_string();

    let emails = column("users_invalid.parquet", "email");
    let names = column("users_invalid.parquet", "full_name");
    assert!(emails.len() >= 5 && names.len() >= 5, "the fixture has values to look for");
    for secret in emails.iter().chain(names.iter()).map(String::as_str).chain([SALT]) {
        assert!(!seen.contains(secret), "{secret:?} in the output:\n{seen}");
        assert!(!state_text.contains(secret), "{secret:?} in the state database");
        let received = serde_json::to_string(&si.records("users").iter().map(|r| &r.attributes).collect::<Vec<_>>()).expect("json");
        assert!(!received.contains(secret), "{secret:?} reached the destination");
    }
    assert!(
        seen.contains("trace") || seen.contains("TRACE") || seen.contains("DEBUG") || seen.contains("plan ready"),
        "the logs were on"
    );

    let held = si.records("users");
    assert!(
        held.iter().all(|r| r.attributes.get("Name").is_none()),
        "a redacted attribute is never sent"
    );
    let hashed: BTreeSet<String> = held
        .iter()
        .filter_map(|r| r.attributes["Email"]["s"][0].as_str().map(str::to_string))
        .collect();
    let expected: BTreeSet<String> = emails
        .iter()
        .map(|e| {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SALT.as_bytes()).expect("key");
            mac.update(e.as_bytes());
            mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
        })
        .collect();
    assert!(
        !hashed.is_empty() && hashed.is_subset(&expected),
        "lowercase hex HMAC-SHA256 keyed by the salt: {hashed:?}"
    );
    // Nothing stored lets a reader test guesses of the salt: no plain SHA-256 of it either.
    let salt_sha: String = sha2::Digest::finalize(sha2::Digest::chain_update(<sha2::Sha256 as sha2::Digest>::new(), SALT))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!state_text.contains(&salt_sha[..32]), "a plain hash of the salt is in the state");
    // A new salt is seen: the next sync sends every record under the new values.
    let mut new_salt = envs.map(|(k, v)| (k, v.to_string()));
    new_salt[1].1 = "another-salt-of-32-bytes-or-more-42".into();
    let (dir, args) = (dir.clone(), ["sync", "m.yml", "--json"]);
    let out = tokio::task::spawn_blocking(move || ebb(&dir, &args, &new_salt.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()))
        .await
        .expect("ran");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let counts = &report[0]["counts"];
    assert!(counts["unchanged"] == 0 && counts["sent"].as_u64() > Some(0), "{report}");
    assert_eq!(
        counts["sent"].as_u64(),
        Some(counts["source"].as_u64().unwrap_or(0) - counts["invalid"].as_u64().unwrap_or(0))
    );
}

#[test]
fn pii_settings_are_checked_at_validate_time_without_quoting_the_salt() {
    let parse = |attrs: &str, pairs: &[(&str, &str)]| {
        let yaml = format!(
            "{}{attrs}",
            mapping("http://127.0.0.1:1")
                .split("attributes:\n")
                .next()
                .unwrap_or_default()
                .to_string()
                + "attributes:\n"
        );
        match ebb::spec::parse(std::path::Path::new("/tmp/m.yml"), &yaml, &env(pairs)) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let salt = [
        ("PII_SALT", SALT),
        ("SHORT_SALT", "pepper-31-bytes-long-0123456789"),
        ("USERS_SOURCE", "/tmp/users.parquet"),
    ];
    assert_eq!(parse("  E: { column: email, hash: hmac-sha256, salt_env: PII_SALT }\n", &salt), "");
    let cases = [
        (
            "  E: { column: email, hash: hmac-sha256 }\n",
            "`hash: hmac-sha256` needs `salt_env: VAR`",
        ),
        (
            "  E: { column: email, hash: hmac-sha256, salt_env: EBB_TEST_NO_SUCH_SALT }\n",
            "salt_env: names `EBB_TEST_NO_SUCH_SALT`, which is not set",
        ),
        (
            "  E: { column: email, salt_env: PII_SALT }\n",
            "`salt_env` goes with `hash: hmac-sha256`",
        ),
        (
            "  E: { column: email, hash: hmac-sha256, salt_env: PII_SALT, redact: true }\n",
            "give `hash` or `redact: true`, not both",
        ),
        (
            "  E: { column: age, hash: hmac-sha256, salt_env: PII_SALT, type: number }\n",
            "a hashed value is text",
        ),
        // The old form: refused, with the way over and what it changes.
        (
            "  E: { column: email, hash: sha256, salt_env: PII_SALT }\n",
            "m.yml:12:6: attributes.E.hash: `sha256` is no longer taken: use `hash: hmac-sha256`",
        ),
        (
            "  E: { column: email, hash: sha256, salt_env: PII_SALT }\n",
            "`ebb reset SYNC` then sends every record",
        ),
        (
            "  E: { column: email, hash: hmac-sha256, salt_env: SHORT_SALT }\n",
            "salt_env: names `SHORT_SALT`, which holds fewer than 32 bytes",
        ),
        ("  E: { column: email, hash: md5, salt_env: PII_SALT }\n", "md5"),
        ("  E: { value: x, redact: true }\n", "apply to columns, not to a constant"),
    ];
    for (attrs, want) in cases {
        let got = parse(attrs, &salt);
        assert!(got.contains(want), "{attrs}: want {want:?}, got {got}");
        assert!(!got.contains(SALT) && !got.contains("pepper-31"), "the salt is never quoted: {got}");
    }
}
