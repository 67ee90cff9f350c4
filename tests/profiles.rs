//! The profiles destination end to end: mappings over real Parquet files (people written by
//! pyarrow, companies by DuckDB; `scripts/make_data.py profiles`) and real PostgreSQL tables,
//! sent to the stand-in, which checks every request against the profiles contract.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;
use ebb::standin::{Fault, HeldProfile, StandIn};
use ebb::state::{RunStatus, StateStore};
use serde_json::{json, Value};

fn people() -> String {
    fixture("profiles/people.parquet").display().to_string()
}

fn companies(name: &str) -> String {
    fixture(&format!("profiles/{name}")).display().to_string()
}

/// A profiles mapping over the fixture people, its company source from `${COMPANIES}`.
fn people_yaml(url: &str, email: &str, token: &str) -> String {
    format!(
        r#"name: people
source:
  parquet: ${{PEOPLE}}
destination:
  profiles:
    url: {url}
    token: ${{PROFILES_TOKEN:-{token}}}
    batch_size: 100
    requests_per_minute: 60000
    retry_budget_secs: 3
email: {email}
full_name: full_name
properties:
  persona: persona
  seats: {{ column: seats, type: number }}
  score: score
  admin: is_admin
  last_contact: {{ column: last_contact_at, type: date }}
  birthday: birthday
segments: {{ column: segments }}
company:
  source: {{ parquet: "${{COMPANIES}}" }}
  join: {{ column: account_id, key: id }}
  properties:
    name: account_name
    size: {{ column: employees, type: number }}
"#
    )
}

/// The sync of a people mapping, over the fixture people and the named companies file.
fn people_sync(mapping: &Path, companies_file: &str) -> ebb::sync::SyncJob {
    load_sync(mapping, &[("PEOPLE", &people()), ("COMPANIES", &companies(companies_file))])
}

fn by_email(si: &StandIn) -> BTreeMap<String, HeldProfile> {
    si.profiles().into_iter().map(|p| (p.email.clone(), p)).collect()
}

fn props(p: &HeldProfile) -> BTreeMap<String, Value> {
    p.properties
        .iter()
        .map(|prop| {
            let name = prop["name"].as_str().expect("a name").to_string();
            (name, json!({ "type": prop["type"], "value": prop["value"] }))
        })
        .collect()
}

async fn last_rejections(store: &dyn StateStore, sync: &str) -> BTreeMap<String, String> {
    let runs = store.runs(Some(sync), 1).await.expect("runs");
    let rejections = store.rejections(runs[0].id, 1000).await.expect("rejections");
    rejections
        .into_iter()
        .map(|r| (r.position.rsplit(' ').next().unwrap_or("").to_string(), r.reason))
        .collect()
}

