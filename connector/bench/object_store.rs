//! Parquet read from an object store against the same file read from disk: `preview` of B
//! against the state of A, both ways, runs interleaved so that drift on a shared machine hits
//! both alike, with wall time and ebb's peak RSS. The store is s3s-fs, an S3-compatible server
//! (objects are files on disk, SigV4 checked), in a process of its own on 127.0.0.1 (`ebb-bench
//! s3-server`), on the same two cores; its CPU time is reported beside ebb's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Result};
use bytes::Bytes;
use s3s::dto::{
    ETag, GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput, ListObjectsV2Input,
    ListObjectsV2Output, PutObjectInput, PutObjectOutput, StreamingBlob, Timestamp,
};
use s3s::{S3Request, S3Response, S3Result};

use ebb::config::secret::SecretString;
use ebb::config::store::{StoreConfig, StoreKind};
use ebb::source::store::Bucket;
use object_store::ObjectStoreExt;

use crate::suite::{fmt_stats, measure, stats, Env, Sample, ServerProcess, PARQUET_MAPPING};

const ACCESS_KEY: &str = "EBBBENCHACCESSKEY";
const SECRET_KEY: &str = "ebb-bench-secret-key";
const BUCKET: &str = "bench";

#[derive(clap::Args)]
pub struct ObjectStoreArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Runs of each way; the table shows the median and the range.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[arg(long, default_value = "target/bench")]
    pub work: PathBuf,
    /// The `ebb` binary; by default the one next to this one.
    #[arg(long)]
    pub ebb: Option<PathBuf>,
    /// The stand-in's port, for the sync that makes the state of A.
    #[arg(long, default_value_t = 18789)]
    pub port: u16,
    /// The S3 server's port.
    #[arg(long, default_value_t = 18790)]
    pub s3_port: u16,
}

/// The bench mapping, reading `${SNAPSHOT_URL}` from the local S3 server.
fn s3_mapping() -> String {
    PARQUET_MAPPING.replace(
        "  parquet: ${SNAPSHOT}\n",
        "  parquet: ${SNAPSHOT_URL}\n  store:\n    region: us-east-1\n    endpoint: ${S3_ENDPOINT}\n    allow_http: true\n",
    )
}

/// `ebb-bench s3-server` over `root` on `port`, as a process of its own.
fn start_s3_server(root: &Path, port: u16, gets: Gets) -> Result<ServerProcess> {
    let gets = match gets {
        Gets::Whole => "whole",
        Gets::Stock => "stock",
    };
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["s3-server", "--port", &port.to_string(), "--gets", gets, "--root"])
        .arg(root);
    ServerProcess::start(&mut command, port, "S3 server")
}

/// s3s-fs, but for its GET, which reads its file 4 KiB at a time through `tokio::fs` (a hop to
/// the blocking pool each): on the two cores it shares with ebb, that costs more CPU than the
/// reading it serves, where S3 itself costs this machine nothing. A GET here reads its range in
/// one piece. Listing, HEAD and PUT are s3s-fs's own.
struct WholeGets {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
}

#[async_trait::async_trait]
impl s3s::S3 for WholeGets {
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let path = self.root.join(&req.input.bucket).join(&req.input.key);
        let range = req.input.range;
        let read = tokio::task::spawn_blocking(move || read_range(&path, range))
            .await
            .map_err(|_| s3s::S3Error::new(s3s::S3ErrorCode::InternalError))??;
        let (bytes, whole, modified) = read;
        let length = bytes.len() as u64;
        let content_range = range.map(|_| {
            format!(
                "bytes {}-{}/{whole}",
                read_start(range, whole),
                read_start(range, whole) + length - 1
            )
        });
        let body = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: Some(length as i64),
            content_range,
            last_modified: Some(Timestamp::from(modified)),
            e_tag: Some(ETag::Strong(format!("{whole:x}-{}", unix_nanos(modified)))),
            ..Default::default()
        }))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        self.fs.put_object(req).await
    }
}

