//! The `b2b-convert` binary: parse the command line, start logging, run one command, and turn
//! its result into an exit code. Everything else lives in the library.

use std::process::ExitCode;

use b2b_convert::cli::{Cli, LogFormat};
use b2b_convert::commands;
use b2b_convert::config::Environment;
use b2b_convert::output;

/// mimalloc rather than the system allocator: planning a large wave allocates and frees
/// millions of small strings next to multi-megabyte ones, where glibc's malloc spends a
/// large share of the time consolidating its free lists (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let env = Environment::from_process();
    let cli = Cli::parse_with_color(env.no_color());
    output::init_terminal(cli.color, env.no_color(), env.columns());
    output::init_logging(
        cli.verbosity(),
        cli.log_format == LogFormat::Json,
        env.log_filter(),
    );
    let result = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(commands::run(cli, env)),
        Err(err) => Err(anyhow::Error::new(err).context("starting the async runtime")),
    };
    if let Err(err) = &result {
        output::print_error(err);
    }
    ExitCode::from(commands::exit_code(&result))
}