#[tokio::test]
async fn profiles_are_sent_with_typed_properties_companies_and_segments_and_bad_rows_are_rejected_with_reasons() {
    let si = stand_in().await;
    let ws = Workspace::new();
    let mapping = ws.write("people.yml", &people_yaml(&si.url(), "email", "local-profiles-token"));
    let store = ws.store().await;
    let report = run_ok(&people_sync(&mapping, "companies.parquet"), store.as_ref()).await;
    assert_eq!(
        (report.counts.source, report.counts.invalid, report.counts.sent),
        (19, 13, 6),
        "{report:?}"
    );

    let held = by_email(&si);
    let emails: Vec<&str> = held.keys().map(String::as_str).collect();
    assert_eq!(
        emails,
        [
            "ada@example.com",
            "alan@example.com",
            "barbara@example.com",
            "edsger@example.com",
            "grace@example.com",
            "manager_001@large.org"
        ],
        "emails are trimmed and lower-cased; a pseudonymous address is valid"
    );
    let ada = &held["ada@example.com"];
    assert_eq!(ada.name, "Ada Lovelace", "the name is trimmed");
    assert_eq!(ada.segments, ["beta", "vip"]);
    assert_eq!(
        props(ada),
        BTreeMap::from([
            ("admin".into(), json!({"type": "string", "value": "true"})),
            ("birthday".into(), json!({"type": "date", "value": "1990-01-01"})),
            ("company.name".into(), json!({"type": "string", "value": "Analytical Engines"})),
            ("company.size".into(), json!({"type": "number", "value": 250})),
            ("last_contact".into(), json!({"type": "date", "value": "2024-05-01T12:00:00Z"})),
            ("persona".into(), json!({"type": "string", "value": "Admin"})),
            ("score".into(), json!({"type": "number", "value": 1.5})),
            ("seats".into(), json!({"type": "number", "value": 10})),
        ]),
        "a date column as a date, a timestamp in RFC 3339 UTC to the second, a boolean as text"
    );
    let grace = &held["grace@example.com"];
    assert!(!props(grace).contains_key("persona"), "a null property is left out");
    assert_eq!(grace.segments, Vec::<String>::new(), "null segments are sent as []");
    assert_eq!(props(grace)["company.size"], json!({"type": "number", "value": 40}));
    for no_company in ["edsger@example.com", "barbara@example.com"] {
        assert!(
            !props(&held[no_company]).keys().any(|k| k.starts_with("company.")),
            "{no_company}: no matching company, so no company properties and no rejection"
        );
    }

    let rejected = last_rejections(store.as_ref(), "people").await;
    let reason = |row: &str| {
        rejected
            .get(row)
            .cloned()
            .unwrap_or_else(|| panic!("row {row} is rejected: {rejected:?}"))
    };
    assert!(
        reason("7").starts_with("ambiguous company: `id` `acc-dup` is the key of 2 rows of "),
        "{}",
        reason("7")
    );
    assert_eq!(reason("8"), "email is null");
    assert_eq!(reason("9"), "email is empty");
    assert_eq!(reason("10"), "email \"not-an-email\" is not an address: it has no `@`");
    assert!(reason("11").ends_with("it has more than one `@`"), "{}", reason("11"));
    assert!(reason("12").ends_with("its domain needs a dot between names, as in example.com"));
    assert!(reason("13").ends_with("it holds a space"));
    assert!(reason("14").ends_with("it is longer than 254 characters"));
    assert_eq!(reason("15"), "`full_name` (column `full_name`) is null");
    assert_eq!(reason("16"), "`full_name` (column `full_name`) is blank");
    assert_eq!(
        reason("twin@example.com"),
        "email `twin@example.com` occurs 2 times in the snapshot; every occurrence is rejected",
        "two rows with one email after normalising are all rejected"
    );
    assert!(reason("19").ends_with("nothing comes before the `@`"));

    let again = run_ok(&people_sync(&mapping, "companies.parquet"), store.as_ref()).await;
    assert_eq!((again.counts.sent, again.counts.unchanged), (0, 6), "a second run sends nothing");

    // acc-2's mapped size changed and acc-3's unmapped region: exactly acc-2's users go again.
    let third = run_ok(&people_sync(&mapping, "companies_changed.parquet"), store.as_ref()).await;
    assert_eq!((third.counts.changed, third.counts.sent), (2, 2), "{third:?}");
    let held = by_email(&si);
    let counts: BTreeMap<&str, u64> = held.iter().map(|(e, p)| (e.as_str(), p.received_count)).collect();
    assert_eq!(counts["grace@example.com"], 2);
    assert_eq!(counts["manager_001@large.org"], 2);
    assert_eq!(
        counts["alan@example.com"], 1,
        "a change in an unmapped company column sends nothing"
    );
    assert_eq!(counts["ada@example.com"], 1);
    assert_eq!(
        props(&held["grace@example.com"])["company.size"],
        json!({"type": "number", "value": 45})
    );
}

