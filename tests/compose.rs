//! docker-compose.yml and the Dockerfile, checked without a Docker engine: the
//! services, their commands and mounts against the repository, and the seeded
//! warehouse and its mappings against a real PostgreSQL, synced into the stand-in.

use crate::common;

use std::path::Path;

use crate::common::{database_url, stand_in, TempSchema};
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).expect("docker-compose.yml");
    serde_saphyr::from_str(&text).expect("docker-compose.yml is YAML")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// `./host:/container[:ro]` → (host, container).
fn mounts(service: &Value) -> Vec<(String, String)> {
    strings(&service["volumes"])
        .iter()
        .map(|m| {
            let parts: Vec<&str> = m.split(':').collect();
            (parts[0].to_string(), parts[1].to_string())
        })
        .collect()
}

#[test]
fn services_commands_and_mounts_match_the_repository() {
    let c = compose();
    let services = c["services"].as_object().expect("services");
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names, vec!["postgres", "stand-in", "worker", "tls-proxy"]);
    // The proxy terminates TLS and passes requests to the worker's listen port.
    let proxy = strings(&services["tls-proxy"]["command"]);
    assert!(proxy.windows(2).any(|w| w[0] == "--to" && w[1] == "worker:9187"), "{proxy:?}");

    for (name, service) in services {
        for (host, _) in mounts(service) {
            assert!(host.starts_with("./"), "{name}: mount {host} is relative to the repository");
            assert!(repo().join(&host).exists(), "{name}: mount {host} exists in the repository");
        }
    }
    let pg = &services["postgres"];
    assert!(mounts(pg)
        .iter()
        .any(|(h, c)| h.ends_with("init.sql") && c.starts_with("/docker-entrypoint-initdb.d/")));

    let stand_in = &services["stand-in"];
    assert_eq!(strings(&stand_in["command"])[..3], ["stand-in", "--host", "0.0.0.0"]);
    assert_eq!(stand_in["build"], ".");

    let worker = &services["worker"];
    let command = strings(&worker["command"]);
    assert_eq!(command[0], "worker");
    let (host, container) = mounts(worker).into_iter().next().expect("the worker mounts its mappings");
    assert_eq!(command[1], container, "the worker reads the folder that is mounted");
    let mapped: Vec<_> = std::fs::read_dir(repo().join(&host))
        .expect("mappings folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "yml"))
        .collect();
    assert!(mapped.len() >= 2, "{host} holds the users and accounts mappings");
    let listen = command
        .iter()
        .position(|a| a == "--listen")
        .map(|i| command[i + 1].clone())
        .expect("--listen");
    let port = listen.rsplit(':').next().expect("port");
    assert!(
        strings(&worker["ports"]).iter().any(|p| p.ends_with(&format!(":{port}"))),
        "the listen port is published"
    );
    let health = strings(&worker["healthcheck"]["test"]);
    assert_eq!(health[..3], ["CMD", "ebb", "health"]);
    assert!(health.iter().any(|a| a.ends_with(&format!(":{port}"))), "{health:?}");
    let env = &worker["environment"];
    assert!(env["EBB_STATE"]
        .as_str()
        .unwrap_or("")
        .starts_with("postgres://postgres@postgres:5432/"));
    assert!(env["ENTERPRET_URL"].as_str().unwrap_or("").contains("stand-in:8787"));
    assert_eq!(worker["depends_on"]["postgres"]["condition"], "service_healthy");
    // Listening on every address needs a token: from the shell, with a default for local use.
    let token = env["EBB_WORKER_TOKEN"].as_str().unwrap_or("");
    let default = token
        .strip_prefix("${EBB_WORKER_TOKEN:-")
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or_else(|| panic!("a default from the shell: {token}"));
    let access = ebb::worker::auth::AccessOptions {
        token: Some(ebb::worker::auth::WorkerToken::new(default.into())),
        metrics_public: command.iter().any(|a| a == "--metrics-public"),
        allowed_hosts: Vec::new(),
    };
    let addr: std::net::SocketAddr = listen.parse().expect("listen address");
    // The default token is long enough for the worker to take it.
    if let Err(e) = ebb::worker::auth::check_listen(addr, &access) {
        panic!("the worker refuses compose's default token: {e}");
    }
    assert!(
        ebb::worker::auth::check_listen(addr, &Default::default()).is_err(),
        "without the token the worker would refuse this address"
    );

    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let stages = dockerfile.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "a multi-stage build");
    assert!(dockerfile.contains("cargo build --release --locked --bin ebb"));
    assert!(dockerfile.contains("ENTRYPOINT [\"ebb\"]"));
    for copied in dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
    {
        for source in copied.split_whitespace().rev().skip(1) {
            assert!(repo().join(source).exists(), "Dockerfile copies {source}, which exists");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_warehouse_syncs_with_the_compose_mappings() {
    let temp = TempSchema::new("ebb_compose");
    let pool = sqlx::PgPool::connect(&database_url()).await.expect("PostgreSQL");
    let init = std::fs::read_to_string(repo().join("docker/postgres/init.sql")).expect("init.sql");
    sqlx::raw_sql(&init.replace("warehouse", &temp.name))
        .execute(&pool)
        .await
        .expect("init.sql runs");
    let standin = stand_in().await;
    let ws = common::Workspace::new();
    let mappings = repo().join("mappings/docker");
    let files: Vec<String> = ["users.yml", "accounts.yml"]
        .iter()
        .map(|f| mappings.join(f).display().to_string())
        .collect();
    let url = database_url();
    let envs = [
        ("WAREHOUSE_URL", url.as_str()),
        ("WAREHOUSE_SCHEMA", temp.name.as_str()),
        ("ENTERPRET_URL", &standin.url()),
    ];
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = common::ebb(ws.path(), &args, &envs);
    assert!(out.status.success(), "{:?}", common::text(&out));
    let state = ws.state_url();
    let mut args = vec!["--state", state.as_str(), "sync"];
    args.extend(files.iter().map(String::as_str));
    let out = common::ebb(ws.path(), &args, &envs);
    assert!(out.status.success(), "{:?}", common::text(&out));
    assert_eq!(standin.records("users").len(), 500);
    assert_eq!(standin.records("accounts").len(), 40);
}
