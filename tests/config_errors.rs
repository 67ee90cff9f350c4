//! Table of mapping snippets and the exact error each produces.

use std::path::Path;

use ebb::config::env::OverlayEnv;

const HEAD: &str = "name: users\nsource:\n  parquet: users.parquet\ndestination:\n  enterpret:\n    object: user\n    api_key: k\n";

fn errors(yaml: &str) -> Vec<String> {
    let env = OverlayEnv([("EBB_CFG_SET".to_string(), "value".to_string())].into_iter().collect());
    match ebb::config::parse(Path::new("m.yml"), yaml, &env) {
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
            "name: u\nsource:\n  postgres:\n    url: mysql://h/db\n    table: t\ndestination:\n  enterpret:\n    object: user\n    api_key: k\nid: a\ncreated_at: b\n",
            "m.yml:4:10: source.postgres.url: must be a postgres:// or postgresql:// URL",
        ),
        (
            "name: u\nsource:\n  postgres:\n    url: postgres://h/db\n    table: t\n    query: select 1\ndestination:\n  enterpret:\n    object: user\n    api_key: k\nid: a\ncreated_at: b\n",
            "source.postgres: give exactly one of `table` or `query`",
        ),
        (
            "name: u\nsource:\n  postgres:\n    url: postgres://h/db\n    table: a.b.c\ndestination:\n  enterpret:\n    object: user\n    api_key: k\nid: a\ncreated_at: b\n",
            "m.yml:5:12: source.postgres.table: `a.b.c` is not a plain `[schema.]name`",
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
            &format!("{HEAD}id: a\ncreated_at: b\nalerts:\n  webhook_url: hooks.example.com/t0ken\n"),
            "m.yml:11:16: alerts.webhook_url: must be an http:// or https:// URL",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nalerts:\n  webhook_url: http://h/x\n  rejected_ratio_above: 5\n"),
            "alerts.rejected_ratio_above: must be a share between 0 and 1, got 5",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nalerts:\n  webhook_url: http://h/x\n  row_count_change: {{ percent_above: 0 }}\n"),
            "alerts.row_count_change.percent_above: must be a positive percentage, got 0",
        ),
        (
            &format!("{HEAD}id: a\ncreated_at: b\nalerts:\n  webhook_url: http://h/x\n  on_failures: true\n"),
            "(did you mean `on_failure`?)",
        ),
    ];
    for (yaml, want) in cases {
        let got = errors(yaml);
        assert!(got.iter().any(|e| e.contains(want)), "for\n{yaml}\nwanted {want:?}, got {got:#?}");
    }
}

#[test]
fn a_good_mapping_has_no_errors_and_interpolates() {
    let yaml = format!("{HEAD}    url: ${{EBB_CFG_UNSET_Y:-http://127.0.0.1:8787}}\nid: a\ncreated_at: b\n");
    let env = OverlayEnv(Default::default());
    let mapping = ebb::config::parse(Path::new("/tmp/m.yml"), &yaml, &env).expect("valid");
    let ebb::config::DestinationConfig::Enterpret(e) = &mapping.destination;
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
        "{HEAD}id: a\ncreated_at: b\nalerts:\n  webhook_url: hooks.example.com/t0ken\n"
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
    let config = ebb::config::load_worker_config(&write("retention: 30d\nalerts:\n  webhook_url: https://h/x\n"), &env).expect("valid");
    assert_eq!(config.retention.as_secs(), 30 * 86_400);
    let alerts = config.alerts.expect("alerts");
    assert!(alerts.on_failure && alerts.on_full_resync, "on by default");
    for (text, want) in [
        ("retention: 10m\n", "worker.yml:1:12: retention: must be at least 1h"),
        ("retention: forever\n", "retention: `forever` is not a duration such as `14d`"),
        ("retain: 14d\n", "unknown field `retain`"),
    ] {
        let err = ebb::config::load_worker_config(&write(text), &env).expect_err(text).to_string();
        assert!(err.contains(want), "{text}: {err}");
    }
}
