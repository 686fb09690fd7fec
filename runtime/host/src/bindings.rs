//! Host-side bindings for every world, generated from `wit/`. The `types` and `host`
//! interfaces are generated once (with the filter world) and shared by the others, so
//! one `Host` implementation serves every kind of plugin.

#![allow(missing_docs, missing_debug_implementations, clippy::all)]

pub mod filter {
    wasmtime::component::bindgen!({ path: "../../wit", world: "filter" });
}

pub mod transform {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "transform",
        with: {
            "weir:plugin/types": super::filter::weir::plugin::types,
            "weir:plugin/host": super::filter::weir::plugin::host,
        },
    });
}

pub mod router {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "router",
        with: {
            "weir:plugin/types": super::filter::weir::plugin::types,
            "weir:plugin/host": super::filter::weir::plugin::host,
        },
    });
}

pub mod acl {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "acl",
        with: {
            "weir:plugin/types": super::filter::weir::plugin::types,
            "weir:plugin/host": super::filter::weir::plugin::host,
        },
    });
}

pub use filter::weir::plugin::types;

pub mod source {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "source",
        with: {
            "weir:plugin/types": super::filter::weir::plugin::types,
            "weir:plugin/host": super::filter::weir::plugin::host,
        },
    });
}

pub mod sink {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "sink",
        with: {
            "weir:plugin/types": super::filter::weir::plugin::types,
            "weir:plugin/host": super::filter::weir::plugin::host,
            "weir:plugin/http": super::source::weir::plugin::http,
            "weir:plugin/files": super::source::weir::plugin::files,
        },
    });
}

pub mod processor {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "processor",
        with: {
            "weir:plugin/types": super::filter::weir::plugin::types,
            "weir:plugin/host": super::filter::weir::plugin::host,
        },
    });
}
