//! What one plugin instance may hold: its core instances, tables and memories (a
//! component built by componentize-py instantiates ~38 core modules; one from Rust,
//! a handful), and its linear memory in total.
//!
//! [`Footprint`] counts what a component will instantiate, read from its binary, so a
//! component over its manifest's `[limits]` is refused at load with `plugin_limit`
//! naming the limit, what it needs and the key that raises it, rather than failing
//! its first instantiation as if it had trapped. [`Limiter`] enforces the same counts
//! and the memory cap at run time: `memory_mb` bounds all of an instance's memories
//! together, not each one.

use wasmparser::{Instance, Parser, Payload};

use crate::error::{PluginError, Result};
use crate::manifest::Limits;

/// What instantiating a component creates, as far as its top level says (nested
/// components are counted once each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Core module instances.
    pub instances: u64,
    /// Tables those instances define.
    pub tables: u64,
    /// Memories those instances define.
    pub memories: u64,
}

impl Footprint {
    /// Counts `component`'s core instantiations; `None` if it does not parse (the
    /// compiler then says why).
    pub fn of(component: &[u8]) -> Option<Footprint> {
        // Tables and memories each core module defines, by module index, and the
        // nesting of components and modules the parser walks through.
        let mut modules: Vec<(u64, u64)> = Vec::new();
        let mut footprint = Footprint::default();
        let mut depth = 0usize;
        let mut in_module: Option<usize> = None;
        for payload in Parser::new(0).parse_all(component) {
            match payload.ok()? {
                Payload::ModuleSection { .. } => {
                    if depth == 0 {
                        modules.push((0, 0));
                        in_module = Some(modules.len() - 1);
                    }
                    depth += 1;
                }
                Payload::ComponentSection { .. } => depth += 1,
                Payload::TableSection(t) => {
                    if let Some(m) = in_module.filter(|_| depth == 1) {
                        modules[m].0 += u64::from(t.count());
                    }
                }
                Payload::MemorySection(s) => {
                    if let Some(m) = in_module.filter(|_| depth == 1) {
                        modules[m].1 += u64::from(s.count());
                    }
                }
                Payload::InstanceSection(instances) => {
                    for instance in instances {
                        if let Instance::Instantiate { module_index, .. } = instance.ok()? {
                            let (tables, memories) = modules
                                .get(module_index as usize)
                                .copied()
                                .unwrap_or((0, 0));
                            footprint.instances += 1;
                            footprint.tables += tables;
                            footprint.memories += memories;
                        }
                    }
                }
                Payload::End(_) => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        in_module = None;
                    }
                }
                _ => {}
            }
        }
        Some(footprint)
    }

    /// Refuses a component that needs more than `limits` allow.
    pub fn check(&self, plugin: &str, limits: &Limits) -> Result<()> {
        for (limit, needed, allowed, key) in [
            (
                "core instances",
                self.instances,
                limits.instances,
                "limits.instances",
            ),
            ("tables", self.tables, limits.tables, "limits.tables"),
            (
                "memories",
                self.memories,
                limits.memories,
                "limits.memories",
            ),
        ] {
            if needed > allowed {
                return Err(PluginError::Limit {
                    plugin: plugin.to_string(),
                    limit,
                    needed: needed.to_string(),
                    allowed,
                    key,
                });
            }
        }
        Ok(())
    }
}

/// The memory cap was reached: a typed error, so the call is reported as
/// `plugin_memory_limit` rather than a trap.
#[derive(Debug, thiserror::Error)]
#[error("the plugin's linear memory would pass its cap of {cap} bytes")]
pub(crate) struct MemoryCapReached {
    cap: usize,
}

/// Enforces a plugin's `[limits]` on one store.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_cap: usize,
    memory_used: usize,
    instances: usize,
    tables: usize,
    memories: usize,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Self {
            memory_cap: count(limits.memory_mb << 20),
            memory_used: 0,
            instances: count(limits.instances),
            tables: count(limits.tables),
            memories: count(limits.memories),
        }
    }

    /// Linear memory the instance holds now, all its memories together.
    pub(crate) fn memory_used(&self) -> usize {
        self.memory_used
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called for every memory's creation (from 0) and growth: the sum of all of
        // them is what the cap bounds.
        let total = self.memory_used - current.min(self.memory_used) + desired;
        if total > self.memory_cap {
            return Err(MemoryCapReached {
                cap: self.memory_cap,
            }
            .into());
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter as _;

    #[test]
    fn memory_is_capped_across_memories() {
        let mut l = Limiter::new(&Limits {
            memory_mb: 1,
            ..Limits::default()
        });
        assert!(l.memory_growing(0, 600 << 10, None).unwrap());
        // A second memory of 600 KiB would pass 1 MiB together.
        assert!(l.memory_growing(0, 600 << 10, None).is_err());
        assert!(l.memory_growing(600 << 10, 1 << 20, None).unwrap());
    }

    #[test]
    fn a_footprint_over_the_limits_names_the_key() {
        let f = Footprint {
            instances: 38,
            tables: 2,
            memories: 1,
        };
        let e = f
            .check(
                "py",
                &Limits {
                    instances: 4,
                    ..Limits::default()
                },
            )
            .unwrap_err();
        assert_eq!(e.code(), "plugin_limit");
        let text = e.to_string();
        assert!(
            text.contains("38 core instances") && text.contains("limits.instances"),
            "{text}"
        );
        assert!(f.check("py", &Limits::default()).is_ok());
    }
}
