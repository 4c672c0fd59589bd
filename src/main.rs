#![forbid(unsafe_code)]
//! The `trustsync` binary: see `trustsync --help`.

fn main() -> std::process::ExitCode {
    trustsync::cli::main()
}
