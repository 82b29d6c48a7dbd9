//! pulse's command line: Piranha's popt options (spec §2.1), with popt's forms (`-c FILE`,
//! `-cFILE`, `--configfile FILE`, `--configfile=FILE`, bundled flags `-nv`, `--` to end the
//! options), plus `--pidfile`. Pure.

use std::ffi::OsString;
use std::path::PathBuf;

pub const DEFAULT_LVSD: &str = "/usr/sbin/lvsd";
pub const DEFAULT_FOS: &str = "/usr/sbin/fos";
pub const DEFAULT_PIDFILE: &str = "/var/run/pulse.pid";
/// Piranha's `_PROGRAM_VERSION` for pulse.
pub const PIRANHA_PULSE_VERSION: &str = "pulse 1.56";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// None: /etc/sysconfig/ha/lvs.cf (or /etc/lvs.cf where only that exists).
    pub config: Option<PathBuf>,
    pub nodaemon: bool,
    pub test_start: bool,
    pub verbose: bool,
    pub force_active: bool,
    pub lvsd: PathBuf,
    pub fos: PathBuf,
    /// None: /var/run/pulse.pid when running as a daemon, no pid file in the foreground.
    pub pidfile: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: None,
            nodaemon: false,
            test_start: false,
            verbose: false,
            force_active: false,
            lvsd: PathBuf::from(DEFAULT_LVSD),
            fos: PathBuf::from(DEFAULT_FOS),
            pidfile: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Version,
    Help,
    Usage,
}

/// A refused command line; [`ArgError::message`] is what pulse prints after `pulse: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// popt: "bad argument OPT: unknown option".
    Unknown(String),
    /// popt: "bad argument OPT: missing argument".
    Missing(String),
    /// popt: a flag given a value (`--nodaemon=1`).
    Unexpected(String),
    /// A word that is not an option: "unexpected arguments".
    Extra,
}

impl ArgError {
    pub fn message(&self) -> String {
        match self {
            ArgError::Unknown(o) => format!("bad argument {o}: unknown option"),
            ArgError::Missing(o) => format!("bad argument {o}: missing argument"),
            ArgError::Unexpected(o) => {
                format!("bad argument {o}: option does not take an argument")
            }
            ArgError::Extra => "unexpected arguments".to_string(),
        }
    }
}

enum Opt {
    Flag(fn(&mut Options)),
    Value(fn(&mut Options, OsString)),
    Version,
    Help,
    Usage,
}

fn long(name: &str) -> Option<Opt> {
    Some(match name {
        "configfile" => Opt::Value(|o, v| o.config = Some(v.into())),
        "nodaemon" => Opt::Flag(|o| o.nodaemon = true),
        "test-start" | "norun" => Opt::Flag(|o| o.test_start = true),
        "verbose" => Opt::Flag(|o| o.verbose = true),
        "forceactive" => Opt::Flag(|o| o.force_active = true),
        // `--lvs` is the name the man page gives.
        "lvsd" | "lvs" => Opt::Value(|o, v| o.lvsd = v.into()),
        "fos" => Opt::Value(|o, v| o.fos = v.into()),
        "pidfile" => Opt::Value(|o, v| o.pidfile = Some(v.into())),
        "version" => Opt::Version,
        "help" => Opt::Help,
        "usage" => Opt::Usage,
        _ => return None,
    })
}

fn short(c: char) -> Option<Opt> {
    match c {
        'c' => long("configfile"),
        'n' => long("nodaemon"),
        't' => long("test-start"),
        'v' => long("verbose"),
        '?' => long("help"),
        _ => None,
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[OsString]) -> Result<Command, ArgError> {
    let mut o = Options::default();
    let mut extra = false;
    let mut special = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let text = arg.to_string_lossy();
        if text == "--" {
            extra |= i < args.len();
            break;
        }
        if let Some(body) = text.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let opt = long(name).ok_or_else(|| ArgError::Unknown(text.to_string()))?;
            match opt {
                Opt::Value(set) => {
                    let v = match inline {
                        Some(v) => OsString::from(v),
                        None => {
                            let v = args
                                .get(i)
                                .ok_or_else(|| ArgError::Missing(format!("--{name}")))?;
                            i += 1;
                            v.clone()
                        }
                    };
                    set(&mut o, v);
                }
                _ if inline.is_some() => return Err(ArgError::Unexpected(format!("--{name}"))),
                Opt::Flag(set) => set(&mut o),
                Opt::Version => special = special.or(Some(Command::Version)),
                Opt::Help => special = special.or(Some(Command::Help)),
                Opt::Usage => special = special.or(Some(Command::Usage)),
            }
        } else if text.len() > 1 && text.starts_with('-') {
            let chars: Vec<char> = text[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                k += 1;
                match short(c).ok_or_else(|| ArgError::Unknown(format!("-{c}")))? {
                    Opt::Value(set) => {
                        let rest: String = chars[k..].iter().collect();
                        let v = if !rest.is_empty() {
                            OsString::from(rest)
                        } else {
                            let v = args
                                .get(i)
                                .ok_or_else(|| ArgError::Missing(format!("-{c}")))?;
                            i += 1;
                            v.clone()
                        };
                        set(&mut o, v);
                        k = chars.len();
                    }
                    Opt::Flag(set) => set(&mut o),
                    Opt::Version => special = special.or(Some(Command::Version)),
                    Opt::Help => special = special.or(Some(Command::Help)),
                    Opt::Usage => special = special.or(Some(Command::Usage)),
                }
            }
        } else {
            extra = true;
        }
    }
    if let Some(s) = special {
        return Ok(s);
    }
    if extra {
        return Err(ArgError::Extra);
    }
    Ok(Command::Run(o))
}