#[tokio::test]
async fn a_template_builds_pseudonymous_emails_from_columns() {
    let si = stand_in().await;
    let ws = Workspace::new();
    let yaml = people_yaml(
        &si.url(),
        r#"{ template: "User-{user_id}@Customers.invalid" }"#,
        "local-profiles-token",
    );
    let mapping = ws.write("people.yml", &yaml);
    let store = ws.store().await;
    let report = run_ok(&people_sync(&mapping, "companies.parquet"), store.as_ref()).await;
    // Every row has a user_id, so only the two bad names and the ambiguous company are left.
    assert_eq!((report.counts.invalid, report.counts.sent), (3, 16), "{report:?}");
    let held = by_email(&si);
    assert!(
        held.contains_key("user-1@customers.invalid"),
        "normalised like any email: {:?}",
        held.keys()
    );
    assert!(held.keys().all(|e| e.ends_with("@customers.invalid")), "no real address is sent");
    assert_eq!(held["user-1@customers.invalid"].name, "Ada Lovelace");
}

#[tokio::test]
async fn a_403_with_messages_per_user_rejects_those_users_and_delivers_the_others_once() {
    let si = stand_in().await;
    si.refuse_ids(["grace@example.com".to_string(), "alan@example.com".to_string()]);
    let ws = Workspace::new();
    let mapping = ws.write("people.yml", &people_yaml(&si.url(), "email", "local-profiles-token"));
    let store = ws.store().await;
    let report = run_ok(&people_sync(&mapping, "companies.parquet"), store.as_ref()).await;
    assert_eq!((report.counts.sent, report.counts.rejected), (4, 2), "{report:?}");
    let held = by_email(&si);
    assert!(!held.contains_key("grace@example.com") && !held.contains_key("alan@example.com"));
    assert!(
        held.values().all(|p| p.received_count == 1),
        "the others were delivered once: {held:?}"
    );
    let stats = si.stats();
    assert_eq!(
        (stats.by_status.get(&403), stats.by_status.get(&200)),
        (Some(&1), Some(&1)),
        "{stats:?}"
    );
    let rejected = last_rejections(store.as_ref(), "people").await;
    let delivery: Vec<&String> = rejected.values().filter(|r| r.contains("refused by the stand-in")).collect();
    assert_eq!(delivery.len(), 2, "each refused user is rejected with its messages: {rejected:?}");
    let committed: Vec<String> = store.records("people").await.expect("records").into_iter().map(|r| r.0).collect();
    assert_eq!(committed.len(), 4, "only what was imported is in state");
}

#[tokio::test]
async fn a_wrong_token_or_a_403_without_messages_fails_the_run_and_commits_nothing() {
    let si = stand_in().await;
    let ws = Workspace::new();
    let wrong = ws.write("wrong.yml", &people_yaml(&si.url(), "email", "not-the-token"));
    let store = ws.store().await;
    let report = run(&people_sync(&wrong, "companies.parquet"), store.as_ref(), false).await;
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("HTTP 401: the token was refused"), "{error}");
    assert!(!error.contains("not-the-token"), "the token is never in an error: {error}");
    assert!(store.records("people").await.expect("records").is_empty());

    si.push_faults([Fault {
        status: 403,
        retry_after_secs: None,
    }]);
    let right = ws.write("right.yml", &people_yaml(&si.url(), "email", "local-profiles-token"));
    let report = run(&people_sync(&right, "companies.parquet"), store.as_ref(), false).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert!(report
        .error
        .unwrap_or_default()
        .contains("HTTP 403: this token may not import users"));
    assert!(si.profiles().is_empty() && store.records("people").await.expect("records").is_empty());
}

