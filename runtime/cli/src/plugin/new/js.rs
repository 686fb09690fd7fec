//! The JavaScript scaffold: `app.js` (the plugin's exports), a native test for
//! `node --test`, and the JS SDK vendored as the local package `weir-plugin/`.

use anyhow::bail;
use weir_toolchain::polyglot::JS_SDK;

use super::{Files, manifest};

pub(super) fn files(name: &str, kind: &str) -> anyhow::Result<Files> {
    let (app, test, config) = match kind {
        "filter" => (
            include_str!("templates/js/filter.js"),
            include_str!("templates/js/filter.test.js"),
            "word = \"hello\"",
        ),
        "transform" => (
            include_str!("templates/js/transform.js"),
            include_str!("templates/js/transform.test.js"),
            "header = \"seen-by\"",
        ),
        "router" => (
            include_str!("templates/js/router.js"),
            include_str!("templates/js/router.test.js"),
            "prefix = \"routed-\"",
        ),
        other => {
            bail!("--kind {other}: JavaScript plugins scaffold as filter, transform or router")
        }
    };
    let package = format!(
        "{{\n  \"name\": \"{name}\",\n  \"private\": true,\n  \"type\": \"module\",\n  \
         \"scripts\": {{ \"test\": \"node --test\" }},\n  \
         \"dependencies\": {{ \"weir-plugin\": \"file:weir-plugin\" }}\n}}\n"
    );
    Ok(vec![
        (
            "plugin.toml".into(),
            manifest(name, kind, "plugin.wasm", config),
        ),
        ("app.js".into(), app.replace("NAME", name)),
        ("app.test.js".into(), test.to_string()),
        ("package.json".into(), package),
        (
            "weir-plugin/package.json".into(),
            "{ \"name\": \"weir-plugin\", \"type\": \"module\", \"main\": \"weir-plugin.js\" }\n"
                .into(),
        ),
        ("weir-plugin/weir-plugin.js".into(), JS_SDK.to_string()),
        (".gitignore".into(), "/target\nnode_modules/\n".into()),
    ])
}
