//! `weir plugin build`: a plugin project (a Rust crate, or `app.py` / `app.js`) into
//! a deployable folder, `<out>/<name>/` with `plugin.toml` and the component.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use weir_broker::plugins::Manifest;
use weir_toolchain::polyglot::{self, Lang, WasiHttp};

/// Builds the project in `dir` and writes `<out>/<name>/` [default out:
/// `<dir>/target/plugin`]. Crates share one cargo target directory (see
/// [`weir_toolchain::shared_target_dir`]).
pub(crate) fn build(dir: &Path, out: Option<&Path>) -> anyhow::Result<PathBuf> {
    let target = weir_toolchain::shared_target_dir().unwrap_or_else(|| dir.join("target"));
    build_in(dir, out, &target)
}

/// [`build`] with cargo's target directory at `target` (several plugins can share
/// one, so the wasm standard library is built once).
pub(crate) fn build_in(dir: &Path, out: Option<&Path>, target: &Path) -> anyhow::Result<PathBuf> {
    let manifest = Manifest::load(dir)?;
    let world = manifest.kind.as_str();
    let component = match Lang::of(dir) {
        Some(Lang::Rust) => build_crate(dir, target)?,
        Some(Lang::Python) => polyglot::build_python(dir, world)?,
        Some(Lang::Js) => polyglot::build_js(dir, world, WasiHttp::Disabled)?,
        None => bail!(
            "{} is not a plugin project (no Cargo.toml, app.py or app.js)",
            dir.display()
        ),
    };
    let out = out.map_or_else(|| dir.join("target/plugin"), Path::to_path_buf);
    let folder = out.join(&manifest.name);
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    // Component first, manifest last, each renamed into place: a broker watching
    // `out` never reads half a file.
    write_replacing(&folder.join(&manifest.component), &component)?;
    write_replacing(
        &folder.join("plugin.toml"),
        &std::fs::read(dir.join("plugin.toml"))?,
    )?;
    Ok(folder)
}

/// Cargo (Debian's toolchain, `-Zbuild-std`) and wit-component.
fn build_crate(crate_dir: &Path, target: &Path) -> anyhow::Result<Vec<u8>> {
    let cargo_toml = std::fs::read_to_string(crate_dir.join("Cargo.toml"))
        .with_context(|| format!("reading {}", crate_dir.join("Cargo.toml").display()))?;
    let crate_name = package_name(&cargo_toml).with_context(|| {
        format!(
            "no [package] name in {}",
            crate_dir.join("Cargo.toml").display()
        )
    })?;
    let built = weir_toolchain::cargo_build(crate_dir, target, &[])?;
    Ok(weir_toolchain::componentize(built.module(&crate_name)?)?)
}

/// Writes `path` through a hidden temporary file renamed over it.
pub(super) fn write_replacing(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().context("a file name")?.to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&temp, bytes).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))
}

fn package_name(cargo_toml: &str) -> Option<String> {
    let doc: toml::Table = toml::from_str(cargo_toml).ok()?;
    doc.get("package")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}
