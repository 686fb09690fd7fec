//! The WASI 0.2 subset every plugin gets, granting nothing.
//!
//! Components built by componentize-py and componentize-js import WASI for their
//! language runtime's start-up (environment, clocks, random seeds, stdio), even when
//! the plugin itself never touches a file or a socket. Weir links all of WASI 0.2's
//! command interfaces so those components load unmodified, and grants nothing through
//! them:
//!
//! - no preopened directories (the filesystem interfaces exist; there is no file to
//!   open), no environment variables, no arguments, an empty stdin;
//! - sockets exist but every address is refused and names do not resolve;
//! - stdout and stderr are lines in the broker's log, attributed to the plugin and its
//!   version and rate-limited ([`output`]);
//! - clocks and randomness are the host's own (see the README's "Plugins in Python
//!   and JavaScript": a plugin that must replay derives time from its events).
//!
//! `wasi:http` is not part of the subset: a pipeline plugin importing it is refused at
//! load, naming the import. Connectors reach the network and files through Weir's own
//! `http` and `files` interfaces, checked against their grants.

mod output;

use std::sync::Arc;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

pub(crate) use output::Attribution;

/// A zero-grant WASI context for one instance, its output going to the log as
/// `who`.
pub(crate) fn context(who: &Arc<Attribution>) -> WasiCtx {
    let mut b = WasiCtxBuilder::new();
    b.stdout(output::LogSink::new(who.clone(), output::Stream::Stdout))
        .stderr(output::LogSink::new(who.clone(), output::Stream::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    b.build()
}

/// Adds the subset to `linker`, for a store whose data gives access to its context.
pub(crate) fn add_to_linker<T: wasmtime_wasi::WasiView>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)
}

/// What an instance holds for WASI: the context and its resource table.
pub(crate) struct WasiState {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
}

impl WasiState {
    pub(crate) fn new(who: &Arc<Attribution>) -> Self {
        WasiState {
            ctx: context(who),
            table: ResourceTable::new(),
        }
    }
}

/// Runs `f` where wasmtime-wasi's blocking calls may run.
///
/// Its synchronous bindings (a `print` is a blocking write on stdout) wait on a Tokio
/// runtime with `block_on`, which panics on a thread that is driving asynchronous
/// tasks. Most plugin calls already run on blocking threads; a load at start-up or a
/// subscription's `init` may not. On a multi-threaded runtime the worker steps aside
/// (`block_in_place`); inside a current-thread runtime the call gets a scoped thread
/// of its own; off any runtime it runs as is.
pub(crate) fn outside_async<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => f(),
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| {
            s.spawn(f)
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        }),
    }
}

/// Whether `component` imports any WASI interface (Rust plugins import none).
pub(crate) fn imports_wasi(engine: &wasmtime::Engine, component: &Component) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:"))
}

/// A hint for a refused import: what the author can do about it.
pub(crate) fn hint(refusal: &str) -> &'static str {
    if refusal.contains("wasi:http") {
        " (pipeline plugins get no HTTP: a componentize-js build needs `-d http \
         fetch-event`, which `weir plugin build` passes; connectors use Weir's own \
         `http` interface)"
    } else if refusal.contains("wasi:") {
        " (plugins get WASI 0.2's command interfaces, granting nothing: cli, clocks, \
         filesystem without preopens, io, random, sockets that refuse every address)"
    } else {
        ""
    }
}
