//! weir-toolchain: turns a Rust plugin crate into a WebAssembly component.
//!
//! The broker builds with rustup's toolchain, which has no wasm32 standard library on
//! these machines; plugins build with Debian's Rust, which ships std's source, via
//! `-Zbuild-std` (see `sdk/install-toolchain.sh`). This crate runs that build with a
//! clean environment (nothing of an outer cargo leaks in) and componentizes the core
//! module with wit-component. The test artifacts' build script and `weir plugin build`
//! share it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's toolchain lives.
const CARGO: &str = "/usr/bin/cargo";
const RUSTC: &str = "/usr/bin/rustc";
const STD_SOURCE: &str = "/usr/lib/rustlib/src/rust/library";

/// The script that installs the toolchain, relative to the repository root.
pub const INSTALL_SCRIPT: &str = "sdk/install-toolchain.sh";

/// What can go wrong building a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Debian's Rust or std's source is not installed.
    #[error(
        "the WASM plugin toolchain is missing ({missing}); install it with `{INSTALL_SCRIPT}` \
         (Debian's Rust with std's source)"
    )]
    MissingToolchain {
        /// The missing paths.
        missing: String,
    },
    /// cargo could not be run or failed.
    #[error("building {dir} failed: {reason}")]
    Cargo {
        /// The crate or workspace.
        dir: String,
        /// Why.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The core module could not be made a component.
    #[error("componentizing {path}: {reason}")]
    Componentize {
        /// The core module.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Checks that Debian's Rust and std's source are installed.
pub fn check() -> Result<(), BuildError> {
    let missing: Vec<&str> = [CARGO, RUSTC, STD_SOURCE]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BuildError::MissingToolchain {
            missing: missing.join(", "),
        })
    }
}

/// Runs `cargo build --release` for wasm32 in `dir` (a crate or a workspace whose
/// `.cargo/config.toml` sets the target and build-std), into `target_dir`, with
/// `extra` arguments (e.g. `--features x`). Returns the release output folder.
pub fn cargo_build(dir: &Path, target_dir: &Path, extra: &[&str]) -> Result<PathBuf, BuildError> {
    check()?;
    let mut cmd = Command::new(CARGO);
    cmd.env_clear()
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            "wasm32-unknown-unknown",
            "-Zbuild-std=std,panic_abort",
        ])
        .args(extra)
        // build-std is unstable; Debian's compiler is a stable build.
        .env("RUSTC_BOOTSTRAP", "1")
        // wasmtime runs 128-bit SIMD; std rebuilt with it validates UTF-8 and searches
        // bytes faster.
        .env("RUSTFLAGS", "-C target-feature=+simd128")
        .env("RUSTC", RUSTC)
        .env("RUSTDOC", "/usr/bin/rustdoc")
        .env("CARGO_TARGET_DIR", target_dir);
    for keep in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "TMPDIR",
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "no_proxy",
    ] {
        if let Ok(v) = std::env::var(keep) {
            cmd.env(keep, v);
        }
    }
    let status = cmd.status().map_err(|e| BuildError::Cargo {
        dir: dir.display().to_string(),
        reason: format!("cannot run {CARGO}: {e}"),
    })?;
    if !status.success() {
        return Err(BuildError::Cargo {
            dir: dir.display().to_string(),
            reason: format!("cargo exited with {status} (its output is above)"),
        });
    }
    Ok(target_dir.join("wasm32-unknown-unknown/release"))
}

/// Turns a core module built with weir-sdk into a component.
pub fn componentize(core: &Path) -> Result<Vec<u8>, BuildError> {
    let module = std::fs::read(core).map_err(|source| BuildError::Io {
        path: core.display().to_string(),
        source,
    })?;
    let fail = |e: &dyn std::fmt::Display| BuildError::Componentize {
        path: core.display().to_string(),
        reason: e.to_string(),
    };
    // The builder methods take `&mut self`: bind the encoder first.
    let mut encoder = wit_component::ComponentEncoder::default();
    encoder
        .module(&module)
        .map_err(|e| fail(&format!("{e:#}")))?;
    encoder.validate(true);
    encoder.encode().map_err(|e| fail(&format!("{e:#}")))
}

/// The core module cargo writes for crate `name` in `release_dir`.
pub fn core_module(release_dir: &Path, crate_name: &str) -> PathBuf {
    release_dir.join(format!("{}.wasm", crate_name.replace('-', "_")))
}
