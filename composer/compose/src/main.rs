//! The `compose` binary: parses flags, resolves settings once, runs one command, and turns
//! errors into `error:` / `caused by:` / `hint:` lines and an exit code. Everything else lives in
//! the library crates (see docs/architecture.md).

mod cli;
mod commands;
mod documents;
mod env_vars;
mod hints;
mod interrupt;
mod printer;
mod settings;

use std::process::ExitCode;

use clap::Parser;

// jemalloc keeps freed memory for reuse: a cold build allocates and drops the contents of
// every package it layers and a suite's whole index, which glibc's allocator hands back to the
// kernel and faults in again (page clearing and `malloc_consolidate` were a tenth of its CPU).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    interrupt::install();
    let printer = printer::Printer::new(&cli.global);
    let result = commands::run(cli, &printer);
    // A build a signal stopped says so, and exits as the signal would have made it.
    if let Some(status) = interrupt::exit_status() {
        if let Err(error) = &result {
            printer.error(error);
        }
        return ExitCode::from(status);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Told already (a failed build before its debug shell): only the exit status is left.
        Err(error) if error.is::<commands::Reported>() => ExitCode::FAILURE,
        Err(error) => {
            printer.error(&error);
            ExitCode::FAILURE
        }
    }
}
