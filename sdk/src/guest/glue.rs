//! Glue between the generated bindings and the traits, and the export macros that
//! register a plugin. Not part of the API.

use super::*;

/// Deserialises the init config JSON (an absent `[config]` is `{}`).
pub fn config<C: serde::de::DeserializeOwned>(json: &str) -> std::result::Result<C, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    serde_json::from_str(json).map_err(|e| format!("invalid config: {e}"))
}

/// Deserialises the config and builds the plugin with it.
pub fn init<C: serde::de::DeserializeOwned, T>(
    json: &str,
    build: fn(C) -> std::result::Result<T, String>,
) -> std::result::Result<T, String> {
    build(config(json)?)
}

/// Maps an SDK error onto a world's generated error type.
pub fn to_wit<E>(e: Error, bad_input: fn(String) -> E, failed: fn(String) -> E) -> E {
    match e {
        Error::BadInput(m) => bad_input(m),
        Error::Failed(m) => failed(m),
    }
}

/// Decodes a packed batch; a malformed one is the host's fault, reported as such.
pub fn events(buf: &[u8]) -> Result<Vec<Event<'_>>> {
    packed::decode(buf).map_err(|e| Error::Failed(e.to_string()))
}

/// Runs a filter over a packed batch.
pub fn filter<F: Filter>(f: &F, buf: &[u8]) -> Result<Vec<bool>> {
    events(buf)?.iter().map(|e| f.keep(e)).collect()
}

/// Runs a transform over a packed batch: packed outputs and per-input counts.
pub fn transform<T: Transform>(t: &T, buf: &[u8]) -> Result<(Vec<u8>, Vec<u32>)> {
    let events = events(buf)?;
    let mut out = Output {
        writer: Writer::with_capacity(buf.len()),
    };
    let mut counts = Vec::with_capacity(events.len());
    for e in &events {
        let before = out.len();
        t.transform(e, &mut out)?;
        counts.push((out.len() - before) as u32);
    }
    Ok((out.writer.finish(), counts))
}

/// Runs a router over a packed batch: `(event index, topic, key)` per destination.
pub fn route<R: Router>(r: &R, info: &BatchInfo, buf: &[u8]) -> Result<Vec<Route>> {
    let mut out = Vec::new();
    for (i, e) in events(buf)?.iter().enumerate() {
        let mut routes = Routes::default();
        r.route(e, info, &mut routes)?;
        out.extend(routes.list.into_iter().map(|(topic, key)| Route {
            event: i as u32,
            topic,
            key,
        }));
    }
    Ok(out)
}

/// Holds the plugin instance between calls (a component instance is
/// single-threaded).
pub struct Slot<T>(RefCell<Option<T>>);

impl<T> Slot<T> {
    /// An empty slot.
    pub const fn new() -> Self {
        Slot(RefCell::new(None))
    }
    /// Stores the instance.
    pub fn set(&self, t: T) {
        *self.0.borrow_mut() = Some(t);
    }
    /// Runs `f` with the instance.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> Result<R>) -> Result<R> {
        match self.0.borrow().as_ref() {
            Some(t) => f(t),
            None => Err(Error::Failed("called before init".into())),
        }
    }

    /// Runs `f` with the instance, mutably (connectors keep state between calls).
    pub fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> Result<R>) -> Result<R> {
        match self.0.borrow_mut().as_mut() {
            Some(t) => f(t),
            None => Err(Error::Failed("called before init".into())),
        }
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Exports a [`Filter`] as the plugin's `filter` world.
#[macro_export]
macro_rules! export_filter {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::filter::weir::plugin::types as __types;
            thread_local! {
                static __WEIR_SLOT: $crate::glue::Slot<$t> = const { $crate::glue::Slot::new() };
            }
            struct __WeirFilter;
            impl $crate::bindings::filter::Guest for __WeirFilter {
                fn init(config: String) -> Result<(), String> {
                    let p = $crate::glue::init(&config, <$t as $crate::Filter>::init)?;
                    __WEIR_SLOT.with(|s| s.set(p));
                    Ok(())
                }
                fn filter(_info: __types::BatchInfo, events: Vec<u8>) -> Result<Vec<bool>, __types::Error> {
                    __WEIR_SLOT
                        .with(|s| s.with(|p| $crate::glue::filter(p, &events)))
                        .map_err(|e| $crate::glue::to_wit(e, __types::Error::BadInput, __types::Error::Failed))
                }
            }
            $crate::bindings::filter::__export_filter_world!(__WeirFilter with_types_in $crate::bindings::filter);
        };
    };
}

