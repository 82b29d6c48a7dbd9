//! lvs.cf, the one configuration file of the Piranha LVS cluster suite: its model, a parser that
//! accepts exactly what Piranha 0.8.6 accepted (with Piranha's error texts and lines), semantic
//! validation Piranha lacked, a writer in the GUI's style with atomic saves, and a diff for
//! hitless reloads.
//!
//! ```
//! use lvs_config::{parse, validate, StaticResolver};
//! let text = b"primary = 10.0.0.1\nvirtual www {\n     active = 1\n     address = 10.0.0.100 eth0:1\n     server a {\n         address = 10.1.0.1\n         active = 1\n     }\n}\n";
//! let parsed = parse(text, &StaticResolver::standard()).unwrap();
//! assert_eq!(parsed.config.virtual_servers[0].port, 80);
//! assert_eq!(parsed.config.virtual_servers[0].servers[0].weight, 1);
//! assert!(validate(&parsed.config, Some(&parsed.source)).iter().all(|d| !d.is_error()));
//! ```

pub mod diff;
pub mod error;
pub mod escapes;
pub mod lexer;
pub mod model;
pub mod parser;
pub mod posix_regex;
pub mod resolve;
pub mod validate;
pub mod writer;

pub use diff::{diff, ConfigDiff};
pub use error::{BlockKind, Diagnostic, ErrorCode, LoadError, Location, Severity, SyntaxError};
pub use model::*;
pub use parser::{parse, parse_reusing, Layout, Parsed, Previous, SourceMap};
pub use resolve::{Resolver, StaticResolver, SystemResolver};
pub use validate::validate;
pub use writer::{save, to_string};

use std::io::Read;
use std::path::Path;

/// A config read from a file and validated: every diagnostic (parse-time and validation), sorted
/// by line.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub source: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses and validates lvs.cf text.
pub fn load_bytes(input: &[u8], resolver: &dyn Resolver) -> Result<Loaded, SyntaxError> {
    Ok(checked(parse(input, resolver)?))
}

/// A parse with its validation's diagnostics added, sorted by line.
fn checked(parsed: Parsed) -> Loaded {
    let mut diagnostics = parsed.diagnostics;
    diagnostics.extend(validate(&parsed.config, Some(&parsed.source)));
    validate::sort(&mut diagnostics);
    Loaded {
        config: parsed.config,
        source: parsed.source,
        diagnostics,
    }
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path, resolver: &dyn Resolver) -> Result<Loaded, LoadError> {
    load_bytes(&read(path)?, resolver).map_err(LoadError::Syntax)
}

/// [`load`], copying the blocks whose bytes are unchanged since `previous` instead of parsing
/// them again ([`parse_reusing`]), and returning the layout the next call needs.
pub fn load_reusing(
    path: &Path,
    resolver: &dyn Resolver,
    previous: Option<Previous<'_>>,
) -> Result<(Loaded, Layout), LoadError> {
    load_bytes_reusing(read(path)?, resolver, previous).map_err(LoadError::Syntax)
}

/// [`load_bytes`], copying the blocks whose bytes are unchanged since `previous` instead of
/// parsing them again ([`parse_reusing`]). A copied block that passed validation's checks of a
/// block alone last time, under the same global settings, is not checked alone again (the
/// checks between blocks always run). The diagnostics are those [`load_bytes`] gives.
pub fn load_bytes_reusing(
    input: Vec<u8>,
    resolver: &dyn Resolver,
    previous: Option<Previous<'_>>,
) -> Result<(Loaded, Layout), SyntaxError> {
    let (parsed, mut layout) = parse_reusing(input, resolver, previous)?;
    let same_context =
        previous.is_some_and(|p| validate::same_block_context(p.config, &parsed.config));
    let skip = |kind, i| {
        same_context
            && previous.is_some_and(|p| {
                layout
                    .copied_from(kind, i)
                    .is_some_and(|j| p.layout.clean(kind, j))
            })
    };
    let (checked, clean) = validate::validate_skipping(&parsed.config, Some(&parsed.source), &skip);
    layout.clean = clean;
    // In the order load_bytes gives them.
    let mut diagnostics = parsed.diagnostics;
    diagnostics.extend(checked);
    validate::sort(&mut diagnostics);
    Ok((
        Loaded {
            config: parsed.config,
            source: parsed.source,
            diagnostics,
        },
        layout,
    ))
}

/// The bytes of a config file, read in one go ([`load_bytes_reusing`] takes them).
pub fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    read_into(path, Vec::new())
}

/// [`read`] into `buffer` (emptied first): a daemon that reloads a large file reuses the memory
/// of the file before last ([`Layout::into_bytes`]) instead of faulting in fresh pages each time.
pub fn read_into(path: &Path, mut bytes: Vec<u8>) -> Result<Vec<u8>, LoadError> {
    let mut file = std::fs::File::open(path).map_err(LoadError::Open)?;
    // Sized from the file's length: one read, no regrowth of a large buffer.
    let size = file.metadata().map(|m| m.len() as usize + 1).unwrap_or(0);
    bytes.clear();
    bytes.reserve(size);
    file.read_to_end(&mut bytes).map_err(|_| {
        LoadError::Syntax(SyntaxError {
            code: ErrorCode::Read,
            line: 0,
        })
    })?;
    Ok(bytes)
}
