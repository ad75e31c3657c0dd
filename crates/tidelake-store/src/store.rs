//! [`WarehouseStore`]: the one type through which Tidelake touches storage.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::sync::OnceCell;

use crate::error::{Result, StoreError};
use crate::faults::{AfterCreate, FaultInjector, FaultPlan, FaultStats, OpKind};
use crate::local::{
    exists_inline, read_inline, read_range_inline, write_atomically, Inline, LocalWrite,
};
use crate::path::{is_hidden, join, normalize_prefix, relative, validate_object_path, DIR_MARKER};
use crate::uri::{self, Location};

/// The default warehouse location of the command-line tools.
pub const DEFAULT_WAREHOUSE: &str = "./warehouse";

/// Environment variable that opts in to non-atomic commits on object stores
/// without conditional writes (see [`OpenOptions::allow_unsafe_commits`]).
pub const ALLOW_UNSAFE_COMMITS_ENV: &str = "TIDELAKE_ALLOW_UNSAFE_COMMITS";

/// How many times [`WarehouseStore::create_if_absent`] tries to create an
/// object or read it back before it calls the outcome unknown (about 3 s
/// of backoff in all).
const CREATE_ROUNDS: u32 = 6;

/// Outcome of [`WarehouseStore::put_if_absent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// This call created the object.
    Created,
    /// An object already had that path; it was left untouched.
    AlreadyExists,
}

/// One object, as listed or probed with `head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// Path relative to the warehouse root, without a leading '/'.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// When the object was last written, as the backend reports it (UTC).
    pub last_modified: DateTime<Utc>,
}

/// How a warehouse is opened, beyond its URI.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// S3 settings as `(key, value)`, applied over the `AWS_*` environment;
    /// keys are object_store's `AmazonS3ConfigKey` names such as
    /// `aws_endpoint`, `aws_region`, `aws_access_key_id`, `aws_allow_http`.
    pub s3_options: Vec<(String, String)>,
    /// Accept an object store that cannot create an object atomically only if
    /// absent. `put_if_absent` then checks and writes in two steps, so two
    /// concurrent committers can both "win" and one commit is lost. Only for
    /// warehouses with a single writer.
    pub allow_unsafe_commits: bool,
}

impl OpenOptions {
    /// Defaults plus [`ALLOW_UNSAFE_COMMITS_ENV`] (`1`, `true` or `yes`).
    pub fn from_env() -> OpenOptions {
        let allow = std::env::var(ALLOW_UNSAFE_COMMITS_ENV)
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false);
        OpenOptions {
            s3_options: Vec::new(),
            allow_unsafe_commits: allow,
        }
    }
}

/// The storage of one warehouse: a local folder, memory, or an S3 prefix.
///
/// # Contract (the same on every backend; `tests/it/conformance.rs` checks it)
///
/// * **Paths** are relative to the warehouse root, use '/', never start or
///   (for objects) end with '/', and have no empty, `.` or `..` segments nor
///   control characters. Reserved file names: [`DIR_MARKER`], names ending in
///   `#<digits>` (object_store's local staging files) and `.name.tmp`
///   (in-flight writes). Other input is [`StoreError::InvalidPath`]. A path
///   names the object key or file with exactly its characters (no
///   re-encoding). Directory prefixes (for `list`, `list_dir`, `create_dir`,
///   `delete_dir`) follow the same rules, may end in one '/', and `""` is the
///   root. They match whole segments: `a/b` covers `a/b/x`, not `a/bc`.
/// * **Reads** of a missing object fail with [`StoreError::NotFound`].
/// * **`put`** replaces the object atomically: a reader sees the old or the
///   new content, never part of one. Local disk: a hidden `.name.<uuid>.tmp`
///   file beside the target, then rename (the temporary name is the one
///   Paimon's own writers use, so other Paimon readers skip it too).
/// * **`put_if_absent`** is the commit primitive: of N concurrent callers for
///   one path exactly one gets [`PutOutcome::Created`], and a reader sees
///   nothing or the whole object. Local disk: temporary file, fsync, then a
///   hard link, which fails if the name exists (so the filesystem must
///   support hard links);
///   memory: a lock; S3: `If-None-Match: *`, verified when the warehouse
///   opens (see [`WarehouseStore::open`]).
/// * **Folders** exist only as prefixes of objects, except those made by
///   `create_dir`, which `list_dir` shows until `delete_dir` removes them (a
///   real folder on disk, a hidden zero-byte [`DIR_MARKER`] object elsewhere).
/// * **Listings** are sorted by path, complete (not paginated), and empty
///   (not an error) when nothing is there. They hide reserved names (so
///   in-flight temporary files never show) and
///   zero-byte "folder" keys that other tools write on object stores.
/// * **`last_modified`** is `chrono::DateTime<Utc>` as the backend reports it
///   (file mtime on disk).
#[derive(Clone)]
pub struct WarehouseStore {
    backend: Arc<Backend>,
    faults: Option<Arc<FaultInjector>>,
}

