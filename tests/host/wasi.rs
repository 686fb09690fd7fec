//! Python and JavaScript components on the zero-grant WASI subset: they load
//! unmodified, their `print`/`console.log` become counted log lines, and they run from
//! any thread, including one driving async tasks (where wasmtime-wasi's blocking
//! writes would otherwise panic).

use std::sync::Arc;

use weir_host::{Engine, MemoryState, Plugin};
use weir_test_artifacts as art;

use super::{folder, info, json_batch};

fn hello(engine: &Engine, component: &str) -> Plugin {
    let dir = folder(
        "name = \"hello\"\nkind = \"filter\"\ncomponent = \"p.wasm\"\n[config]\nword = \"paid\"\n",
        component,
        "p.wasm",
    );
    Plugin::load(engine, dir.path(), Arc::new(MemoryState::default())).unwrap()
}

fn check(engine: &Engine, component: &str) {
    let p = hello(engine, component);
    let batch = json_batch(&[r#"{"status":"paid"}"#, r#"{"status":"open"}"#]);
    assert_eq!(p.filter(&info(), &batch, 2).unwrap(), [true, false]);
    // `init` printed one line, logged (not dropped).
    assert_eq!(p.output_lines(), (1, 0), "{component}");
    let (instances, bytes) = p.pooled_memory();
    assert!(
        instances == 1 && bytes > 1 << 20,
        "{instances} holding {bytes}"
    );
}

#[test]
fn python_and_javascript_filters_run_on_a_plain_thread() {
    let engine = Engine::new().unwrap();
    check(&engine, art::HELLO_FILTER_PY);
    check(&engine, art::HELLO_FILTER_JS);
}

#[test]
fn they_run_inside_async_tasks_of_either_runtime_flavour() {
    let engine = Engine::new().unwrap();
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    current.block_on(async {
        check(&engine, art::HELLO_FILTER_JS);
    });
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let e = engine.clone();
    multi
        .block_on(async move { tokio::spawn(async move { check(&e, art::HELLO_FILTER_PY) }).await })
        .unwrap();
}
