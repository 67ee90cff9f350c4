//! The worker's status page and its token: every endpoint with and without the token, the
//! 401s and their metric, CSRF, POST-only changes, the listen rule, `ebb trigger` with the
//! token from the environment, secrets kept off the pages, and the pages in headless Chromium.

use crate::common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{database_url, fixture, stand_in, text, users_yaml, Workspace};
use ebb::standin::StandIn;
use ebb::tls::TlsFiles;
use ebb::worker::auth::{AccessOptions, WorkerToken};
use ebb::worker::{Worker, WorkerOptions};

const TOKEN: &str = "wk-7c1f9d2e4b8a-5e6f0a1b2c3d4e";
const API_KEY: &str = "sk-live-9f8e7d6c5b4a";
const PG_PASSWORD: &str = "hunter2-pg-secret";

/// A worker over a folder of five mappings: `users` (fine), `with-rejections` (rows the
/// mapping refuses), `failing` (a source that is not there), `secretive` (a PostgreSQL URL with
/// a password, a literal API key, and a table that is not there), and `bad.yml` (invalid).
struct Site {
    worker: Option<Worker>,
    base: String,
    http: reqwest::Client,
    _ws: Workspace,
    _standin: StandIn,
}

fn mappings(ws: &Workspace, standin: &StandIn) -> PathBuf {
    let dir = ws.path().join("mappings");
    std::fs::create_dir(&dir).expect("mappings folder");
    let url = standin.url();
    let users = fixture("users/pyarrow.parquet").display().to_string();
    let invalid = fixture("users_invalid.parquet").display().to_string();
    let write = |file: &str, text: String| std::fs::write(dir.join(file), text).expect("mapping");
    write("users.yml", users_yaml("users", &url, "").replace("${USERS_SOURCE}", &users));
    write(
        "rejects.yml",
        users_yaml("with-rejections", &url, "").replace("${USERS_SOURCE}", &invalid),
    );
    write(
        "failing.yml",
        users_yaml("failing", &url, "").replace("${USERS_SOURCE}", "/nonexistent/ebb-web-test/*.parquet"),
    );
    let pg = database_url().replacen("://postgres@", &format!("://postgres:{PG_PASSWORD}@"), 1);
    write(
        "secretive.yml",
        format!(
            "name: secretive\nsource:\n  postgres:\n    url: ${{WEB_TEST_PG:-{pg}}}\n    table: no_such_schema_ebb.people\n\
             destination:\n  enterpret:\n    object: user\n    api_key: ${{WEB_TEST_KEY:-{API_KEY}}}\n    url: {url}\n\
             id: id\ncreated_at: created\nattributes:\n  Email: email\n"
        ),
    );
    write(
        "bad.yml",
        "name: bad\nsource:\n  parquet: x.parquet\nid: id\nattribtes: {}\n".to_string(),
    );
    dir
}

impl Site {
    async fn start(token: Option<&str>, metrics_public: bool) -> Site {
        Site::start_with(token, metrics_public, &[], None).await
    }

    /// A worker with `--allowed-host` names, and over HTTPS with the test CA's certificate.
    async fn start_with(token: Option<&str>, metrics_public: bool, allowed_hosts: &[&str], tls: Option<TlsFiles>) -> Site {
        let ws = Workspace::new();
        let standin = stand_in().await;
        let dir = mappings(&ws, &standin);
        let store = ws.store().await;
        let https = tls.is_some();
        let options = WorkerOptions {
            dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            concurrency: 2,
            grace: Duration::from_secs(5),
            poll: Duration::ZERO,
            config: ebb::config::WorkerConfig::default(),
            selection: Default::default(),
            access: AccessOptions {
                token: token.map(|t| WorkerToken::new(t.to_string())),
                metrics_public,
                allowed_hosts: allowed_hosts.iter().map(|h| h.to_string()).collect(),
            },
            tls,
            max_run: None,
        };
        let worker = Worker::start(options, store).await.expect("worker starts");
        let mut http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        let base = if https {
            let ca = std::fs::read(fixture("tls/worker-ca.pem")).expect("test CA");
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"));
            format!("https://localhost:{}", worker.addr().port())
        } else {
            format!("http://{}", worker.addr())
        };
        Site {
            worker: Some(worker),
            base,
            http: http.build().expect("client"),
            _ws: ws,
            _standin: standin,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str, auth: Auth<'_>) -> (u16, String, reqwest::header::HeaderMap) {
        let response = auth.apply(self.http.get(self.url(path))).send().await.expect("GET");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, response.text().await.unwrap_or_default(), headers)
    }

    async fn post(
        &self,
        path: &str,
        auth: Auth<'_>,
        form: Option<&[(&str, &str)]>,
        origin: bool,
    ) -> (u16, String, reqwest::header::HeaderMap) {
        let mut request = auth.apply(self.http.post(self.url(path)));
        if let Some(form) = form {
            request = request.form(form);
        }
        if origin {
            request = request.header("Origin", self.base.clone());
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, response.text().await.unwrap_or_default(), headers)
    }