struct Backend {
    store: Arc<dyn ObjectStore>,
    /// Key prefix of the warehouse inside `store` (empty except on S3).
    root: Path,
    kind: BackendKind,
    uri: String,
    /// The S3 settings the warehouse was opened with, for other buckets
    /// read or written through [`WarehouseStore::store_for_bucket`].
    s3_options: Vec<(String, String)>,
    allow_unsafe_commits: bool,
    /// Whether the backend's create-if-absent is atomic; set at open, or on
    /// the first commit when the open-time check could not write.
    conditional_put: OnceCell<ConditionalPut>,
}

enum BackendKind {
    /// Canonical path of the warehouse folder.
    Local(PathBuf),
    Memory,
    S3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ConditionalPut {
    Atomic,
    Unsupported(String),
}

impl fmt::Debug for WarehouseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarehouseStore")
            .field("uri", &self.backend.uri)
            .field("faults", &self.faults.as_ref().map(|f| f.stats()))
            .finish()
    }
}

impl WarehouseStore {
    /// Opens the warehouse at `uri`: a local path (relative or absolute),
    /// `file:///abs/path`, `memory://` (a fresh empty store on every open) or
    /// `s3://bucket/prefix` (configured from the `AWS_*` environment:
    /// credentials, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...).
    ///
    /// A local warehouse folder is created when missing. An S3 warehouse is
    /// checked by creating a probe object twice with `If-None-Match: *`: an
    /// endpoint that accepts the second create cannot protect commits, and the
    /// warehouse is refused ([`StoreError::UnsafeCommits`]) unless
    /// [`ALLOW_UNSAFE_COMMITS_ENV`] opts in. Without write permission the
    /// check is deferred to the first `put_if_absent`.
    pub async fn open(uri: &str) -> Result<WarehouseStore> {
        Self::open_with_options(uri, &OpenOptions::from_env()).await
    }

    /// [`open`](Self::open) with explicit options instead of the environment's.
    pub async fn open_with_options(uri: &str, options: &OpenOptions) -> Result<WarehouseStore> {
        let backend = match uri::parse(uri)? {
            Location::Local(path) => open_local(uri, &path).await?,
            Location::Memory => Backend {
                store: Arc::new(InMemory::new()),
                root: Path::default(),
                kind: BackendKind::Memory,
                uri: "memory://".to_string(),
                s3_options: Vec::new(),
                allow_unsafe_commits: options.allow_unsafe_commits,
                conditional_put: OnceCell::new_with(Some(ConditionalPut::Atomic)),
            },
            Location::S3 { bucket, prefix } => open_s3(uri, &bucket, &prefix, options).await?,
        };
        Ok(WarehouseStore {
            backend: Arc::new(backend),
            faults: None,
        })
    }

    /// Wraps `inner` so that its operations fail as `plan` says (see
    /// [`FaultPlan`]). Clones of the result share one fault schedule.
    pub fn with_faults(inner: WarehouseStore, plan: FaultPlan) -> WarehouseStore {
        WarehouseStore {
            backend: inner.backend,
            faults: Some(Arc::new(FaultInjector::new(plan))),
        }
    }

    /// On a store made by [`with_faults`](Self::with_faults), holds its
    /// `n`th operation (counted from 1 as they start, as the faults are)
    /// before it runs, until `release` is notified (`notify_one`, before or
    /// after the operation arrives): a test can act between two operations
    /// of the code under test, whichever thread runs them. `false` on a
    /// store without faults, which holds nothing.
    pub fn hold_operation(&self, n: u64, release: Arc<tokio::sync::Notify>) -> bool {
        match &self.faults {
            Some(faults) => {
                faults.hold(n, release);
                true
            }
            None => false,
        }
    }

    /// Operation and fault counters when this store injects faults.
    pub fn fault_stats(&self) -> Option<FaultStats> {
        self.faults.as_ref().map(|f| f.stats())
    }

    /// The normalized URI: `file:///abs/warehouse`, `memory://` or `s3://bucket/prefix`.
    pub fn uri(&self) -> String {
        self.backend.uri.clone()
    }

