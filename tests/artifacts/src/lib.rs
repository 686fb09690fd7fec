//! Paths of WASM components built from this repository's sources by `build.rs`:
//! every first-party plugin and example, and the hostile test guests.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
