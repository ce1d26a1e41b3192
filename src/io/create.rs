//! Create-if-absent file creation on POSIX filesystems, and atomic replace.
//!
//! A file appears under its final name only complete and durable: it is
//! written to a unique temp file, fsynced, then hard-linked to the final name.
//! `link(2)` fails with `EEXIST` instead of replacing, so the first writer
//! wins and nothing is ever overwritten; the loser learns that the name
//! exists and must check what is there before adopting it. The parent
//! directory is fsynced so the new name survives a crash.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::error::IoError;

/// Whether [`create_if_absent`] made the final file or found one there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    New,
    Existed,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp name unique across processes (pid) and threads (counter); it ends
/// in `.tmp`, never in `.parquet`.
fn tmp_path(tmp_dir: &Path, final_path: &Path) -> PathBuf {
    let base = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    tmp_dir.join(format!("{base}.{}-{n}.tmp", std::process::id()))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IoError::fs("syncing directory", dir, e))
}

/// Writes a temp file in `tmp_dir` with `write`, fsyncs it, and links it to
/// `final_path` unless that name exists. Returns what `write` returned.
pub(crate) fn create_if_absent<T>(
    tmp_dir: &Path,
    final_path: &Path,
    write: impl FnOnce(&mut File) -> Result<T, IoError>,
) -> Result<(Created, T), IoError> {
    let tmp = tmp_path(tmp_dir, final_path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| IoError::fs("creating temp file", &tmp, e))?;
    let written = write(&mut file).and_then(|value| {
        file.sync_all()
            .map_err(|e| IoError::fs("syncing temp file", &tmp, e))
            .map(|()| value)
    });
    drop(file);
    let value = match written {
        Ok(v) => v,
        Err(e) => {
            // Best effort: a leftover temp file is removed by the next open.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let linked = std::fs::hard_link(&tmp, final_path);
    // Best effort, as above; the final name (if linked) is already durable data.
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(parent) = final_path.parent() {
                sync_dir(parent)?;
            }
            Ok((Created::New, value))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok((Created::Existed, value)),
        Err(e) => Err(IoError::fs("linking", final_path, e)),
    }
}

/// Replaces `final_path` atomically with `bytes` (temp file, fsync, rename).
pub(crate) fn replace_atomically(
    tmp_dir: &Path,
    final_path: &Path,
    bytes: &[u8],
) -> Result<(), IoError> {
    let tmp = tmp_path(tmp_dir, final_path);
    let result = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(|e| IoError::fs("writing temp file", &tmp, e))
        .and_then(|()| {
            std::fs::rename(&tmp, final_path).map_err(|e| IoError::fs("renaming", final_path, e))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    match final_path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// A `Write` adapter that hashes and counts what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Hex sha256 and byte count of everything written.
    pub(crate) fn finish(mut self) -> std::io::Result<(String, u64)> {
        self.inner.flush()?;
        Ok((hex(&self.hasher.finalize()), self.bytes))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex sha256 and length of a file.
pub(crate) fn file_sha256(path: &Path) -> Result<(String, u64), IoError> {
    let mut file = File::open(path).map_err(|e| IoError::fs("opening", path, e))?;
    let mut hasher = HashingWriter::new(std::io::sink());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| IoError::fs("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher
            .write_all(&buf[..n])
            .map_err(|e| IoError::fs("hashing", path, e))?;
    }
    hasher.finish().map_err(|e| IoError::fs("hashing", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_writer_wins_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tmp = dir.path().join("_tmp");
        std::fs::create_dir(&tmp).expect("mkdir");
        let target = dir.path().join("x.json");
        let (c, v) = create_if_absent(&tmp, &target, |f| {
            f.write_all(b"first")
                .map_err(|e| IoError::fs("w", "x", e))
                .map(|()| 1)
        })
        .expect("create");
        assert_eq!((c, v), (Created::New, 1));
        let (c, _) = create_if_absent(&tmp, &target, |f| {
            f.write_all(b"second").map_err(|e| IoError::fs("w", "x", e))
        })
        .expect("second");
        assert_eq!(c, Created::Existed);
        assert_eq!(std::fs::read(&target).expect("read"), b"first");
        assert_eq!(
            std::fs::read_dir(&tmp).expect("ls").count(),
            0,
            "temp files removed"
        );

        let failed = create_if_absent(&tmp, &dir.path().join("y"), |_| {
            Err::<(), _>(IoError::InvalidRow("boom".into()))
        });
        assert!(failed.is_err());
        assert!(!dir.path().join("y").exists());
        assert_eq!(std::fs::read_dir(&tmp).expect("ls").count(), 0);

        replace_atomically(&tmp, &target, b"third").expect("replace");
        assert_eq!(std::fs::read(&target).expect("read"), b"third");
    }

    #[test]
    fn hashes_match_known_vector() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").expect("write");
        assert_eq!(
            file_sha256(&p).expect("hash"),
            (
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string(),
                3
            )
        );
    }
}
