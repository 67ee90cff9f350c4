//! The `ebb` binary: parse arguments, set up logging, dispatch.

use std::process::ExitCode;

fn main() -> ExitCode {
    ebb::cli::main()
}
