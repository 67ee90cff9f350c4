//! A local stand-in for Enterpret's webhooks and for a profiles API, strict about each contract.
//!
//! It serves the quick start, the tests, docker-compose and anyone trying a
//! mapping out. Every request is checked the way the real API would check it
//! (path, `api-key`, body shape, record fields, 15 records, 1 MB), and what
//! it accepts is kept, upserted by id, with a receive count per id:
//! `GET /records/users`, `GET /records/accounts`, `GET /stats`. The profiles API is served
//! next to it (`profiles.rs`): `POST /users/import`, `DELETE /users/{email}`,
//! `GET /records/profiles`. Any JSON at `POST /http/{path}` is kept too, for the `http`
//! destination (`generic.rs`): `GET /records/http`.
//!
//! Faults for testing: `--fail-ratio` (random 500s), `--rpm` (429 with
//! `Retry-After`), `--latency-ms`, and, from code, a script of replies
//! ([`StandIn::push_faults`]), ids to refuse ([`StandIn::refuse_ids`]) and a
//! latency that changes while it runs ([`StandIn::set_latency`]).
//!
//! Every webhook request is logged with the run that sent it (ebb's `x-ebb-run`
//! header) and when it arrived and ended (`GET /requests`), so that tests can
//! check that two runs never had requests in flight at the same time.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::destination::enterpret::MAX_BYTES;
use crate::destination::RUN_HEADER;
use crate::quote::quote;
use contract::{check_record, error, invalid, records_of, Accepted, Refused};

mod contract;
mod generic;
pub use generic::HttpReceived;
mod profiles;
mod webhooks;

pub use profiles::HeldProfile;

#[derive(Clone, Debug)]
pub struct StandInConfig {
    pub users_key: String,
    pub accounts_key: String,
    /// The profiles API's token (`Authorization: Token <token>`).
    pub profiles_token: String,
    /// Requests per minute per object before 429s; `None` for no limit.
    pub rpm: Option<u32>,
    /// Share of requests answered with a 500, from 0 to 1.
    pub fail_ratio: f64,
    pub latency: Duration,
}

impl Default for StandInConfig {
    fn default() -> Self {
        Self {
            users_key: "local-users-key".into(),
            accounts_key: "local-accounts-key".into(),
            profiles_token: "local-profiles-token".into(),
            rpm: None,
            fail_ratio: 0.0,
            latency: Duration::ZERO,
        }
    }
}

/// A scripted reply for one coming request, used before any check.
#[derive(Clone, Debug)]
pub struct Fault {
    pub status: u16,
    pub retry_after_secs: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HeldRecord {
    pub id: String,
    #[serde(rename = "createdAt")]
    pub created_at: i64,
    pub attributes: Value,
    #[serde(rename = "receivedCount")]
    pub received_count: u64,
}

/// One webhook request, as the request log keeps it.
#[derive(Clone, Debug, Serialize)]
pub struct LoggedRequest {
    /// The `x-ebb-run` header (`sync/run id`), if the request carried one.
    pub run: Option<String>,
    /// When it arrived, in milliseconds since the stand-in started.
    pub started_ms: u64,
    /// When it was answered, or when the client dropped it unanswered.
    pub ended_ms: u64,
    /// `None` if the client went away before the answer.
    pub status: Option<u16>,
    /// The body's xxh3-64 in hex (a delete's: of the identity in its path): two runs sent the
    /// same requests if their logs hold the same digests.
    pub body_digest: String,
}

/// How many requests the log keeps; older ones are dropped first.
const LOG_CAPACITY: usize = 100_000;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub accepted_requests: u64,
    pub records_received: u64,
    pub by_status: BTreeMap<u16, u64>,
}

/// An accepted record as kept: its attributes as compact JSON text, which takes a fraction
/// of a parsed `Value`'s memory (a million records fit in a few hundred MB).
struct Kept {
    created_at: i64,
    attributes: Box<str>,
    received_count: u64,
}

impl Kept {
    fn held(&self, id: &str) -> HeldRecord {
        HeldRecord {
            id: id.to_string(),
            created_at: self.created_at,
            attributes: serde_json::from_str(&self.attributes).unwrap_or(Value::Null),
            received_count: self.received_count,
        }
    }
}

#[derive(Default)]
struct Inner {
    users: BTreeMap<String, Kept>,
    accounts: BTreeMap<String, Kept>,
    profiles: BTreeMap<String, HeldProfile>,
    faults: VecDeque<Fault>,
    refused: HashSet<String>,
    windows: HashMap<&'static str, VecDeque<Instant>>,
    stats: Stats,
    log: VecDeque<LoggedRequest>,
    /// Webhook record ids by object, in the order they were accepted (the latest
    /// [`ARRIVALS_CAPACITY`]).
    arrivals: HashMap<&'static str, VecDeque<String>>,
    /// What the generic endpoint took (`generic.rs`).
    http: VecDeque<generic::HttpReceived>,
}

/// How many accepted ids the arrival log keeps per object; older ones are dropped first.
const ARRIVALS_CAPACITY: usize = 1_000_000;

struct Shared {
    config: StandInConfig,
    /// The reply delay in milliseconds; starts as `config.latency`.
    latency_ms: AtomicU64,
    started: Instant,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::panic::lock(&self.inner)
    }

    fn since_start_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// A webhook request being handled: counted and logged when it ends, answered or dropped.
