//! Python and JavaScript plugins: finding (and on first use installing) the tools that
//! make them components, at exact versions, and running them with the right flags.
//!
//! - Python: componentize-py builds `app.py` (whose `WitWorld` class is the plugin)
//!   against Weir's WIT, with the project folder and the Python SDK on its path.
//! - JavaScript: rolldown bundles `app.js` with the JS SDK into one module (the SDK is
//!   imported as `weir-plugin`), then componentize-js makes the component with
//!   `-d http fetch-event`: plugins get no `wasi:http` (connectors use Weir's own
//!   `http` interface), and the build keeps stdio, clocks and random, which the host's
//!   zero-grant WASI subset provides.
//!
//! The tools live once per user, in `$WEIR_TOOLS_DIR` or `~/.cache/weir/tools`, one
//! folder per tool and version, installed from PyPI and npm on first use (the npm
//! install is `npm ci` from the lock file below, so every machine gets the same
//! bytes). The SDK and the WIT are built into this crate: a plugin always builds
//! against the interface of the `weir` that builds it. A project's own `weir_plugin/`
//! or `weir-plugin/weir-plugin.js` (as `weir plugin new` writes them, for native
//! tests) wins.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{BuildError, absolute};

/// componentize-py's version (PyPI).
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// componentize-js's version (npm); rolldown's is in `js/package.json`.
pub const COMPONENTIZE_JS: &str = "0.23.0";

const JS_PACKAGE: &str = include_str!("../js/package.json");
const JS_LOCK: &str = include_str!("../js/package-lock.json");

/// The WIT every plugin builds against.
pub const WIT: &str = include_str!("../../../wit/weir-plugin.wit");

/// The Python SDK's files (`weir_plugin/`), by name.
pub const PYTHON_SDK: [(&str, &str); 6] = [
    (
        "__init__.py",
        include_str!("../../../sdk/python/weir_plugin/__init__.py"),
    ),
    (
        "packed.py",
        include_str!("../../../sdk/python/weir_plugin/packed.py"),
    ),
    (
        "worlds.py",
        include_str!("../../../sdk/python/weir_plugin/worlds.py"),
    ),
    (
        "host.py",
        include_str!("../../../sdk/python/weir_plugin/host.py"),
    ),
    (
        "processor.py",
        include_str!("../../../sdk/python/weir_plugin/processor.py"),
    ),
    (
        "testing.py",
        include_str!("../../../sdk/python/weir_plugin/testing.py"),
    ),
];

/// The JS SDK (one module).
pub const JS_SDK: &str = include_str!("../../../sdk/js/weir-plugin.js");

/// A plugin project's language, told by its entry file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// A crate (`Cargo.toml`).
    Rust,
    /// `app.py`.
    Python,
    /// `app.js`.
    Js,
}

impl Lang {
    /// The language of the project in `dir`, if it is one.
    pub fn of(dir: &Path) -> Option<Lang> {
        if dir.join("Cargo.toml").is_file() {
            Some(Lang::Rust)
        } else if dir.join("app.py").is_file() {
            Some(Lang::Python)
        } else if dir.join("app.js").is_file() {
            Some(Lang::Js)
        } else {
            None
        }
    }
}

/// Where the tools are kept: `$WEIR_TOOLS_DIR`, else `$XDG_CACHE_HOME/weir/tools`,
/// else `~/.cache/weir/tools`.
pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WEIR_TOOLS_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    crate::user_cache_dir()
        .unwrap_or_else(|| std::env::temp_dir().join("weir"))
        .join("tools")
}

/// Builds the Python plugin in `project` for `world` into component bytes.
pub fn build_python(project: &Path, world: &str) -> Result<Vec<u8>, BuildError> {
    let project = &absolute(project)?;
    let tool = ensure_python()?;
    let scratch = Scratch::new("py")?;
    let wit = scratch.write("wit/weir-plugin.wit", WIT)?;
    for (name, text) in PYTHON_SDK {
        scratch.write(&format!("sdk/weir_plugin/{name}"), text)?;
    }
    let out = scratch.path("plugin.wasm");
    let mut cmd = Command::new(&tool);
    // No __pycache__ left in the project (a build watching it would see a change).
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .arg("-d")
        .arg(wit.parent().expect("wit folder"))
        .args(["-w", world, "componentize", "app", "-p"])
        .arg(project)
        .arg("-p")
        .arg(scratch.path("sdk"))
        .arg("-o")
        .arg(&out);
    run(&mut cmd, project)?;
    read(&out)
}

/// Whether a JavaScript build keeps componentize-js's `wasi:http` imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasiHttp {
    /// `-d http fetch-event`: what plugins need (and what `weir plugin build` does).
    Disabled,
    /// componentize-js's default, which the host refuses (for tests of the refusal).
    Kept,
}

