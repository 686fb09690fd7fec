//! The `weir` binary: parse the command line and hand over to the subcommand.
//! `weir serve` runs the broker; every other subcommand is an HTTP client of one.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = weir_server::cli::Cli::parse();
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
