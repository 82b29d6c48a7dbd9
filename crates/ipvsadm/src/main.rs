//! `ipvsadm`: command-line and output compatible with Debian's ipvsadm 1.31.

mod args;
mod exec;
mod format;
mod help;
mod names;
mod restore;
#[cfg(test)]
mod testing;

use std::io::{IsTerminal, Write};
use std::path::Path;

fn main() {
    // Like a C program, die by SIGPIPE when the reader of stdout goes away (`ipvsadm -Ln | head`):
    // the Rust runtime ignores SIGPIPE, which would turn it into an error and exit status 0.
    // SAFETY: restoring a signal's default disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let stdout = std::io::stdout();
    // stdio buffering as in C: line-buffered on a terminal, 4 KiB blocks otherwise (this
    // decides how stdout and stderr interleave when both go to the same file).
    let mut out: Box<dyn Write> = if stdout.is_terminal() {
        Box::new(stdout.lock())
    } else {
        Box::new(std::io::BufWriter::with_capacity(4096, stdout.lock()))
    };
    let mut err = std::io::stderr();
    let mut stdin = std::io::stdin().lock();
    let mut open = ipvs::open;
    let code = {
        let mut env = exec::Env {
            lookup: &args::SystemLookup,
            open: &mut open,
            stdin: &mut stdin,
            ctx: exec::Ctx {
                out: &mut out,
                err: &mut err,
                conn_path: Path::new(exec::CONN_PROC_FILE),
            },
        };
        exec::run(&argv, &mut env)
    };
    let _ = out.flush();
    drop(out);
    std::process::exit(code);
}
