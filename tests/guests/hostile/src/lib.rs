//! Filters that misbehave on purpose, one way per feature, to prove the host contains
//! them: an endless loop, unbounded allocation, a trap in init, unbounded recursion,
//! and a panic on one event.

use weir_sdk::{Event, Filter, Result};

/// Accepts any config.
#[derive(serde::Deserialize)]
pub struct Config {}

/// The misbehaving filter.
pub struct Hostile;

impl Filter for Hostile {
    type Config = Config;

    fn init(_: Config) -> std::result::Result<Self, String> {
        #[cfg(feature = "init-trap")]
        panic!("init traps on purpose");
        #[allow(unreachable_code)]
        Ok(Hostile)
    }

    fn keep(&self, event: &Event<'_>) -> Result<bool> {
        #[cfg(feature = "loop-forever")]
        {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        #[cfg(feature = "memory-bomb")]
        {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(std::hint::black_box(vec![7u8; 1 << 20]));
            }
        }
        #[cfg(feature = "deep-recursion")]
        {
            return Ok(recurse(std::hint::black_box(1)) > 0);
        }
        #[cfg(feature = "panic-on-boom")]
        {
            if event.value == Some(b"\"boom\"") {
                panic!("boom");
            }
        }
        #[allow(unreachable_code)]
        Ok(event.value.is_some())
    }
}

/// Recursion without end, kept in wasm locals (not the shadow stack in linear memory),
/// so it exhausts the engine's wasm stack.
#[cfg(feature = "deep-recursion")]
fn recurse(n: u64) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    std::hint::black_box(recurse(std::hint::black_box(n + 1))).wrapping_mul(3) + 1
}

weir_sdk::export_filter!(Hostile);
