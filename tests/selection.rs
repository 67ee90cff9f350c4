//! `--select` and `--exclude` over a folder of mappings, as dbt users expect: `tag:NAME`, sync
//! names, file names and globs; exactly what is picked runs, and a selection of nothing fails.

use crate::common::*;

fn users_source() -> String {
    fixture("users/pyarrow.parquet").display().to_string()
}

/// A folder of three valid users mappings with tags, and one that does not validate.
fn folder(ws: &Workspace, url: &str) -> std::path::PathBuf {
    let dir = ws.path().join("mappings");
    std::fs::create_dir(&dir).expect("mappings dir");
    let with_tags = |name: &str, tags: &str| users_yaml(name, url, "").replace("\nsource:", &format!("\ntags: {tags}\nsource:"));
    std::fs::write(dir.join("crm_users.yml"), with_tags("crm-users", "[crm, hourly]")).expect("write");
    std::fs::write(dir.join("crm_more.yml"), with_tags("crm-more", "[crm]")).expect("write");
    std::fs::write(dir.join("billing.yml"), with_tags("billing", "[daily]")).expect("write");
    std::fs::write(
        dir.join("legacy.yml"),
        "name: legacy\ntags: [old]\nsource: { parquet: x }\nsurce: typo\n",
    )
    .expect("write");
    dir
}

