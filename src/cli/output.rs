//! Standard output that its reader may close early (`trustsync man | head -1`, a pager
//! quit half way): the command stops writing, says nothing, and ends with its own exit
//! code, as if the rest had been read. Every other write error (a full disk behind a
//! redirect) is still an error.
//!
//! `print!` and `println!` panic on a closed pipe, so the commands write through
//! `out!` and `outln!` instead.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write found standard output closed: later writes are skipped.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to standard output; a closed pipe ends the output quietly.
pub(crate) fn write_fmt(args: fmt::Arguments<'_>) -> io::Result<()> {
    write_bytes(args.to_string().as_bytes())
}

/// Writes bytes to standard output (generated text: completions, the manual page) and
/// flushes them; a closed pipe ends the output quietly.
pub(crate) fn write_bytes(bytes: &[u8]) -> io::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut stdout = io::stdout().lock();
    quiet(stdout.write_all(bytes).and_then(|()| stdout.flush()))
}

/// Flushes standard output (before a prompt).
pub(crate) fn flush() -> io::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    quiet(io::stdout().lock().flush())
}

fn quiet(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// `print!` that ends quietly when standard output is closed; an `io::Result`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_fmt(format_args!($($arg)*))
    };
}

/// `println!` that ends quietly when standard output is closed; an `io::Result`.
macro_rules! outln {
    () => {
        $crate::cli::output::write_bytes(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use {out, outln};
