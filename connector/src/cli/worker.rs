//! `ebb worker`, and the commands that talk to a running worker: `trigger` and `health`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::env::ProcessEnv;
use crate::config::{self, WorkerConfig};
use crate::error::Error;
use crate::worker::{Worker, WorkerOptions};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Folder of mapping files (`*.yml`, `*.yaml`); each is one sync.
    pub mappings_dir: PathBuf,
    /// Address of the HTTP endpoints (`/healthz`, `/metrics`, `/syncs`, triggers).
    #[arg(long, env = "EBB_LISTEN", default_value = "127.0.0.1:9187")]
    pub listen: SocketAddr,
    /// Runs at once across all syncs; the number of cores by default.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// How long in-flight requests may take to finish after SIGTERM or Ctrl-C.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// How often to look for changed mappings (SIGHUP reloads at once); `0s` to only reload on SIGHUP.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub poll: Duration,
    /// Worker settings: `alerts:` for every sync without its own, and `retention:` of run history.
    #[arg(long, env = "EBB_WORKER_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub select: super::SelectArgs,
}

fn io(context: &str, source: std::io::Error) -> Error {
    Error::Io {
        context: context.to_string(),
        source,
    }
}

pub async fn run(state_url: &str, args: WorkerArgs) -> Result<ExitCode, Error> {
    let config = match &args.config {
        Some(path) => config::load_worker_config(path, &ProcessEnv)?,
        None => WorkerConfig::default(),
    };
    let concurrency = args
        .concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    // Handlers first: a signal that arrives while the mappings load must not kill the process.
    let mut term = signal(SignalKind::terminate()).map_err(|e| io("cannot handle SIGTERM", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| io("cannot handle SIGINT", e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| io("cannot handle SIGHUP", e))?;
    let store = crate::state::open(state_url, false).await?;
    let worker = Worker::start(
        WorkerOptions {
            dir: args.mappings_dir.clone(),
            listen: args.listen,
            concurrency,
            grace: args.grace,
            poll: args.poll,
            config,
            selection: args.select.selection()?,
        },
        store,
    )
    .await?;
    println!(
        "ebb worker: {} on http://{} (state {}; concurrency {concurrency})",
        args.mappings_dir.display(),
        worker.addr(),
        crate::state::redact_url(state_url)
    );
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                eprintln!("SIGHUP: reloading mappings");
                worker.reload().await;
            }
        }
    }
    eprintln!(
        "stopping: no new runs; in-flight requests get up to {}s to finish and be committed. Signal again to exit now.",
        args.grace.as_secs()
    );
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        // Exact state is the commit protocol's promise, not shutdown's: unacknowledged records
        // were never committed, and the next run sends them.
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
    worker.shutdown(args.grace).await;
    Ok(ExitCode::SUCCESS)
}

fn worker_url(base: &str, path: &[&str]) -> Result<url::Url, Error> {
    let mut url = url::Url::parse(base).map_err(|e| Error::Io {
        context: format!("worker URL `{base}`"),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    url.path_segments_mut()
        .map_err(|()| io(&format!("worker URL `{base}`"), std::io::ErrorKind::InvalidInput.into()))?
        .pop_if_empty()
        .extend(path);
    Ok(url)
}

fn unreachable(base: &str, e: reqwest::Error) -> Error {
    let why = if e.is_connect() {
        "connection refused"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    io(
        &format!("cannot reach the worker at {base}: is `ebb worker` running there? (--worker or EBB_WORKER_URL)"),
        std::io::Error::other(why),
    )
}

pub async fn trigger(base: &str, name: &str, full: bool) -> Result<ExitCode, Error> {
    let mut url = worker_url(base, &["syncs", name, "trigger"])?;
    if full {
        url.set_query(Some("full=true"));
    }
    let client = reqwest::Client::new();
    let response = client
        .post(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| unreachable(base, e))?;
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    match status {
        202 => {
            let running = body["running"].as_bool().unwrap_or(false);
            if running {
                println!("{name}: queued; it runs again as soon as the current run ends");
            } else {
                println!("{name}: triggered{}", if full { " (full resync)" } else { "" });
            }
            Ok(ExitCode::SUCCESS)
        }
        404 => {
            let known: Vec<&str> = body["known"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            eprintln!("error: the worker has no sync named {}", crate::quote::quote(name));
            match config::did_you_mean(name, known.iter().copied()) {
                Some(close) => eprintln!("hint: did you mean `{close}`?"),
                None if !known.is_empty() => eprintln!("hint: its syncs are {}", known.join(", ")),
                None => eprintln!("hint: the worker has no valid mappings"),
            }
            Ok(ExitCode::FAILURE)
        }
        _ => {
            let error = body["error"].as_str().unwrap_or("no reason given");
            eprintln!("error: the worker refused the trigger (HTTP {status}): {error}");
            for e in body["errors"].as_array().into_iter().flatten().filter_map(|e| e.as_str()) {
                eprintln!("  {e}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn health(base: &str) -> Result<ExitCode, Error> {
    let url = worker_url(base, &["healthz"])?;
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| unreachable(base, e))?;
    let ok = response.status().is_success();
    println!("{}", response.text().await.unwrap_or_default());
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
