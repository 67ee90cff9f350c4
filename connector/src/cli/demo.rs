//! `ebb demo`: the quick start. Syncs the bundled sample users and accounts
//! into an in-process stand-in, as Enterpret records and as customer profiles
//! (with `company.` properties joined from the accounts), then syncs again to show that an unchanged
//! snapshot sends nothing. The sample data and mappings are compiled into the
//! binary, so it works from any directory, and it keeps its state in a
//! temporary folder, so every demo starts fresh.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;

use crate::config::env::OverlayEnv;
use crate::error::Error;
use crate::standin::{StandIn, StandInConfig};
use crate::state;
use crate::sync::{self, RunOptions, SyncJob};

const FILES: &[(&str, &[u8])] = &[
    ("data/sample/users.parquet", include_bytes!("../../../data/sample/users.parquet")),
    (
        "data/sample/accounts.parquet",
        include_bytes!("../../../data/sample/accounts.parquet"),
    ),
    ("mappings/sample/users.yml", include_bytes!("../../../mappings/sample/users.yml")),
    (
        "mappings/sample/accounts.yml",
        include_bytes!("../../../mappings/sample/accounts.yml"),
    ),
    (
        "mappings/sample/profiles.yml",
        include_bytes!("../../../mappings/sample/profiles.yml"),
    ),
];

const MAPPINGS: &[&str] = &[
    "mappings/sample/users.yml",
    "mappings/sample/accounts.yml",
    "mappings/sample/profiles.yml",
];

fn io(source: std::io::Error) -> Error {
    Error::Io {
        context: "demo setup".into(),
        source,
    }
}

pub async fn run() -> Result<ExitCode, Error> {
    let dir = std::env::temp_dir().join(format!("ebb-demo-{}", std::process::id()));
    for (path, bytes) in FILES {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&target, bytes).map_err(io)?;
    }
    let result = run_in(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(dir: &std::path::Path) -> Result<ExitCode, Error> {
    let stand_in = StandIn::start(SocketAddr::from(([127, 0, 0, 1], 0)), StandInConfig::default())
        .await
        .map_err(io)?;
    println!("stand-in for Enterpret and for profiles on {} (in-process)", stand_in.url());
    let env = OverlayEnv(HashMap::from([
        ("ENTERPRET_URL".to_string(), stand_in.url()),
        ("ENTERPRET_USERS_API_KEY".to_string(), "local-users-key".to_string()),
        ("ENTERPRET_ACCOUNTS_API_KEY".to_string(), "local-accounts-key".to_string()),
        ("PROFILES_URL".to_string(), stand_in.url()),
        ("PROFILES_TOKEN".to_string(), "local-profiles-token".to_string()),
    ]));
    let state_url = format!("sqlite://{}", dir.join("state.db").display());
    let store = state::open(&state_url, false).await?;
    let options = RunOptions {
        progress: Some(std::sync::Arc::new(super::progress::Bar::default())),
        ..RunOptions::default()
    };
    let mut ok = true;
    for round in ["first sync: everything is new", "second sync: nothing changed, so nothing is sent"] {
        println!("\n{round}");
        for mapping in MAPPINGS {
            let mapping = crate::spec::load(&dir.join(mapping), &env)?;
            let sync = SyncJob::from_mapping(mapping)?;
            let report = sync::run(&sync, store.as_ref(), &options).await?;
            ok &= report.status == state::RunStatus::Completed;
            println!(
                "  {}: {} — sent {} of {} rows ({} new, {} changed, {} unchanged, {} invalid)",
                report.sync,
                report.status.as_str(),
                report.counts.sent,
                report.counts.source,
                report.counts.new,
                report.counts.changed,
                report.counts.unchanged,
                report.counts.invalid
            );
        }
    }
    let stats = stand_in.stats();
    println!(
        "\nthe stand-in holds {} users and {} accounts for Enterpret and {} profiles, received in {} requests",
        stand_in.records("users").len(),
        stand_in.records("accounts").len(),
        stand_in.profiles().len(),
        stats.accepted_requests
    );
    println!("next: `ebb stand-in` in one terminal, then `ebb preview mappings/sample/users.yml` and `ebb sync mappings/sample/*.yml`");
    stand_in.stop().await;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