    /// The underlying object store (for readers such as parquet's
    /// `ParquetObjectReader`); address objects in it with [`full_path`](Self::full_path).
    /// Access through it bypasses path checks and fault injection.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.backend.store)
    }

    /// A store for files outside the warehouse (SQL's file functions and
    /// COPY), configured as the warehouse is: for `s3`, a client of
    /// `bucket` with the warehouse's S3 settings over the `AWS_*`
    /// environment (the warehouse's own client for its own bucket); for
    /// `memory`, the warehouse's store if the warehouse is in memory. None
    /// for any other scheme. Paths in it are bucket keys, not relative to
    /// the warehouse.
    pub fn store_for_bucket(
        &self,
        scheme: &str,
        bucket: &str,
    ) -> Result<Option<Arc<dyn ObjectStore>>> {
        let own = Arc::clone(&self.backend.store);
        match (scheme, &self.backend.kind) {
            ("s3", BackendKind::S3)
                if self
                    .backend
                    .uri
                    .strip_prefix("s3://")
                    .is_some_and(|rest| rest.split('/').next() == Some(bucket)) =>
            {
                Ok(Some(own))
            }
            ("s3", _) => {
                let uri = format!("s3://{bucket}");
                Ok(Some(Arc::new(s3_client(
                    &uri,
                    bucket,
                    &self.backend.s3_options,
                )?)))
            }
            ("memory", BackendKind::Memory) => Ok(Some(own)),
            _ => Ok(None),
        }
    }

    /// The location of relative path `rel` inside [`object_store`](Self::object_store).
    pub fn full_path(&self, rel: &str) -> Path {
        join(&self.backend.root, rel)
    }

    /// The whole object; [`StoreError::NotFound`] when absent.
    pub async fn get(&self, rel: &str) -> Result<Bytes> {
        const OP: &str = "get";
        self.check(OP, OpKind::Read, rel).await?;
        validate_object_path(rel)?;
        if let BackendKind::Local(root) = &self.backend.kind {
            match read_inline(root, rel) {
                Inline::Found(bytes) => return Ok(bytes),
                Inline::Absent => return Err(not_found(rel)),
                Inline::Defer => {}
            }
        }
        let location = self.full_path(rel);
        let result = self
            .backend
            .store
            .get(&location)
            .await
            .map_err(|e| StoreError::from_backend(OP, rel, e))?;
        result
            .bytes()
            .await
            .map_err(|e| StoreError::from_backend(OP, rel, e))
    }

    /// Bytes `range` of the object. The range must lie within the object
    /// (`start <= end <= size`), else [`StoreError::InvalidRange`].
    pub async fn get_range(&self, rel: &str, range: Range<u64>) -> Result<Bytes> {
        const OP: &str = "get_range";
        self.check(OP, OpKind::Read, rel).await?;
        validate_object_path(rel)?;
        if range.start >= range.end {
            // Backends disagree on empty ranges; answer from the size alone.
            let size = self.head_unchecked(OP, rel).await?.size;
            if range.start > range.end || range.end > size {
                return Err(invalid_range(OP, rel, &range, size));
            }
            return Ok(Bytes::new());
        }
        if let BackendKind::Local(root) = &self.backend.kind {
            match read_range_inline(root, rel, &range) {
                Inline::Found(bytes) => return Ok(bytes),
                Inline::Absent => return Err(not_found(rel)),
                Inline::Defer => {}
            }
        }
        let location = self.full_path(rel);
        let wanted = range.end - range.start;
        let failure = match self.backend.store.get_range(&location, range.clone()).await {
            Ok(bytes) if bytes.len() as u64 == wanted => return Ok(bytes),
            Ok(bytes) => object_store::Error::Generic {
                store: "tidelake",
                source: format!("short read: {} of {wanted} bytes", bytes.len()).into(),
            },
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::NotFound {
                    path: rel.to_string(),
                })
            }
            Err(e) => e,
        };
        // Each backend words an out-of-bounds range differently (or returns
        // fewer bytes): tell them apart from real failures by the size.
        let size = self.head_unchecked(OP, rel).await?.size;
        if range.end > size {
            return Err(invalid_range(OP, rel, &range, size));
        }
        Err(StoreError::Io {
            op: OP,
            path: rel.to_string(),
            source: failure,
        })
    }

    /// Size and modification time of the object; [`StoreError::NotFound`] when absent.
    pub async fn head(&self, rel: &str) -> Result<ObjectEntry> {
        const OP: &str = "head";
        self.check(OP, OpKind::Read, rel).await?;
        validate_object_path(rel)?;
        self.head_unchecked(OP, rel).await
    }

    /// Whether an object exists at `rel` (a folder is not an object).
    pub async fn exists(&self, rel: &str) -> Result<bool> {
        const OP: &str = "exists";
        self.check(OP, OpKind::Read, rel).await?;
        validate_object_path(rel)?;
        if let BackendKind::Local(root) = &self.backend.kind {
            match exists_inline(root, rel) {
                Inline::Found(()) => return Ok(true),
                Inline::Absent => return Ok(false),
                Inline::Defer => {}
            }
        }
        match self.head_unchecked(OP, rel).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes the object, replacing any previous one atomically.
    pub async fn put(&self, rel: &str, data: Bytes) -> Result<()> {
        const OP: &str = "put";
        self.check(OP, OpKind::Write, rel).await?;
        validate_object_path(rel)?;
        self.put_unchecked(OP, rel, data).await
    }

    /// Creates the object only if nothing is at `rel`: the commit primitive.
    ///
    /// Exactly one of any number of concurrent callers gets
    /// [`PutOutcome::Created`]; the others get [`PutOutcome::AlreadyExists`]
    /// and change nothing. Readers see no object or the whole object.
    ///
    /// Like any remote commit this can be ambiguous: an error may come after
    /// the object was written, and on S3 a request that the HTTP client
    /// retried after a server error can report `AlreadyExists` for an object
    /// this very call created. Callers that must know compare the content.
    pub async fn put_if_absent(&self, rel: &str, data: Bytes) -> Result<PutOutcome> {
        const OP: &str = "put_if_absent";
        self.check(OP, OpKind::Write, rel).await?;
        validate_object_path(rel)?;
        let mode = self
            .backend
            .conditional_put
            .get_or_try_init(|| async {
                probe_conditional_put(self.backend.store.as_ref(), &self.backend.root)
                    .await
                    .map_err(|e| StoreError::Io {
                        op: "check of conditional writes",
                        path: self.backend.uri.clone(),
                        source: e,
                    })
            })
            .await?;
        let outcome = match mode {
            ConditionalPut::Atomic => self.create_atomically(OP, rel, data).await?,
            ConditionalPut::Unsupported(reason) => {
                if !self.backend.allow_unsafe_commits {
                    return Err(StoreError::UnsafeCommits {
                        uri: self.backend.uri.clone(),
                        reason: reason.clone(),
                    });
                }
                // Opted in: check-then-write, racy by the user's choice.
                match self.head_unchecked(OP, rel).await {
                    Ok(_) => PutOutcome::AlreadyExists,
                    Err(StoreError::NotFound { .. }) => {
                        self.put_unchecked(OP, rel, data).await?;
                        PutOutcome::Created
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if outcome == PutOutcome::Created {
            if let Some(faults) = &self.faults {
                match faults.after_create() {
                    AfterCreate::Created => {}
                    AfterCreate::Fail => {
                        return Err(StoreError::Injected {
                            op: OP,
                            path: rel.to_string(),
                            written: true,
                        })
                    }
                    AfterCreate::ReportExists => return Ok(PutOutcome::AlreadyExists),
                }
            }
        }
        Ok(outcome)
    }

    /// Like [`put_if_absent`](Self::put_if_absent), but never ambiguous:
    /// `Created` means the object at `rel` holds `data` and this call (or
    /// an earlier try of it) put it there; `AlreadyExists` means another
    /// writer's object is there.
    ///
    /// `data` must be unique to the caller (a commit's snapshot names its
    /// own fresh manifest lists): the object is identified by its bytes.
    /// `AlreadyExists` is checked by reading the object back and comparing;
    /// an error that may have come after the write repeats the identical
    /// create, which either creates the object now or finds the one there.
    /// A try still in flight can never land later: the path is taken either
    /// way. When no round gives an answer the result is
    /// [`StoreError::OutcomeUnknown`], and the caller must keep everything
    /// the object may reference.
    pub async fn create_if_absent(&self, rel: &str, data: Bytes) -> Result<PutOutcome> {
        const OP: &str = "create_if_absent";
        let mut backoff = std::time::Duration::from_millis(50);
        let mut last_problem = String::new();
        // Once a try may have created the object, a later try that surely
        // did nothing settles nothing: only reading the object back does.
        let mut maybe_created = false;
        for round in 0..CREATE_ROUNDS {
            if round > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
            }
            match self.put_if_absent(rel, data.clone()).await {
                Ok(PutOutcome::Created) => return Ok(PutOutcome::Created),
                Ok(PutOutcome::AlreadyExists) => match self.get(rel).await {
                    Ok(there) if there == data => return Ok(PutOutcome::Created),
                    Ok(_) => return Ok(PutOutcome::AlreadyExists),
                    Err(StoreError::NotFound { .. }) => {
                        // Reported as existing, then gone: deleted meanwhile
                        // (an expired snapshot). Creating it again could
                        // revive what was deliberately removed.
                        return Err(StoreError::OutcomeUnknown {
                            op: OP,
                            path: rel.to_string(),
                            message: "reported as existing, but gone when read back".into(),
                        });
                    }
                    Err(e) => {
                        tracing::warn!(
                            path = rel,
                            round,
                            "could not read back an existing object: {e}"
                        );
                        last_problem = format!("reading it back failed: {e}");
                    }
                },
                Err(e) if e.certainly_not_applied() && !maybe_created => return Err(e),
                Err(e) => {
                    tracing::warn!(path = rel, round, "ambiguous create, resolving: {e}");
                    maybe_created |= !e.certainly_not_applied();
                    last_problem = format!("creating it failed: {e}");
                }
            }
        }
        Err(StoreError::OutcomeUnknown {
            op: OP,
            path: rel.to_string(),
            message: format!("{CREATE_ROUNDS} tries gave no answer; the last: {last_problem}"),
        })
    }

    /// Every object under the directory `prefix` (recursively), sorted by path.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectEntry>> {
        const OP: &str = "list";
        self.check(OP, OpKind::Read, prefix).await?;
        let prefix = normalize_prefix(prefix)?;
        let metas = self.list_raw(OP, prefix).await?;
        let mut entries: Vec<ObjectEntry> = metas
            .into_iter()
            .filter_map(|meta| self.entry(meta))
            .filter(|entry| entry.path != prefix && !is_hidden(&entry.path))
            .collect();
        // Zero-byte keys named like a folder that has content ("dir/" written
        // by other S3 tools) are folder markers, not objects.
        let parents: HashSet<&str> = entries
            .iter()
            .flat_map(|entry| ancestors(&entry.path))
            .collect();
        let foreign_markers: HashSet<String> = entries
            .iter()
            .filter(|entry| entry.size == 0 && parents.contains(entry.path.as_str()))
            .map(|entry| entry.path.clone())
            .collect();
        entries.retain(|entry| !foreign_markers.contains(&entry.path));
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// One level under `prefix`: the child folders (full relative paths, no
    /// trailing '/') and the objects, each sorted by path.
    pub async fn list_dir(&self, prefix: &str) -> Result<(Vec<String>, Vec<ObjectEntry>)> {
        const OP: &str = "list_dir";
        self.check(OP, OpKind::Read, prefix).await?;
        let prefix = normalize_prefix(prefix)?;
        let location = self.full_path(prefix);
        let listing = self
            .backend
            .store
            .list_with_delimiter(Some(&location))
            .await
            .map_err(|e| StoreError::from_backend(OP, prefix, e))?;
        let mut dirs: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| relative(&self.backend.root, p))
            .filter(|dir| !dir.is_empty() && dir != prefix)
            .collect();
        let mut objects: Vec<ObjectEntry> = listing
            .objects
            .into_iter()
            .filter_map(|meta| self.entry(meta))
            .filter(|entry| entry.path != prefix && !is_hidden(&entry.path))
            .collect();
        dirs.sort();
        dirs.dedup();
        objects.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((dirs, objects))
    }

    /// Makes an (empty) folder that `list_dir` shows: a real folder on local
    /// disk, a zero-byte [`DIR_MARKER`] object inside it on other backends.
    /// Creating an existing folder is fine.
    pub async fn create_dir(&self, rel: &str) -> Result<()> {
        const OP: &str = "create_dir";
        self.check(OP, OpKind::Write, rel).await?;
        let rel = normalize_prefix(rel)?;
        if rel.is_empty() {
            return Ok(()); // the root always exists
        }
        match &self.backend.kind {
            BackendKind::Local(root) => tokio::fs::create_dir_all(root.join(rel))
                .await
                .map_err(|e| StoreError::local_io(OP, rel, e)),
            BackendKind::Memory | BackendKind::S3 => {
                let marker = format!("{rel}/{DIR_MARKER}");
                self.put_unchecked(OP, &marker, Bytes::new()).await
            }
        }
    }

    /// Deletes the object; deleting a missing object succeeds.
    pub async fn delete(&self, rel: &str) -> Result<()> {
        const OP: &str = "delete";
        self.check(OP, OpKind::Write, rel).await?;
        validate_object_path(rel)?;
        match self.backend.store.delete(&self.full_path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::from_backend(OP, rel, e)),
        }
    }

    /// Deletes everything under the folder `prefix`, and on local disk the
    /// folder itself. A missing folder is fine; the root (`""`) is refused.
    pub async fn delete_dir(&self, prefix: &str) -> Result<()> {
        const OP: &str = "delete_dir";
        self.check(OP, OpKind::Write, prefix).await?;
        let prefix = normalize_prefix(prefix)?;
        if prefix.is_empty() {
            return Err(StoreError::invalid_path(
                prefix,
                "refusing to delete the whole warehouse (delete_dir of the root)",
            ));
        }
        match &self.backend.kind {
            BackendKind::Local(root) => delete_local_dir(&root.join(prefix), prefix).await,
            BackendKind::Memory | BackendKind::S3 => {
                let locations: Vec<Path> = self
                    .list_raw(OP, prefix)
                    .await?
                    .into_iter()
                    .map(|meta| meta.location)
                    .collect();
                let stream = futures::stream::iter(locations.into_iter().map(Ok)).boxed();
                let mut results = self.backend.store.delete_stream(stream);
                while let Some(result) = results.next().await {
                    match result {
                        Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(StoreError::from_backend(OP, prefix, e)),
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether a read request costs no round trip here (local disk,
    /// memory), so that readers need not merge nearby byte ranges into one
    /// larger request.
    pub fn reads_cheaply(&self) -> bool {
        matches!(
            self.backend.kind,
            BackendKind::Local(_) | BackendKind::Memory
        )
    }

    /// Whether [`rename_dir`](Self::rename_dir) works here: local disk only.
    pub fn renames_folders(&self) -> bool {
        matches!(self.backend.kind, BackendKind::Local(_))
    }

    /// Moves the folder `from` to `to` in one step (a rename on local disk;
    /// `to`'s parent must exist and `to` must not). Object stores have no
    /// folders to move: there it fails without touching anything.
    pub async fn rename_dir(&self, from: &str, to: &str) -> Result<()> {
        const OP: &str = "rename_dir";
        self.check(OP, OpKind::Write, from).await?;
        let from = normalize_prefix(from)?;
        let to = normalize_prefix(to)?;
        if from.is_empty() || to.is_empty() {
            return Err(StoreError::invalid_path(
                from,
                "refusing to rename the warehouse root",
            ));
        }
        let BackendKind::Local(root) = &self.backend.kind else {
            return Err(StoreError::InvalidUri {
                uri: self.uri(),
                message: "an object store cannot rename a folder".into(),
            });
        };
        let target = root.join(to);
        match tokio::fs::symlink_metadata(&target).await {
            Ok(_) => {
                return Err(StoreError::invalid_path(to, "the target already exists"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::local_io(OP, to, e)),
        }
        tokio::fs::rename(root.join(from), &target)
            .await
            .map_err(|e| StoreError::local_io(OP, from, e))
    }

    async fn check(&self, op: &'static str, kind: OpKind, path: &str) -> Result<()> {
        let Some(faults) = &self.faults else {
            return Ok(());
        };
        if let Some(release) = faults.before(op, kind, path)? {
            release.notified().await;
        }
        Ok(())
    }

    async fn head_unchecked(&self, op: &'static str, rel: &str) -> Result<ObjectEntry> {
        let meta = self
            .backend
            .store
            .head(&self.full_path(rel))
            .await
            .map_err(|e| StoreError::from_backend(op, rel, e))?;
        Ok(ObjectEntry {
            path: rel.to_string(),
            size: meta.size,
            last_modified: meta.last_modified,
        })
    }

    async fn put_unchecked(&self, op: &'static str, rel: &str, data: Bytes) -> Result<()> {
        if let BackendKind::Local(root) = &self.backend.kind {
            return write_atomically(op, root, rel, data, LocalWrite::Overwrite)
                .await
                .map(|_| ());
        }
        self.backend
            .store
            .put_opts(
                &self.full_path(rel),
                PutPayload::from(data),
                PutOptions::default(),
            )
            .await
            .map(|_| ())
            .map_err(|e| StoreError::from_backend(op, rel, e))
    }

    async fn create_atomically(
        &self,
        op: &'static str,
        rel: &str,
        data: Bytes,
    ) -> Result<PutOutcome> {
        if let BackendKind::Local(root) = &self.backend.kind {
            return write_atomically(op, root, rel, data, LocalWrite::CreateNew).await;
        }
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .backend
            .store
            .put_opts(&self.full_path(rel), PutPayload::from(data), options)
            .await
        {
            Ok(_) => Ok(PutOutcome::Created),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(StoreError::from_backend(op, rel, e)),
        }
    }

    /// Every backend object under `prefix`, unfiltered and unsorted.
    async fn list_raw(&self, op: &'static str, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let location = self.full_path(prefix);
        let location = (!location.as_ref().is_empty()).then_some(location);
        self.backend
            .store
            .list(location.as_ref())
            .try_collect()
            .await
            .map_err(|e| StoreError::from_backend(op, prefix, e))
    }

    fn entry(&self, meta: ObjectMeta) -> Option<ObjectEntry> {
        Some(ObjectEntry {
            path: relative(&self.backend.root, &meta.location)?,
            size: meta.size,
            last_modified: meta.last_modified,
        })
    }
}

fn not_found(rel: &str) -> StoreError {
    StoreError::NotFound {
        path: rel.to_string(),
    }
}

fn invalid_range(op: &'static str, rel: &str, range: &Range<u64>, size: u64) -> StoreError {
    StoreError::InvalidRange {
        op,
        path: rel.to_string(),
        start: range.start,
        end: range.end,
        size,
    }
}

/// "a/b/c" -> ["a", "a/b"].
fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..i])
}

async fn open_local(uri: &str, path: &FsPath) -> Result<Backend> {
    let shown = path.display().to_string();
    tokio::fs::create_dir_all(path)
        .await
        .map_err(|e| StoreError::local_io("create warehouse folder", &shown, e))?;
    let root = tokio::fs::canonicalize(path)
        .await
        .map_err(|e| StoreError::local_io("resolve warehouse folder", &shown, e))?;
    let store = LocalFileSystem::new_with_prefix(&root).map_err(|e| StoreError::Io {
        op: "open",
        path: shown.clone(),
        source: e,
    })?;
    let normalized = url::Url::from_file_path(&root)
        .map_err(|()| StoreError::InvalidUri {
            uri: uri.to_string(),
            message: format!("'{}' cannot be written as a file URL", root.display()),
        })?
        .to_string();
    Ok(Backend {
        store: Arc::new(store),
        root: Path::default(),
        kind: BackendKind::Local(root),
        uri: normalized,
        s3_options: Vec::new(),
        allow_unsafe_commits: false,
        conditional_put: OnceCell::new_with(Some(ConditionalPut::Atomic)),
    })
}

/// An S3 client for `bucket`: the `AWS_*` environment, then `s3_options`.
fn s3_client(
    uri: &str,
    bucket: &str,
    s3_options: &[(String, String)],
) -> Result<object_store::aws::AmazonS3> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (key, value) in s3_options {
        let config_key: AmazonS3ConfigKey =
            key.to_ascii_lowercase()
                .parse()
                .map_err(|_| StoreError::InvalidUri {
                    uri: uri.to_string(),
                    message: format!("unknown S3 option '{key}'"),
                })?;
        builder = builder.with_config(config_key, value);
    }
    builder.build().map_err(|e| StoreError::InvalidUri {
        uri: uri.to_string(),
        message: format!("cannot configure S3: {e}"),
    })
}

async fn open_s3(uri: &str, bucket: &str, prefix: &str, options: &OpenOptions) -> Result<Backend> {
    let store = s3_client(uri, bucket, &options.s3_options)?;
    let normalized = match prefix {
        "" => format!("s3://{bucket}"),
        prefix => format!("s3://{bucket}/{prefix}"),
    };
    let root = join(&Path::default(), prefix);
    let conditional_put = OnceCell::new();
    match probe_conditional_put(&store, &root).await {
        Ok(ConditionalPut::Unsupported(reason)) if !options.allow_unsafe_commits => {
            return Err(StoreError::UnsafeCommits {
                uri: normalized,
                reason,
            });
        }
        Ok(mode) => {
            if let ConditionalPut::Unsupported(reason) = &mode {
                tracing::warn!(uri = %normalized, %reason, "commits are not atomic on this warehouse (opted in)");
            }
            // A fresh cell cannot already be set.
            let _ = conditional_put.set(mode);
        }
        Err(
            e @ (object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }),
        ) => {
            tracing::info!(uri = %normalized, error = %e, "cannot write here; conditional writes will be checked before the first commit");
        }
        Err(e) => {
            return Err(StoreError::Io {
                op: "open (check of conditional writes)",
                path: normalized,
                source: e,
            })
        }
    }
    Ok(Backend {
        store: Arc::new(store),
        root,
        kind: BackendKind::S3,
        uri: normalized,
        s3_options: options.s3_options.clone(),
        allow_unsafe_commits: options.allow_unsafe_commits,
        conditional_put,
    })
}

/// Creates a probe object twice with create-if-absent: the second create must
/// be refused, or the store would let two commits both succeed.
async fn probe_conditional_put(
    store: &dyn ObjectStore,
    root: &Path,
) -> object_store::Result<ConditionalPut> {
    let probe = join(root, &format!(".tidelake-probe-{}", uuid::Uuid::new_v4()));
    let create = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match store
        .put_opts(&probe, PutPayload::from_static(b"1"), create.clone())
        .await
    {
        Ok(_) => {}
        Err(object_store::Error::NotImplemented { .. }) => {
            return Ok(ConditionalPut::Unsupported(
                "conditional writes are disabled in the S3 settings (aws_conditional_put)"
                    .to_string(),
            ))
        }
        Err(e) => return Err(e),
    }
    let second = store
        .put_opts(&probe, PutPayload::from_static(b"2"), create)
        .await;
    if let Err(e) = store.delete(&probe).await {
        tracing::warn!(probe = %probe, error = %e, "could not delete the conditional-write probe object");
    }
    match second {
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(ConditionalPut::Atomic),
        Ok(_) => Ok(ConditionalPut::Unsupported(
            "the endpoint ignores 'If-None-Match: *' (a second create of the same key succeeded)"
                .to_string(),
        )),
        Err(e) => Err(e),
    }
}

async fn delete_local_dir(folder: &FsPath, prefix: &str) -> Result<()> {
    const OP: &str = "delete_dir";
    match tokio::fs::symlink_metadata(folder).await {
        Ok(meta) if meta.is_dir() => match tokio::fs::remove_dir_all(folder).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::local_io(OP, prefix, e)),
        },
        // A file (or link) at the prefix is an object, not a folder: nothing under it.
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::local_io(OP, prefix, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream::BoxStream;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, PutMultipartOptions,
        PutResult,
    };

    /// A store that treats create-if-absent as a plain overwrite, as an S3
    /// endpoint that ignores `If-None-Match` would.
    #[derive(Debug, Default)]
    struct IgnoresCreate(InMemory);

    impl fmt::Display for IgnoresCreate {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "IgnoresCreate")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for IgnoresCreate {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            _opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.0
                .put_opts(location, payload, PutOptions::default())
                .await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.0.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.0.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.0.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.0.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    fn unverified_store(inner: Arc<dyn ObjectStore>, allow_unsafe_commits: bool) -> WarehouseStore {
        WarehouseStore {
            backend: Arc::new(Backend {
                store: inner,
                root: Path::parse("wh").unwrap(),
                kind: BackendKind::S3,
                uri: "s3://test/wh".to_string(),
                s3_options: Vec::new(),
                allow_unsafe_commits,
                conditional_put: OnceCell::new(),
            }),
            faults: None,
        }
    }

    #[tokio::test]
    async fn probe_tells_atomic_from_ignored_conditions() {
        let root = Path::parse("wh").unwrap();
        let honest = InMemory::new();
        assert_eq!(
            probe_conditional_put(&honest, &root).await.unwrap(),
            ConditionalPut::Atomic
        );
        let ignoring = IgnoresCreate::default();
        let outcome = probe_conditional_put(&ignoring, &root).await.unwrap();
        assert!(
            matches!(outcome, ConditionalPut::Unsupported(ref r) if r.contains("If-None-Match")),
            "{outcome:?}"
        );
        // The probe cleans up after itself either way.
        assert_eq!(honest.list(None).count().await, 0);
        assert_eq!(ignoring.list(None).count().await, 0);
    }

    #[tokio::test]
    async fn commits_are_refused_on_a_store_that_ignores_conditions() {
        let store = unverified_store(Arc::new(IgnoresCreate::default()), false);
        let err = store
            .put_if_absent("t/snapshot-1", Bytes::from_static(b"a"))
            .await
            .unwrap_err();
        match &err {
            StoreError::UnsafeCommits { uri, reason } => {
                assert_eq!(uri, "s3://test/wh");
                assert!(reason.contains("If-None-Match"), "{reason}");
            }
            other => panic!("expected UnsafeCommits, got {other:?}"),
        }
        assert!(err.to_string().contains(ALLOW_UNSAFE_COMMITS_ENV), "{err}");
        assert!(
            !store.exists("t/snapshot-1").await.unwrap(),
            "a refused commit must write nothing"
        );
        // Plain writes and reads still work.
        store.put("t/data", Bytes::from_static(b"d")).await.unwrap();
        assert_eq!(store.get("t/data").await.unwrap(), Bytes::from_static(b"d"));
    }

    #[tokio::test]
    async fn opted_in_commits_check_then_write() {
        let store = unverified_store(Arc::new(IgnoresCreate::default()), true);
        let path = "t/snapshot-1";
        assert_eq!(
            store
                .put_if_absent(path, Bytes::from_static(b"a"))
                .await
                .unwrap(),
            PutOutcome::Created
        );
        assert_eq!(
            store
                .put_if_absent(path, Bytes::from_static(b"b"))
                .await
                .unwrap(),
            PutOutcome::AlreadyExists
        );
        assert_eq!(store.get(path).await.unwrap(), Bytes::from_static(b"a"));
    }

    #[tokio::test]
    async fn deferred_probe_accepts_an_honest_store() {
        let store = unverified_store(Arc::new(InMemory::new()), false);
        let path = "t/snapshot-1";
        assert_eq!(
            store
                .put_if_absent(path, Bytes::from_static(b"a"))
                .await
                .unwrap(),
            PutOutcome::Created
        );
        assert_eq!(
            store
                .put_if_absent(path, Bytes::from_static(b"b"))
                .await
                .unwrap(),
            PutOutcome::AlreadyExists
        );
        assert_eq!(
            store.list("").await.unwrap().len(),
            1,
            "no probe object left behind"
        );
    }

    #[tokio::test]
    async fn local_uri_is_normalized_and_folder_created() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a b").join("warehouse");
        let store = WarehouseStore::open(target.to_str().unwrap())
            .await
            .unwrap();
        assert!(target.is_dir());
        let canonical = std::fs::canonicalize(&target).unwrap();
        let expected = url::Url::from_file_path(&canonical).unwrap().to_string();
        assert_eq!(store.uri(), expected);
        assert!(store.uri().starts_with("file:///") && store.uri().contains("a%20b"));
        store.put("x/y", Bytes::from_static(b"1")).await.unwrap();
        assert!(
            canonical.join("x/y").is_file(),
            "objects are plain files under the folder"
        );
        let again = WarehouseStore::open(&store.uri()).await.unwrap();
        assert_eq!(again.get("x/y").await.unwrap(), Bytes::from_static(b"1"));
        assert_eq!(again.uri(), store.uri());
    }

    #[tokio::test]
    async fn local_folders_made_by_others_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = WarehouseStore::open(dir.path().to_str().unwrap())
            .await
            .unwrap();
        std::fs::create_dir_all(dir.path().join("other.db/empty_table")).unwrap();
        assert_eq!(store.list_dir("").await.unwrap().0, ["other.db"]);
        assert_eq!(
            store.list_dir("other.db").await.unwrap().0,
            ["other.db/empty_table"]
        );
        store.delete_dir("other.db").await.unwrap();
        assert!(
            !dir.path().join("other.db").exists(),
            "delete_dir removes the local folder itself"
        );
    }

    #[tokio::test]
    async fn local_temporary_files_are_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let store = WarehouseStore::open(dir.path().to_str().unwrap())
            .await
            .unwrap();
        store
            .put("t/snapshot/snapshot-1", Bytes::from_static(b"s"))
            .await
            .unwrap();
        // As left by a Paimon writer mid-commit, or by a crash.
        std::fs::write(
            dir.path().join("t/snapshot/.snapshot-2.0a1b.tmp"),
            b"partial",
        )
        .unwrap();
        let listed: Vec<String> = store
            .list("t")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(listed, ["t/snapshot/snapshot-1"]);
        let (_, objects) = store.list_dir("t/snapshot").await.unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].path, "t/snapshot/snapshot-1");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paimon_style_listings_never_see_in_flight_names() {
        // Paimon's Java readers parse every name starting with "snapshot-"
        // as a number; no moment of our commits may break that.
        let dir = tempfile::tempdir().unwrap();
        let store = WarehouseStore::open(dir.path().to_str().unwrap())
            .await
            .unwrap();
        store.create_dir("t/snapshot").await.unwrap();
        let folder = dir.path().join("t/snapshot");
        let writer = tokio::spawn(async move {
            for id in 1..=150 {
                let path = format!("t/snapshot/snapshot-{id}");
                let body = Bytes::from(vec![b'x'; 64 * 1024]);
                assert_eq!(
                    store.put_if_absent(&path, body).await.unwrap(),
                    PutOutcome::Created
                );
                store
                    .put("t/snapshot/LATEST", Bytes::from(id.to_string()))
                    .await
                    .unwrap();
            }
        });
        let mut scans = 0;
        while !writer.is_finished() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_prefix("snapshot-") {
                    assert!(
                        id.parse::<u64>().is_ok(),
                        "a reader would choke on '{name}'"
                    );
                }
                assert!(
                    name == "LATEST" || name.starts_with("snapshot-") || name.starts_with('.'),
                    "{name}"
                );
            }
            scans += 1;
        }
        writer.await.unwrap();
        assert!(scans > 0);
    }

    #[tokio::test]
    async fn memory_and_s3_uris_normalize() {
        let memory = WarehouseStore::open("memory:").await.unwrap();
        assert_eq!(memory.uri(), "memory://");
        assert_eq!(memory.full_path("a/b").as_ref(), "a/b");
        let err = WarehouseStore::open("gs://bucket").await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidUri { .. }), "{err}");
    }
}