pub fn version_text() -> String {
    format!(
        "Program Version:\t{PIRANHA_PULSE_VERSION}\nA component of:\t\tpiranha-rs-{}\n",
        env!("CARGO_PKG_VERSION")
    )
}

pub fn help_text() -> String {
    format!(
        "Usage: pulse [OPTION...]
  -c, --configfile=configfile     Configuration file
  -n, --nodaemon                  Don't run as a daemon
  -t, --test-start                Don't actually run lvs or fos
  -v, --verbose                   Display debugging information
      --forceactive               Force into the active state
      --lvsd=PATH                 Location of lvs binary (defaults {DEFAULT_LVSD})
      --fos=PATH                  Location of fos binary (defaults {DEFAULT_FOS})
      --norun                     Same as 'test-start'
      --pidfile=FILE              Pid file (defaults {DEFAULT_PIDFILE} as a daemon)
      --version                   Display program version

Help options:
  -?, --help                      Show this help message
      --usage                     Display brief usage message
"
    )
}

pub fn usage_text() -> &'static str {
    "Usage: pulse [-ntv?] [-c|--configfile configfile] [-n|--nodaemon] [-t|--test-start]
        [-v|--verbose] [--forceactive] [--lvsd PATH] [--fos PATH] [--norun]
        [--pidfile FILE] [--version] [-?|--help] [--usage]
"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, ArgError> {
        let v: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&v)
    }

    fn run(args: &[&str]) -> Options {
        match p(args) {
            Ok(Command::Run(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let o = run(&[]);
        assert_eq!(o, Options::default());
        assert_eq!(o.lvsd, PathBuf::from("/usr/sbin/lvsd"));
        assert!(!o.nodaemon && !o.test_start && !o.force_active && !o.verbose);
    }

    #[test]
    fn every_option_in_every_form() {
        for args in [
            &["-c", "/tmp/a.cf"][..],
            &["-c/tmp/a.cf"],
            &["--configfile", "/tmp/a.cf"],
            &["--configfile=/tmp/a.cf"],
        ] {
            assert_eq!(
                run(args).config,
                Some(PathBuf::from("/tmp/a.cf")),
                "{args:?}"
            );
        }
        let o = run(&["-nvt", "--forceactive", "--lvsd", "/x/lvsd", "--fos=/x/fos"]);
        assert!(o.nodaemon && o.verbose && o.test_start && o.force_active);
        assert_eq!(o.lvsd, PathBuf::from("/x/lvsd"));
        assert_eq!(o.fos, PathBuf::from("/x/fos"));
        assert!(run(&["--norun"]).test_start);
        assert!(run(&["--test-start"]).test_start);
        assert!(run(&["--nodaemon", "--verbose"]).verbose);
        assert_eq!(run(&["--lvs=/opt/lvs"]).lvsd, PathBuf::from("/opt/lvs"));
        assert_eq!(
            run(&["--pidfile", "/tmp/p.pid"]).pidfile,
            Some(PathBuf::from("/tmp/p.pid"))
        );
        // -n then -c with its value bundled.
        let o = run(&["-nc/tmp/b.cf"]);
        assert!(o.nodaemon);
        assert_eq!(o.config, Some(PathBuf::from("/tmp/b.cf")));
        // The last value wins.
        assert_eq!(
            run(&["-c", "a", "-c", "b"]).config,
            Some(PathBuf::from("b"))
        );
    }

    #[test]
    fn informational_options() {
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(p(&["-n", "--version"]), Ok(Command::Version));
        assert_eq!(p(&["-?"]), Ok(Command::Help));
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["--usage"]), Ok(Command::Usage));
        assert!(version_text()
            .starts_with("Program Version:\tpulse 1.56\nA component of:\t\tpiranha-rs-"));
        assert!(help_text().contains("--forceactive"));
        assert!(usage_text().contains("--lvsd"));
    }

    #[test]
    fn refusals_with_popts_words() {
        let e = p(&["--bogus"]).unwrap_err();
        assert_eq!(e.message(), "bad argument --bogus: unknown option");
        assert_eq!(
            p(&["-x"]).unwrap_err().message(),
            "bad argument -x: unknown option"
        );
        assert_eq!(
            p(&["-c"]).unwrap_err().message(),
            "bad argument -c: missing argument"
        );
        assert_eq!(
            p(&["--lvsd"]).unwrap_err().message(),
            "bad argument --lvsd: missing argument"
        );
        assert_eq!(
            p(&["--nodaemon=yes"]).unwrap_err(),
            ArgError::Unexpected("--nodaemon".into())
        );
        assert_eq!(p(&["extra"]).unwrap_err().message(), "unexpected arguments");
        assert_eq!(p(&["-n", "--", "x"]), Err(ArgError::Extra));
        assert!(matches!(p(&["-n", "--"]), Ok(Command::Run(_))));
        // A lone "-" is a word, not an option.
        assert_eq!(p(&["-"]), Err(ArgError::Extra));
    }
}
