//! A loaded plugin: its compiled component, pre-linked per world, a pool of live
//! instances, and the calls with their limits.
//!
//! Loading compiles the component once, links it against the world its manifest
//! declares (a mismatch is rejected here, naming the file), and runs `init` with the
//! config in a first instance. Calls take an instance from the pool (or make one from
//! the pre-linked `InstancePre`), run under an epoch deadline and a memory cap, and give
//! it back. A trap, timeout, memory or stack error discards that instance only.
//!
//! Split by job: [`imports`] (what the broker offers a plugin: log, state, a
//! connector's capabilities), `call_types` (what calls take and return), `load`
//! (files, compile, link, `init`), `instance` (stores, deadlines, the pool, how
//! failures are classified), `calls` (one entry per world's export) and `process`
//! (a processor's calls, with its keyed state set for each).

mod call_types;
mod calls;
mod imports;
mod instance;
mod load;
mod process;

use std::sync::Arc;

use parking_lot::Mutex;
use wasmtime::Store;

use crate::bindings::{acl, filter, processor, router, sink, source, transform};
use crate::engine::Engine;
use crate::grants::Capabilities;
use crate::manifest::{Kind, Manifest};
use crate::state::PluginState;
use crate::wasi::Attribution;

pub use call_types::{
    AclRequest, BatchInfo, Decision, Delivery, Destination, Emitted, EventWindow, OnTime, PollInfo,
    Polled, ProcessInfo, Transformed, Window,
};
pub(crate) use imports::Ctx;
pub use load::PluginFiles;

/// The pre-linked component, by world.
enum Pre {
    Filter(filter::FilterPre<Ctx>),
    Transform(transform::TransformPre<Ctx>),
    Router(router::RouterPre<Ctx>),
    Acl(acl::AclPre<Ctx>),
    Source(source::SourcePre<Ctx>),
    Sink(sink::SinkPre<Ctx>),
    Processor(processor::ProcessorPre<Ctx>),
}

/// A live instance, by world.
enum Bindings {
    Filter(filter::Filter),
    Transform(transform::Transform),
    Router(router::Router),
    Acl(acl::Acl),
    Source(source::Source),
    Sink(sink::Sink),
    Processor(processor::Processor),
}

struct Live {
    store: Store<Ctx>,
    bindings: Bindings,
}

/// A loaded, initialised plugin. Calls may come from any thread.
pub struct Plugin {
    manifest: Manifest,
    name: Arc<str>,
    hash: String,
    engine: Engine,
    /// Shared by the variants of this version that differ only in config.
    pre: Arc<Pre>,
    config_json: String,
    state: Arc<dyn PluginState>,
    pool: Mutex<Vec<Live>>,
    /// The files this version was loaded from, when it came from a folder or a deploy.
    files: Option<Arc<PluginFiles>>,
    /// A connector's grants.
    caps: Option<Arc<Capabilities>>,
    /// Who its stdout and stderr lines are logged as, and their shared rate limit.
    output: Arc<Attribution>,
    /// It imports WASI, so its calls must not run on an async thread
    /// ([`crate::wasi::outside_async`]).
    uses_wasi: bool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("kind", &self.manifest.kind)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Most idle instances kept per plugin.
const POOL_SIZE: usize = 8;

impl Plugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.manifest.kind
    }

    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// A connector's granted directories as resolved at load (one per `[grants]
    /// dirs` entry; none for other kinds).
    pub fn granted_dirs(&self) -> &[std::path::PathBuf] {
        self.caps.as_deref().map_or(&[], |c| c.dirs())
    }

    /// The version's identity: SHA-256 over its manifest text and component (over
    /// the component alone when built from parts).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The files this version was loaded from, if it came from files.
    pub fn files(&self) -> Option<&Arc<PluginFiles>> {
        self.files.as_ref()
    }

    /// `name@<first 12 hex digits of the hash>`: how lineage headers and dead
    /// letters name this version.
    pub fn version_tag(&self) -> String {
        format!("{}@{}", self.name, &self.hash[..12])
    }

    /// Lines of stdout and stderr this version logged, and dropped over its rate.
    pub fn output_lines(&self) -> (u64, u64) {
        self.output.lines()
    }

    /// The idle instances kept for the next calls, and the linear memory they hold
    /// together (a componentize-py instance holds ~16 MiB; a Rust one well under 1).
    pub fn pooled_memory(&self) -> (usize, usize) {
        let pool = self.pool.lock();
        let bytes = pool
            .iter()
            .map(|l| l.store.data().limits.memory_used())
            .sum();
        (pool.len(), bytes)
    }

    /// Calls of this connector refused because they were outside its grants.
    pub fn capability_refusals(&self) -> u64 {
        self.caps.as_ref().map_or(0, |c| c.refused())
    }
}

pub(super) fn root_cause(e: &wasmtime::Error) -> String {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    chain.join(": ")
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Plugins are shared across request threads.
const _: () = {
    const fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Plugin>();
};
