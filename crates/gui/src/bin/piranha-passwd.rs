//! piranha-passwd: sets the piranha-gui password (Argon2id, file mode 0600, atomic write).

use clap::Parser;
use piranha_gui::auth;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "piranha-passwd",
    about = "Sets the password of the piranha-gui web interface",
    after_help = "Without --stdin the password is asked for twice on the terminal (not echoed). \
A password given as an argument (Piranha's form) is accepted with a warning: other users can see \
it in the process list."
)]
struct Args {
    /// Password file
    #[arg(short = 'f', long = "file", value_name = "FILE", default_value = auth::DEFAULT_PASSWORD_FILE)]
    file: PathBuf,

    /// Read the password from the first line of standard input (scripts)
    #[arg(long = "stdin")]
    stdin: bool,

    /// The password (discouraged: visible in the process list)
    password: Option<String>,
}

/// Reads a line from the terminal without echo.
fn read_hidden(prompt: &str) -> Result<String, String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| format!("no terminal to ask for the password ({e}); use --stdin"))?;
    use std::os::fd::AsRawFd;
    let fd = tty.as_raw_fd();
    // SAFETY: termios calls on an open terminal descriptor.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut old) } != 0 {
        return Err("cannot read the terminal settings; use --stdin".into());
    }
    let mut quiet = old;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    let mut w = &tty;
    let _ = write!(w, "{prompt}");
    let _ = w.flush();
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut line = String::new();
    let r = std::io::BufReader::new(&tty).read_line(&mut line);
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    r.map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let prog = "piranha-passwd";
    let password = if let Some(p) = args.password.clone() {
        eprintln!("{prog}: warning: a password on the command line can be seen by other users");
        p
    } else if args.stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
            eprintln!("{prog}: cannot read the password from standard input: {e}");
            return ExitCode::from(1);
        }
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        let a = match read_hidden("New piranha-gui password: ") {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{prog}: {e}");
                return ExitCode::from(1);
            }
        };
        let b = match read_hidden("Retype the password: ") {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{prog}: {e}");
                return ExitCode::from(1);
            }
        };
        if a != b {
            eprintln!("{prog}: the passwords differ; nothing changed");
            return ExitCode::from(1);
        }
        a
    };
    if password.chars().count() < 8 {
        eprintln!("{prog}: the password must have at least 8 characters; nothing changed");
        return ExitCode::from(1);
    }
    let hash = match auth::hash_password(&password) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{prog}: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = auth::write_password_file(&args.file, &hash) {
        eprintln!("{prog}: cannot write {}: {e}", args.file.display());
        return ExitCode::from(1);
    }
    println!(
        "{prog}: password set in {} (restart piranha-gui to use it)",
        args.file.display()
    );
    ExitCode::SUCCESS
}
