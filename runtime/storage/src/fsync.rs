//! Making sled's files durable.
//!
//! sled 0.34's `flush` writes its log with `sync_file_range`, which pushes the data to
//! the device but neither commits file metadata nor flushes the device's write cache,
//! and it never fsyncs the blob files it writes for large values and large tree nodes.
//! That protects against a crash of the process, not of the machine. After every sled
//! flush the flusher therefore calls [`SledFiles::sync`]: it fsyncs blob files that
//! appeared since the last call, then their directory, then the log file itself — blobs
//! first, so the log never durably points at a blob that is not.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The files of one sled database, and what of them is already synced.
#[derive(Debug)]
pub(crate) struct SledFiles {
    log: File,
    blobs_dir: PathBuf,
    /// The blobs directory's mtime when it was last scanned: a new blob changes it, so
    /// an unchanged mtime means there is nothing to sync and costs one `stat`.
    blobs_mtime: Option<SystemTime>,
    /// Blob files are named by log sequence number; those up to here are synced.
    synced_blob: u64,
}

impl SledFiles {
    /// Opens the log file of the database in `dir`.
    pub fn open(dir: &Path) -> io::Result<SledFiles> {
        Ok(SledFiles {
            log: File::open(dir.join("db"))?,
            blobs_dir: dir.join("blobs"),
            blobs_mtime: None,
            synced_blob: 0,
        })
    }

    /// fsyncs new blobs, the blob directory, and the log.
    pub fn sync(&mut self) -> io::Result<()> {
        self.sync_new_blobs()?;
        self.log.sync_data()
    }

    fn sync_new_blobs(&mut self) -> io::Result<()> {
        let mtime = match std::fs::metadata(&self.blobs_dir) {
            Ok(m) => m.modified()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if self.blobs_mtime == Some(mtime) {
            return Ok(());
        }
        let mut newest = self.synced_blob;
        for entry in std::fs::read_dir(&self.blobs_dir)? {
            let entry = entry?;
            let Some(lsn) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if lsn <= self.synced_blob {
                continue;
            }
            match File::open(entry.path()) {
                Ok(f) => f.sync_all()?,
                // sled removes blobs it no longer needs; a vanished one needs no sync.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            newest = newest.max(lsn);
        }
        File::open(&self.blobs_dir)?.sync_all()?;
        self.synced_blob = newest;
        self.blobs_mtime = Some(mtime);
        Ok(())
    }
}
