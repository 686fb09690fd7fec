//! Builds the WASM guests from source, so tests always exercise real plugins:
//! `plugins/`, `examples/` and the hostile guests in `tests/guests/`, with Debian's
//! Rust (see `sdk/install-toolchain.sh`), then turns each core module into a component
//! with wit-component and exports its path as a constant.
//!
//! A missing toolchain fails the build with the command that installs it: tests never
//! skip for want of plugins.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use weir_toolchain::polyglot::{self, Lang, WasiHttp};

const HOSTILE: [&str; 5] = [
    "loop-forever",
    "memory-bomb",
    "init-trap",
    "deep-recursion",
    "panic-on-boom",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest
        .join("../..")
        .canonicalize()
        .expect("repository root");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for watched in [
        "sdk/src",
        "sdk/Cargo.toml",
        "sdk/python/weir_plugin",
        "sdk/js/weir-plugin.js",
        "wit",
        "plugins",
        "examples",
        "tests/guests",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    if let Err(e) = weir_toolchain::check() {
        panic!("\n\n{e}\nThe tests build every plugin from source and never skip them.\n\n");
    }
    // One target folder for every guest workspace: std for wasm is built once.
    let target = root.join("target/wasm-guests");
    let mut consts = String::new();

    for (workspace, crates) in [
        (
            "plugins",
            &[
                "json-filter",
                "redact",
                "header-router",
                "json-schema",
                "acl-rules",
                "file-sink",
                "http-sink",
                "http-source",
                "file-source",
                "generator",
            ][..],
        ),
        (
            "examples",
            &[
                "hello-filter",
                "shout-transform",
                "key-router",
                "team-acl",
                "window-count",
                "dedup",
                "order-enrich",
            ][..],
        ),
    ] {
        let release = build(&root.join(workspace), &target, &[]);
        for name in crates {
            let doc = format!("The `{name}` component, built from `{workspace}/{name}`.");
            let bytes = componentize(module(&release, name));
            write_component(&out, &mut consts, name, &doc, &bytes);
            let _ = writeln!(
                consts,
                "/// The source folder of `{name}` (its `plugin.toml`)."
            );
            let _ = writeln!(
                consts,
                "pub const {}_DIR: &str = {:?};",
                const_name(name),
                root.join(workspace).join(name).display().to_string()
            );
        }
    }
    // Python and JavaScript plugins, built by the same code as `weir plugin build`
    // (the tools install themselves on first use, at exact versions).
    for (name, world, lang) in [
        ("hello-filter-py", "filter", Lang::Python),
        ("shout-transform-py", "transform", Lang::Python),
        ("window-count-py", "processor", Lang::Python),
        ("hello-filter-js", "filter", Lang::Js),
        ("shout-transform-js", "transform", Lang::Js),
        ("window-count-js", "processor", Lang::Js),
    ] {
        let dir = root.join("examples").join(name);
        let bytes = match lang {
            Lang::Python => polyglot::build_python(&dir, world),
            _ => polyglot::build_js(&dir, world, WasiHttp::Disabled),
        }
        .unwrap_or_else(|e| panic!("{e}"));
        let doc = format!("The `{name}` component, built from `examples/{name}`.");
        write_component(&out, &mut consts, name, &doc, &bytes);
    }
    // componentize-js's default build, which imports `wasi:http`: refused at load.
    let bytes = polyglot::build_js(
        &root.join("examples/hello-filter-js"),
        "filter",
        WasiHttp::Kept,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let doc = "hello-filter-js built keeping `wasi:http` (componentize-js's default).";
    write_component(&out, &mut consts, "wasi-http-js", doc, &bytes);
    for feature in HOSTILE {
        let release = build(
            &root.join("tests/guests"),
            &target,
            &["-p", "hostile", "--features", feature],
        );
        let doc = format!("The hostile guest built with `{feature}`.");
        let bytes = componentize(module(&release, "hostile"));
        write_component(
            &out,
            &mut consts,
            &format!("hostile-{feature}"),
            &doc,
            &bytes,
        );
    }
    // The misbehaving ACL policy (built by the hostile builds above, in the same
    // workspace).
    let release = build(&root.join("tests/guests"), &target, &["-p", "hostile-acl"]);
    let doc = "An ACL policy that traps on `trap` and loops on `loop`.";
    let bytes = componentize(module(&release, "hostile-acl"));
    write_component(&out, &mut consts, "hostile-acl", doc, &bytes);
    // The misbehaving connectors, in one build of the same workspace.
    let release = build(
        &root.join("tests/guests"),
        &target,
        &[
            "-p",
            "hostile-sink",
            "-p",
            "escape-source",
            "-p",
            "hostile-processor",
        ],
    );
    for (name, doc) in [
        (
            "hostile-sink",
            "A sink that traps on `trap`, loops on `loop` and fails on `fail` (by event \
             value); config `dir` records what it accepted in `<dir>/delivered.ndjson`.",
        ),
        (
            "escape-source",
            "A source that tries `url` and `path` from its config once and emits \
             `{\"http\": ..., \"file\": ...}` saying what happened.",
        ),
        (
            "hostile-processor",
            "A processor that copies values to `output`, traps on `trap` and fails on \
             `fail`.",
        ),
    ] {
        let bytes = componentize(module(&release, name));
        write_component(&out, &mut consts, name, doc, &bytes);
    }
    std::fs::write(out.join("artifacts.rs"), consts).expect("writing artifacts.rs");
}

/// Writes `<out>/<name>.wasm` and its documented path constant.
fn write_component(out: &Path, consts: &mut String, name: &str, doc: &str, bytes: &[u8]) {
    let component = out.join(format!("{name}.wasm"));
    std::fs::write(&component, bytes).expect("writing the component");
    let _ = writeln!(consts, "/// {doc}");
    let _ = writeln!(
        consts,
        "pub const {}: &str = {:?};",
        const_name(name),
        component.display().to_string()
    );
}

fn const_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

fn build(dir: &Path, target: &Path, extra: &[&str]) -> weir_toolchain::Built {
    weir_toolchain::cargo_build(dir, target, extra).unwrap_or_else(|e| panic!("{e}"))
}

fn module<'a>(built: &'a weir_toolchain::Built, name: &str) -> &'a Path {
    built.module(name).unwrap_or_else(|e| panic!("{e}"))
}

fn componentize(core: &Path) -> Vec<u8> {
    weir_toolchain::componentize(core).unwrap_or_else(|e| panic!("{e}"))
}
