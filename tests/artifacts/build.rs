//! Builds the WASM guests from source, so tests always exercise real plugins:
//! `plugins/`, `examples/` and the hostile guests in `tests/guests/`, with Debian's
//! Rust (see `sdk/install-toolchain.sh`), then turns each core module into a component
//! with wit-component and exports its path as a constant.
//!
//! A missing toolchain fails the build with the command that installs it: tests never
//! skip for want of plugins.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

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
        "wit",
        "plugins",
        "examples",
        "tests/guests",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    check_toolchain();
    let target = root.join("target/wasm-guests");
    let release = target.join("wasm32-unknown-unknown/release");
    let mut consts = String::new();

    for (workspace, crates) in [
        ("plugins", &["json-filter", "redact", "header-router"][..]),
        (
            "examples",
            &["hello-filter", "shout-transform", "key-router"][..],
        ),
    ] {
        guest_cargo(&root.join(workspace), &target, &[]);
        for name in crates {
            let core = release.join(format!("{}.wasm", name.replace('-', "_")));
            let component = out.join(format!("{name}.wasm"));
            componentize(&core, &component);
            let _ = writeln!(
                consts,
                "/// The `{name}` component, built from `{workspace}/{name}`."
            );
            let _ = writeln!(
                consts,
                "pub const {}: &str = {:?};",
                const_name(name),
                component.display().to_string()
            );
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
    for feature in HOSTILE {
        guest_cargo(
            &root.join("tests/guests"),
            &target,
            &["--features", feature],
        );
        let component = out.join(format!("hostile-{feature}.wasm"));
        componentize(&release.join("hostile.wasm"), &component);
        let _ = writeln!(consts, "/// The hostile guest built with `{feature}`.");
        let _ = writeln!(
            consts,
            "pub const HOSTILE_{}: &str = {:?};",
            const_name(feature),
            component.display().to_string()
        );
    }
    std::fs::write(out.join("artifacts.rs"), consts).expect("writing artifacts.rs");
}

fn const_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

fn check_toolchain() {
    let missing: Vec<&str> = [
        "/usr/bin/cargo",
        "/usr/bin/rustc",
        "/usr/lib/rustlib/src/rust/library",
    ]
    .into_iter()
    .filter(|p| !Path::new(p).exists())
    .collect();
    if !missing.is_empty() {
        panic!(
            "\n\nThe WASM plugin toolchain is missing ({}).\n\
             Install it with:  sdk/install-toolchain.sh\n\
             (Debian's Rust with std's source; the tests build every plugin from source.)\n\n",
            missing.join(", ")
        );
    }
}

/// Runs Debian's cargo in a guest workspace, with an environment of its own: the
/// variables cargo sets for this build script must not leak into the nested build.
fn guest_cargo(dir: &Path, target: &Path, extra: &[&str]) {
    let mut cmd = Command::new("/usr/bin/cargo");
    cmd.env_clear()
        .current_dir(dir)
        .args(["build", "--release", "--quiet"])
        .args(extra)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTDOC", "/usr/bin/rustdoc")
        .env("CARGO_TARGET_DIR", target);
    for keep in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "TMPDIR",
        "http_proxy",
        "https_proxy",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
        "no_proxy",
    ] {
        if let Ok(v) = std::env::var(keep) {
            cmd.env(keep, v);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running /usr/bin/cargo in {}: {e}", dir.display()));
    assert!(
        status.success(),
        "building the WASM guests in {} failed",
        dir.display()
    );
}

fn componentize(core: &Path, component: &Path) {
    let module = std::fs::read(core).unwrap_or_else(|e| panic!("reading {}: {e}", core.display()));
    // The builder methods take `&mut self`: bind the encoder first.
    let mut encoder = wit_component::ComponentEncoder::default();
    encoder
        .module(&module)
        .unwrap_or_else(|e| panic!("{}: {e:?}", core.display()));
    encoder.validate(true);
    let bytes = encoder
        .encode()
        .unwrap_or_else(|e| panic!("componentizing {}: {e:?}", core.display()));
    std::fs::write(component, bytes).expect("writing the component");
}
