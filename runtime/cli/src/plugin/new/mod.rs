//! `weir plugin new`: a plugin project that builds as-is, in Rust, Python or
//! JavaScript. Each scaffold carries what it needs from this binary (the Rust SDK and
//! the WIT for crates; the Python or JS SDK for native tests), so it builds and tests
//! outside this repository.

mod js;
mod python;
mod rust;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Scaffolds plugin `name` of `kind` in `lang` under `parent`.
pub(crate) fn new(name: &str, kind: &str, lang: &str, parent: &Path) -> anyhow::Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("plugin names use letters, digits, '-' and '_'");
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let (files, next) = match lang {
        "rust" => (rust::files(name, kind)?, "weir plugin build"),
        "python" => (
            python::files(name, kind)?,
            "python3 test_app.py; weir plugin build",
        ),
        "js" => (
            js::files(name, kind)?,
            "npm install && npm test; weir plugin build",
        ),
        other => bail!("--lang {other}: choose rust, python or js"),
    };
    for (path, text) in files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    println!(
        "created {kind} plugin {} in {lang} (then: cd {} && {next})",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// A scaffold's files: path inside the project, contents.
type Files = Vec<(PathBuf, String)>;

/// The manifest every language writes: `component` and `[config]` differ.
fn manifest(name: &str, kind: &str, component: &str, config: &str) -> String {
    // A router declares every topic it may choose.
    let extra = match kind {
        "router" => {
            "\n# Every topic route() may choose (<prefix><topic> of each attached topic);\n\
             # a route to any other topic is refused.\n[router]\ndestinations = [\"routed-events\"]\n"
        }
        "source" | "sink" => "\n[[attach]]\ntopic = \"events\"\n",
        "processor" => {
            "\n# What it consumes (as the group processor.<name>), where it may emit, and\n\
             # how it groups events in time; see the README's Processors section.\n\
             [processor]\ninputs = [\"events\"]\noutputs = [\"counts\"]\n\
             windows = { kind = \"tumbling\", size_ms = 60000 }\nstate_version = 1\n"
        }
        _ => "",
    };
    // Connectors run on their own and get a longer deadline.
    let timeout_ms = if matches!(kind, "source" | "sink") {
        30_000
    } else {
        100
    };
    format!(
        "name = \"{name}\"\nkind = \"{kind}\"\ncomponent = \"{component}\"\n\n\
         [limits]\ntimeout_ms = {timeout_ms}\nmemory_mb = 128\n{extra}\n[config]\n{config}\n"
    )
}
