//! A real S3-compatible server for the object-store tests: s3s-fs (objects are files under a
//! temporary folder, one folder a bucket; SigV4 signatures checked against one key pair) on
//! 127.0.0.1, on a runtime of its own so that it serves while a test waits on a child process.
//! It counts what it served, and can be slowed down so that a test can stop a run mid-read.
//! Not every test that starts it uses every count.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use s3s::dto::{
    GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput, ListObjectsV2Input,
    ListObjectsV2Output,
};
use s3s::{S3Request, S3Response, S3Result, S3};

pub const ACCESS_KEY: &str = "EBBTESTACCESSKEY";
pub const SECRET_KEY: &str = "ebb-test-secret-key-do-not-print";

/// What the server did.
#[derive(Default)]
pub struct Served {
    /// GETs begun, and GETs answered.
    pub gets_begun: AtomicU64,
    pub gets: AtomicU64,
    pub bytes: AtomicU64,
    pub lists: AtomicU64,
    /// Each GET waits this long first, while set.
    pub get_delay_ms: AtomicU64,
}

impl Served {
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }
    pub fn reset(&self) {
        self.gets_begun.store(0, Ordering::SeqCst);
        self.gets.store(0, Ordering::SeqCst);
        self.bytes.store(0, Ordering::SeqCst);
        self.lists.store(0, Ordering::SeqCst);
    }
}

/// s3s-fs, counted: the operations object_store uses pass through to it.
struct Counted {
    fs: s3s_fs::FileSystem,
    served: Arc<Served>,
}

#[async_trait::async_trait]
impl S3 for Counted {
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        self.served.gets_begun.fetch_add(1, Ordering::SeqCst);
        let delay = self.served.get_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let out = self.fs.get_object(req).await?;
        self.served.gets.fetch_add(1, Ordering::SeqCst);
        let length = out.output.content_length.unwrap_or(0).max(0) as u64;
        self.served.bytes.fetch_add(length, Ordering::SeqCst);
        Ok(out)
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.served.lists.fetch_add(1, Ordering::SeqCst);
        self.fs.list_objects_v2(req).await
    }
}

pub struct S3Server {
    pub endpoint: String,
    pub served: Arc<Served>,
    root: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl S3Server {
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().expect("server root");
        let served = Arc::new(Served::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, port) = std::sync::mpsc::channel::<u16>();
        let (dir, counts) = (root.path().to_path_buf(), Arc::clone(&served));
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(serve(dir, counts, ready, stopped));
        });
        let port = port.recv().expect("server is listening");
        S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            served,
            root,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The folder of a bucket, created.
    pub fn bucket(&self, name: &str) -> PathBuf {
        let dir = self.root.path().join(name);
        std::fs::create_dir_all(&dir).expect("bucket folder");
        dir
    }

    /// Puts a local file at `key` in `bucket`.
    pub fn put(&self, bucket: &str, key: &str, from: &Path) {
        let to = self.bucket(bucket).join(key);
        std::fs::create_dir_all(to.parent().expect("key has a folder")).expect("key folders");
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {} to {key}: {e}", from.display()));
    }

    /// Puts `bytes` at `key` in `bucket`.
    pub fn put_bytes(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let to = self.bucket(bucket).join(key);
        std::fs::create_dir_all(to.parent().expect("key has a folder")).expect("key folders");
        std::fs::write(&to, bytes).expect("write object");
    }

    /// The environment a child `ebb` (or a mapping loaded in-process) reads its credentials from.
    pub fn credentials(&self) -> Vec<(&'static str, &'static str)> {
        vec![("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY)]
    }

    /// The variables a mapping over this server needs: its credentials, and `S3_ENDPOINT`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env: Vec<(&str, String)> = self.credentials().into_iter().map(|(k, v)| (k, v.to_string())).collect();
        env.push(("S3_ENDPOINT", self.endpoint.clone()));
        env
    }
}

async fn serve(root: PathBuf, served: Arc<Served>, ready: std::sync::mpsc::Sender<u16>, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs over the root");
    let mut builder = s3s::service::S3ServiceBuilder::new(Counted { fs, served });
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    ready.send(listener.local_addr().expect("address").port()).expect("test waits");
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => continue,
            },
            _ = &mut stopped => return,
        };
        let service = service.clone();
        tokio::spawn(async move {
            let connection = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let _ = connection.serve_connection(hyper_util::rt::TokioIo::new(socket), service).await;
        });
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