fn unix_nanos(at: std::time::SystemTime) -> u128 {
    at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn read_start(range: Option<s3s::dto::Range>, whole: u64) -> u64 {
    range.and_then(|r| r.check(whole).ok()).map_or(0, |r| r.start)
}

/// The range's bytes, the file's size and when it was written.
fn read_range(path: &Path, range: Option<s3s::dto::Range>) -> S3Result<(Bytes, u64, std::time::SystemTime)> {
    use std::io::{Read, Seek, SeekFrom};
    let missing = |_| s3s::S3Error::new(s3s::S3ErrorCode::NoSuchKey);
    let internal = |_| s3s::S3Error::new(s3s::S3ErrorCode::InternalError);
    let mut file = std::fs::File::open(path).map_err(missing)?;
    let meta = file.metadata().map_err(internal)?;
    let whole = meta.len();
    let wanted = match range {
        None => 0..whole,
        Some(r) => r.check(whole).map_err(|_| s3s::S3Error::new(s3s::S3ErrorCode::InvalidRange))?,
    };
    file.seek(SeekFrom::Start(wanted.start)).map_err(internal)?;
    let mut buffer = vec![0; (wanted.end - wanted.start) as usize];
    file.read_exact(&mut buffer).map_err(internal)?;
    Ok((Bytes::from(buffer), whole, meta.modified().map_err(internal)?))
}

/// Serves `root` (one folder a bucket) on 127.0.0.1:`port` until killed.
pub async fn serve(root: &Path, port: u16, gets: Gets) -> Result<()> {
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| anyhow::anyhow!("s3s-fs over {}: {e:?}", root.display()))?;
    let mut builder = match gets {
        Gets::Whole => s3s::service::S3ServiceBuilder::new(WholeGets {
            fs,
            root: root.canonicalize()?,
        }),
        Gets::Stock => s3s::service::S3ServiceBuilder::new(fs),
    };
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (socket, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let connection = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let _ = connection.serve_connection(hyper_util::rt::TokioIo::new(socket), service).await;
        });
    }
}

/// Puts `file` at `key` with a real PUT, as an export would: the server then keeps the object's
/// ETag, where a file dropped into its folder would have its MD5 computed on every GET.
async fn upload(endpoint: &str, key: &str, file: &Path) -> Result<()> {
    let config = StoreConfig {
        kind: StoreKind::S3,
        root: format!("s3://{BUCKET}"),
        key_pattern: key.to_string(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.parse()?),
        allow_http: true,
        env: vec![
            ("AWS_ACCESS_KEY_ID".into(), SecretString::new(ACCESS_KEY)),
            ("AWS_SECRET_ACCESS_KEY".into(), SecretString::new(SECRET_KEY)),
        ],
    };
    let bucket = Bucket::open(&config)?;
    let bytes = std::fs::read(file)?;
    bucket.store().put(&object_store::path::Path::from(key), bytes.into()).await?;
    Ok(())
}

/// How the S3 server answers a GET.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Gets {
    /// In one read of the range ([`WholeGets`]): the case's figure.
    Whole,
    /// s3s-fs's own, 4 KiB at a time through `tokio::fs`: for reference.
    Stock,
}

/// `runs` previews of B from disk and from the S3 server, interleaved, with the server's CPU.
struct Runs {
    local: Vec<Sample>,
    remote: Vec<Sample>,
    counts: (String, String),
    server_cpu: f64,
}

