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
use crate::tls::TlsFiles;
use crate::worker::auth::{AccessOptions, WorkerToken, DEFAULT_TOKEN_ENV};
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
    /// The environment variable that holds the worker's token (never the token itself: a
    /// command line is visible to every user of the machine). Without a token the worker
    /// listens on loopback only.
    #[arg(long, value_name = "VAR", default_value = DEFAULT_TOKEN_ENV)]
    pub token_env: String,
    /// Serve `GET /metrics` without the token, for a Prometheus that holds none.
    #[arg(long)]
    pub metrics_public: bool,
    /// A name that may reach the worker as the request's `Host`, besides `localhost` and IP
    /// addresses (the name a browser or a proxy uses); repeat for more. Other names get 421,
    /// which keeps a web page that re-resolves its own name to this machine out.
    #[arg(long = "allowed-host", value_name = "NAME", env = "EBB_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Serve HTTPS with this PEM certificate chain (server certificate first); needs --tls-key.
    #[arg(long, value_name = "FILE", env = "EBB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", env = "EBB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Stop starting a run's batches this long after it starts (`10m`), over the mappings'
    /// `max_run:`. Without either, a scheduled sync's run is boxed at its period (`every:`) or
    /// the time to its next slot (`schedule:`).
    #[arg(long, value_name = "DURATION", value_parser = super::run::parse_max_run)]
    pub max_run: Option<Duration>,
    #[command(flatten)]
    pub select: super::SelectArgs,
}

/// How `ebb trigger` and `ebb health` reach a worker.
#[derive(Debug, Args)]
pub struct WorkerClientArgs {
    /// The worker's address.
    #[arg(long, env = "EBB_WORKER_URL", default_value = "http://127.0.0.1:9187")]
    pub worker: String,
    /// The environment variable that holds the worker's token, sent as `Authorization: Bearer`.
    #[arg(long, value_name = "VAR", default_value = DEFAULT_TOKEN_ENV)]
    pub token_env: String,
    /// A PEM root certificate to trust for an `https://` worker whose certificate a private CA
    /// signed (public CAs are built in).
    #[arg(long, value_name = "FILE", env = "EBB_WORKER_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// The client that talks to a worker: it follows no redirect, and trusts `--ca-cert` too.
fn client(args: &WorkerClientArgs) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &args.ca_cert {
        let context = format!("--ca-cert {}", path.display());
        let pem = std::fs::read(path).map_err(|e| io(&context, e))?;
        let root =
            reqwest::Certificate::from_pem(&pem).map_err(|e| io(&context, std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        builder = builder.add_root_certificate(root);
    }
    builder
        .build()
        .map_err(|e| io("cannot build the HTTP client", std::io::Error::other(e)))
}

/// The token in variable `var`; unset means none, and set but empty is a mistake worth saying.
fn token_from_env(var: &str) -> Result<Option<WorkerToken>, Error> {
    match std::env::var(var) {
        Ok(token) if token.trim().is_empty() => Err(Error::Usage(format!(
            "{var} is set but empty: unset it to run without a token, or set it to the worker's token"
        ))),
        Ok(token) => Ok(Some(WorkerToken::new(token))),
        // A variable named on purpose must hold a token. The name is not repeated: someone who
        // put the token itself after `--token-env` would see it printed back.
        Err(std::env::VarError::NotPresent) if var != DEFAULT_TOKEN_ENV => Err(Error::Usage(
            "the variable that --token-env names is not set: export it with the worker's token (--token-env takes a variable's name, never the token)".into(),
        )),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::Usage(format!("{var} is not valid UTF-8"))),
    }
}

fn io(context: &str, source: std::io::Error) -> Error {
    Error::Io {
        context: context.to_string(),
        source,
    }
}

/// The worker's settings from its arguments, the config file and the environment.
fn options(args: &WorkerArgs) -> Result<WorkerOptions, Error> {
    let config = match &args.config {
        Some(path) => config::load_worker_config(path, &ProcessEnv)?,
        None => WorkerConfig::default(),
    };
    let access = AccessOptions {
        token: token_from_env(&args.token_env)?,
        metrics_public: args.metrics_public,
        allowed_hosts: args.allowed_hosts.clone(),
    };
    crate::worker::auth::check_listen(args.listen, &access)?;
    let concurrency = args
        .concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    Ok(WorkerOptions {
        dir: args.mappings_dir.clone(),
        listen: args.listen,
        concurrency,
        grace: args.grace,
        max_run: args.max_run,
        poll: args.poll,
        config,
        selection: args.select.selection()?,
        access,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
    })
}

pub async fn run(state_url: &str, args: WorkerArgs) -> Result<ExitCode, Error> {
    let options = options(&args)?;
    let (concurrency, guarded) = (options.concurrency, options.access.token.is_some());
    let scheme = if options.tls.is_some() { "https" } else { "http" };
    // Handlers first: a signal that arrives while the mappings load must not kill the process.
    let mut term = signal(SignalKind::terminate()).map_err(|e| io("cannot handle SIGTERM", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| io("cannot handle SIGINT", e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| io("cannot handle SIGHUP", e))?;
    let store = crate::state::open(state_url, false).await?;
    let worker = Worker::start(options, store).await?;
    println!(
        "ebb worker: {} on {scheme}://{} (state {}; concurrency {concurrency})",
        args.mappings_dir.display(),
        worker.addr(),
        crate::state::redact_url(state_url)
    );
    if guarded {
        println!("every endpoint but /healthz wants the token in {}", args.token_env);
    } else {
        println!(
            "no token ({} is unset): listening on this machine only; set it to listen on other addresses",
            args.token_env
        );
    }
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

/// A request to the worker, with its token if the variable holds one.
fn request(builder: reqwest::RequestBuilder, token_env: &str) -> Result<reqwest::RequestBuilder, Error> {
    Ok(match token_from_env(token_env)? {
        Some(token) => builder.bearer_auth(token.expose()),
        None => builder,
    })
}

fn refused(token_env: &str) -> Error {
    let why = match std::env::var_os(token_env) {
        Some(_) => format!("the worker refused the token in {token_env}: it is not the worker's"),
        None => format!("the worker wants a token: set {token_env} to the worker's token"),
    };
    Error::Usage(why)
}

pub async fn trigger(client_args: &WorkerClientArgs, name: &str, full: bool) -> Result<ExitCode, Error> {
    let base = client_args.worker.as_str();
    let mut url = worker_url(base, &["syncs", name, "trigger"])?;
    if full {
        url.set_query(Some("full=true"));
    }
    let response = request(client(client_args)?.post(url), &client_args.token_env)?
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| unreachable(base, e))?;
    let status = response.status().as_u16();
    if status == 401 {
        return Err(refused(&client_args.token_env));
    }
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

pub async fn health(client_args: &WorkerClientArgs) -> Result<ExitCode, Error> {
    let base = client_args.worker.as_str();
    let url = worker_url(base, &["healthz"])?;
    let response = request(client(client_args)?.get(url), &client_args.token_env)?
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| unreachable(base, e))?;
    let ok = response.status().is_success();
    println!("{}", response.text().await.unwrap_or_default());
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