/// One mapping's validate errors, as `file:line:col: field: message` lines.
fn errors(yaml: &str) -> String {
    let env = env(&[]);
    match ebb::spec::parse(Path::new("/tmp/m.yml"), yaml, &env) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

const PROFILES_HEAD: &str = "name: p\nsource:\n  parquet: people.parquet\ndestination:\n  profiles:\n    token: ${T:-t}\n";
const ENTERPRET_HEAD: &str =
    "name: e\nsource:\n  parquet: people.parquet\ndestination:\n  enterpret:\n    object: user\n    api_key: ${K:-k}\n";

#[test]
fn keys_of_the_other_destination_and_bad_profiles_keys_are_validate_errors_that_say_why() {
    let cases: &[(&str, &str)] = &[
        (
            "email: email\nfull_name: who\ncreated_at: signup_at\n",
            "m.yml:9:13: created_at: `created_at` is a key of the enterpret destination, and this mapping sends to profiles",
        ),
        (
            "email: email\nfull_name: who\nattributes:\n  A: a\n",
            "`attributes` is a key of the enterpret destination",
        ),
        (
            "full_name: who\n",
            "profiles needs `email`: the column (or template) of each profile's email",
        ),
        ("email: email\n", "profiles needs `full_name`"),
        (
            "email: email\nfull_name: who\nproperties:\n  ok: { column: is_admin, type: boolean }\n",
            "properties.ok: this destination has no `boolean` values; it takes `string`, `number`, `date`",
        ),
        (
            "email: email\nfull_name: who\nproperties:\n  t: { column: tags, split: \",\" }\n",
            "properties.t: takes one value",
        ),
        (
            "email: email\nfull_name: who\nproperties:\n  company.size: employees\n",
            "starts with `company.`, which names company properties",
        ),
        (
            "email: email\nfull_name: { column: who, type: number }\n",
            "full_name: is text; `type: number` does not apply",
        ),
        (
            "email: email\nfull_name: who\ncompany:\n  source: { parquet: c.parquet }\n",
            "a company `source` needs `join: { column, key }`",
        ),
        (
            "email: email\nfull_name: who\ncompany:\n  join: { column: a, key: id }\n",
            "`join` needs a company `source`",
        ),
        (
            "email: { template: \"user@x.invalid\" }\nfull_name: who\n",
            "email.template: a template needs at least one `{column}`",
        ),
        ("email: { templat: \"u-{id}@x.y\" }\nfull_name: who\n", "unknown field `templat`"),
        (
            "email: email\nfull_name: who\nnulls: send\n",
            "`nulls` is a key of the enterpret destination",
        ),
    ];
    for (tail, want) in cases {
        let got = errors(&format!("{PROFILES_HEAD}{tail}"));
        assert!(got.contains(want), "profiles with\n{tail}\nwant {want:?}\ngot {got}");
    }
    let enterpret: &[(&str, &str)] = &[
        ("id: user_id\ncreated_at: s\nemail: email\n", "`email` is a key of the profiles destination, and this mapping sends to enterpret, which takes `id`, `created_at`, `attributes`, `nulls`"),
        ("id: user_id\ncreated_at: s\ncompany:\n  properties: { n: name }\n", "`company` is a key of the profiles destination"),
        ("created_at: s\n", "enterpret needs `id`: the column that holds each record's id"),
        ("id: user_id\ncreated_at: s\nattributes:\n  D: { column: d, type: date }\n", "attributes.D: this destination has no `date` values"),
    ];
    for (tail, want) in enterpret {
        let got = errors(&format!("{ENTERPRET_HEAD}{tail}"));
        assert!(got.contains(want), "enterpret with\n{tail}\nwant {want:?}\ngot {got}");
    }
    let head = PROFILES_HEAD.replace("token: ${T:-t}\n", "token: ${T:-t}\n    batch_size: 101\n");
    let batch = errors(&format!("{head}email: email\nfull_name: who\n"));
    assert!(batch.contains("batch_size") && batch.contains("100"), "{batch}");
}

#[tokio::test]
async fn columns_are_checked_against_the_source_and_the_company_source() {
    let ws = Workspace::new();
    let check = |yaml: String| {
        let path = ws.write("m.yml", &yaml);
        async move {
            match people_sync(&path, "companies.parquet").compile().await {
                Ok(_) => String::new(),
                Err(e) => e.to_string(),
            }
        }
    };
    assert_eq!(
        check(people_yaml("http://127.0.0.1:1", "email", "t")).await,
        "",
        "the fixture mapping compiles"
    );
    let typo = people_yaml("http://127.0.0.1:1", "email", "t").replace("column: employees", "column: employes");
    let got = check(typo).await;
    assert!(
        got.contains("column `company.employes` not found in ") && got.contains("did you mean `company.employees`"),
        "{got}"
    );
    let list = people_yaml("http://127.0.0.1:1", "email", "t").replace("persona: persona", "persona: segments");
    let got = check(list).await;
    assert!(
        got.contains("`properties.persona` takes one value, and column `segments` is list of string; a list column cannot be one"),
        "{got}"
    );
    let key = people_yaml("http://127.0.0.1:1", "email", "t").replace("key: id", "key: nope");
    assert!(check(key).await.contains("column `company.nope` not found"));
    let email = people_yaml("http://127.0.0.1:1", "seats", "t");
    assert!(check(email).await.contains("column `seats` is integer; an email must be text"));
}

#[tokio::test]
async fn the_stand_in_enforces_the_profiles_contract() {
    let si = stand_in().await;
    let client = reqwest::Client::new();
    let import = |body: Value, token: &str| {
        client
            .post(format!("{}/users/import", si.url()))
            .header("authorization", format!("Token {token}"))
            .json(&body)
            .send()
    };
    let user = |email: &str| json!({"email": email, "name": "N", "properties": [], "segments": []});
    let r = import(json!({"users": [user("a@example.com")]}), "nope").await.expect("sent");
    assert_eq!(r.status(), 401);
    let many: Vec<Value> = (0..101).map(|i| user(&format!("u{i}@example.com"))).collect();
    let r = import(json!({ "users": many }), "local-profiles-token").await.expect("sent");
    assert_eq!(r.status(), 400, "more than 100 users");
    let bad = json!({"users": [
        user("a@example.com"),
        {"email": "B@example.com", "name": "", "properties": [{"name": "d", "type": "date", "value": "May 1"}, {"name": "d", "type": "number", "value": "1"}], "segments": [1]},
    ]});
    let r = import(bad, "local-profiles-token").await.expect("sent");
    assert_eq!(r.status(), 403);
    let errors: Value = r.json().await.expect("json");
    assert_eq!(errors["errors"][0], json!([]));
    assert_eq!(errors["errors"][1].as_array().map(Vec::len), Some(6), "{errors}");
    assert!(si.profiles().is_empty(), "nothing in a refused request is applied");

    let full = json!({"users": [{"email": "a@example.com", "name": "A", "properties": [{"name": "p", "type": "string", "value": "x"}], "segments": ["s"]}]});
    assert_eq!(import(full, "local-profiles-token").await.expect("sent").status(), 200);
    let without = json!({"users": [{"email": "a@example.com", "name": "A2"}]});
    assert_eq!(import(without, "local-profiles-token").await.expect("sent").status(), 200);
    let held = &si.profiles()[0];
    assert_eq!(
        (held.name.as_str(), held.properties.len(), held.segments.len(), held.received_count),
        ("A2", 1, 1, 2),
        "a key left out keeps its old value"
    );
    let empty = json!({"users": [{"email": "a@example.com", "name": "A", "properties": [], "segments": []}]});
    assert_eq!(import(empty, "local-profiles-token").await.expect("sent").status(), 200);
    assert!(si.profiles()[0].properties.is_empty(), "what is sent replaces");

    let delete = |email: &str| {
        client
            .delete(format!("{}/users/{}", si.url(), email.replace('@', "%40")))
            .header("authorization", "Token local-profiles-token")
            .send()
    };
    assert_eq!(delete("a@example.com").await.expect("sent").status(), 204);
    assert_eq!(delete("a@example.com").await.expect("sent").status(), 404);
    let listed: Value = client
        .get(format!("{}/records/profiles", si.url()))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(listed, json!([]));
}

/// A PostgreSQL schema of one test's own, for people and their companies.
struct Warehouse {
    pg: PgSchema,
}

impl std::ops::Deref for Warehouse {
    type Target = PgSchema;

    fn deref(&self) -> &PgSchema {
        &self.pg
    }
}

impl Warehouse {
    async fn new() -> Warehouse {
        Warehouse {
            pg: PgSchema::new("ebb_prof").await,
        }
    }

    /// A profiles mapping over `{s}.people`, with companies joined from `{s}.companies`.
    fn mapping(&self, url: &str) -> String {
        format!(
            r#"name: pg-people
source:
  postgres:
    url: ${{WAREHOUSE_URL}}
    table: {s}.people
destination:
  profiles:
    url: {url}
    token: ${{PROFILES_TOKEN:-local-profiles-token}}
    retry_budget_secs: 3
email: email
full_name: name
properties:
  persona: persona
  seats: seats
  renewal: renewal
segments: {{ column: segments }}
company:
  source: {{ postgres: {{ url: "${{WAREHOUSE_URL}}", table: {s}.companies }} }}
  join: {{ column: company_id, key: id }}
  properties:
    name: name
    arr: arr
"#,
            s = self.name
        )
    }
}

const PEOPLE: &str = r#"
CREATE TABLE {s}.companies (id int8 PRIMARY KEY, name text, arr numeric(12,2), notes text);
INSERT INTO {s}.companies VALUES (1, 'Acme', 1200.50, 'x'), (2, 'Initech', 99, 'y');
CREATE TABLE {s}.people (email text, name text, persona text, seats int4, renewal date, segments text[], company_id int8);
INSERT INTO {s}.people VALUES
 ('ada@example.com', 'Ada', 'Admin', 5, '2025-01-31', ARRAY['beta', 'vip'], 1),
 ('grace@example.com', 'Grace', 'Analyst', 3, NULL, ARRAY['beta'], 1),
 ('alan@example.com', 'Alan', 'Admin', 1, NULL, NULL, 2),
 ('ken@example.com', 'Ken', NULL, NULL, NULL, '{}', NULL);
"#;

#[tokio::test]
async fn from_postgresql_a_null_removes_a_property_and_a_company_change_resends_exactly_its_users() {
    let wh = Warehouse::new().await;
    wh.exec(PEOPLE).await;
    let si = stand_in().await;
    let ws = Workspace::new();
    let mapping = ws.write("pg.yml", &wh.mapping(&si.url()));
    let store = ws.store().await;
    let url = database_url();
    let vars = [("WAREHOUSE_URL", url.as_str())];
    let first = run_ok(&load_sync(&mapping, &vars), store.as_ref()).await;
    assert_eq!((first.counts.sent, first.counts.invalid), (4, 0), "{first:?}");
    let held = by_email(&si);
    let ada = props(&held["ada@example.com"]);
    assert_eq!(ada["company.arr"], json!({"type": "number", "value": 1200.5}));
    assert_eq!(ada["company.name"], json!({"type": "string", "value": "Acme"}));
    assert_eq!(ada["renewal"], json!({"type": "date", "value": "2025-01-31"}));
    assert_eq!(ada["persona"], json!({"type": "string", "value": "Admin"}));
    assert_eq!(held["ada@example.com"].segments, ["beta", "vip"]);
    assert!(props(&held["ken@example.com"]).is_empty(), "nulls and no company: no properties");

    // Ada's persona turns null and Grace's segments empty: both are changes, and both remove.
    wh.exec("UPDATE {s}.people SET persona = NULL WHERE email = 'ada@example.com'; UPDATE {s}.people SET segments = '{}' WHERE email = 'grace@example.com'").await;
    let second = run_ok(&load_sync(&mapping, &vars), store.as_ref()).await;
    assert_eq!((second.counts.changed, second.counts.sent), (2, 2), "{second:?}");
    let held = by_email(&si);
    assert!(
        !props(&held["ada@example.com"]).contains_key("persona"),
        "the property is gone at the destination"
    );
    assert!(held["grace@example.com"].segments.is_empty());

    // Initech's mapped name changes: only Alan goes again. Acme's unmapped notes: nothing.
    wh.exec("UPDATE {s}.companies SET name = 'Initrode' WHERE id = 2; UPDATE {s}.companies SET notes = 'changed' WHERE id = 1")
        .await;
    let third = run_ok(&load_sync(&mapping, &vars), store.as_ref()).await;
    assert_eq!((third.counts.changed, third.counts.sent), (1, 1), "{third:?}");
    let held = by_email(&si);
    assert_eq!(
        props(&held["alan@example.com"])["company.name"],
        json!({"type": "string", "value": "Initrode"})
    );
    assert_eq!(held["alan@example.com"].received_count, 2);
    assert_eq!(held["ada@example.com"].received_count, 2);

    // A company id that occurs twice rejects the rows that point at it, and only those.
    wh.exec("ALTER TABLE {s}.companies DROP CONSTRAINT companies_pkey; INSERT INTO {s}.companies VALUES (1, 'Acme twin', 1, 'z')")
        .await;
    let fourth = run(&load_sync(&mapping, &vars), store.as_ref(), false).await;
    assert_eq!((fourth.counts.invalid, fourth.counts.sent), (2, 0), "{fourth:?}");
    let rejected = last_rejections(store.as_ref(), "pg-people").await;
    assert!(
        rejected
            .values()
            .all(|r| r.starts_with("ambiguous company: `id` `1` is the key of 2 rows")),
        "{rejected:?}"
    );
}

#[tokio::test]
async fn the_cli_validates_previews_syncs_and_reports_a_profiles_mapping() {
    let si = stand_in().await;
    let ws = Workspace::new();
    ws.write("people.yml", &people_yaml(&si.url(), "email", "local-profiles-token"));
    let state = ws.state_url();
    let (people, companies) = (people(), companies("companies.parquet"));
    let envs = [
        ("PEOPLE", people.as_str()),
        ("COMPANIES", companies.as_str()),
        ("EBB_STATE", state.as_str()),
    ];
    let dir = ws.path().to_path_buf();
    let run = move |args: &'static [&'static str]| {
        let dir = dir.clone();
        let envs: Vec<(String, String)> = envs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        tokio::task::spawn_blocking(move || {
            let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            ebb(&dir, args, &envs)
        })
    };
    let validate = run(&["validate", "people.yml"]).await.expect("ran");
    assert!(validate.status.success(), "{}", String::from_utf8_lossy(&validate.stderr));
    let preview = run(&["preview", "people.yml", "--json", "--limit", "1"]).await.expect("ran");
    let preview: Value = serde_json::from_slice(&preview.stdout).expect("one JSON document");
    assert_eq!(preview["destination"], "profiles");
    assert_eq!(preview["to_send"], 6);
    let first = &preview["requests"][0];
    assert_eq!(first["url"], format!("{}/users/import", si.url()));
    assert_eq!(first["body"]["users"][0]["email"], "ada@example.com", "the exact body: {first}");
    assert!(si.profiles().is_empty(), "a preview sends nothing");
    let sync = run(&["sync", "people.yml"]).await.expect("ran");
    assert!(sync.status.success(), "{}", String::from_utf8_lossy(&sync.stderr));
    assert_eq!(si.profiles().len(), 6);
    let status = run(&["status", "people.yml"]).await.expect("ran");
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("sent 6") && status.contains("invalid 13"), "{status}");
    assert!(status.contains("email is null"), "the sample rejections are shown: {status}");
}