struct InFlight {
    shared: Arc<Shared>,
    run: Option<String>,
    started_ms: u64,
    status: Option<u16>,
    body_digest: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let entry = LoggedRequest {
            run: self.run.take(),
            started_ms: self.started_ms,
            ended_ms: self.shared.since_start_ms(),
            status: self.status,
            body_digest: std::mem::take(&mut self.body_digest),
        };
        let mut inner = self.shared.lock();
        // Stats count answered requests; the log keeps dropped ones too.
        if let Some(status) = self.status {
            inner.stats.requests += 1;
            *inner.stats.by_status.entry(status).or_default() += 1;
        }
        if inner.log.len() >= LOG_CAPACITY {
            inner.log.pop_front();
        }
        inner.log.push_back(entry);
    }
}

pub struct StandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl StandIn {
    /// Listens on `addr` (port 0 picks a free port) and serves until stopped.
    pub async fn start(addr: SocketAddr, config: StandInConfig) -> std::io::Result<StandIn> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            latency_ms: AtomicU64::new(config.latency.as_millis() as u64),
            config,
            started: Instant::now(),
            inner: Mutex::new(Inner::default()),
        });
        let app = Router::new()
            .route("/webhook/{object}/custom", post(webhooks::webhook))
            .route("/users/import", post(profiles::import))
            .route("/users/{email}", axum::routing::delete(profiles::remove))
            .route(
                "/http/{*path}",
                post(generic::receive)
                    .put(generic::receive)
                    .patch(generic::receive)
                    .delete(generic::receive),
            )
            .route("/records/{object}", get(records))
            .route("/stats", get(stats))
            .route("/requests", get(requests))
            .route("/healthz", get(|| async { "ok" }))
            // The body limit is the contract's to enforce, with the contract's error.
            .layer(DefaultBodyLimit::max(MAX_BYTES * 8))
            .with_state(shared.clone());
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await;
        });
        Ok(StandIn {
            addr,
            shared,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replies for the next requests, in order, before any other check.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().faults.extend(faults);
    }

    /// Drops the scripted replies not used yet.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Requests carrying one of these ids are refused with a 400 naming the id.
    pub fn refuse_ids(&self, ids: impl IntoIterator<Item = String>) {
        self.shared.lock().refused.extend(ids);
    }

    /// Takes these ids again, after [`StandIn::refuse_ids`].
    pub fn accept_ids(&self, ids: impl IntoIterator<Item = String>) {
        let mut inner = self.shared.lock();
        for id in ids {
            inner.refused.remove(&id);
        }
    }

    pub fn records(&self, object: &str) -> Vec<HeldRecord> {
        let inner = self.shared.lock();
        let held = if object == "accounts" { &inner.accounts } else { &inner.users };
        held.iter().map(|(id, kept)| kept.held(id)).collect()
    }

    /// The profiles held, by email.
    pub fn profiles(&self) -> Vec<HeldProfile> {
        profiles::held(&self.shared.lock().profiles)
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// The ids of an object's records (`users`, `accounts`) in the order the stand-in accepted
    /// them, a record sent twice twice.
    pub fn arrivals(&self, object: &str) -> Vec<String> {
        let inner = self.shared.lock();
        inner.arrivals.get(object).map(|a| a.iter().cloned().collect()).unwrap_or_default()
    }

    /// What the generic `/http/…` endpoint took, oldest first.
    pub fn http_received(&self) -> Vec<HttpReceived> {
        self.shared.lock().http.iter().cloned().collect()
    }

    /// The webhook requests that have ended, in the order they ended.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock().log.iter().cloned().collect()
    }

    /// Changes the delay before each webhook reply, from the next request on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.latency_ms.store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// Stops listening; requests in flight are answered, then every connection is closed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

impl InFlight {
    fn start(shared: &Arc<Shared>, headers: &HeaderMap, body: &[u8]) -> InFlight {
        InFlight {
            shared: shared.clone(),
            run: headers.get(RUN_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string),
            started_ms: shared.since_start_ms(),
            status: None,
            body_digest: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(body)),
        }
    }

    /// The response, after the configured latency.
    async fn answer(&mut self, response: Response) -> Response {
        let latency = Duration::from_millis(self.shared.latency_ms.load(Ordering::Relaxed));
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.status = Some(response.status().as_u16());
        response
    }
}

async fn records(State(shared): State<Arc<Shared>>, Path(object): Path<String>) -> Response {
    let inner = shared.lock();
    match object.as_str() {
        "users" => Json(inner.users.iter().map(|(id, k)| k.held(id)).collect::<Vec<_>>()).into_response(),
        "accounts" => Json(inner.accounts.iter().map(|(id, k)| k.held(id)).collect::<Vec<_>>()).into_response(),
        "profiles" => Json(profiles::held(&inner.profiles)).into_response(),
        "http" => Json(inner.http.iter().cloned().collect::<Vec<_>>()).into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            "use /records/users, /records/accounts, /records/profiles or /records/http",
        )
            .into_response(),
    }
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<Stats> {
    Json(shared.lock().stats.clone())
}

async fn requests(State(shared): State<Arc<Shared>>) -> Json<Vec<LoggedRequest>> {
    Json(shared.lock().log.iter().cloned().collect())
}