    /// Asks for a sync's preview, as the page's form does (with its CSRF token) for a browser.
    async fn preview(&self, name: &str, auth: Auth<'_>) -> (u16, String) {
        let csrf = match auth {
            Auth::Bearer(_) => None,
            _ => Some(csrf_of(&self.get(&format!("/syncs/{name}"), auth).await.1)),
        };
        let form: Vec<(&str, &str)> = csrf.iter().map(|c| ("csrf", c.as_str())).collect();
        let (status, body, _) = self
            .post(&format!("/syncs/{name}/preview"), auth, Some(&form), csrf.is_some())
            .await;
        (status, body)
    }

    /// Triggers every valid sync and waits until each has a finished run.
    async fn run_all(&self, auth: Auth<'_>) {
        for name in ["users", "with-rejections", "failing", "secretive"] {
            let (status, body, _) = self.post(&format!("/syncs/{name}/trigger"), auth, None, false).await;
            assert_eq!(status, 202, "{name}: {body}");
        }
        self.wait_until("every sync has a finished run", auth, |syncs| {
            syncs
                .iter()
                .all(|s| s["last_run"]["status"].as_str().is_some_and(|st| st != "running") && !s["running"].as_bool().unwrap_or(true))
        })
        .await;
    }

    async fn wait_until(&self, what: &str, auth: Auth<'_>, done: impl Fn(&[serde_json::Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body, _) = self.get("/syncs", auth).await;
            assert_eq!(status, 200, "{body}");
            let parsed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            if done(parsed["syncs"].as_array().map(Vec::as_slice).unwrap_or_default()) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting until {what}: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(worker) = self.worker.take() {
            worker.shutdown(Duration::from_secs(5)).await;
        }
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

impl Auth<'_> {
    fn apply(self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => request,
            Auth::Bearer(t) => request.bearer_auth(t),
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
        }
    }
}

/// The CSRF token the page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with the CSRF token") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().expect("token").to_string()
}

fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

const GUARDED_GETS: [&str; 6] = [
    "/",
    "/syncs",
    "/syncs/users",
    "/syncs/users/preview",
    "/syncs/users/full-resync",
    "/metrics",
];

#[tokio::test]
async fn with_a_token_every_endpoint_but_healthz_wants_it_and_refusals_are_counted() {
    let site = Site::start(Some(TOKEN), false).await;
    let (status, body, _) = site.get("/healthz", Auth::None).await;
    assert_eq!(status, 200, "healthz is open: {body}");
    for path in GUARDED_GETS {
        for auth in [
            Auth::None,
            Auth::Bearer("wk-wrong"),
            Auth::Basic("ada", "wk-wrong"),
            Auth::Basic(TOKEN, ""),
        ] {
            let (status, body, headers) = site.get(path, auth).await;
            assert_eq!(status, 401, "GET {path} without the right token: {body}");
            let challenges: Vec<&str> = headers.get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).collect();
            assert!(challenges.iter().any(|c| c.starts_with("Basic realm=")), "{path}: {challenges:?}");
            assert!(body.contains("token") && !body.contains(TOKEN), "{body}");
        }
        for auth in [Auth::Bearer(TOKEN), Auth::Basic("anyone", TOKEN)] {
            let (status, body, _) = site.get(path, auth).await;
            assert_eq!(status, 200, "GET {path} with the token: {body}");
            assert!(!body.contains(TOKEN), "{path} shows the token");
        }
    }
    let (status, _, _) = site.post("/syncs/users/trigger", Auth::None, None, false).await;
    assert_eq!(status, 401);
    let (status, body, _) = site.post("/syncs/users/trigger", Auth::Bearer(TOKEN), None, false).await;
    assert_eq!(status, 202, "{body}");
    let (_, metrics, _) = site.get("/metrics", Auth::Bearer(TOKEN)).await;
    assert_eq!(
        metric(&metrics, "ebb_worker_http_refused_total{reason=\"missing\"}"),
        7.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ebb_worker_http_refused_total{reason=\"wrong\"}"),
        18.0,
        "{metrics}"
    );
    site.stop().await;
}

#[tokio::test]
async fn metrics_public_opens_metrics_and_nothing_else() {
    let site = Site::start(Some(TOKEN), true).await;
    let (status, body, _) = site.get("/metrics", Auth::None).await;
    assert_eq!(status, 200);
    assert!(body.contains("ebb_worker_mappings"), "{body}");
    let (status, _, _) = site.get("/syncs", Auth::None).await;
    assert_eq!(status, 401);
    let (status, _, _) = site.get("/", Auth::None).await;
    assert_eq!(status, 401);
    // Before any run, the preview shows what the first would send, request bodies included.
    let (_, preview) = site.preview("users", Auth::Bearer(TOKEN)).await;
    assert!(preview.contains("<dd id=\"would-send\">40</dd>"), "{preview}");
    assert!(
        preview.contains("<code>POST ") && preview.contains("&quot;attributes&quot;"),
        "{preview}"
    );
    site.stop().await;
}