/// Exports a [`Transform`] as the plugin's `transform` world.
#[macro_export]
macro_rules! export_transform {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::transform::weir::plugin::types as __types;
            thread_local! {
                static __WEIR_SLOT: $crate::glue::Slot<$t> = const { $crate::glue::Slot::new() };
            }
            struct __WeirTransform;
            impl $crate::bindings::transform::Guest for __WeirTransform {
                fn init(config: String) -> Result<(), String> {
                    let p = $crate::glue::init(&config, <$t as $crate::Transform>::init)?;
                    __WEIR_SLOT.with(|s| s.set(p));
                    Ok(())
                }
                fn transform(
                    _info: __types::BatchInfo,
                    events: Vec<u8>,
                ) -> Result<__types::Transformed, __types::Error> {
                    __WEIR_SLOT
                        .with(|s| s.with(|p| $crate::glue::transform(p, &events)))
                        .map(|(events, counts)| __types::Transformed { events, counts })
                        .map_err(|e| $crate::glue::to_wit(e, __types::Error::BadInput, __types::Error::Failed))
                }
            }
            $crate::bindings::transform::__export_transform_world!(__WeirTransform with_types_in $crate::bindings::transform);
        };
    };
}

/// Exports a [`Router`] as the plugin's `router` world.
#[macro_export]
macro_rules! export_router {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::router::weir::plugin::types as __types;
            thread_local! {
                static __WEIR_SLOT: $crate::glue::Slot<$t> = const { $crate::glue::Slot::new() };
            }
            struct __WeirRouter;
            impl $crate::bindings::router::Guest for __WeirRouter {
                fn init(config: String) -> Result<(), String> {
                    let p = $crate::glue::init(&config, <$t as $crate::Router>::init)?;
                    __WEIR_SLOT.with(|s| s.set(p));
                    Ok(())
                }
                fn route(
                    info: __types::BatchInfo,
                    events: Vec<u8>,
                ) -> Result<Vec<__types::Destination>, __types::Error> {
                    let info = $crate::BatchInfo { topic: info.topic, partitions: info.partitions };
                    __WEIR_SLOT
                        .with(|s| s.with(|p| $crate::glue::route(p, &info, &events)))
                        .map(|list| {
                            list.into_iter()
                                .map(|r| __types::Destination { event: r.event, topic: r.topic, key: r.key })
                                .collect()
                        })
                        .map_err(|e| $crate::glue::to_wit(e, __types::Error::BadInput, __types::Error::Failed))
                }
            }
            $crate::bindings::router::__export_router_world!(__WeirRouter with_types_in $crate::bindings::router);
        };
    };
}

/// Exports an [`Acl`] as the plugin's `acl` world.
#[macro_export]
macro_rules! export_acl {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings::acl::weir::plugin::types as __types;
            thread_local! {
                static __WEIR_SLOT: $crate::glue::Slot<$t> = const { $crate::glue::Slot::new() };
            }
            struct __WeirAcl;
            impl $crate::bindings::acl::Guest for __WeirAcl {
                fn init(config: String) -> Result<(), String> {
                    let p = $crate::glue::init(&config, <$t as $crate::Acl>::init)?;
                    __WEIR_SLOT.with(|s| s.set(p));
                    Ok(())
                }
                fn authorize(r: __types::AclRequest) -> __types::Decision {
                    let request = $crate::AclRequest {
                        principal: r.principal,
                        groups: r.groups,
                        operation: r.operation,
                        resource_kind: r.resource_kind,
                        resource_name: r.resource_name,
                        headers: r.headers,
                    };
                    let verdict = __WEIR_SLOT.with(|s| {
                        s.with(|p| Ok(<$t as $crate::Acl>::authorize(p, &request)))
                    });
                    match verdict {
                        Ok($crate::Decision::Allow) => __types::Decision::Allow,
                        Ok($crate::Decision::Deny(why)) => __types::Decision::Deny(why),
                        Err(e) => __types::Decision::Deny(e.to_string()),
                    }
                }
            }
            $crate::bindings::acl::__export_acl_world!(__WeirAcl with_types_in $crate::bindings::acl);
        };
    };
}
