//! Errors and diagnostics.
//!
//! Two kinds of problem:
//! - [`SyntaxError`]: what Piranha's parser rejected, with its error code, text and line. Parsing
//!   stops at the first one, as in Piranha.
//! - [`Diagnostic`]: semantic problems Piranha never checked, each an error or a warning, all
//!   reported together, each with its line when the config came from a file.

use std::fmt;

/// Piranha's parser error codes (`lvsStrerror`), with their exact texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Empty = 1,
    Read = 2,
    BadQuoting = 3,
    Eof = 4,
    ExtraArgs = 5,
    EqualExpected = 6,
    MissingArgs = 7,
    BadHostname = 8,
    BadArgument = 9,
    IntExpected = 10,
    BoolExpected = 11,
    BadCommand = 12,
    ListExpected = 13,
    BadNetmask = 16,
}

impl ErrorCode {
    /// The number Piranha used for this error.
    pub fn number(self) -> u32 {
        self as u32
    }

    /// Piranha's text for this error, byte for byte.
    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::Empty => "Empty configuration",
            ErrorCode::Read => "I/O error while reading configuration",
            ErrorCode::BadQuoting => "quotation mismatch",
            ErrorCode::Eof => "unexpected end of file",
            ErrorCode::ExtraArgs => "unexpected arguments",
            ErrorCode::EqualExpected => "equal (=) expected after command",
            ErrorCode::MissingArgs => "missing arguments",
            ErrorCode::BadHostname => "invalid host name or ip address",
            ErrorCode::BadArgument => "invalid argument",
            ErrorCode::IntExpected => "integer expected",
            ErrorCode::BoolExpected => "boolean expected",
            ErrorCode::BadCommand => "unknown command",
            ErrorCode::ListExpected => "list expected",
            ErrorCode::BadNetmask => "Bad subnet mask specified",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// A syntax error as Piranha reports it: code and the line it stopped at (0 for a file-level
/// error such as an empty file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxError {
    pub code: ErrorCode,
    pub line: u32,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.code.text())
    }
}

impl std::error::Error for SyntaxError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// Which block of the config a diagnostic is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum BlockKind {
    Virtual,
    Failover,
}

/// Where a problem is: a line when the config came from a file, and the item it concerns (so a
/// GUI can show the message beside the field).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub line: Option<u32>,
    /// `virtual` or `failover` block, by index in its list.
    pub block: Option<(BlockKind, usize)>,
    /// Real server, by index in its block.
    pub server: Option<usize>,
    /// The lvs.cf keyword concerned.
    pub keyword: Option<&'static str>,
}

/// A semantic problem (an error or a warning) found by validation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Location,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Failure to load a config file.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be opened.
    Open(std::io::Error),
    /// Piranha's parser would have rejected it.
    Syntax(SyntaxError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Open(e) => write!(f, "cannot open: {e}"),
            LoadError::Syntax(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LoadError {}
