//! The component loader: any bytes offered as a plugin's component load or fail with
//! a clear error; never a panic. Seeded with the real plugins' components.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use weir_host::{Engine, Manifest, MemoryState, Plugin};

const KINDS: [&str; 4] = ["filter", "transform", "router", "acl"];

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new().expect("engine"))
}

fuzz_target!(|bytes: &[u8]| {
    let kind = KINDS[bytes.first().map_or(0, |b| usize::from(*b) % KINDS.len())];
    let router = if kind == "router" { "[router]\ndestinations = [\"out\"]\n" } else { "" };
    let text = format!("name = \"fuzzed\"\nkind = \"{kind}\"\ncomponent = \"plugin.wasm\"\n{router}");
    let manifest = Manifest::parse(&text, std::path::Path::new("fuzz/plugin.toml")).unwrap();
    if let Err(e) =
        Plugin::from_parts(engine(), manifest, bytes, "fuzz/plugin.wasm", Arc::new(MemoryState::default()))
    {
        assert!(!e.to_string().is_empty());
    }
});
