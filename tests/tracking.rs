//! Sync tracking: the payload each acknowledged record was sent with, what `ebb record` shows of
//! it, and `ebb preview --explain`'s field-by-field changes against it.

use crate::common::*;

/// A `people` table in a schema of its own, and a users mapping over it.
struct People {
    schema: TempSchema,
    pool: sqlx::PgPool,
}

impl People {
    async fn new() -> People {
        let schema = TempSchema::new("ebb_track");
        let pool = sqlx::PgPool::connect(&database_url()).await.expect("PostgreSQL at DATABASE_URL");
        let s = &schema.name;
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA \"{s}\";
             CREATE TABLE \"{s}\".people (user_id text PRIMARY KEY, name text, age int, cities text[], persona text, created bigint NOT NULL);
             INSERT INTO \"{s}\".people VALUES
               ('p-1', 'Ada', 45, ARRAY['Arrakis'], 'dev', 1700000001),
               ('p-2', 'Grace', 37, ARRAY['Caladan'], NULL, 1700000002),
               ('p-3', 'Linus', 29, ARRAY[]::text[], 'ops', 1700000003);"
        ))
        .execute(&pool)
        .await
        .expect("people table");
        People { schema, pool }
    }

    async fn exec(&self, sql: &str) {
        sqlx::raw_sql(&sql.replace("{s}", &format!("\"{}\"", self.schema.name)))
            .execute(&self.pool)
            .await
            .expect("warehouse SQL");
    }

    fn mapping(&self, url: &str) -> String {
        format!(
            "name: people\nsource:\n  postgres:\n    url: ${{WAREHOUSE_URL}}\n    table: {}.people\n\
             destination:\n  enterpret:\n    object: user\n    api_key: ${{KEY:-local-users-key}}\n    url: {url}\n\
             id: user_id\ncreated_at: created\nattributes:\n  Name: name\n  Age: {{ column: age, type: number }}\n\
             \x20 Location: {{ column: cities, list: true }}\n  persona: persona\n",
            self.schema.name
        )
    }
}

fn envs() -> Vec<(&'static str, String)> {
    vec![("WAREHOUSE_URL", database_url())]
}

