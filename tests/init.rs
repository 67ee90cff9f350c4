//! `ebb init`: a first mapping from a Parquet file or a PostgreSQL table that validates and
//! syncs as written; a TODO where nothing can be guessed; no secret written; no file clobbered.

use crate::common::*;

fn stand_in_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ENTERPRET_USERS_API_KEY", "local-users-key".into()),
        ("ENTERPRET_ACCOUNTS_API_KEY", "local-accounts-key".into()),
        ("PROFILES_TOKEN", "local-profiles-token".into()),
        ("ENTERPRET_URL", url.into()),
        ("PROFILES_URL", url.into()),
        ("WAREHOUSE_URL", database_url()),
    ]
}

fn run(ws: &Workspace, args: &[&str], envs: &[(&'static str, String)]) -> std::process::Output {
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut full = vec!["--state".to_string(), ws.state_url()];
    full.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ebb(ws.path(), &refs, &envs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_on_a_parquet_file_writes_a_mapping_that_validates_and_syncs() {
    let si = stand_in().await;
    let ws = Workspace::new();
    std::fs::create_dir(ws.path().join("data")).expect("data dir");
    std::fs::copy(fixture("users/pyarrow.parquet"), ws.path().join("data/users.parquet")).expect("copy");
    let envs = stand_in_env(&si.url());
    let ws_ref = &ws;
    let init = tokio::task::block_in_place(|| {
        run(
            ws_ref,
            &[
                "init",
                "--parquet",
                "data/users.parquet",
                "--destination",
                "enterpret-users",
                "--out",
                "mappings/users.yml",
            ],
            &envs,
        )
    });
    let (out, err) = text(&init);
    assert_eq!(init.status.code(), Some(0), "{out}{err}");
    assert!(
        err.contains("wrote mappings/users.yml") && err.contains("next: set ENTERPRET_USERS_API_KEY"),
        "{err}"
    );
    let mapping = std::fs::read_to_string(ws.path().join("mappings/users.yml")).expect("written");
    for line in [
        "# yaml-language-server: $schema=./ebb.schema.json",
        "name: users",
        "  parquet: ../data/users.parquet",
        "    api_key: ${ENTERPRET_USERS_API_KEY}",
        "    url: ${ENTERPRET_URL:-https://api.enterpret.com}",
        "id: user_id",
        "created_at: signup_at",
        "  age: { column: age, type: number }",
        "  is_active: { column: is_active, type: boolean }",
        "  cities: { column: cities, list: true }",
        "  email: email",
    ] {
        assert!(mapping.lines().any(|l| l == line), "missing {line:?} in:\n{mapping}");
    }
    assert!(ws.path().join("mappings/ebb.schema.json").exists(), "the schema its modeline names");

    let validate = tokio::task::block_in_place(|| run(ws_ref, &["validate", "mappings/users.yml"], &envs));
    assert_eq!(validate.status.code(), Some(0), "{:?}", text(&validate));
    let sync = tokio::task::block_in_place(|| run(ws_ref, &["sync", "mappings/users.yml", "--json"], &envs));
    assert_eq!(sync.status.code(), Some(0), "{:?}", text(&sync));
    let doc: serde_json::Value = serde_json::from_slice(&sync.stdout).expect("JSON");
    assert_eq!(
        (doc[0]["counts"]["sent"].as_u64(), doc[0]["counts"]["invalid"].as_u64()),
        (Some(40), Some(0))
    );
    assert_eq!(si.records("users").len(), 40);

    // Never over a file that is there, unless asked.
    let again = tokio::task::block_in_place(|| {
        run(
            ws_ref,
            &[
                "init",
                "--parquet",
                "data/users.parquet",
                "--destination",
                "profiles",
                "--out",
                "mappings/users.yml",
            ],
            &envs,
        )
    });
    let (_, err) = text(&again);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        err.contains("error: `mappings/users.yml` exists; pass --force to overwrite it"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("mappings/users.yml")).expect("kept"),
        mapping
    );
    let forced = tokio::task::block_in_place(|| {
        run(
            ws_ref,
            &[
                "init",
                "--parquet",
                "data/users.parquet",
                "--destination",
                "profiles",
                "--out",
                "mappings/users.yml",
                "--force",
            ],
            &envs,
        )
    });
    assert_eq!(forced.status.code(), Some(0), "{:?}", text(&forced));
    let profiles = std::fs::read_to_string(ws.path().join("mappings/users.yml")).expect("written");
    assert!(profiles.contains("email: email\nfull_name: full_name\n"), "{profiles}");
    let validate = tokio::task::block_in_place(|| run(ws_ref, &["validate", "mappings/users.yml"], &envs));
    assert_eq!(validate.status.code(), Some(0), "{:?}", text(&validate));
}

/// A table in a schema of its own.
async fn table(sql: &str) -> (TempSchema, sqlx::PgPool) {
    let schema = TempSchema::new("ebb_init");
    let pool = sqlx::PgPool::connect(&database_url()).await.expect("PostgreSQL at DATABASE_URL");
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA \"{}\"; {}",
        schema.name,
        sql.replace("{s}", &format!("\"{}\"", schema.name))
    ))
    .execute(&pool)
    .await
    .expect("table");
    (schema, pool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_on_a_postgres_table_guesses_writes_no_secret_and_syncs() {
    let (schema, _pool) = table(
        "CREATE TABLE {s}.members (member_id text, team_id int, display_name text, created_at timestamptz NOT NULL, plan text, seats int, avatar bytea);
         INSERT INTO {s}.members SELECT 'm' || g, g % 3, 'Member ' || g, now() - g * interval '1 day', 'pro', g, NULL FROM generate_series(1, 50) g;",
    )
    .await;
    let si = stand_in().await;
    let ws = Workspace::new();
    let ws_ref = &ws;
    let mut envs = stand_in_env(&si.url());
    // A password on the URL (trust auth ignores it) must be written nowhere; it comes from a
    // variable, so that it is not on the command line either.
    let url = database_url().replacen("postgres@", "postgres:s3cret-pw@", 1);
    envs.push(("MY_WAREHOUSE", url.clone()));
    let table = format!("{}.members", schema.name);
    let unset = tokio::task::block_in_place(|| {
        run(
            ws_ref,
            &[
                "init",
                "--postgres-url-env",
                "NO_SUCH_EBB_VAR",
                "--table",
                &table,
                "--destination",
                "profiles",
            ],
            &envs,
        )
    });
    let (_, err) = text(&unset);
    assert!(
        !unset.status.success() && err.contains("the variable that --postgres-url-env names is not set"),
        "{err}"
    );
    let init = tokio::task::block_in_place(|| {
        run(
            ws_ref,
            &[
                "init",
                "--postgres-url-env",
                "MY_WAREHOUSE",
                "--table",
                &table,
                "--destination",
                "profiles",
                "--out",
                "members.yml",
            ],
            &envs,
        )
    });
    let (out, err) = text(&init);
    assert_eq!(init.status.code(), Some(0), "{out}{err}");
    let mapping = std::fs::read_to_string(ws.path().join("members.yml")).expect("written");
    assert!(!format!("{mapping}{out}{err}").contains("s3cret-pw"), "{mapping}{out}{err}");
    assert!(mapping.contains("    url: ${WAREHOUSE_URL}\n"), "{mapping}");
    // No email column: the first unique, never-null `*_id` (team_id repeats) makes a pseudonymous one.
    assert!(
        mapping.contains("email: { template: \"user-{member_id}@customers.invalid\" }"),
        "{mapping}"
    );
    assert!(
        mapping.contains("  seats: { column: seats, type: number }\n")
            && mapping.contains("  created_at: { column: created_at, type: date }\n"),
        "{mapping}"
    );
    assert!(
        mapping.contains("# Not mapped, of types ebb does not read: avatar (bytea)"),
        "{mapping}"
    );
    assert!(mapping.contains("\nfull_name: display_name\n"), "{mapping}");
    let sync = tokio::task::block_in_place(|| run(ws_ref, &["sync", "members.yml", "--json"], &envs));
    assert_eq!(sync.status.code(), Some(0), "{:?}", text(&sync));
    let doc: serde_json::Value = serde_json::from_slice(&sync.stdout).expect("JSON");
    assert_eq!(doc[0]["counts"]["sent"], 50, "{doc}");
    let m7 = si
        .profiles()
        .into_iter()
        .find(|p| p.email == "user-m7@customers.invalid")
        .expect("m7's pseudonymous profile");
    assert_eq!(m7.name, "Member 7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_on_a_table_without_a_guessable_id_leaves_a_todo_and_exits_0() {
    let (schema, _pool) = table(
        "CREATE TABLE {s}.notes (author_id int, body text, score int);
         INSERT INTO {s}.notes SELECT g % 4, 'note ' || g, g FROM generate_series(1, 20) g;",
    )
    .await;
    let ws = Workspace::new();
    let ws_ref = &ws;
    let table = format!("{}.notes", schema.name);
    let mut envs = stand_in_env("http://127.0.0.1:9");
    // With no source named, the URL comes from EBB_INIT_POSTGRES_URL.
    envs.push(("EBB_INIT_POSTGRES_URL", database_url()));
    let init = tokio::task::block_in_place(|| run(ws_ref, &["init", "--table", &table, "--destination", "enterpret-users"], &envs));
    let (out, err) = text(&init);
    assert_eq!(init.status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains("id: TODO  # TODO: no column looks like the user's identity (unique and never null in a sample of 20 rows); name it"),
        "on stdout without --out:\n{out}"
    );
    assert!(out.contains("created_at: TODO  # TODO: "), "{out}");
    assert!(err.contains("todo: id: no column looks like the user's identity"), "{err}");
    assert!(err.contains("todo: created_at: "), "{err}");
    assert!(out.contains("  author_id: { column: author_id, type: number }"), "{out}");
}
