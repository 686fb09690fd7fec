//! Calls into sled that can panic on damaged files: sled 0.34 indexes out of bounds
//! on some damaged logs instead of returning an error, and a broker must refuse such
//! a store with a clear message, not crash. Every such call goes through here.

use crate::error::{Result, StorageError};

/// Opens sled, turning a panic in its recovery into a `storage_corrupt` error.
///
/// Why: sled 0.34 indexes out of bounds on some damaged logs (a truncated segment, for
/// one) instead of returning an error; a broker must refuse such a store with a clear
/// message, not crash with a backtrace.
pub(crate) fn open_sled(config: sled::Config) -> Result<sled::Db> {
    catch_engine_panic(|| Ok(config.open()?))
}

/// Runs `f`, turning a panic inside sled into a `storage_corrupt` error.
pub(crate) fn catch_engine_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(StorageError::corrupt(format!(
            "the storage engine failed on damaged data ({msg})"
        )))
    })
}
