//! Atomic writes on local disk.
//!
//! object_store's local backend stages writes in `name#N` beside the target.
//! Paimon's Java readers list a snapshot folder and parse every name that
//! starts with `snapshot-`, so a staged `snapshot-7#1` would break them while
//! our commit is in flight. We stage in `.name.<uuid>.tmp` instead, the
//! hidden form Paimon's own writers use and every Paimon reader skips.
//!
//! Small reads are served on the calling thread (see [`read_inline`]).

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Result, StoreError};
use crate::store::PutOutcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalWrite {
    /// Replace any existing file (temporary file + rename).
    Overwrite,
    /// Create only if absent (temporary file + hard link, which fails if the
    /// name exists), flushed to disk before it becomes visible.
    CreateNew,
}

/// True for the names of in-flight temporary files (ours and Paimon's).
pub(crate) fn is_temporary_name(name: &str) -> bool {
    name.len() >= ".x.tmp".len() && name.starts_with('.') && name.ends_with(".tmp")
}

/// Writes `data` to `root/rel` so that no reader ever sees part of it.
pub(crate) async fn write_atomically(
    op: &'static str,
    root: &Path,
    rel: &str,
    data: Bytes,
    mode: LocalWrite,
) -> Result<PutOutcome> {
    let target = root.join(rel);
    let rel_owned = rel.to_string();
    tokio::task::spawn_blocking(move || write_blocking(&target, &data, mode))
        .await
        .map_err(|e| StoreError::local_io(op, &rel_owned, std::io::Error::other(e)))?
        .map_err(|e| StoreError::local_io(op, rel, e))
}

fn write_blocking(target: &Path, data: &[u8], mode: LocalWrite) -> std::io::Result<PutOutcome> {
    let (parent, name) = match (target.parent(), target.file_name()) {
        (Some(parent), Some(name)) => (parent, name.to_string_lossy()),
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path has no file name",
            ))
        }
    };
    std::fs::create_dir_all(parent)?;
    let temp: PathBuf = parent.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()));
    let result = write_and_publish(&temp, target, data, mode);
    // Gone already after a rename; a second link or a leftover otherwise.
    let _ = std::fs::remove_file(&temp);
    if mode == LocalWrite::CreateNew && matches!(result, Ok(PutOutcome::Created)) {
        // Make the new directory entry durable too; best effort (not all
        // platforms can open a folder for syncing).
        if let Ok(folder) = std::fs::File::open(parent) {
            let _ = folder.sync_all();
        }
    }
    result
}

fn write_and_publish(
    temp: &Path,
    target: &Path,
    data: &[u8],
    mode: LocalWrite,
) -> std::io::Result<PutOutcome> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)?;
    file.write_all(data)?;
    if mode == LocalWrite::CreateNew {
        file.sync_all()?;
    }
    drop(file);
    match mode {
        LocalWrite::Overwrite => {
            std::fs::rename(temp, target)?;
            Ok(PutOutcome::Created)
        }
        LocalWrite::CreateNew => match std::fs::hard_link(temp, target) {
            Ok(()) => Ok(PutOutcome::Created),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok(PutOutcome::AlreadyExists)
            }
            Err(e) => Err(e),
        },
    }
}

/// Reads of up to this many bytes on local disk are done on the calling
/// thread. From the page cache they take microseconds, less than handing
/// them to tokio's blocking pool and waking the task afterwards, which
/// object_store's local backend does for every read: a key lookup reads a
/// few small pages and paid that hop for each.
pub(crate) const INLINE_READ_LIMIT: u64 = 1 << 20;

/// What a read on the calling thread found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inline<T> {
    Found(T),
    /// No file at that name.
    Absent,
    /// Anything else (a folder, a larger file, an I/O error): the caller
    /// takes the general path, which words the error as for any backend.
    Defer,
}

