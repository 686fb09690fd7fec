//! The Python scaffold: `app.py` (the plugin class), a native test, and the Python
//! SDK vendored as `weir_plugin/` so the test runs in plain CPython.

use anyhow::bail;
use weir_toolchain::polyglot::PYTHON_SDK;

use super::{Files, manifest};

pub(super) fn files(name: &str, kind: &str) -> anyhow::Result<Files> {
    let (app, test, config) = match kind {
        "filter" => (
            include_str!("templates/python/filter.py"),
            include_str!("templates/python/test_filter.py"),
            "word = \"hello\"",
        ),
        "transform" => (
            include_str!("templates/python/transform.py"),
            include_str!("templates/python/test_transform.py"),
            "header = \"seen-by\"",
        ),
        "router" => (
            include_str!("templates/python/router.py"),
            include_str!("templates/python/test_router.py"),
            "prefix = \"routed-\"",
        ),
        other => bail!("--kind {other}: Python plugins scaffold as filter, transform or router"),
    };
    let mut files: Files = vec![
        (
            "plugin.toml".into(),
            manifest(name, kind, "plugin.wasm", config),
        ),
        ("app.py".into(), app.replace("NAME", name)),
        ("test_app.py".into(), test.to_string()),
        (".gitignore".into(), "/target\n__pycache__/\n".into()),
    ];
    files.extend(PYTHON_SDK.iter().map(|(file, text)| {
        (
            std::path::Path::new("weir_plugin").join(file),
            text.to_string(),
        )
    }));
    Ok(files)
}