#[tokio::test]
async fn changes_are_post_only_and_a_browser_needs_the_pages_csrf_token() {
    let site = Site::start(Some(TOKEN), false).await;
    let browser = Auth::Basic("ada", TOKEN);
    let (status, _, _) = site.get("/syncs/users/trigger", browser).await;
    assert_eq!(status, 405, "a GET must not start a run");
    // A browser's request without the page's token, or with another, is refused.
    let (status, body, _) = site.post("/syncs/users/trigger", browser, None, false).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let (status, _, _) = site
        .post(
            "/syncs/users/trigger",
            browser,
            Some(&[("csrf", "0123456789abcdef0123456789abcdef")]),
            true,
        )
        .await;
    assert_eq!(status, 403);
    let (_, page, _) = site.get("/syncs/users", browser).await;
    let csrf = csrf_of(&page);
    let (status, _, headers) = site.post("/syncs/users/trigger", browser, Some(&[("csrf", &csrf)]), true).await;
    assert_eq!(status, 303);
    assert_eq!(
        headers.get("location").and_then(|v| v.to_str().ok()),
        Some("/syncs/users?queued=run")
    );
    // The full resync's confirmation page posts `full`, with the token.
    let (_, confirm, _) = site.get("/syncs/users/full-resync", browser).await;
    assert!(confirm.contains("name=\"full\" value=\"true\"") && csrf_of(&confirm) == csrf);
    // An API call with Bearer needs none.
    let (status, body, _) = site.post("/syncs/users/trigger?full=true", Auth::Bearer(TOKEN), None, false).await;
    assert_eq!(status, 202, "{body}");
    let (_, metrics, _) = site.get("/metrics", Auth::Bearer(TOKEN)).await;
    assert_eq!(metric(&metrics, "ebb_worker_http_refused_total{reason=\"csrf\"}"), 2.0, "{metrics}");
    site.stop().await;
}

#[tokio::test]
async fn without_a_token_a_page_of_another_site_still_cannot_start_a_run() {
    let site = Site::start(None, false).await;
    let (status, _, _) = site.get("/syncs", Auth::None).await;
    assert_eq!(status, 200);
    // What a form on any site would send: an Origin, and no CSRF token.
    let (status, _, _) = site.post("/syncs/users/trigger", Auth::None, Some(&[("full", "true")]), true).await;
    assert_eq!(status, 403);
    let (_, page, _) = site.get("/", Auth::None).await;
    let (_, sync_page, _) = site.get("/syncs/users", Auth::None).await;
    assert!(page.contains("<table id=\"syncs\""));
    let (status, _, _) = site
        .post("/syncs/users/trigger", Auth::None, Some(&[("csrf", &csrf_of(&sync_page))]), true)
        .await;
    assert_eq!(status, 303);
    // `curl -X POST` and `ebb trigger` are not browsers.
    let (status, _, _) = site.post("/syncs/users/trigger", Auth::None, None, false).await;
    assert_eq!(status, 202);
    site.stop().await;
}

#[tokio::test]
async fn the_pages_show_failures_rejections_and_invalid_mappings_and_no_secret() {
    let site = Site::start(Some(TOKEN), false).await;
    let auth = Auth::Bearer(TOKEN);
    site.run_all(auth).await;
    let (status, overview, _) = site.get("/", auth).await;
    assert_eq!(status, 200);
    for sync in ["users", "with-rejections", "failing", "secretive"] {
        assert!(
            overview.contains(&format!("data-sync=\"{sync}\"")),
            "{sync} missing from the overview"
        );
    }
    assert!(
        overview.contains("<tr class=\"bad\" data-sync=\"failing\""),
        "a failed sync stands out"
    );
    assert!(overview.contains("/nonexistent/ebb-web-test"), "the failure's error in full");
    assert!(
        overview.contains("bad.yml:5:1"),
        "the invalid mapping with file:line:col: {overview}"
    );
    assert!(
        overview.contains(" UTC</time>") && overview.contains("ago)"),
        "times in UTC with a relative form"
    );
    let (_, rejects, _) = site.get("/syncs/with-rejections", auth).await;
    assert!(
        rejects.contains("id=\"runs-chart\"") && rejects.contains("id=\"rejected\""),
        "{rejects}"
    );
    assert!(rejects.contains("<td>mapping</td>"), "the rejections with their stage and reason");
    let (_, secretive, _) = site.get("/syncs/secretive", auth).await;
    let (_, preview) = site.preview("secretive", auth).await;
    let (_, json, _) = site.get("/syncs", auth).await;
    for (what, text) in [
        ("overview", &overview),
        ("sync page", &secretive),
        ("preview", &preview),
        ("/syncs", &json),
    ] {
        for secret in [PG_PASSWORD, API_KEY, TOKEN] {
            assert!(!text.contains(secret), "the {what} shows a secret");
        }
    }
    assert!(
        secretive.contains("postgres 127.0.0.1:5432/"),
        "the source, without its credentials: {secretive}"
    );
    assert!(preview.contains("no_such_schema_ebb"), "the preview's failure is shown: {preview}");
    let (_, users_preview) = site.preview("users", auth).await;
    assert!(
        users_preview.contains("<dd id=\"would-send\">0</dd>"),
        "all sent already: {users_preview}"
    );
    site.stop().await;
}

