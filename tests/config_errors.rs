//! Table of mapping snippets and the exact error each produces.

use std::path::Path;

use ebb::config::env::OverlayEnv;

const HEAD: &str =
    "name: users\nsource:\n  parquet: users.parquet\ndestination:\n  enterpret:\n    object: user\n    api_key: ${TEST_KEY:-k}\n";

fn errors(yaml: &str) -> Vec<String> {
    let env = OverlayEnv([("EBB_CFG_SET".to_string(), "value".to_string())].into_iter().collect());
    match ebb::spec::parse(Path::new("m.yml"), yaml, &env) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn config_error_table() {
    let cases: &[(&str, &str)] = &[
        ("name: users\n", "m.yml:1:1: missing field `source`"),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nmode: upsertt\n"),
            "m.yml:10:7: unknown variant `upsertt`",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nnulls: maybe\n"),
            "m.yml:10:8: unknown variant `maybe`",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nextra: 1\n"),
            "m.yml:10:1: unknown field `extra`",
        ),
        (
            &format!("{HEAD}    batch_sise: 3\nid: a\ncreated_at: b\n"),
            "(did you mean `batch_size`?)",
        ),
        (
            &format!("{HEAD}    batch_size: 0\nid: a\ncreated_at: b\n"),
            "m.yml:8:17: destination.enterpret.batch_size: must be between 1 and 15, got 0",
        ),
        (
            &format!("{HEAD}    url: ftp://example.com\nid: a\ncreated_at: b\n"),
            "m.yml:8:10: destination.enterpret.url: must be an http:// or https:// URL",
        ),
        (
            &format!("{HEAD}    url: ${{EBB_CFG_UNSET_X}}\nid: a\ncreated_at: b\n"),
            "environment variable `EBB_CFG_UNSET_X` is not set",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nattributes:\n  A: {{ column: x, value: 1 }}\n"),
            "m.yml:11:6: attributes.A: give either `column` or `value`, not both",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nattributes:\n  A: {{ type: number }}\n"),
            "attributes.A: needs `column` (a source column) or `value` (a constant)",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nattributes:\n  A: {{ column: x, split: \",\", list: true }}\n"),
            "`split` makes a list from text",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nattributes:\n  A: {{ value: abc, type: number }}\n"),
            "attributes.A.value: cannot use \"abc\" as a number constant",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nattributes:\n  A: {{ column: x, type: text }}\n"),
            "unknown variant `text`",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nmode: mirror\n"),
            "m.yml:10:7: mode: `mirror` needs a destination that can delete records",
        ),
        (&format!("{HEAD}id: ''\ncreated_at: b\n"), "m.yml:8:5: id: must name a column"),
        ("name: [x\n", "m.yml:1:"),
        (
            "name: u\nsource:\n  postgres:\n    url: mysql://h/db\n    table: t\ndestination:\n  enterpret:\n    object: user\n    api_key: ${TEST_KEY:-k}\nid: a\ncreated_at: b\n",
            "m.yml:4:10: source.postgres.url: must be a postgres:// or postgresql:// URL",
        ),
        (
            "name: u\nsource:\n  postgres:\n    url: postgres://h/db\n    table: t\n    query: select 1\ndestination:\n  enterpret:\n    object: user\n    api_key: ${TEST_KEY:-k}\nid: a\ncreated_at: b\n",
            "source.postgres: give exactly one of `table` or `query`",
        ),
        (
            "name: u\nsource:\n  postgres:\n    url: postgres://h/db\n    table: a.b.c\ndestination:\n  enterpret:\n    object: user\n    api_key: ${TEST_KEY:-k}\nid: a\ncreated_at: b\n",
            "m.yml:5:12: source.postgres.table: `a.b.c` is not a plain `[schema.]name`",
        ),
        (
            "name: u\nsource:\n  postgres:\n    url: postgres://h/db\n    table: t\n    diff: warehouse\n    state_schema: a.b\ndestination:\n  enterpret:\n    object: user\n    api_key: ${TEST_KEY:-k}\nid: a\ncreated_at: b\n",
            "m.yml:7:19: source.postgres.state_schema: `a.b` is not a plain schema name",
        ),
        (
            "name: u\nsource:\n  postgres:\n    url: postgres://h/db\n    table: t\n    diff: remote\ndestination:\n  enterpret:\n    object: user\n    api_key: ${TEST_KEY:-k}\nid: a\ncreated_at: b\n",
            "m.yml:6:11: unknown variant `remote`, expected one of in_process, warehouse",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nevery: 5m\nschedule: \"* * * * *\"\n"),
            "m.yml:11:11: schedule: give only one of `schedule`, `every` and `continuous`",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nschedule: \"*/15 * * *\"\n"),
            "m.yml:10:11: schedule: `*/15 * * *` is not a five-field cron expression",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nschedule: \"0 0 31 2 *\"\n"),
            "schedule: `0 0 31 2 *` never fires",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nevery: soon\n"),
            "m.yml:10:8: every: `soon` is not a duration such as `30s`, `5m` or `1h`",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nevery: 250ms\n"),
            "every: `250ms`: the period must be a whole number of seconds, at least 1s",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nalerts:\n  webhook_url: ${{EBB_CFG_HOOK:-hooks.example.com/t0ken}}\n"),
            "m.yml:11:16: alerts.webhook_url: must be an http:// or https:// URL",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nalerts:\n  webhook_url: ${{EBB_CFG_HOOK:-http://h/x}}\n  rejected_ratio_above: 5\n"),
            "alerts.rejected_ratio_above: must be a share between 0 and 1, got 5",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nalerts:\n  webhook_url: ${{EBB_CFG_HOOK:-http://h/x}}\n  row_count_change: {{ percent_above: 0 }}\n"),
            "alerts.row_count_change.percent_above: must be a positive percentage, got 0",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nalerts:\n  webhook_url: ${{EBB_CFG_HOOK:-http://h/x}}\n  on_failures: true\n"),
            "(did you mean `on_failure`?)",
        ),
    ];
    for (yaml, want) in cases {
        let got = errors(yaml);
        assert!(got.iter().any(|e| e.contains(want)), "for\n{yaml}\nwanted {want:?}, got {got:#?}");
    }
}

/// A secret written into a mapping, which teams commit, is an error that names the field and
/// shows the fix, and never repeats the secret.
#[test]
fn literal_secrets_are_refused_with_the_fix() {
    let with_key = |key: &str, object: &str| {
        HEAD.replace("${TEST_KEY:-k}", key)
            .replace("object: user", &format!("object: {object}"))
            + "id: a\ncreated_at: b\n"
    };
    let pg = |url: &str| {
        format!(
            "name: u\nsource:\n  postgres:\n    url: {url}\n    table: t\ndestination:\n  enterpret:\n    object: user\n    api_key: ${{TEST_KEY:-k}}\nid: a\ncreated_at: b\n"
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            with_key("sk-live-4f9a", "user"),
            "m.yml:7:14: destination.enterpret.api_key: is a secret, and a secret must not be written in a mapping: take it from the \
             environment, as in `api_key: ${ENTERPRET_USERS_API_KEY}` (`${VAR:-default}` is allowed for the keys of a local stand-in)",
        ),
        (
            with_key("sk-live-4f9a", "account"),
            "as in `api_key: ${ENTERPRET_ACCOUNTS_API_KEY}`",
        ),
        (with_key("sk-${EBB_CFG_SET}", "user"), "destination.enterpret.api_key: is a secret"),
        (
            format!("{HEAD}id: a\ncreated_at: b\nalerts:\n  webhook_url: https://hooks.slack.com/services/T0/B0/sk-live-4f9a\n"),
            "m.yml:11:16: alerts.webhook_url: is a secret, and a secret must not be written in a mapping: take it from the \
             environment, as in `webhook_url: ${ALERT_WEBHOOK_URL}`",
        ),
        (
            pg("postgres://ebb:sk-live-4f9a@db.internal:5432/analytics"),
            "m.yml:4:10: source.postgres.url: holds a password written in the mapping: take it from the environment, as in \
             `url: ${WAREHOUSE_URL}` or `postgres://user:${WAREHOUSE_PASSWORD}@host/db`, or leave it out (trust, .pgpass or PGPASSWORD)",
        ),
        (
            pg("postgres://ebb:sk-live-4f9a${EBB_CFG_SET}@db/x"),
            "source.postgres.url: holds a password",
        ),
    ];
    for (yaml, want) in &cases {
        let got = errors(yaml);
        assert!(got.iter().any(|e| e.contains(want)), "for\n{yaml}\nwanted {want:?}, got {got:#?}");
        assert!(
            !got.iter().any(|e| e.contains("sk-live")),
            "a secret is never quoted back: {got:#?}"
        );
    }
    for fine in [
        with_key("${EBB_CFG_SET}", "user"),
        with_key("${EBB_CFG_UNSET_Z:-local-users-key}", "user"),
        pg("${EBB_CFG_SET:-postgres://h/db}"),
        pg("postgres://ebb@db/analytics?sslmode=require"),
        pg("postgres://ebb:${EBB_CFG_SET}@db/analytics"),
    ] {
        let got = errors(&fine);
        assert!(
            !got.iter().any(|e| e.contains("secret") || e.contains("password")),
            "{fine}\n{got:#?}"
        );
    }
}

/// Values quoted back in errors are cut to a readable length, however long they are.
#[test]
fn huge_values_are_quoted_back_cut_short() {
    let huge = "x".repeat(5_000_000);
    // YAML keys stop at 1,024 characters; a key just under that is long enough to need cutting.
    let key = "k".repeat(1_000);
    let cases = [
        format!("{HEAD}id: a\ncreated_at: b\n{key}: 1\n"),
        format!("{HEAD}id: a\ncreated_at: b\nattributes:\n  {key}: {{ column: x, value: 1 }}\n"),
        format!("{HEAD}id: a\ncreated_at: b\nattributes:\n  A: {{ value: \"{huge}\", type: number }}\n"),
        format!("{HEAD}id: a\ncreated_at: b\nschedule: \"{huge}\"\n"),
        format!("{HEAD}id: a\ncreated_at: ${{{huge}}}\n"),
        format!("{HEAD}id: ${{E{huge}}}\ncreated_at: b\n"),
        format!("name: {huge}\n{}id: a\ncreated_at: b\n", &HEAD[12..]),
        format!("name: u\nsource:\n  postgres:\n    url: postgres://h/db\n    table: a.{huge}\ndestination:\n  enterpret:\n    object: user\n    api_key: ${{TEST_KEY:-k}}\nid: a\ncreated_at: b\n"),
    ];
    for yaml in &cases {
        let got = errors(yaml);
        assert!(!got.is_empty(), "an error for {}", &yaml[..200.min(yaml.len())]);
        let total: usize = got.iter().map(String::len).sum();
        assert!(total < 2_000, "{total} bytes of errors: {}", &got.join("\n")[..2_000.min(total)]);
        assert!(got.iter().any(|e| e.contains('…') || e.contains("must be 1 to 100")), "{got:#?}");
    }
}

#[test]
fn a_good_mapping_has_no_errors_and_interpolates() {
    let yaml = format!("{HEAD}    url: ${{EBB_CFG_UNSET_Y:-http://127.0.0.1:8787}}\nid: a\ncreated_at: b\n");
    let env = OverlayEnv(Default::default());
    let mapping = ebb::spec::parse(Path::new("/tmp/m.yml"), &yaml, &env).expect("valid");
    let ebb::destination::DestinationConfig::Enterpret(e) = &mapping.destination else {
        panic!("an enterpret mapping")
    };
    assert_eq!(e.url.as_str(), "http://127.0.0.1:8787/");
    assert_eq!(format!("{:?}", e.api_key), "SecretString(**redacted**)");
    let ebb::config::SourceConfig::Parquet { pattern, .. } = &mapping.source else {
        panic!("a parquet source")
    };
    assert_eq!(pattern, "/tmp/users.parquet", "relative to the mapping file");
}

#[test]
fn a_bad_webhook_url_is_not_quoted_back() {
    let got = errors(&format!(
        "{HEAD}id: a\ncreated_at: b\nalerts:\n  webhook_url: ${{EBB_CFG_HOOK:-hooks.example.com/t0ken}}\n"
    ));
    assert!(!got.iter().any(|e| e.contains("t0ken")), "{got:?}");
}

#[test]
fn worker_config_errors_and_defaults() {
    let dir = tempfile::tempdir().expect("dir");
    let env = OverlayEnv(Default::default());
    let write = |text: &str| {
        let path = dir.path().join("worker.yml");
        std::fs::write(&path, text).expect("write");
        path
    };
    let config = ebb::config::load_worker_config(&write("{}\n"), &env).expect("empty is valid");
    assert_eq!(config.retention, ebb::config::DEFAULT_RETENTION);
    assert!(config.alerts.is_none());
    let config = ebb::config::load_worker_config(
        &write("retention: 30d\nalerts:\n  webhook_url: ${EBB_CFG_HOOK:-https://h/x}\n"),
        &env,
    )
    .expect("valid");
    assert_eq!(config.retention.as_secs(), 30 * 86_400);
    let alerts = config.alerts.expect("alerts");
    assert!(alerts.on_failure && alerts.on_full_resync, "on by default");
    for (text, want) in [
        (
            "alerts:\n  webhook_url: https://hooks.example.com/T0/s3cret\n",
            "worker.yml:2:16: alerts.webhook_url: is a secret, and a secret must not be written in a mapping",
        ),
        ("retention: 10m\n", "worker.yml:1:12: retention: must be at least 1h"),
        ("retention: forever\n", "retention: `forever` is not a duration such as `14d`"),
        ("retain: 14d\n", "unknown field `retain`"),
    ] {
        let err = ebb::config::load_worker_config(&write(text), &env).expect_err(text).to_string();
        assert!(err.contains(want), "{text}: {err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}

/// Every mapping in the repository takes its secrets from the environment.
#[test]
fn every_mapping_in_the_repository_keeps_its_secrets_out() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let vars = [
        ("ENTERPRET_USERS_API_KEY", "value"),
        ("PROFILES_TOKEN", "value"),
        ("ENTERPRET_ACCOUNTS_API_KEY", "value"),
        ("WAREHOUSE_URL", "postgres://h/db"),
        ("SNAPSHOT", "users.parquet"),
        ("STANDIN_URL", "http://127.0.0.1:8787"),
    ];
    let env = OverlayEnv(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    let mut seen = 0;
    for folder in std::fs::read_dir(&root).expect("mappings/") {
        let folder = folder.expect("entry").path();
        if !folder.is_dir() {
            continue; // the schema, ebb.schema.json
        }
        for file in std::fs::read_dir(folder).expect("a folder of mappings") {
            let path = file.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("yml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            if let Err(e) = ebb::spec::parse(&path, &text, &env) {
                panic!("{} does not validate: {e}", path.display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 7, "found the repository's mappings ({seen})");
}

const DESTINATION_AND_KEYS: &str = "destination:\n  enterpret:\n    object: user\n    api_key: ${TEST_KEY:-k}\nid: a\ncreated_at: b\n";

/// The errors of a mapping whose `source:` block (from line 3) is `source`.
fn source_errors(source: &str) -> Vec<String> {
    errors(&format!("name: users\nsource:\n{source}{DESTINATION_AND_KEYS}"))
}

#[test]
fn object_store_source_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "  parquet: s3://exports/users/*.parquet\n  store:\n    secret_access_key: abc123\n",
            "m.yml:5:5: source.store.secret_access_key: is a credential, and credentials never go in a mapping: ebb reads \
             them from the environment, here AWS_SECRET_ACCESS_KEY",
        ),
        (
            "  parquet: s3://exports/users/*.parquet\n  store:\n    access_key_id: abc123\n",
            "source.store.access_key_id: is a credential, and credentials never go in a mapping: ebb reads them from the \
             environment, here AWS_ACCESS_KEY_ID",
        ),
        (
            "  parquet: gs://exports/users/*.parquet\n  store:\n    service_account_key: abc123\n",
            "here GOOGLE_APPLICATION_CREDENTIALS",
        ),
        (
            "  parquet: az://exports/users/*.parquet\n  store:\n    account_key: abc123\n",
            "here AZURE_STORAGE_ACCOUNT_KEY",
        ),
        (
            "  parquet: s3://exports/users/*.parquet\n  store:\n    endpointt: http://x\n",
            "m.yml:5:5: source.store.endpointt: unknown field `endpointt`, expected one of `region`, `endpoint`, `allow_http` \
             (did you mean `endpoint`?)",
        ),
        (
            "  parquet: s3://exports/users/*.parquet\n  store:\n    endpoint: http://127.0.0.1:9000\n",
            "m.yml:5:15: source.store.endpoint: is http://: set `allow_http: true` to allow a store without TLS",
        ),
        (
            "  parquet: s3://exports/users/*.parquet\n  store:\n    endpoint: ftp://127.0.0.1:9000\n",
            "source.store.endpoint: must be an http:// or https:// URL",
        ),
        (
            "  parquet: gs://exports/users/*.parquet\n  store:\n    region: eu-west-1\n",
            "source.store.region: is for s3:// sources",
        ),
        (
            "  parquet: s3://exports/users/*.parquet\n  store:\n    allow_http: maybe\n",
            "source.store.allow_http: must be true or false, got `maybe`",
        ),
        (
            "  parquet: users.parquet\n  store:\n    region: eu-west-1\n",
            "m.yml:5:5: source.store: is for an object-store source (`s3://`, `gs://`, `az://`); this one is a local path",
        ),
        (
            "  parquet: s3://exports/users/part-*.parquet\n  latest: true\n",
            "m.yml:4:11: source.latest: picks the newest folder that the path's first wildcard matches, and this path has no \
             wildcard in a folder",
        ),
        (
            "  postgres:\n    url: postgres://h/db\n    table: users\n  latest: true\n",
            "m.yml:6:11: source.latest: goes with a `parquet:` source, not `postgres:`",
        ),
        (
            "  parquet: users.parquet\n  postgres:\n    url: postgres://h/db\n    table: users\n",
            "source: give exactly one of `parquet` or `postgres`",
        ),
        (
            "  parquet: s3://exports/users/dt=*/\n  require_marker: done/_SUCCESS\n",
            "source.require_marker: must be the name of an object in the folder, such as `_SUCCESS`",
        ),
        ("  parquet: s3://exports/\n", "source.parquet: names a whole bucket"),
        ("  parquet: s3://exports/users/[x.parquet\n", "source.parquet: bad glob"),
        (
            "  parquet: ftp://host/users.parquet\n",
            "source.parquet: is not a local path, and ebb reads no such URL",
        ),
    ];
    for (source, want) in cases {
        let got = source_errors(source);
        assert!(got.iter().any(|e| e.contains(want)), "{source}\nwanted: {want}\ngot: {got:#?}");
        assert!(!got.iter().any(|e| e.contains("abc123")), "a credential was quoted back: {got:#?}");
    }
}

#[test]
fn credentials_in_an_object_store_url_are_refused_and_not_quoted_back() {
    for url in [
        "s3://AKIDEXAMPLE:t0psecret@exports/users/*.parquet",
        "s3://exports/users/a.parquet?X-Amz-Credential=x&X-Amz-Signature=t0psecret",
        "az://exports/users/a.parquet?sv=2024-01-01&sig=t0psecret",
    ] {
        let got = source_errors(&format!("  parquet: {url}\n"));
        assert!(
            got.iter()
                .any(|e| e.contains("credentials come from the environment") || e.contains("holds credentials")),
            "{url}: {got:#?}"
        );
        assert!(!got.iter().any(|e| e.contains("t0psecret")), "{got:#?}");
    }
}

#[test]
fn an_object_store_source_takes_its_settings_and_the_clouds_variables() {
    let yaml = format!(
        "name: users\nsource:\n  parquet: s3://acme-exports/users/dt=*/part-*.parquet\n  latest: true\n  require_marker: _SUCCESS\n  \
         store:\n    region: ${{EBB_CFG_REGION:-eu-west-1}}\n    endpoint: ${{EBB_CFG_ENDPOINT}}\n    allow_http: true\n{DESTINATION_AND_KEYS}"
    );
    let env = OverlayEnv(
        [
            ("EBB_CFG_ENDPOINT", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    let mapping = ebb::spec::parse(Path::new("/tmp/m.yml"), &yaml, &env).expect("valid");
    let ebb::config::SourceConfig::Parquet {
        pattern, store, folders, ..
    } = &mapping.source
    else {
        panic!("a parquet source")
    };
    assert_eq!(
        pattern, "s3://acme-exports/users/dt=*/part-*.parquet",
        "a URL is not made a local path"
    );
    assert!(folders.latest);
    assert_eq!(folders.marker.as_deref(), Some("_SUCCESS"));
    let store = store.as_ref().expect("an object store");
    assert_eq!(store.root, "s3://acme-exports");
    assert_eq!(store.key_pattern, "users/dt=*/part-*.parquet");
    assert_eq!(store.region.as_deref(), Some("eu-west-1"));
    assert_eq!(store.endpoint.as_ref().map(|u| u.as_str()), Some("http://127.0.0.1:9000/"));
    assert!(store.allow_http);
    let names: Vec<&str> = store.env.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        names.contains(&"AWS_ACCESS_KEY_ID") && names.contains(&"AWS_SECRET_ACCESS_KEY"),
        "{names:?}"
    );
    assert!(
        !format!("{mapping:?}").contains("s3cr3t-value"),
        "the variables are kept as secrets"
    );
}

#[test]
fn an_unset_source_variable_is_the_one_error_about_the_source() {
    let got = source_errors(
        "  parquet: ${EBB_CFG_UNSET_SOURCE}\n  latest: true\n  store:\n    endpoint: http://127.0.0.1:9000\n    allow_http: true\n",
    );
    let about_source: Vec<&String> = got.iter().filter(|e| e.contains("source.")).collect();
    assert_eq!(about_source.len(), 1, "{got:#?}");
    assert!(
        about_source[0].contains("source.parquet: environment variable `EBB_CFG_UNSET_SOURCE` is not set"),
        "{got:#?}"
    );
}
