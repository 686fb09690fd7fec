//! The plugin manifest parser: any text parses to a manifest that passed validation,
//! or fails with an error naming the file; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_host::Manifest;

fuzz_target!(|text: &str| {
    let path = std::path::Path::new("fuzz/plugin.toml");
    match Manifest::parse(text, path) {
        Ok(m) => assert!(!m.name.is_empty()),
        Err(e) => assert!(e.to_string().contains("fuzz/plugin.toml"), "{e}"),
    }
});