fn names(doc: &serde_json::Value) -> Vec<String> {
    doc.as_array()
        .expect("a list")
        .iter()
        .map(|r| r["sync"].as_str().expect("sync name").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_runs_exactly_the_selected_mappings_of_a_folder() {
    let ws = Workspace::new();
    let si = stand_in().await;
    folder(&ws, &si.url());
    let dir = ws.path().to_path_buf();
    let state = ws.state_url();
    let (by_tag, minus_one, by_glob) = tokio::task::spawn_blocking(move || {
        let envs = [("USERS_SOURCE", users_source())];
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sync = |extra: &[&str]| {
            let mut args = vec!["--state", state.as_str(), "sync", "mappings", "--json"];
            args.extend_from_slice(extra);
            ebb(&dir, &args, &envs)
        };
        (
            sync(&["--select", "tag:crm"]),
            sync(&["--select", "tag:crm", "--exclude", "crm_more"]),
            sync(&["--select", "bill*", "--full"]),
        )
    })
    .await
    .expect("join");
    for out in [&by_tag, &minus_one, &by_glob] {
        assert_eq!(out.status.code(), Some(0), "{:?}", text(out));
    }
    let doc: serde_json::Value = serde_json::from_slice(&by_tag.stdout).expect("JSON");
    assert_eq!(
        names(&doc),
        ["crm-more", "crm-users"],
        "sorted by file; legacy and billing left out"
    );
    assert_eq!(doc[0]["counts"]["sent"], 40);
    let doc: serde_json::Value = serde_json::from_slice(&minus_one.stdout).expect("JSON");
    assert_eq!(names(&doc), ["crm-users"], "--exclude by file name wins");
    let doc: serde_json::Value = serde_json::from_slice(&by_glob.stdout).expect("JSON");
    assert_eq!(names(&doc), ["billing"]);
    let dir = ws.path().to_path_buf();
    let state = ws.state_url();
    let (status, status_all, misused) = tokio::task::spawn_blocking(move || {
        let envs = [("USERS_SOURCE", users_source())];
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        (
            ebb(
                &dir,
                &["--state", &state, "status", "mappings", "--select", "tag:crm", "--json"],
                &envs,
            ),
            ebb(&dir, &["--state", &state, "status", "--json"], &envs),
            ebb(&dir, &["--state", &state, "status", "--select", "tag:crm"], &envs),
        )
    })
    .await
    .expect("join");
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(names(&doc), ["crm-more", "crm-users"], "status takes a folder and a selection too");
    let doc: serde_json::Value = serde_json::from_slice(&status_all.stdout).expect("status JSON");
    assert_eq!(
        names(&doc),
        ["billing", "crm-more", "crm-users"],
        "without mappings: every sync in state"
    );
    let (_, err) = text(&misused);
    assert_eq!(misused.status.code(), Some(1));
    assert!(err.contains("--select and --exclude choose among mapping files"), "{err}");

    let store = ws.store().await;
    let synced: Vec<String> = store.runs(None, 100).await.expect("runs").into_iter().map(|r| r.sync).collect();
    assert!(!synced.iter().any(|s| s == "legacy"), "{synced:?}");
    assert_eq!(synced.len(), 4, "two, one and one runs: {synced:?}");
}

#[test]
fn validate_and_preview_take_a_folder_and_a_selection() {
    let ws = Workspace::new();
    folder(&ws, "http://127.0.0.1:9");
    let envs = [("USERS_SOURCE", users_source())];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let all = ebb(ws.path(), &["validate", "mappings"], &envs);
    let (_, err) = text(&all);
    assert_eq!(all.status.code(), Some(1), "the whole folder holds the broken legacy.yml");
    assert!(err.contains("legacy.yml:4:1") && err.contains("did you mean `source`"), "{err}");

    let picked = ebb(ws.path(), &["validate", "mappings", "--exclude", "tag:old"], &envs);
    let (out, err) = text(&picked);
    assert_eq!(picked.status.code(), Some(0), "{out}{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(!out.contains("legacy"), "{out}");

    let preview = ebb(ws.path(), &["preview", "mappings", "--select", "tag:hourly", "--json"], &envs);
    assert_eq!(preview.status.code(), Some(0), "{:?}", text(&preview));
    let doc: serde_json::Value = serde_json::from_slice(&preview.stdout).expect("one JSON document");
    assert_eq!(names(&doc), ["crm-users"], "a selection previews as a list");
    assert_eq!(doc[0]["counts"]["new"], 40);

    let two = ebb(ws.path(), &["preview", "mappings/billing.yml", "mappings/crm_more.yml"], &envs);
    let (out, _) = text(&two);
    assert!(out.contains("billing →") && out.contains("crm-more →"), "{out}");
}

#[test]
fn a_selection_of_nothing_and_a_bad_selector_are_clear_errors() {
    let ws = Workspace::new();
    folder(&ws, "http://127.0.0.1:9");
    let nothing = ebb(ws.path(), &["sync", "mappings", "--select", "tag:crn"], &[]);
    let (_, err) = text(&nothing);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        err.contains("error: nothing selected: no mapping of mappings matches --select tag:crn")
            && err.contains("hint: `tag:NAME` selects by a mapping's `tags:`"),
        "{err}"
    );
    let bad = ebb(ws.path(), &["validate", "mappings", "--select", "path:x"], &[]);
    let (_, err) = text(&bad);
    assert_eq!(bad.status.code(), Some(1));
    assert!(err.contains("--select `path:x`: `path:` is not a selector"), "{err}");
    assert!(!ws.path().join(".ebb").exists(), "nothing ran");
}

#[test]
fn a_tag_that_a_command_line_could_not_name_is_refused() {
    let ws = Workspace::new();
    let yaml = users_yaml("users", "http://127.0.0.1:9", "").replace("\nsource:", "\ntags: [crm, \"two words\"]\nsource:");
    ws.write("users.yml", &yaml);
    let out = ebb(ws.path(), &["validate", "users.yml"], &[("USERS_SOURCE", &users_source())]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("users.yml:2:7: tags: tag `two words` must be 1 to 64 letters, digits, `_`, `-` and `.`"),
        "{err}"
    );
}

#[test]
fn a_folder_without_mappings_is_an_error_for_every_command_that_takes_one() {
    let ws = Workspace::new();
    // A folder named like a mapping file, as `ebb validate empty-dir.yaml/` was given one.
    std::fs::create_dir(ws.path().join("empty-dir.yaml")).expect("folder");
    std::fs::write(ws.path().join("empty-dir.yaml/notes.txt"), "not a mapping").expect("file");
    let state = ws.state_url();
    for command in [
        &["validate", "empty-dir.yaml/"][..],
        &["preview", "empty-dir.yaml/"],
        &["sync", "empty-dir.yaml/"],
        &["status", "empty-dir.yaml/"],
    ] {
        let out = ebb(ws.path(), command, &[("EBB_STATE", &state)]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {stdout}{stderr}");
        assert!(stderr.contains("error: no mappings in empty-dir.yaml/"), "{command:?}: {stderr}");
    }
}