fn previews(env: &Env, runs: usize, b: &str, state: &str, server: &ServerProcess, s3_env: &[(&str, &str)]) -> Result<Runs> {
    let (mut local, mut remote, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    let mut counts = (String::new(), String::new());
    for _ in 0..runs {
        let (s, out) = measure(&mut env.ebb(&["preview", "users.yml", "--state", state, "--limit", "0"], &[("SNAPSHOT", b)]))?;
        local.push(s);
        counts.0 = crate::suite::counts_line(&out);
        let before = server.cpu()?;
        let (s, out) = measure(&mut env.ebb(&["preview", "users_s3.yml", "--state", state, "--limit", "0"], s3_env))?;
        cpu.push(server.cpu()? - before);
        remote.push(s);
        counts.1 = crate::suite::counts_line(&out);
    }
    ensure!(
        counts.0 == counts.1 && !counts.0.is_empty(),
        "the two reads found different diffs: `{}` from disk, `{}` from S3",
        counts.0,
        counts.1
    );
    cpu.sort_by(f64::total_cmp);
    Ok(Runs {
        local,
        remote,
        counts,
        server_cpu: cpu[cpu.len() / 2],
    })
}

/// The table rows (and notes) of the object-store case: B read from the S3 server and from
/// disk, against the state `state` of A made with `users.yml` in `env.work`; with the server's
/// fast GET (the case), then with s3s-fs's own (for reference).
pub async fn measure_case(env: &Env, runs: usize, rows: u64, b: &Path, state: &str, s3_port: u16) -> Result<(String, String)> {
    let key = "users/b.parquet";
    std::fs::write(env.work.join("users_s3.yml"), s3_mapping())?;
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    let url = format!("s3://{BUCKET}/{key}");
    let s3_env = [
        ("SNAPSHOT_URL", url.as_str()),
        ("S3_ENDPOINT", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let (mut rows_md, mut notes) = (String::new(), String::new());
    for gets in [Gets::Whole, Gets::Stock] {
        let root = env.work.join("s3");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join(BUCKET))?;
        let server = start_s3_server(&root, s3_port, gets)?;
        upload(&endpoint, key, b).await?;
        let runs = previews(env, runs, &b.display().to_string(), state, &server, &s3_env)?;
        let (l, r) = (stats(&runs.local), stats(&runs.remote));
        let (label, target) = match gets {
            Gets::Whole => ("s3s + s3s-fs on 127.0.0.1, a range read in one piece", "≤ 1.3× time, RSS ± 20 MB"),
            Gets::Stock => ("s3s-fs's own GET, 4 KiB reads; for reference", "—"),
        };
        let _ = writeln!(
            rows_md,
            "| preview of B against the state of A, {rows} rows, read from S3 ({label}) | {} | the same from local files: {} | time {:.2}×, RSS {:+.0} MB | {target} |",
            fmt_stats(&r),
            fmt_stats(&l),
            r.median / l.median,
            r.rss_mb - l.rss_mb
        );
        let _ = writeln!(
            notes,
            "- object store ({label}): both reads found `{}`; CPU ebb {:.1} s from S3 and {:.1} s from disk, the S3 server {:.2} s a run",
            runs.counts.1, r.cpu, l.cpu, runs.server_cpu
        );
    }
    Ok((rows_md.trim_end().to_string(), notes))
}

/// `ebb-bench object-store`: generates the data, makes the state of A, and measures the case.
pub async fn run(args: &ObjectStoreArgs) -> Result<(String, String)> {
    let ebb = crate::suite::ebb_binary(args.ebb.as_deref())?;
    std::fs::create_dir_all(&args.work)?;
    let work = args.work.canonicalize()?;
    let env = Env {
        ebb,
        work: work.clone(),
        stand_in_url: format!("http://127.0.0.1:{}", args.port),
        database_url: String::new(),
    };
    std::fs::write(work.join("users.yml"), PARQUET_MAPPING)?;
    eprintln!("generating data…");
    let dir = work.join(format!("data-{}", args.rows));
    crate::generate_parquet(dir.clone(), args.rows).await?;
    let state = env.fresh_state("object_store")?;
    {
        let _stand_in = ServerProcess::stand_in(&env.ebb, args.port)?;
        eprintln!("the state of A…");
        let a = dir.join("a.parquet").display().to_string();
        measure(&mut env.ebb(&["sync", "users.yml", "--state", &state], &[("SNAPSHOT", &a)]))?;
    }
    eprintln!("B from disk and from S3…");
    measure_case(&env, args.runs.max(1), args.rows, &dir.join("b.parquet"), &state, args.s3_port).await
}
