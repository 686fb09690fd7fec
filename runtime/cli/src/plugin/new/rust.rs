//! The Rust scaffold: a crate of its own (plugins build with another toolchain than
//! the broker) with the SDK and the WIT vendored in `.weir/`.

use anyhow::bail;

use super::{Files, manifest};

// `SDK_FILES`, written by this crate's build script from `sdk/` and `wit/`.
include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));

pub(super) fn files(name: &str, kind: &str) -> anyhow::Result<Files> {
    let (source, config) = match kind {
        "filter" => (include_str!("templates/rust/filter.rs"), "word = \"hello\""),
        "transform" => (
            include_str!("templates/rust/transform.rs"),
            "header = \"seen-by\"",
        ),
        "router" => (
            include_str!("templates/rust/router.rs"),
            "prefix = \"routed-\"",
        ),
        "source" => (include_str!("templates/rust/source.rs"), "count = 100"),
        "sink" => (include_str!("templates/rust/sink.rs"), "prefix = \"got\""),
        "processor" => (
            include_str!("templates/rust/processor.rs"),
            "output = \"counts\"",
        ),
        other => bail!(
            "--kind {other}: Rust plugins scaffold as filter, transform, router, source, sink or processor"
        ),
    };
    let crate_name = name.replace('-', "_");
    let mut files: Files = vec![
        (
            "Cargo.toml".into(),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
                 [lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
                 [dependencies]\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\
                 weir-sdk = {{ path = \".weir/sdk\" }}\n\n\
                 [dev-dependencies]\nserde_json = \"1\"\n\n\
                 # A workspace of its own: plugins build with another toolchain than the broker.\n\
                 [workspace]\n\n\
                 [profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\npanic = \"abort\"\nstrip = true\n"
            ),
        ),
        (
            "plugin.toml".into(),
            manifest(name, kind, &format!("{crate_name}.wasm"), config),
        ),
        ("src/lib.rs".into(), source.to_string()),
        (".gitignore".into(), "/target\n".into()),
    ];
    files.extend(
        SDK_FILES
            .iter()
            .map(|(path, text)| (std::path::Path::new(".weir").join(path), text.to_string())),
    );
    Ok(files)
}