fn run_cli(ws: &Workspace, args: &[&str]) -> std::process::Output {
    let mut full = vec!["--state", &ws.state_url()].into_iter().map(str::to_string).collect::<Vec<_>>();
    full.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    let envs = envs();
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ebb(ws.path(), &refs, &envs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_says_what_changed_field_by_field_and_record_shows_what_the_destination_got() {
    let people = People::new().await;
    let si = stand_in().await;
    let ws = Workspace::new();
    ws.write("people.yml", &people.mapping(&si.url()));
    let ws_ref = &ws;

    let first = tokio::task::block_in_place(|| run_cli(ws_ref, &["sync", "people.yml"]));
    assert_eq!(first.status.code(), Some(0), "{:?}", text(&first));

    // One record changes a value, gains a list item and loses an attribute; one is new.
    people
        .exec("UPDATE {s}.people SET age = 46, cities = ARRAY['Arrakis', 'Dune'], persona = NULL WHERE user_id = 'p-1'")
        .await;
    people
        .exec("INSERT INTO {s}.people VALUES ('p-4', 'Margaret', 51, ARRAY['Boston'], 'lead', 1700000004)")
        .await;

    let explained = tokio::task::block_in_place(|| run_cli(ws_ref, &["preview", "people.yml", "--explain", "--limit", "10"]));
    let (out, err) = text(&explained);
    assert_eq!(explained.status.code(), Some(0), "{out}{err}");
    let expected = "\n~ p-1 (changed since run 1)\n    Age: 45 → 46\n    Location: +Dune\n    persona: removed (was dev)\n\
                    + p-4 (new)\n    createdAt: added 1700000004\n    Age: added 51\n    Location: added Boston\n    Name: added Margaret\n    persona: added lead\n";
    assert!(out.ends_with(expected), "explain output:\n{out}");

    let as_json = tokio::task::block_in_place(|| run_cli(ws_ref, &["preview", "people.yml", "--explain", "--json"]));
    let doc: serde_json::Value = serde_json::from_slice(&as_json.stdout).expect("JSON");
    let p1 = &doc["explain"][0];
    assert_eq!(p1["identity"], "p-1");
    assert_eq!(p1["action"], "changed");
    assert_eq!(p1["last_sent"]["run"], 1);
    assert_eq!(
        p1["changes"],
        serde_json::json!([
            { "change": "changed", "field": "Age", "from": 45, "to": 46 },
            { "change": "list", "field": "Location", "added": ["Dune"], "removed": [] },
            { "change": "removed", "field": "persona", "from": "dev" }
        ])
    );
    assert_eq!(doc["explain"][1]["action"], "new");
    assert!(!ws.path().join(".ebb").exists() && doc["counts"]["changed"] == 1);

    // The second sync sends both; `record` shows what the stand-in received for p-1.
    let second = tokio::task::block_in_place(|| run_cli(ws_ref, &["sync", "people.yml"]));
    assert_eq!(second.status.code(), Some(0), "{:?}", text(&second));
    let record = tokio::task::block_in_place(|| run_cli(ws_ref, &["record", "people.yml", "p-1", "--json"]));
    assert_eq!(record.status.code(), Some(0), "{:?}", text(&record));
    let doc: serde_json::Value = serde_json::from_slice(&record.stdout).expect("JSON");
    let held = si
        .records("users")
        .into_iter()
        .find(|r| r.id == "p-1")
        .expect("the stand-in holds p-1");
    let sent = &doc["request_body"]["users"][0];
    assert_eq!(sent["id"], "p-1");
    assert_eq!(sent["createdAt"], held.created_at);
    assert_eq!(
        sent["attributes"], held.attributes,
        "record's payload is what the stand-in received"
    );
    assert_eq!(
        doc["fields"],
        serde_json::json!({ "Age": 46, "Location": ["Arrakis", "Dune"], "Name": "Ada" })
    );
    let runs: Vec<i64> = doc["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["run"].as_i64())
        .collect();
    assert_eq!(runs, [2, 1], "sent by run 2, and by run 1 before");
    assert_eq!(doc["runs"][0]["status"], "completed");
    assert_eq!(doc["rejection"], serde_json::Value::Null);

    let text_form = tokio::task::block_in_place(|| run_cli(ws_ref, &["record", "people.yml", "p-1"]));
    let (out, _) = text(&text_form);
    assert!(out.starts_with("p-1 in sync people\n  last acknowledged "), "{out}");
    assert!(
        out.contains(" by run 2\n") && out.contains("sent by runs 2 at ") && out.contains("  rejected now: no\n"),
        "{out}"
    );
    assert!(out.contains("    Location: [Arrakis, Dune]\n    Name: Ada\n"), "{out}");
    assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");

    let unknown = tokio::task::block_in_place(|| run_cli(ws_ref, &["record", "people.yml", "p-9"]));
    let (out, _) = text(&unknown);
    assert_eq!(unknown.status.code(), Some(1), "{out}");
    assert!(out.contains("not in state: never acknowledged"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_shows_a_current_rejection_with_its_reason() {
    let people = People::new().await;
    let si = stand_in().await;
    si.refuse_ids(["p-2".to_string()]);
    let ws = Workspace::new();
    ws.write("people.yml", &people.mapping(&si.url()));
    let ws_ref = &ws;
    let sync = tokio::task::block_in_place(|| run_cli(ws_ref, &["sync", "people.yml"]));
    assert_eq!(sync.status.code(), Some(0), "{:?}", text(&sync));
    let record = tokio::task::block_in_place(|| run_cli(ws_ref, &["record", "people.yml", "p-2", "--json"]));
    assert_eq!(record.status.code(), Some(0), "{:?}", text(&record));
    let doc: serde_json::Value = serde_json::from_slice(&record.stdout).expect("JSON");
    assert_eq!(doc["in_state"], false);
    assert_eq!(doc["rejection"]["stage"], "destination");
    assert_eq!(doc["rejection"]["runs_in_a_row"], 1);
    assert!(doc["rejection"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_payloads_false_keeps_no_copy_of_the_data_and_explain_says_so() {
    let si = stand_in().await;
    let ws = Workspace::new();
    let yaml = users_yaml("users", &si.url(), "") + "keep_payloads: false\n";
    let mapping = ws.write("users.yml", &yaml);
    let store = ws.store().await;
    let source = fixture("users/pyarrow.parquet").display().to_string();
    let envs = [("USERS_SOURCE", source.as_str())];
    run_ok(&load_sync(&mapping, &envs), store.as_ref()).await;
    let tracked = store.tracked("users", &["u-00001".to_string()]).await.expect("tracked");
    assert_eq!(tracked[0].runs, [1], "the run that sent it is kept");
    assert_eq!(tracked[0].payload, None, "but not what it said");

    // A changed record then has nothing to compare with: its fields as they will be sent.
    let changed = fixture("users_3_changed.parquet").display().to_string();
    let sync = load_sync(&mapping, &[("USERS_SOURCE", changed.as_str())]);
    let options = ebb::sync::PreviewOptions {
        limit: 1,
        explain: true,
        full_diff: false,
    };
    let preview = ebb::sync::preview_with(&sync, store.as_ref(), options).await.expect("preview");
    let first = &preview.explain.expect("explained")[0];
    assert_eq!((first.action, first.compared), (ebb::sync::explain::Action::Changed, false));
    assert!(!first.changes.is_empty());
}