fn ebb_worker(ws: &Path, listen: &str, envs: &[(&str, &str)], extra: &[&str]) -> std::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ebb"));
    cmd.current_dir(ws)
        .args(["--state", "state.db", "worker", "mappings", "--listen", listen, "--poll", "0s"])
        .args(extra)
        .env_remove("EBB_WORKER_TOKEN")
        .env_remove("EBB_LOG")
        .stdout(std::fs::File::create(ws.join("worker.out")).expect("out"))
        .stderr(std::fs::File::create(ws.join("worker.err")).expect("err"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("ebb worker starts")
}

fn wait_for_line(file: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "no `{needle}` in {}: {text}", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn the_listen_rule_and_the_token_from_the_environment_for_worker_trigger_and_health() {
    let ws = Workspace::new();
    let standin = stand_in().await;
    mappings(&ws, &standin);
    let dir = ws.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = ebb_worker(&dir, "0.0.0.0:0", &[], &[]);
        let status = child.wait().expect("worker exits");
        (status, std::fs::read_to_string(dir.join("worker.err")).unwrap_or_default())
    })
    .await
    .expect("join");
    assert!(!out.0.success());
    assert!(
        out.1.contains("will not listen on 0.0.0.0:0 without a token") && out.1.contains("EBB_WORKER_TOKEN"),
        "{}",
        out.1
    );
    let empty = common::ebb(
        ws.path(),
        &["worker", "mappings", "--listen", "0.0.0.0:0"],
        &[("EBB_WORKER_TOKEN", " ")],
    );
    assert!(text(&empty).1.contains("EBB_WORKER_TOKEN is set but empty"), "{:?}", text(&empty));

    // With its token in another variable it listens on every address.
    let mut child = ebb_worker(
        ws.path(),
        "0.0.0.0:0",
        &[("MY_WORKER_TOKEN", TOKEN)],
        &["--token-env", "MY_WORKER_TOKEN", "--allowed-host", "ebb.test"],
    );
    let out = wait_for_line(&ws.path().join("worker.out"), "wants the token in MY_WORKER_TOKEN");
    wait_for_line(&ws.path().join("worker.err"), "without TLS: its token travels in clear");
    let port = out
        .split(" on http://0.0.0.0:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("port")
        .to_string();
    let worker = format!("http://127.0.0.1:{port}");
    // `--allowed-host` names a Host the worker answers to; another name gets 421.
    for (host, want) in [("ebb.test", 200), ("other.test", 421)] {
        let answer = reqwest::Client::new()
            .get(format!("{worker}/healthz"))
            .header("Host", host)
            .send()
            .await
            .expect("healthz");
        assert_eq!(answer.status().as_u16(), want, "{host}");
    }
    let cli = |args: &[&str], envs: &[(&str, &str)]| {
        let mut all = vec![("EBB_WORKER_URL", worker.as_str())];
        all.extend_from_slice(envs);
        text(&common::ebb(ws.path(), args, &all))
    };
    let (_, err) = cli(&["trigger", "users"], &[]);
    assert!(err.contains("the worker wants a token: set EBB_WORKER_TOKEN"), "{err}");
    let (_, err) = cli(&["trigger", "users"], &[("EBB_WORKER_TOKEN", "wk-wrong")]);
    assert!(
        err.contains("refused the token in EBB_WORKER_TOKEN") && !err.contains("wk-wrong"),
        "{err}"
    );
    let (out, err) = cli(
        &["trigger", "users", "--token-env", "MY_WORKER_TOKEN"],
        &[("MY_WORKER_TOKEN", TOKEN)],
    );
    assert!(out.contains("users: triggered"), "{out}{err}");
    let (out, _) = cli(&["health"], &[]);
    assert!(out.contains("\"status\":\"ok\""), "{out}");
    let _ = child.kill();
    let _ = child.wait();
    let logs = std::fs::read_to_string(ws.path().join("worker.err")).unwrap_or_default() + &out;
    assert!(!logs.contains(TOKEN), "the token reached a log line");
}

/// A request as a browser sends it, with the `Host` and `Origin` it names.
async fn raw(site: &Site, method: reqwest::Method, path: &str, host: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let mut request = site.http.request(method, site.url(path)).header("Host", host);
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("request");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_page_whose_name_rebinds_to_this_machine_reads_nothing_and_changes_nothing() {
    for token in [None, Some(TOKEN)] {
        let site = Site::start_with(token, false, &["ebb.test"], None).await;
        let port = site.base.rsplit(':').next().expect("port").to_string();
        let basic = format!("Basic {}", base64_of(&format!("ada:{TOKEN}")));
        let auth: Vec<(&str, &str)> = token.map(|_| ("authorization", basic.as_str())).into_iter().collect();
        // What the page of `rebind.evil.example` gets once its name points at 127.0.0.1.
        for path in ["/", "/syncs", "/syncs/users", "/syncs/users/preview", "/metrics"] {
            let (status, body) = raw(&site, reqwest::Method::GET, path, &format!("rebind.evil.example:{port}"), &auth).await;
            assert_eq!(status, 421, "{path}: {body}");
            assert!(
                body.contains("does not answer to rebind.evil.example") && body.contains("--allowed-host"),
                "{body}"
            );
            assert!(!body.contains("csrf"), "{body}");
        }
        let (status, _) = raw(
            &site,
            reqwest::Method::POST,
            "/syncs/users/trigger",
            &format!("rebind.evil.example:{port}"),
            &auth,
        )
        .await;
        assert_eq!(status, 421, "a change by another name");
        // The names this machine and the operator give it are answered.
        for host in [
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            "ebb.test".to_string(),
            format!("[::1]:{port}"),
        ] {
            let (status, body) = raw(&site, reqwest::Method::GET, "/syncs", &host, &auth).await;
            assert_eq!(status, 200, "{host}: {body}");
        }
        // A change posted by a page of another origin is refused even with the page's token.
        let (_, page) = raw(&site, reqwest::Method::GET, "/syncs/users", &format!("127.0.0.1:{port}"), &auth).await;
        let csrf = csrf_of(&page);
        let form = format!("csrf={csrf}");
        let post = |origin: String| {
            let mut headers = auth.clone();
            headers.push(("content-type", "application/x-www-form-urlencoded"));
            // A browser's mark of where a request came from, as Chromium sends it.
            let cross = !origin.contains(&format!(":{port}")) && !origin.contains("ebb.test");
            headers.push(("sec-fetch-site", if cross { "cross-site" } else { "same-origin" }));
            let site = &site;
            let form = form.clone();
            let port = port.clone();
            async move {
                let mut request = site
                    .http
                    .post(site.url("/syncs/users/trigger"))
                    .header("Host", format!("127.0.0.1:{port}"))
                    .header("Origin", origin)
                    .body(form);
                for (k, v) in &headers {
                    request = request.header(*k, *v);
                }
                let response = request.send().await.expect("POST");
                (response.status().as_u16(), response.text().await.unwrap_or_default())
            }
        };
        for origin in [
            "http://evil.example".to_string(),
            format!("http://127.0.0.1:{}", 1),
            "null".to_string(),
        ] {
            let (status, body) = post(origin.clone()).await;
            assert_eq!(status, 403, "{origin}: {body}");
            assert!(body.contains("the worker's own pages"), "{body}");
        }
        let (status, body) = post(format!("http://127.0.0.1:{port}")).await;
        assert_eq!(status, 303, "the worker's own origin: {body}");
        let (status, body) = post("https://ebb.test".to_string()).await;
        assert_eq!(status, 303, "an allowed name (a proxy in front): {body}");
        let (_, metrics) = raw(&site, reqwest::Method::GET, "/metrics", &format!("127.0.0.1:{port}"), &auth).await;
        assert_eq!(metric(&metrics, "ebb_worker_http_refused_total{reason=\"host\"}"), 6.0, "{metrics}");
        assert_eq!(
            metric(&metrics, "ebb_worker_http_refused_total{reason=\"origin\"}"),
            3.0,
            "{metrics}"
        );
        site.stop().await;
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn every_answer_forbids_framing_scripts_sniffing_referrers_and_caching() {
    let site = Site::start(Some(TOKEN), false).await;
    let port = site.base.rsplit(':').next().expect("port").to_string();
    let mut answers = Vec::new();
    for path in ["/", "/syncs", "/syncs/users", "/syncs/users/preview", "/syncs/nope", "/metrics"] {
        answers.push((path.to_string(), site.get(path, Auth::Bearer(TOKEN)).await));
    }
    answers.push(("/healthz".into(), site.get("/healthz", Auth::None).await));
    answers.push(("401".into(), site.get("/", Auth::None).await));
    answers.push(("preview".into(), {
        let r = site
            .http
            .post(site.url("/syncs/users/preview"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("POST");
        (r.status().as_u16(), String::new(), r.headers().clone())
    }));
    let r = site
        .http
        .get(site.url("/"))
        .header("Host", format!("evil.example:{port}"))
        .send()
        .await
        .expect("GET");
    answers.push(("421".into(), (r.status().as_u16(), String::new(), r.headers().clone())));
    for (what, (status, _, headers)) in answers {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert_eq!(h("x-frame-options"), "DENY", "{what} ({status})");
        assert_eq!(
            h("content-security-policy"),
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
            "{what}"
        );
        assert_eq!(h("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{what}");
        assert_eq!(h("cache-control"), "no-store", "{what}");
    }
    site.stop().await;
}

#[tokio::test]
async fn a_preview_is_a_posted_form_made_one_at_a_time_and_kept_a_minute() {
    let site = Site::start(Some(TOKEN), false).await;
    let browser = Auth::Basic("ada", TOKEN);
    // Opening the preview's address reads nothing: it is the form that asks for one.
    let (status, page, _) = site.get("/syncs/users/preview", browser).await;
    assert_eq!(status, 200);
    assert!(
        !page.contains("would-send") && page.contains("method=\"post\" action=\"/syncs/users/preview\""),
        "{page}"
    );
    let csrf = csrf_of(&page);
    // A page of another site cannot make a browser ask for one.
    let (status, body, _) = site.post("/syncs/users/preview", browser, None, false).await;
    assert_eq!(status, 403, "{body}");
    // Two at once: the second waits for the first and is shown its result.
    let form = [("csrf", csrf.as_str())];
    let (a, b) = tokio::join!(
        site.post("/syncs/users/preview", browser, Some(&form), true),
        site.post("/syncs/users/preview", Auth::Bearer(TOKEN), None, false)
    );
    assert_eq!((a.0, b.0), (200, 200), "{}{}", a.1, b.1);
    assert!(a.1.contains("<dd id=\"would-send\">40</dd>"), "{}", a.1);
    assert_eq!(made(&a.1), made(&b.1), "one preview made, shown to both");
    // Within the minute, a run changes nothing shown: the kept result is shown again.
    let (status, _, _) = site.post("/syncs/users/trigger", Auth::Bearer(TOKEN), None, false).await;
    assert_eq!(status, 202);
    site.wait_until("the users run finished", Auth::Bearer(TOKEN), |syncs| {
        syncs
            .iter()
            .any(|s| s["name"] == "users" && s["last_run"]["status"] == "completed" && s["running"] == false)
    })
    .await;
    let (_, again) = site.preview("users", Auth::Bearer(TOKEN)).await;
    assert_eq!(made(&again), made(&a.1));
    assert!(
        again.contains("<dd id=\"would-send\">40</dd>") && again.contains("shown again for 60 s"),
        "{again}"
    );
    site.stop().await;
}

#[tokio::test]
async fn a_request_body_over_64_kib_is_refused_unread() {
    let site = Site::start(Some(TOKEN), false).await;
    let big = "csrf=".to_string() + &"x".repeat(70 * 1024);
    let response = site
        .http
        .post(site.url("/syncs/users/trigger"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers().get("x-frame-options").and_then(|v| v.to_str().ok()),
        Some("DENY")
    );
    site.stop().await;
}

/// When a preview page's result was made, to the millisecond.
fn made(page: &str) -> String {
    let at = page.find("data-made=\"").expect("the preview's time") + "data-made=\"".len();
    page[at..].split('"').next().expect("time").to_string()
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed_and_never_keep_healthz_from_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let site = Site::start(Some(TOKEN), false).await;
    let addr = site.base.trim_start_matches("http://").to_string();
    // A crowd of connections that say nothing, and one that sends half a head and stalls.
    let mut idle = Vec::new();
    for _ in 0..ebb::worker::serve::MAX_CONNECTIONS + 6 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.expect("connect"));
    }
    let mut slow = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"GET /syncs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("half a head");
    // A whole head, then a body that never comes whole: answered 408, then closed.
    let mut trickle = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head =
        format!("POST /syncs/users/trigger HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\nx");
    trickle.write_all(head.as_bytes()).await.expect("head");
    // Without the cap's eviction this would wait for the idle ones' ten seconds to run out.
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(8))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let health = fresh
        .get(site.url("/healthz"))
        .send()
        .await
        .expect("healthz answers while idle connections wait");
    assert_eq!(health.status(), 200);
    // Each idle connection and the slow one are closed by the worker (within ten seconds of
    // opening; the bound here is loose, for a busy machine).
    let closed = |mut stream: tokio::net::TcpStream| async move {
        let mut buf = [0u8; 256];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    };
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(40), trickle.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(closed(slow).await, "a half-sent head keeps its connection");
    let all = futures::future::join_all(idle.into_iter().map(closed)).await;
    assert!(all.iter().all(|c| *c), "an idle connection stayed open");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "closed before its ten seconds: {:?}",
        started.elapsed()
    );
    let health = fresh.get(site.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    site.stop().await;
}

#[tokio::test]
async fn a_short_token_stops_the_worker_at_start_without_being_printed() {
    let ws = Workspace::new();
    let standin = stand_in().await;
    mappings(&ws, &standin);
    let short = "wk-only-23-characters-x";
    for (envs, extra) in [
        (vec![("EBB_WORKER_TOKEN", short)], vec![]),
        (vec![("MY_TOKEN", short)], vec!["--token-env", "MY_TOKEN"]),
    ] {
        let mut args = vec!["--state", "state.db", "worker", "mappings", "--listen", "127.0.0.1:0"];
        args.extend(extra);
        let out = common::ebb(ws.path(), &args, &envs);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{stdout}{stderr}");
        assert!(stderr.contains("shorter than 24 characters"), "{stderr}");
        assert!(
            !stderr.contains(short) && !stdout.contains(short),
            "the token was printed: {stderr}"
        );
    }
}

#[tokio::test]
async fn with_a_certificate_the_worker_serves_https_only() {
    let tls = TlsFiles {
        cert: fixture("tls/worker.pem"),
        key: fixture("tls/worker.key"),
    };
    let site = Site::start_with(Some(TOKEN), false, &[], Some(tls)).await;
    assert!(site.base.starts_with("https://localhost:"));
    let (status, body, _) = site.get("/syncs", Auth::Bearer(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let (_, preview) = site.preview("users", Auth::Basic("ada", TOKEN)).await;
    assert!(preview.contains("<dd id=\"would-send\">40</dd>"), "{preview}");
    // Plain HTTP on the same port gets no answer.
    let plain = site.base.replacen("https://", "http://", 1);
    let reply = reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    assert!(reply.is_err() || !reply.expect("reply").status().is_success());
    // A client that does not trust the test CA refuses the worker's certificate.
    let untrusting = reqwest::Client::new().get(site.url("/healthz")).send().await;
    assert!(untrusting.is_err());
    site.stop().await;

    // From the command line: `--tls-cert` and `--tls-key`, and a clear error for a wrong file.
    let ws = Workspace::new();
    let standin = stand_in().await;
    mappings(&ws, &standin);
    let (cert, key) = (fixture("tls/worker.pem"), fixture("tls/worker.key"));
    let (cert, key) = (cert.to_str().expect("path"), key.to_str().expect("path"));
    let mut child = ebb_worker(
        ws.path(),
        "0.0.0.0:0",
        &[("EBB_WORKER_TOKEN", TOKEN)],
        &["--tls-cert", cert, "--tls-key", key],
    );
    let out = wait_for_line(&ws.path().join("worker.out"), "wants the token");
    assert!(out.contains(" on https://0.0.0.0:"), "{out}");
    let port = out
        .split(" on https://0.0.0.0:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("port")
        .to_string();
    // `ebb health` trusts the worker's private CA with --ca-cert, and nothing else.
    let ca = fixture("tls/worker-ca.pem");
    let worker = format!("https://localhost:{port}");
    let health = |extra: &[&str]| {
        let mut args = vec!["health", "--worker", worker.as_str()];
        args.extend_from_slice(extra);
        text(&common::ebb(ws.path(), &args, &[]))
    };
    let (out, err) = health(&["--ca-cert", ca.to_str().expect("path")]);
    assert!(out.contains("\"status\":\"ok\""), "{out}{err}");
    let (out, err) = health(&[]);
    assert!(!out.contains("\"status\""), "an unknown CA is not trusted: {out}{err}");
    let _ = child.kill();
    let _ = child.wait();
    let err = std::fs::read_to_string(ws.path().join("worker.err")).unwrap_or_default();
    assert!(!err.contains("travels in clear"), "{err}");
    let out = common::ebb(
        ws.path(),
        &["worker", "mappings", "--tls-cert", key, "--tls-key", key],
        &[("EBB_WORKER_TOKEN", TOKEN)],
    );
    let (_, stderr) = text(&out);
    assert!(stderr.contains("holds no certificate") && stderr.contains("worker.key"), "{stderr}");
}

#[tokio::test]
async fn without_a_token_the_worker_says_it_listens_on_this_machine_only() {
    let ws = Workspace::new();
    let standin = stand_in().await;
    mappings(&ws, &standin);
    let mut child = ebb_worker(ws.path(), "127.0.0.1:0", &[], &[]);
    let out = wait_for_line(&ws.path().join("worker.out"), "no token");
    assert!(
        out.contains("no token (EBB_WORKER_TOKEN is unset): listening on this machine only"),
        "{out}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// chromedriver on a free port, and a headless Chromium session through it.
struct Browser {
    driver: std::process::Child,
    client: fantoccini::Client,
    /// The session's own handle, closed by `stop`; `client` is a clone the test uses.
    session: Option<fantoccini::Client>,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("chromedriver: install Debian's chromium and chromium-driver (`scripts/test` does)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        // A process group of its own, so that Chromium, which chromedriver starts, goes with it.
        let driver = std::process::Command::new(chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no Chromium session through chromedriver: {e}"),
            }
        };
        Browser {
            driver,
            session: Some(client.clone()),
            client,
            _profile: profile,
        }
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshots folder");
        let path = dir.join(name);
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    async fn text_of(&self, css: &str) -> String {
        let element = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"));
        element.text().await.expect("text")
    }

    /// Clicks the element `css` finds, then waits for the page to have `then`.
    async fn click_then_wait_for(&self, css: &str, then: &str) {
        let element = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}`: {e}"));
        element.click().await.unwrap_or_else(|e| panic!("clicking `{css}`: {e}"));
        self.client
            .wait()
            .for_element(fantoccini::Locator::Css(then))
            .await
            .unwrap_or_else(|e| panic!("no `{then}` after clicking `{css}`: {e}"));
    }

    async fn count(&self, css: &str) -> usize {
        self.client.find_all(fantoccini::Locator::Css(css)).await.expect("find_all").len()
    }

    /// Ends the session (Chromium quits), then `Drop` ends chromedriver.
    async fn stop(mut self) {
        if let Some(client) = self.session.take() {
            let _ = client.close().await;
        }
    }
}

/// Also when a test fails midway: chromedriver and every Chromium process it started.
impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let killed = std::process::Command::new("kill").args(["-KILL", "--", &group]).status();
        if !killed.is_ok_and(|s| s.success()) {
            let _ = self.driver.kill();
        }
        let _ = self.driver.wait();
    }
}

#[tokio::test]
async fn in_headless_chromium_a_person_sees_the_failure_opens_a_sync_and_runs_it_now() {
    let site = Site::start(Some(TOKEN), false).await;
    site.run_all(Auth::Bearer(TOKEN)).await;
    let browser = Browser::start().await;
    let client = &browser.client;
    // The browser logs in with HTTP Basic, the token as the password.
    let login = site.base.replacen("http://", &format!("http://ebb:{TOKEN}@"), 1);
    client.goto(&format!("{login}/")).await.expect("overview loads");
    assert_eq!(client.title().await.expect("title"), "Syncs · ebb");
    let failing = browser.text_of("tr[data-sync='failing']").await;
    assert!(
        failing.contains("failed") && failing.contains("/nonexistent/ebb-web-test"),
        "{failing}"
    );
    let failed_colour = client
        .find(fantoccini::Locator::Css("tr[data-sync='failing']"))
        .await
        .expect("row")
        .css_value("background-color")
        .await
        .expect("colour");
    assert_ne!(failed_colour, "rgba(0, 0, 0, 0)", "the failed sync's row stands out");
    let rejects = browser.text_of("tr[data-sync='with-rejections']").await;
    assert!(rejects.contains("invalid"), "{rejects}");
    assert!(browser.text_of("#invalid + table").await.contains("bad.yml:5:1"));
    assert!(browser.text_of(".summary").await.contains("2 failed"));
    let overview = browser.screenshot("overview.png").await;

    browser.click_then_wait_for("a[href='/syncs/users']", "svg#runs-chart").await;
    assert_eq!(browser.count("svg#runs-chart g.run").await, 1, "one bar per run");
    assert_eq!(browser.count("#runs tbody tr").await, 1);
    browser.screenshot("sync.png").await;

    browser.click_then_wait_for("#run-now", ".flash").await;
    assert!(client
        .current_url()
        .await
        .expect("url")
        .as_str()
        .ends_with("/syncs/users?queued=run"));
    let deadline = Instant::now() + Duration::from_secs(60);
    // Until the new run is listed, and finished.
    while browser.count("#runs tbody tr").await < 2 || browser.count("#runs tbody tr:first-child .s-completed").await == 0 {
        assert!(Instant::now() < deadline, "the triggered run never appeared");
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.refresh().await.expect("reload");
    }
    assert_eq!(browser.count("svg#runs-chart g.run").await, 2);
    browser.screenshot("after-run-now.png").await;
    // The preview is a form the page posts, with its CSRF token, under the page's CSP.
    browser.click_then_wait_for("button#preview", "#would-send").await;
    assert_eq!(browser.text_of("#would-send").await, "0", "everything was sent by the run");
    browser.screenshot("preview.png").await;
    eprintln!(
        "screenshots in {}",
        overview.parent().map(|p| p.display().to_string()).unwrap_or_default()
    );
    browser.stop().await;
    site.stop().await;
}
