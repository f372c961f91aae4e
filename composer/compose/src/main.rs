//! The `compose` binary: parses flags, resolves settings once, runs one command, and turns
//! errors into `error:` / `caused by:` / `hint:` lines and an exit code. Everything else lives in
//! the library crates (see docs/architecture.md).

mod cli;
mod commands;
mod distributions;
mod documents;
mod env_vars;
mod hints;
mod interrupt;
mod printer;
mod settings;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

// jemalloc keeps freed memory for reuse: a cold build allocates and drops the contents of
// every package it layers and a suite's whole index, which glibc's allocator hands back to the
// kernel and faults in again (page clearing and `malloc_consolidate` were a tenth of its CPU).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::try_parse().unwrap_or_else(|error| refused(error));
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

/// Arguments clap refused (or `--help` and `--version`, which it answers the same way). Under
/// `--json` the refusal is a JSON error document on stdout too, as every other failure is, so
/// that a tool reading stdout is never left with nothing; clap still prints its message and
/// usage on stderr and exits with its code (2).
fn refused(error: clap::Error) -> ! {
    let answered = matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if !answered && json_asked(std::env::args_os().skip(1)) {
        let rendered = error.render().to_string();
        let message = match error.kind() {
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => "a subcommand is required".to_string(),
            _ => rendered.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string(),
        };
        let hint = rendered
            .lines()
            .find_map(|line| line.trim().strip_prefix("tip: "))
            .map_or_else(|| "run `compose --help` for the commands and their flags".to_string(), str::to_string);
        let _ = printer::json_out(&documents::ErrorDocument {
            error: documents::ErrorBody { message, causes: Vec::new(), hint: Some(hint) },
        });
    }
    error.exit()
}

/// Whether `--json` is among the arguments (before a `--`, after which everything is a value).
fn json_asked(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.take_while(|arg| arg != "--").any(|arg| arg == "--json")
}
