//! `ebb schema`: the JSON Schema that editors and CI check mappings with. Every mapping in the
//! repository passes it and names it in its modeline, the committed copy is what the binary
//! prints, and it refuses what `ebb validate` refuses as syntax.

use crate::common;

use std::path::{Path, PathBuf};

use serde_json::Value;

const MODELINE: &str = "# yaml-language-server: $schema=../ebb.schema.json";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&ebb::spec::json_schema()).expect("the generated schema is a valid draft 2020-12 schema")
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("test YAML parses")
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn repository_mappings() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for folder in std::fs::read_dir(repo().join("mappings")).expect("mappings/") {
        let folder = folder.expect("entry").path();
        if !folder.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&folder).expect("a mappings folder") {
            let file = file.expect("entry").path();
            if file.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                found.push(file);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_mapping_in_the_repository_passes_the_schema_and_names_it() {
    let validator = validator();
    let mappings = repository_mappings();
    assert!(mappings.len() >= 9, "found {mappings:?}");
    for path in mappings {
        let text = std::fs::read_to_string(&path).expect("mapping reads");
        assert_eq!(
            text.lines().next(),
            Some(MODELINE),
            "{} starts with the schema modeline",
            path.display()
        );
        let problems = errors(&validator, &yaml(&text));
        assert!(problems.is_empty(), "{}: {problems:?}", path.display());
    }
}

#[test]
fn the_committed_schema_is_what_ebb_schema_prints() {
    let out = common::ebb(Path::new("."), &["schema"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("ebb schema prints JSON");
    assert_eq!(printed, ebb::spec::json_schema());
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("mappings/ebb.schema.json")).expect("committed schema"))
            .expect("committed schema is JSON");
    // Not assert_eq: the whole schema, twice, would bury the one line that says what to do.
    assert!(
        committed == printed,
        "mappings/ebb.schema.json is stale: regenerate it with `cargo run -- schema > mappings/ebb.schema.json`"
    );
    assert_eq!(printed["$schema"], "https://json-schema.org/draft/2020-12/schema");
}

#[test]
fn every_destination_and_each_key_is_described() {
    let schema = ebb::spec::json_schema();
    let defs = schema["$defs"].as_object().expect("$defs");
    for destination in ["Enterpret", "Profiles"] {
        let keys = defs[destination]["properties"].as_object().expect(destination);
        for (key, body) in keys {
            assert!(body["description"].is_string(), "{destination}.{key} has a description: {body}");
        }
    }
    for (key, body) in schema["properties"].as_object().expect("top-level keys") {
        assert!(body["description"].is_string(), "{key} has a description: {body}");
    }
    let enterpret = defs["Enterpret"]["properties"].as_object().expect("enterpret");
    assert!(enterpret.contains_key("api_key") && enterpret.contains_key("object"));
    assert!(defs["Profiles"]["properties"].as_object().expect("profiles").contains_key("token"));
}

const GOOD: &str = r#"
name: users
source: { parquet: users.parquet }
destination:
  enterpret: { object: user, api_key: "${KEY}", batch_size: 15 }
id: user_id
created_at: signup_at
attributes:
  Email: email
  Age: { column: age, type: number }
"#;

#[test]
fn the_schema_refuses_a_misspelt_key_and_a_wrong_type() {
    let validator = validator();
    assert_eq!(errors(&validator, &yaml(GOOD)), Vec::<String>::new());

    let misspelt = GOOD.replace("created_at:", "created_on:");
    let problems = errors(&validator, &yaml(&misspelt));
    assert!(
        problems.iter().any(|p| p.contains("created_on")),
        "a misspelt top-level key is refused by name: {problems:?}"
    );

    let nested = GOOD.replace("type: number", "typ: number");
    assert!(!validator.is_valid(&yaml(&nested)), "a misspelt key inside a field is refused");

    let wrong_type = GOOD.replace("batch_size: 15", "batch_size: fifteen");
    let problems = errors(&validator, &yaml(&wrong_type));
    assert!(
        problems.iter().any(|p| p.contains("/destination/enterpret/batch_size")),
        "a string where a number belongs is refused where it is: {problems:?}"
    );

    let wrong_enum = GOOD.replace("type: number", "type: integer");
    assert!(
        !validator.is_valid(&yaml(&wrong_enum)),
        "an attribute type that does not exist is refused"
    );

    let two_destinations = GOOD.replace(
        "  enterpret: { object: user",
        "  profiles: { token: x }\n  enterpret: { object: user",
    );
    assert!(!validator.is_valid(&yaml(&two_destinations)), "one destination per mapping");
}
