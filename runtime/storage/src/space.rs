//! The free-space floor: appends are refused while the data dir's filesystem has less
//! free space than the floor, so a full disk never fails a flush half-way.
//!
//! Why a floor rather than reacting to `ENOSPC`: sled writes its log in the flusher,
//! after the request was accepted, and an I/O error there fails the whole store (see
//! `writer::run_flusher`). Refusing early keeps the store healthy: reads, consumer
//! offset commits and plugin state keep working in the headroom the floor leaves.
//!
//! A sampler thread reads the filesystem's available space every
//! [`SAMPLE_INTERVAL`]; between samples each accepted append lowers the estimate by its
//! size, so a burst cannot run far past the floor before the next sample. Once space is
//! freed, the next sample lifts the refusal: no restart is needed.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Result, StorageError};

/// How often the sampler reads the filesystem's free space.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// The floor and the latest estimate of free space.
#[derive(Debug)]
pub struct DiskSpace {
    floor: u64,
    /// Bytes available to this process on the data dir's filesystem, as last sampled
    /// minus what was accepted since. `u64::MAX` until the first sample.
    free: AtomicU64,
}

impl DiskSpace {
    /// A floor of `floor` bytes (0: no floor).
    pub fn new(floor: u64) -> Self {
        Self {
            floor,
            free: AtomicU64::new(u64::MAX),
        }
    }

    /// The configured floor in bytes (0: none).
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// The current estimate of free bytes, if a sample was taken.
    pub fn free(&self) -> Option<u64> {
        match self.free.load(Ordering::Relaxed) {
            u64::MAX => None,
            free => Some(free),
        }
    }

    /// Reads the filesystem's free space now.
    pub fn sample(&self, dir: &Path) {
        match fs2::available_space(dir) {
            Ok(free) => self.free.store(free.min(u64::MAX - 1), Ordering::Relaxed),
            Err(e) => {
                // Unknown is not full: a lowered estimate must not refuse forever.
                self.free.store(u64::MAX, Ordering::Relaxed);
                tracing::warn!(error = %e, dir = %dir.display(), "cannot read free space");
            }
        }
    }

    /// Whether appends are being refused now.
    pub fn is_full(&self) -> bool {
        self.free().is_some_and(|free| free < self.floor)
    }

    /// Admits an append of `bytes`, or refuses it with `storage_full` when it would
    /// leave less than the floor. Admitted bytes lower the estimate until the next
    /// sample.
    pub fn admit(&self, bytes: u64) -> Result<()> {
        if self.floor == 0 {
            return Ok(());
        }
        let free = self.free.load(Ordering::Relaxed);
        if free == u64::MAX {
            return Ok(());
        }
        if free.saturating_sub(bytes) < self.floor {
            return Err(StorageError::Full {
                free_bytes: free,
                floor_bytes: self.floor,
            });
        }
        // A lost race here only makes the estimate slightly optimistic until the next
        // sample; the floor's headroom absorbs it.
        self.free
            .store(free.saturating_sub(bytes), Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_refused_below_the_floor_and_admitted_again_after_a_sample() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::new(1000);
        assert!(space.admit(1 << 40).is_ok(), "no sample yet: no refusal");
        space.free.store(1500, Ordering::Relaxed);
        space.admit(400).unwrap();
        assert_eq!(space.free(), Some(1100));
        let err = space.admit(200).unwrap_err();
        assert_eq!(err.code(), "storage_full");
        assert!(err.to_string().contains("1100"), "{err}");
        space.sample(dir.path());
        assert!(space.free().unwrap() > 1500);
        space.admit(200).unwrap();
        assert!(
            DiskSpace::new(0).admit(u64::MAX - 1).is_ok(),
            "0 disables the floor"
        );
    }
}
