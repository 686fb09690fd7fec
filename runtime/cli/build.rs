//! Embeds the SDK's and the WIT package's sources for `weir plugin new`, which
//! vendors them into every scaffold so it builds anywhere. Cargo reruns this when any
//! of them changes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root");
    let mut files = vec![root.join("sdk/Cargo.toml")];
    for (dir, ext) in [("sdk/src", "rs"), ("wit", "wit")] {
        let mut found = Vec::new();
        walk(&root.join(dir), ext, &mut found);
        found.sort();
        files.extend(found);
    }
    let mut out = String::from(
        "/// `(path in the scaffold's .weir/, contents)` of the SDK and WIT sources.\n",
    );
    let _ = writeln!(out, "const SDK_FILES: [(&str, &str); {}] = [", files.len());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let relative = file.strip_prefix(&root).expect("under the root");
        let _ = writeln!(
            out,
            "    ({:?}, include_str!({:?})),",
            relative.display().to_string(),
            file.display().to_string()
        );
    }
    out.push_str("];\n");
    for dir in ["sdk/src", "sdk/src/guest", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("sdk_files.rs");
    std::fs::write(dest, out).expect("writing sdk_files.rs");
}

/// Every file under `dir` (recursively) ending in `.ext`.
fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            walk(&path, ext, out);
        } else if path.extension().is_some_and(|x| x == ext) {
            out.push(path);
        }
    }
}
