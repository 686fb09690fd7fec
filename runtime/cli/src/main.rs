//! The `weir` binary: parse the command line and hand over to the subcommand.
//! `weir serve` runs the broker; every other subcommand is an HTTP client of one.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    one_line_panics();
    let cli = weir_cli::Cli::parse();
    // One multi-threaded runtime for every subcommand; storage has its own threads.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Reports a panic as one log line (a structured event once logging is set up) rather
/// than the default multi-line message; `RUST_BACKTRACE` restores the default report.
/// Panics are bugs or a dependency's reaction to damaged input (sled on a damaged
/// log); the code that can meet them catches them and fails cleanly.
fn one_line_panics() {
    if std::env::var("RUST_BACKTRACE").is_ok_and(|v| v != "0") {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let location = info.location().map_or("unknown".to_string(), |l| {
            format!("{}:{}", l.file(), l.line())
        });
        if tracing::dispatcher::has_been_set() {
            tracing::error!(thread, location, "panic: {msg}");
        } else {
            eprintln!("panic in thread '{thread}' at {location}: {msg}");
        }
    }));
}
