//! What the fuzz targets (`fuzz/fuzz_targets`) and the property tests (`tests/robustness.rs`)
//! drive: ebb's own Parquet reader and row mapping over any bytes, and its mapping-file parser
//! and checker over any text. Both must end in a result, never a panic: a file ebb cannot read
//! is an error, and a value it cannot map rejects its row.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ebb::column::ColumnType;
use ebb::config::env::OverlayEnv;
use ebb::config::source::FolderRule;
use ebb::mapping::CompiledMapping;
use ebb::source::parquet::ParquetSource;
use ebb::source::{Source, SourceSchema};
use futures::StreamExt;

/// What reading and mapping a file came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Rows the source read; each is either mapped or rejected.
    pub rows: u64,
    pub mapped: u64,
    pub rejected: u64,
    /// The error that ended the read, if one did.
    pub error: Option<String>,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// A file of its own per call, in a folder that lives as long as the process.
fn scratch(bytes: &[u8]) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"));
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.path().join(format!("input-{n}.parquet"));
    std::fs::write(&path, bytes).expect("the input is written");
    path
}

/// YAML's double-quoted form of `text` (JSON's escapes are YAML's).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// An Enterpret mapping that reads every column the file has: the first that can be an id as
/// the id, the first that can be a creation time as `created_at`, and each column twice, as
/// text and as the type its own type gives it.
pub fn mapping_for(schema: &SourceSchema, source: &Path) -> Option<String> {
    let id_like = |t: &ColumnType| matches!(t, ColumnType::String | ColumnType::Int | ColumnType::UInt);
    let timed = |t: &ColumnType| !t.is_list() && !matches!(t, ColumnType::Float | ColumnType::Decimal | ColumnType::Bool);
    let (id, _) = schema.columns.iter().find(|(_, t)| id_like(t))?;
    let (created, _) = schema.columns.iter().find(|(_, t)| timed(t))?;
    let mut yaml = format!(
        "name: fuzz\nsource:\n  parquet: {}\ndestination:\n  enterpret:\n    object: user\n    api_key: ${{K:-k}}\n    url: http://127.0.0.1:9\nid: {}\ncreated_at: {}\nnulls: send\nattributes:\n",
        quoted(&source.display().to_string()),
        quoted(id),
        quoted(created)
    );
    for (i, (name, t)) in schema.columns.iter().enumerate() {
        let list = if t.is_list() { ", list: true" } else { "" };
        yaml.push_str(&format!("  text{i}: {{ column: {}, type: string{list} }}\n", quoted(name)));
        yaml.push_str(&format!("  own{i}: {{ column: {}{list} }}\n", quoted(name)));
    }
    Some(yaml)
}

/// Reads `bytes` as a Parquet snapshot with ebb's reader and maps every row with a mapping of
/// every column. `None` when the file is not one a mapping could be written for.
pub fn read_and_map(bytes: &[u8]) -> Option<Outcome> {
    let path = scratch(bytes);
    let outcome = runtime().block_on(read_and_map_file(&path));
    let _ = std::fs::remove_file(&path);
    outcome
}

async fn read_and_map_file(path: &Path) -> Option<Outcome> {
    let source = ParquetSource::local(path.display().to_string(), FolderRule::default());
    let schema = source.schema().await.ok()?;
    let yaml = mapping_for(&schema, path)?;
    let env = OverlayEnv(Default::default());
    let mapping = ebb::spec::parse(Path::new("/fuzz/m.yml"), &yaml, &env).ok()?;
    let compiled = CompiledMapping::compile(&mapping, &schema, "fuzz", 2_000_000_000).ok()?;
    let mut outcome = Outcome::default();
    let mut stream = source.stream(Arc::new(compiled.columns().to_vec()));
    while let Some(batch) = stream.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                outcome.error = Some(e.to_string());
                break;
            }
        };
        outcome.rows += batch.batch.num_rows() as u64;
        compiled.map_batch(&batch, |mapped| match mapped {
            Ok(_) => outcome.mapped += 1,
            Err(_) => outcome.rejected += 1,
        });
        let mut hashed = 0;
        compiled.hash_batch(&batch, |_| hashed += 1);
        assert_eq!(hashed, batch.batch.num_rows(), "the hash pass sees every row the mapping does");
    }
    Some(outcome)
}

/// A source schema with a column of every type, for checking mappings against.
pub fn every_type() -> SourceSchema {
    use ColumnType as T;
    let scalars = [
        ("s", T::String),
        ("i", T::Int),
        ("u", T::UInt),
        ("f", T::Float),
        ("d", T::Decimal),
        ("b", T::Bool),
        ("day", T::Date),
        ("at", T::Timestamp),
        ("empty", T::Null),
    ];
    let mut columns: Vec<(String, ColumnType)> = scalars.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
    columns.extend(scalars.iter().map(|(n, t)| (format!("{n}s"), T::List(Box::new(t.clone())))));
    SourceSchema {
        columns,
        unsupported: vec![("blob".into(), "binary".into())],
        conflicts: vec![("mixed".into(), "is integer in a but string in b".into())],
    }
}

/// Parses `text` as a mapping file and, if it parses, checks it against [`every_type`].
pub fn parse_and_check(text: &str) {
    let env = OverlayEnv([("SET".to_string(), "value".to_string())].into_iter().collect());
    if let Ok(mapping) = ebb::spec::parse(Path::new("/fuzz/m.yml"), text, &env) {
        let _ = CompiledMapping::compile(&mapping, &every_type(), "fuzz", 2_000_000_000);
    }
}