/// Whether a regular file exists at `root/rel`.
pub(crate) fn exists_inline(root: &Path, rel: &str) -> Inline<()> {
    match std::fs::metadata(root.join(rel)) {
        Ok(meta) if meta.is_file() => Inline::Found(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Inline::Absent,
        _ => Inline::Defer,
    }
}

/// `root/rel` whole, if it is a regular file of at most
/// [`INLINE_READ_LIMIT`] bytes.
pub(crate) fn read_inline(root: &Path, rel: &str) -> Inline<Bytes> {
    use std::io::Read;
    let mut file = match std::fs::File::open(root.join(rel)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Inline::Absent,
        Err(_) => return Inline::Defer,
    };
    let size = match file.metadata() {
        Ok(meta) if meta.is_file() && meta.len() <= INLINE_READ_LIMIT => meta.len(),
        _ => return Inline::Defer,
    };
    let mut data = Vec::with_capacity(size as usize);
    match file.read_to_end(&mut data) {
        Ok(_) => Inline::Found(Bytes::from(data)),
        Err(_) => Inline::Defer,
    }
}

/// Bytes `range` of `root/rel`, if the range is at most
/// [`INLINE_READ_LIMIT`] bytes and lies within a regular file.
#[cfg(unix)]
pub(crate) fn read_range_inline(root: &Path, rel: &str, range: &Range<u64>) -> Inline<Bytes> {
    use std::os::unix::fs::FileExt;
    let Some(len) = range.end.checked_sub(range.start) else {
        return Inline::Defer;
    };
    if len > INLINE_READ_LIMIT {
        return Inline::Defer;
    }
    let file = match std::fs::File::open(root.join(rel)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Inline::Absent,
        Err(_) => return Inline::Defer,
    };
    let mut data = vec![0; len as usize];
    // A folder fails here (EISDIR), a short file with UnexpectedEof.
    match file.read_exact_at(&mut data, range.start) {
        Ok(()) => Inline::Found(Bytes::from(data)),
        Err(_) => Inline::Defer,
    }
}

#[cfg(not(unix))]
pub(crate) fn read_range_inline(_: &Path, _: &str, _: &Range<u64>) -> Inline<Bytes> {
    Inline::Defer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names() {
        assert!(is_temporary_name(".snapshot-1.0b1c.tmp"));
        assert!(is_temporary_name(".x.tmp"));
        assert!(!is_temporary_name("snapshot-1"));
        assert!(!is_temporary_name(".tmp"));
        assert!(!is_temporary_name("data.tmp"));
        assert!(!is_temporary_name(".hidden"));
    }

    fn names_in(folder: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn writes_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let created = write_atomically(
            "put_if_absent",
            root,
            "t/snapshot/snapshot-1",
            Bytes::from_static(b"a"),
            LocalWrite::CreateNew,
        )
        .await
        .unwrap();
        assert_eq!(created, PutOutcome::Created);
        let again = write_atomically(
            "put_if_absent",
            root,
            "t/snapshot/snapshot-1",
            Bytes::from_static(b"b"),
            LocalWrite::CreateNew,
        )
        .await
        .unwrap();
        assert_eq!(again, PutOutcome::AlreadyExists);
        write_atomically(
            "put",
            root,
            "t/snapshot/LATEST",
            Bytes::from_static(b"1"),
            LocalWrite::Overwrite,
        )
        .await
        .unwrap();
        write_atomically(
            "put",
            root,
            "t/snapshot/LATEST",
            Bytes::from_static(b"2"),
            LocalWrite::Overwrite,
        )
        .await
        .unwrap();
        let folder = root.join("t/snapshot");
        assert_eq!(names_in(&folder), ["LATEST", "snapshot-1"]);
        assert_eq!(std::fs::read(folder.join("snapshot-1")).unwrap(), b"a");
        assert_eq!(std::fs::read(folder.join("LATEST")).unwrap(), b"2");
    }

    #[test]
    fn inline_reads_answer_files_and_defer_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("t/folder")).unwrap();
        std::fs::write(root.join("t/f"), b"hello").unwrap();
        assert_eq!(exists_inline(root, "t/f"), Inline::Found(()));
        assert_eq!(exists_inline(root, "t/none"), Inline::Absent);
        assert_eq!(exists_inline(root, "t/folder"), Inline::Defer);
        assert_eq!(
            read_inline(root, "t/f"),
            Inline::Found(Bytes::from_static(b"hello"))
        );
        assert_eq!(read_inline(root, "t/none"), Inline::Absent);
        assert_eq!(read_inline(root, "t/folder"), Inline::Defer);
        let part = read_range_inline(root, "t/f", &(1..4));
        assert_eq!(part, Inline::Found(Bytes::from_static(b"ell")));
        assert_eq!(read_range_inline(root, "t/f", &(3..9)), Inline::Defer);
        assert_eq!(read_range_inline(root, "t/none", &(0..1)), Inline::Absent);
        assert_eq!(read_range_inline(root, "t/folder", &(0..1)), Inline::Defer);
        let big = INLINE_READ_LIMIT + 1;
        assert_eq!(read_range_inline(root, "t/f", &(0..big)), Inline::Defer);
    }

    #[tokio::test]
    async fn failures_name_the_path_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/dir")).unwrap();
        // Renaming a file over a folder fails.
        let err = write_atomically(
            "put",
            dir.path(),
            "a/dir",
            Bytes::from_static(b"x"),
            LocalWrite::Overwrite,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, StoreError::LocalIo { op: "put", ref path, .. } if path == "a/dir"),
            "{err}"
        );
        assert_eq!(names_in(&dir.path().join("a")), ["dir"]);
    }
}
