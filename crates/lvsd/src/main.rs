//! lvsd (also installed as `lvs`): reads lvs.cf and keeps the IPVS table. This build provides the
//! configuration commands `--config-test` and `--dump-config`; the daemon comes with a later
//! release of the suite.

use clap::Parser;
use lvs_config::{Diagnostic, LoadError, Severity, SystemResolver};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    about = "Builds and keeps the IPVS table from lvs.cf (Piranha-compatible)",
    disable_version_flag = true
)]
struct Args {
    /// Configuration file [default: /etc/sysconfig/ha/lvs.cf, or /etc/lvs.cf if only that exists]
    #[arg(short = 'c', long = "configfile", value_name = "FILE")]
    configfile: Option<PathBuf>,

    /// Parse and validate the configuration, print every problem and a one-line summary, exit 1
    /// if there is any error
    #[arg(long = "config-test", conflicts_with = "dump_config")]
    config_test: bool,

    /// Print the configuration, defaults filled in, as JSON
    #[arg(long = "dump-config")]
    dump_config: bool,

    /// Print the version and exit
    #[arg(long = "version")]
    version: bool,
}

fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "lvsd".into())
}

fn config_path(given: Option<PathBuf>) -> PathBuf {
    if let Some(p) = given {
        return p;
    }
    let default = Path::new(lvs_config::DEFAULT_CONFIG_PATH);
    let legacy = Path::new(lvs_config::LEGACY_CONFIG_PATH);
    if !default.exists() && legacy.exists() {
        legacy.to_path_buf()
    } else {
        default.to_path_buf()
    }
}

/// An OS error as C's strerror() says it, without Rust's " (os error N)".
fn os_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn print_diagnostic(prog: &str, file: &Path, d: &Diagnostic) {
    match d.location.line {
        Some(line) => eprintln!(
            "{prog}: {} in {} at line {line}: {}",
            d.severity,
            file.display(),
            d.message
        ),
        None => eprintln!(
            "{prog}: {} in {}: {}",
            d.severity,
            file.display(),
            d.message
        ),
    }
}

fn main() -> ExitCode {
    let prog = program_name();
    let args = Args::parse();
    if args.version {
        println!("{prog} {} (piranha-rs)", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if !args.config_test && !args.dump_config {
        eprintln!(
            "{prog}: nothing to do: this build of lvsd offers --config-test and --dump-config (see --help)"
        );
        return ExitCode::from(1);
    }
    let file = config_path(args.configfile);
    let loaded = match lvs_config::load(&file, &SystemResolver::default()) {
        Ok(l) => l,
        Err(LoadError::Open(e)) => {
            eprintln!(
                "{prog}: failed to open {}: {}",
                file.display(),
                os_error_text(&e)
            );
            return ExitCode::from(1);
        }
        Err(LoadError::Syntax(e)) => {
            eprintln!(
                "{prog}: error parsing {} at line {}: {}",
                file.display(),
                e.line,
                e.code.text()
            );
            return ExitCode::from(1);
        }
    };
    for d in &loaded.diagnostics {
        print_diagnostic(&prog, &file, d);
    }
    let errors = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = loaded.diagnostics.len() - errors;
    if errors > 0 {
        eprintln!(
            "{prog}: {}: {errors} error{}, {warnings} warning{}",
            file.display(),
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
        return ExitCode::from(1);
    }
    if args.dump_config {
        match serde_json::to_string_pretty(&loaded.config) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("{prog}: cannot encode the configuration as JSON: {e}");
                return ExitCode::from(1);
            }
        }
        return ExitCode::SUCCESS;
    }
    let summary = loaded.config.summary();
    if warnings > 0 {
        println!(
            "{}: OK: {summary}; {warnings} warning{}",
            file.display(),
            if warnings == 1 { "" } else { "s" }
        );
    } else {
        println!("{}: OK: {summary}", file.display());
    }
    ExitCode::SUCCESS
}
