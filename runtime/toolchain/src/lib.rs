//! weir-toolchain: turns a plugin project into a WebAssembly component: a Rust crate
//! here, Python and JavaScript projects in [`polyglot`].
//!
//! The broker builds with rustup's toolchain, which has no wasm32 standard library on
//! these machines; plugins build with Debian's Rust, which ships std's source, via
//! `-Zbuild-std` (see `sdk/install-toolchain.sh`). This crate runs that build with a
//! clean environment (nothing of an outer cargo leaks in) and componentizes the core
//! module with wit-component. The test artifacts' build script and `weir plugin build`
//! share it.

pub mod polyglot;

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
    /// A Python or JavaScript build tool (python3, pip, npm, rolldown,
    /// componentize-py, componentize-js) could not run or failed.
    #[error("{tool} (for {dir}): {reason}")]
    Tool {
        /// The program.
        tool: String,
        /// The project or tools folder.
        dir: String,
        /// Why, with the end of its output.
        reason: String,
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

/// The core modules one build produced, by crate name (as cargo reported them).
#[derive(Debug, Clone, Default)]
pub struct Built {
    modules: Vec<(String, PathBuf)>,
}

impl Built {
    /// The core module of crate `name` (`-` and `_` alike).
    pub fn module(&self, name: &str) -> Result<&Path, BuildError> {
        let name = name.replace('-', "_");
        self.modules
            .iter()
            .find(|(n, _)| n.replace('-', "_") == name)
            .map(|(_, p)| p.as_path())
            .ok_or_else(|| BuildError::Cargo {
                dir: name.clone(),
                reason: format!(
                    "cargo built no cdylib named '{name}' (built: {}); is crate-type = [\"cdylib\"] set?",
                    self.modules
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

/// Where plugin builds share their output by default: one folder per toolchain in the
/// user's cache, so the wasm32 standard library (a minute to build) is built once for
/// every plugin, not once per crate. `WEIR_PLUGIN_TARGET_DIR` overrides it.
pub fn shared_target_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WEIR_PLUGIN_TARGET_DIR") {
        return Some(PathBuf::from(dir));
    }
    Some(user_cache_dir()?.join("plugin-target"))
}

/// Weir's folder in the user's cache: `$XDG_CACHE_HOME/weir` (when absolute, as the
/// XDG spec asks), else `~/.cache/weir`. Plugin builds, build tools and `weir plugin
/// test`'s compiled code live below it.
pub fn user_cache_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("weir"))
}

/// `path` made absolute against the current directory (cargo runs in another one).
fn absolute(path: &Path) -> Result<PathBuf, BuildError> {
    std::path::absolute(path).map_err(|source| BuildError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Runs `cargo build --release` for wasm32 in `dir` (a crate, a workspace member or
/// a workspace), into `target_dir`, with `extra` arguments (e.g. `--features x`).
/// Relative paths are taken from the current directory. Returns the core modules as
/// cargo reports them (never guessed from the folder layout: a workspace member's
/// output is wherever cargo puts it).
pub fn cargo_build(dir: &Path, target_dir: &Path, extra: &[&str]) -> Result<Built, BuildError> {
    check()?;
    let (dir, target_dir) = (absolute(dir)?, absolute(target_dir)?);
    let mut cmd = Command::new(CARGO);
    cmd.env_clear()
        .current_dir(&dir)
        .args([
            "build",
            "--release",
            "--quiet",
            "--message-format=json-render-diagnostics",
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
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdout(std::process::Stdio::piped());
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
    // Diagnostics go to stderr as cargo renders them; stdout carries its JSON
    // messages, which name every artifact.
    let out = cmd.output().map_err(|e| BuildError::Cargo {
        dir: dir.display().to_string(),
        reason: format!("cannot run {CARGO}: {e}"),
    })?;
    if !out.status.success() {
        return Err(BuildError::Cargo {
            dir: dir.display().to_string(),
            reason: format!("cargo exited with {} (its output is above)", out.status),
        });
    }
    Ok(Built {
        modules: String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(cdylib_artifact)
            .collect(),
    })
}

/// A `compiler-artifact` message of a cdylib: (crate name, its `.wasm` file).
fn cdylib_artifact(line: &str) -> Option<(String, PathBuf)> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg["reason"] != "compiler-artifact" {
        return None;
    }
    let target = &msg["target"];
    target["crate_types"]
        .as_array()?
        .iter()
        .any(|k| k == "cdylib")
        .then_some(())?;
    let wasm = msg["filenames"]
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))?;
    Some((target["name"].as_str()?.to_string(), PathBuf::from(wasm)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdylib_artifacts_are_read_from_cargos_messages() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"my_filter","crate_types":["cdylib","rlib"]},"filenames":["/t/wasm32-unknown-unknown/release/my_filter.wasm","/t/wasm32-unknown-unknown/release/libmy_filter.rlib"],"fresh":true}"#;
        assert_eq!(
            cdylib_artifact(line),
            Some((
                "my_filter".into(),
                PathBuf::from("/t/wasm32-unknown-unknown/release/my_filter.wasm")
            ))
        );
        let rlib = r#"{"reason":"compiler-artifact","target":{"name":"serde","crate_types":["lib"]},"filenames":["/t/libserde.rlib"]}"#;
        assert_eq!(cdylib_artifact(rlib), None);
        assert_eq!(
            cdylib_artifact(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        let built = Built {
            modules: vec![("my_filter".into(), PathBuf::from("/m.wasm"))],
        };
        assert_eq!(built.module("my-filter").unwrap(), Path::new("/m.wasm"));
        assert!(
            built
                .module("other")
                .unwrap_err()
                .to_string()
                .contains("my_filter")
        );
    }
}