/// Builds the JavaScript plugin in `project` for `world` into component bytes.
pub fn build_js(project: &Path, world: &str, http: WasiHttp) -> Result<Vec<u8>, BuildError> {
    let project = &absolute(project)?;
    let tools = ensure_js()?;
    let scratch = Scratch::new("js")?;
    let wit = scratch.write("wit/weir-plugin.wit", WIT)?;
    let own_sdk = project.join("weir-plugin/weir-plugin.js");
    let sdk = if own_sdk.is_file() {
        own_sdk
    } else {
        scratch.write("weir-plugin.js", JS_SDK)?
    };
    let bundle = scratch.path("bundle.js");
    let config = format!(
        "export default {{ input: {input}, external: [/^weir:/, /^wasi:/], \
         resolve: {{ alias: {{ \"weir-plugin\": {sdk} }} }}, \
         output: {{ file: {bundle}, format: \"esm\" }} }};\n",
        input = js_string(&project.join("app.js")),
        sdk = js_string(&sdk),
        bundle = js_string(&bundle),
    );
    let config = scratch.write("rolldown.config.mjs", &config)?;
    let bin = tools.join("node_modules/.bin");
    run(
        Command::new(bin.join("rolldown")).arg("-c").arg(&config),
        project,
    )?;
    let out = scratch.path("plugin.wasm");
    let mut cmd = Command::new(bin.join("componentize-js"));
    cmd.arg(&bundle)
        .arg("-w")
        .arg(wit.parent().expect("wit folder"))
        .args(["-n", world]);
    if http == WasiHttp::Disabled {
        cmd.args(["-d", "http", "fetch-event"]);
    }
    run(cmd.arg("-o").arg(&out), project)?;
    read(&out)
}

/// componentize-py, installed into its own virtualenv on first use.
pub fn ensure_python() -> Result<PathBuf, BuildError> {
    let dir = tools_dir().join(format!("componentize-py-{COMPONENTIZE_PY}"));
    let tool = dir.join("bin/componentize-py");
    install_once(&dir, || {
        run(Command::new("python3").args(["-m", "venv"]).arg(&dir), &dir)
            .map_err(|e| missing("python3 with venv (Debian: python3-venv)", e))?;
        run(
            Command::new(dir.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("componentize-py=={COMPONENTIZE_PY}"),
            ]),
            &dir,
        )
    })?;
    Ok(tool)
}

/// componentize-js and rolldown, installed with `npm ci` from the lock file on first
/// use; returns the folder holding `node_modules`.
pub fn ensure_js() -> Result<PathBuf, BuildError> {
    let dir = tools_dir().join(format!("componentize-js-{COMPONENTIZE_JS}"));
    install_once(&dir, || {
        write(&dir.join("package.json"), JS_PACKAGE)?;
        write(&dir.join("package-lock.json"), JS_LOCK)?;
        run(
            Command::new("npm").current_dir(&dir).args([
                "ci",
                "--loglevel=error",
                "--no-audit",
                "--no-fund",
            ]),
            &dir,
        )
        .map_err(|e| missing("node and npm (Debian: nodejs npm)", e))
    })?;
    Ok(dir)
}

/// Runs `install` into `dir` unless a finished install is there; a half-finished one
/// (no `.installed` stamp) is removed and redone.
fn install_once(
    dir: &Path,
    install: impl FnOnce() -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let stamp = dir.join(".installed");
    if stamp.is_file() {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    install()?;
    write(&stamp, "")
}

fn missing(what: &str, e: BuildError) -> BuildError {
    match e {
        BuildError::Tool { tool, dir, reason } if reason.starts_with("could not run") => {
            BuildError::Tool {
                tool,
                dir,
                reason: format!("{reason}; install {what}"),
            }
        }
        other => other,
    }
}

/// Runs `cmd`, reporting its output when it fails.
fn run(cmd: &mut Command, dir: &Path) -> Result<(), BuildError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let failed = |reason: String| BuildError::Tool {
        tool: program.clone(),
        dir: dir.display().to_string(),
        reason,
    };
    let output = cmd
        .output()
        .map_err(|e| failed(format!("could not run it: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(failed(format!(
        "failed ({}):\n{}",
        output.status,
        tail.join("\n")
    )))
}

fn js_string(path: &Path) -> String {
    serde_json::to_string(&path.display().to_string()).expect("a string serialises")
}

fn read(path: &Path) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|e| io(path, e))
}

fn write(path: &Path, text: &str) -> Result<(), BuildError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| io(path, e))
}

fn io(path: &Path, source: std::io::Error) -> BuildError {
    BuildError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A scratch folder for one build, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Result<Scratch, BuildError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "weir-build-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        Ok(Scratch(dir))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> Result<PathBuf, BuildError> {
        let p = self.path(rel);
        write(&p, text)?;
        Ok(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
