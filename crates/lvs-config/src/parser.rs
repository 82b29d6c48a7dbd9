//! The lvs.cf parser: Piranha's grammar, keywords, defaults and error codes (lvsconfig.c
//! `parseConfiguration`, `parseVirtualServer`, `parseActualServer`), stopping at the first syntax
//! error as Piranha did. Values Piranha accepted but that cannot work (a port of 70000, a negative
//! weight) are recorded as semantic errors and parsing goes on, so that all of them are reported.

use crate::error::{BlockKind, Diagnostic, ErrorCode, Location, Severity, SyntaxError};
use crate::lexer::{self, IntError, Statement, Token};
use crate::model::*;
use crate::resolve::Resolver;
use rustc_hash::FxHashMap as HashMap;
use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

/// Keyword -> line of its (last) occurrence in one block. A block has a few keywords, so a small
/// list searched in order is faster than a hash map and allocates once.
#[derive(Debug, Clone, Default)]
pub struct KeywordLines(Vec<(&'static str, u32)>);

impl KeywordLines {
    /// The line of `keyword`, if it was given.
    pub fn get(&self, keyword: &str) -> Option<u32> {
        self.0.iter().find(|(k, _)| *k == keyword).map(|(_, l)| *l)
    }

    /// Records `keyword` at `line`; returns the line of an earlier occurrence.
    pub fn insert(&mut self, keyword: &'static str, line: u32) -> Option<u32> {
        match self.0.iter_mut().find(|(k, _)| *k == keyword) {
            Some(entry) => Some(std::mem::replace(&mut entry.1, line)),
            None => {
                self.0.push((keyword, line));
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (keyword, line) pairs in the order the keywords first appeared.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        self.0.iter().copied()
    }
}

/// Equal when they hold the same keywords at the same lines, in any order.
impl PartialEq for KeywordLines {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, l)| other.get(k) == Some(l))
    }
}

impl Eq for KeywordLines {}

impl std::ops::Index<&str> for KeywordLines {
    type Output = u32;

    fn index(&self, keyword: &str) -> &u32 {
        match self.0.iter().find(|(k, _)| *k == keyword) {
            Some((_, line)) => line,
            None => panic!("keyword `{keyword}` not recorded"),
        }
    }
}

/// Line numbers of everything that was parsed, for diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMap {
    /// Global keyword -> line of its (last) occurrence.
    pub global: KeywordLines,
    pub virtual_servers: Vec<BlockLines>,
    pub failover_services: Vec<BlockLines>,
}

/// Lines of one `virtual` / `failover` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockLines {
    /// The `virtual NAME {` line.
    pub line: u32,
    /// The lines inside, counted from `line`: the same wherever the block stands, so the copies
    /// of a block that a reload makes share them.
    inner: Arc<InnerLines>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct InnerLines {
    keywords: KeywordLines,
    /// Per `server` block: its line and its keywords' lines.
    servers: Vec<(u32, KeywordLines)>,
}

impl BlockLines {
    fn new(line: u32) -> BlockLines {
        BlockLines {
            line,
            inner: Arc::default(),
        }
    }

    /// The line of one of the block's keywords, if it was given.
    pub fn keyword(&self, keyword: &str) -> Option<u32> {
        self.inner.keywords.get(keyword).map(|l| self.line + l)
    }

    /// The number of `server` blocks.
    pub fn servers(&self) -> usize {
        self.inner.servers.len()
    }

    /// The `server NAME {` line of server `index`.
    pub fn server_line(&self, index: usize) -> Option<u32> {
        self.inner.servers.get(index).map(|(l, _)| self.line + l)
    }

    /// The line of a keyword of server `index`, if it was given.
    pub fn server_keyword(&self, index: usize, keyword: &str) -> Option<u32> {
        let (_, keywords) = self.inner.servers.get(index)?;
        keywords.get(keyword).map(|l| self.line + l)
    }
}

impl SourceMap {
    pub fn block(&self, kind: BlockKind, index: usize) -> Option<&BlockLines> {
        match kind {
            BlockKind::Virtual => self.virtual_servers.get(index),
            BlockKind::Failover => self.failover_services.get(index),
        }
    }

    /// The best line for a location: the keyword's line if it was given, else the line of the
    /// block that holds it.
    pub fn line_of(&self, loc: &Location) -> Option<u32> {
        match loc.block {
            None => loc.keyword.and_then(|k| self.global.get(k)),
            Some((kind, vi)) => {
                let block = self.block(kind, vi)?;
                match loc.server {
                    None => Some(
                        loc.keyword
                            .and_then(|k| block.keyword(k))
                            .unwrap_or(block.line),
                    ),
                    Some(si) => {
                        let line = block.server_line(si)?;
                        Some(
                            loc.keyword
                                .and_then(|k| block.server_keyword(si, k))
                                .unwrap_or(line),
                        )
                    }
                }
            }
        }
    }
}

/// A parsed file: the config, where each thing was, and the semantic problems seen while parsing
/// (out-of-range numbers, keywords given twice). Run [`crate::validate`] for the rest.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub config: Config,
    pub source: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses the bytes of an lvs.cf file.
pub fn parse(input: &[u8], resolver: &dyn Resolver) -> Result<Parsed, SyntaxError> {
    parse_inner(input, resolver, None, false).map(|(parsed, _, _)| parsed)
}

/// Where each `virtual` / `failover` block of a parsed file lies, with the file's bytes. A later
/// parse of the file, changed, copies every block whose bytes it finds again from the config this
/// parse produced instead of parsing it ([`parse_reusing`]): lvsd's reload of a large file where
/// one block changed parses that block only.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    bytes: Vec<u8>,
    /// Per kind (virtual, failover), in file order, so index i is block i of its list.
    spans: [Vec<Span>; 2],
    /// Hash of (kind, header line) -> indexes of the reusable blocks with that header: finds a
    /// block that moved. Built by the first later parse that looks for one.
    by_header: OnceLock<HashMap<u64, Vec<u32>>>,
    /// Blocks the parse that made this layout copied from the previous one.
    copied: usize,
    /// Per kind, whether each block passed validation's checks of a block alone (set by
    /// [`crate::load_bytes_reusing`]; empty: unknown).
    pub(crate) clean: [Vec<bool>; 2],
}

impl Layout {
    fn by_header(&self) -> &HashMap<u64, Vec<u32>> {
        self.by_header.get_or_init(|| {
            let mut by_header: HashMap<u64, Vec<u32>> = HashMap::default();
            for (ki, list) in self.spans.iter().enumerate() {
                for (i, s) in list.iter().enumerate() {
                    if s.reusable {
                        by_header
                            .entry(header_hash(ki, &self.bytes[s.start..s.header_end]))
                            .or_default()
                            .push(i as u32);
                    }
                }
            }
            by_header
        })
    }

    /// Blocks a later parse may copy (parsed without a diagnostic or a name look-up).
    pub fn reusable_blocks(&self) -> usize {
        self.spans.iter().flatten().filter(|s| s.reusable).count()
    }

    /// Blocks in all (`virtual` and `failover`).
    pub fn blocks(&self) -> usize {
        self.spans.iter().map(Vec::len).sum()
    }

    /// The file's bytes, given back (a buffer for the next [`crate::read_into`]).
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Blocks the parse that made this layout copied from the previous parse instead of
    /// parsing them.
    pub fn copied_blocks(&self) -> usize {
        self.copied
    }

    /// The index in the previous parse of the block this parse copied as block `index`.
    pub(crate) fn copied_from(&self, kind: BlockKind, index: usize) -> Option<usize> {
        self.spans[kind_index(kind)]
            .get(index)
            .and_then(|s| s.from)
            .map(|i| i as usize)
    }

    /// Whether block `index` passed validation's checks of a block alone.
    pub(crate) fn clean(&self, kind: BlockKind, index: usize) -> bool {
        self.clean[kind_index(kind)]
            .get(index)
            .copied()
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone, Copy)]
struct Span {
    /// First byte of the header line (`virtual NAME {`).
    start: usize,
    /// One past the header line's text.
    header_end: usize,
    /// One past the `\n` that ends the closing line.
    end: usize,
    /// Lines the block takes, the header and the closing line included.
    lines: u32,
    /// Parsed without a diagnostic and without looking a name up, and ending with `\n`: the same
    /// bytes anywhere else parse to the same block.
    reusable: bool,
    /// The index of the previous parse's block this one was copied from.
    from: Option<u32>,
}

/// The parse a [`Layout`] came from: its config and source map, exactly as that parse returned
/// them (a block is copied from `config` by its index).
#[derive(Debug, Clone, Copy)]
pub struct Previous<'p> {
    pub config: &'p Config,
    pub source: &'p SourceMap,
    pub layout: &'p Layout,
}

/// [`parse`], copying the blocks whose bytes are unchanged since `previous` instead of parsing
/// them again, and returning the layout the next call needs. The result is the one [`parse`]
/// gives for the same bytes: a copied block is shared with `previous.config` (an `Arc`), its
/// source lines are counted from its header line, so it stands wherever it now is, and a block
/// that gave a diagnostic or looked a host or service name up (whose answer may have changed)
/// is always parsed again.
pub fn parse_reusing(
    input: Vec<u8>,
    resolver: &dyn Resolver,
    previous: Option<Previous<'_>>,
) -> Result<(Parsed, Layout), SyntaxError> {
    let (parsed, spans, copied) = parse_inner(&input, resolver, previous, true)?;
    Ok((
        parsed,
        Layout {
            bytes: input,
            spans,
            by_header: OnceLock::new(),
            copied,
            clean: Default::default(),
        },
    ))
}

fn header_hash(kind: usize, header: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kind.hash(&mut h);
    header.hash(&mut h);
    h.finish()
}

fn kind_index(kind: BlockKind) -> usize {
    match kind {
        BlockKind::Virtual => 0,
        BlockKind::Failover => 1,
    }
}

fn parse_inner<'a>(
    input: &'a [u8],
    resolver: &'a dyn Resolver,
    previous: Option<Previous<'a>>,
    layout: bool,
) -> Result<(Parsed, [Vec<Span>; 2], usize), SyntaxError> {
    if input.is_empty() {
        return Err(SyntaxError {
            code: ErrorCode::Empty,
            line: 0,
        });
    }
    let mut p = Parser {
        input,
        lines: lexer::Lines::new(input),
        resolver,
        diagnostics: Vec::new(),
        source: SourceMap::default(),
        spare: Vec::new(),
        line_start: 0,
        line_end: 0,
        lookups: Cell::new(0),
        previous,
        cursor: [0, 0],
        copied: 0,
        spans: layout.then(Default::default),
    };
    let mut config = Config::default();
    p.parse_global(&mut config)?;
    Ok((
        Parsed {
            config,
            source: p.source,
            diagnostics: p.diagnostics,
        },
        p.spans.unwrap_or_default(),
        p.copied,
    ))
}

struct Parser<'a> {
    input: &'a [u8],
    lines: lexer::Lines<'a>,
    resolver: &'a dyn Resolver,
    diagnostics: Vec<Diagnostic>,
    source: SourceMap,
    /// A token vector given back by [`Parser::recycle`]: one allocation serves every line.
    spare: Vec<Token<'a>>,
    /// Byte range of the last statement's line (without its line end).
    line_start: usize,
    line_end: usize,
    /// Host and service names looked up so far.
    lookups: Cell<u32>,
    /// The earlier parse whose unchanged blocks are copied ([`parse_reusing`]).
    previous: Option<Previous<'a>>,
    /// Per kind, the earlier block expected next (the one after the last copied).
    cursor: [usize; 2],
    /// Blocks copied so far.
    copied: usize,
    /// Where each block lies, when a [`Layout`] is wanted.
    spans: Option<[Vec<Span>; 2]>,
}

type R<T> = Result<T, ErrorCode>;

/// Where a statement being parsed sits.
#[derive(Clone, Copy)]
struct Ctx {
    block: Option<(BlockKind, usize)>,
    server: Option<usize>,
    line: u32,
}

impl<'a> Parser<'a> {
    /// The next statement, tokenized lazily so that errors come out in file order.
    fn next_statement(&mut self) -> Result<Option<Statement<'a>>, SyntaxError> {
        for (number, text) in self.lines.by_ref() {
            let Some(first) = text.iter().position(|b| !lexer::is_blank(*b)) else {
                continue;
            };
            if text[first] == b'#' {
                continue;
            }
            let mut tokens = std::mem::take(&mut self.spare);
            lexer::tokenize_into(&text[first..], &mut tokens)
                .map_err(|code| SyntaxError { code, line: number })?;
            self.line_start = text.as_ptr() as usize - self.input.as_ptr() as usize;
            self.line_end = self.line_start + text.len();
            return Ok(Some(Statement {
                line: number,
                tokens,
            }));
        }
        Ok(None)
    }

    /// The next statement inside a block, or `None` at its closing `}` (which must stand alone).
    /// The end of the file inside a block is "unexpected end of file".
    fn block_statement(&mut self) -> Result<Option<Statement<'a>>, SyntaxError> {
        let Some(st) = self.next_statement()? else {
            return Err(self.eof());
        };
        if st.tokens[0].is("}") {
            if st.tokens.len() > 1 {
                return Err(SyntaxError {
                    code: ErrorCode::ExtraArgs,
                    line: st.line,
                });
            }
            self.recycle(st);
            return Ok(None);
        }
        Ok(Some(st))
    }

    /// Gives a statement's token vector back for the next line.
    fn recycle(&mut self, st: Statement<'a>) {
        self.spare = st.tokens;
    }

    fn eof(&self) -> SyntaxError {
        SyntaxError {
            code: ErrorCode::Eof,
            line: lexer::last_line(self.input),
        }
    }

    fn diag(&mut self, severity: Severity, ctx: Ctx, keyword: &'static str, message: String) {
        self.diagnostics.push(Diagnostic {
            severity,
            location: Location {
                line: Some(ctx.line),
                block: ctx.block,
                server: ctx.server,
                keyword: Some(keyword),
            },
            message,
        });
    }

    /// Records the line of a keyword; a keyword given twice in one block is a warning (the last
    /// value wins, as in Piranha).
    fn record(&mut self, ctx: Ctx, keyword: &'static str) {
        // Lines inside a block are kept counted from the block's line.
        let (map, base) = match (ctx.block, ctx.server) {
            (None, _) => (&mut self.source.global, 0),
            (Some((kind, vi)), server) => {
                let blocks = match kind {
                    BlockKind::Virtual => &mut self.source.virtual_servers,
                    BlockKind::Failover => &mut self.source.failover_services,
                };
                let Some(block) = blocks.get_mut(vi) else {
                    return;
                };
                let base = block.line;
                // Not shared yet while its block is parsed: no copy is made.
                let inner = Arc::make_mut(&mut block.inner);
                match server {
                    None => (&mut inner.keywords, base),
                    Some(si) => match inner.servers.get_mut(si) {
                        Some((_, keywords)) => (keywords, base),
                        None => return,
                    },
                }
            }
        };
        if let Some(previous) = map.insert(keyword, ctx.line.saturating_sub(base)) {
            let previous = previous + base;
            self.diag(
                Severity::Warning,
                ctx,
                keyword,
                format!(
                    "`{keyword}` is given again (first at line {previous}); the value at line {} is used",
                    ctx.line
                ),
            );
        }
    }

    /// A number Piranha accepted (`getNum`) that must lie in `min..=max` here. Out of range, it is
    /// reported and `current` (the default or earlier value) is kept, so one mistake gives one
    /// message.
    #[allow(clippy::too_many_arguments)]
    fn ranged<T: TryFrom<i64> + Copy>(
        &mut self,
        ctx: Ctx,
        keyword: &'static str,
        value: i64,
        min: i64,
        max: i64,
        current: T,
    ) -> T {
        if value < min || value > max {
            self.diag(
                Severity::Error,
                ctx,
                keyword,
                format!("`{keyword}` = {value} is out of range ({min} to {max})"),
            );
            return current;
        }
        T::try_from(value).unwrap_or(current)
    }

    fn parse_global(&mut self, c: &mut Config) -> Result<(), SyntaxError> {
        while let Some(st) = self.next_statement()? {
            let ctx = Ctx {
                block: None,
                server: None,
                line: st.line,
            };
            self.global_statement(c, &st, ctx)?;
            self.recycle(st);
        }
        Ok(())
    }

    fn global_statement(
        &mut self,
        c: &mut Config,
        st: &Statement<'_>,
        ctx: Ctx,
    ) -> Result<(), SyntaxError> {
        let err = |code| SyntaxError {
            code,
            line: st.line,
        };
        let t = &st.tokens;
        let kw = keyword(&t[0], GLOBAL_KEYWORDS);
        match kw {
            Some(k @ ("virtual" | "failover")) => {
                let kind = if k == "virtual" {
                    BlockKind::Virtual
                } else {
                    BlockKind::Failover
                };
                let (start, header_end) = (self.line_start, self.line_end);
                if self.copy_block(c, kind, t, start, header_end, st.line) {
                    return Ok(());
                }
                let name = block_header(t).map_err(err)?;
                let (diagnostics, lookups) = (self.diagnostics.len(), self.lookups.get());
                self.parse_block(c, kind, name, st.line)?;
                if self.spans.is_some() {
                    let end = self.lines.position();
                    let span = Span {
                        start,
                        header_end,
                        end,
                        lines: self.lines.number().saturating_sub(st.line) + 1,
                        reusable: self.diagnostics.len() == diagnostics
                            && self.lookups.get() == lookups
                            && end > 0
                            && self.input[end - 1] == b'\n',
                        from: None,
                    };
                    if let Some(spans) = &mut self.spans {
                        spans[kind_index(kind)].push(span);
                    }
                }
                return Ok(());
            }
            Some(k) => {
                self.global_keyword(c, k, t, ctx).map_err(err)?;
                self.record(ctx, k);
            }
            None => return Err(err(unknown(&t[0], GLOBAL_KEYWORDS))),
        }
        Ok(())
    }

    fn global_keyword(&mut self, c: &mut Config, k: &'static str, t: &[Token], ctx: Ctx) -> R<()> {
        match k {
            "serial_no" => c.serial_no = num(value(t)?)?,
            "service" => {
                c.service = match word(value(t)?)? {
                    "lvs" => ServiceType::Lvs,
                    "fos" => ServiceType::Fos,
                    _ => return Err(ErrorCode::BadArgument),
                }
            }
            "primary" => c.primary = Some(self.nonzero_host(value(t)?)?),
            "primary_private" => c.primary_private = Some(self.nonzero_host(value(t)?)?),
            "primary_shared" => c.primary_shared = Some(text(value(t)?)?),
            "backup" => c.backup = Some(self.host(value(t)?)?),
            "backup_active" => c.backup_active = boolean(value(t)?)?,
            "backup_private" => c.backup_private = Some(self.nonzero_host(value(t)?)?),
            "backup_shared" => c.backup_shared = Some(text(value(t)?)?),
            "heartbeat" => c.heartbeat = boolean(value(t)?)?,
            "heartbeat_port" => {
                let v = self.port(value(t)?)?;
                c.heartbeat_port = self.ranged(ctx, k, v, 0, 65535, c.heartbeat_port);
            }
            "keepalive" => c.keepalive = self.seconds(ctx, k, value(t)?, c.keepalive)?,
            "deadtime" => c.deadtime = self.seconds(ctx, k, value(t)?, c.deadtime)?,
            "heartbeat_key_file" => c.heartbeat_key_file = Some(text(value(t)?)?),
            "network" => {
                c.network = match word(value(t)?)? {
                    "nat" => Network::Nat,
                    "direct" => Network::Direct,
                    "tunnel" => Network::Tunnel,
                    _ => return Err(ErrorCode::BadArgument),
                }
            }
            "nat_router" => {
                let (a, d) = values2(t)?;
                c.nat_router = Some(InterfaceAddress {
                    address: self.host(a)?,
                    device: text(d)?,
                });
            }
            "nat_nmask" => c.nat_nmask = netmask(value(t)?)?,
            "reservation_conflict_action" => {
                c.reservation_conflict_action = Some(match word(value(t)?)? {
                    "nothing" => ReservationConflictAction::Nothing,
                    "preempt" => ReservationConflictAction::Preempt,
                    _ => return Err(ErrorCode::BadArgument),
                })
            }
            "debug_level" => c.debug_level = text(value(t)?)?,
            "rsh_command" => c.rsh_command = text(value(t)?)?,
            "sync" => c.sync = boolean(value(t)?)?,
            "ipvsadm" => c.ipvsadm = text(value(t)?)?,
            "active_cmd" => c.active_cmd = Some(text(value(t)?)?),
            "inactive_cmd" => c.inactive_cmd = Some(text(value(t)?)?),
            "monitor_links" => c.monitor_links = num(value(t)?)?,
            "syncdaemon" => c.syncdaemon = boolean(value(t)?)?,
            "syncd_iface" => c.syncd_iface = text(value(t)?)?,
            "syncd_id" => {
                let v = num(value(t)?)?;
                c.syncd_id = self.ranged(ctx, k, v, 0, 255, c.syncd_id);
            }
            "tcp_timeout" | "tcpfin_timeout" | "udp_timeout" => {
                let v = num(value(t)?)?;
                let current = match k {
                    "tcp_timeout" => c.tcp_timeout,
                    "tcpfin_timeout" => c.tcpfin_timeout,
                    _ => c.udp_timeout,
                };
                let v: u32 = self.ranged(ctx, k, v, 0, u32::MAX as i64, current);
                match k {
                    "tcp_timeout" => c.tcp_timeout = v,
                    "tcpfin_timeout" => c.tcpfin_timeout = v,
                    _ => c.udp_timeout = v,
                }
            }
            "hard_shutdown" => c.hard_shutdown = boolean(value(t)?)?,
            _ => return Err(ErrorCode::BadCommand),
        }
        Ok(())
    }

    /// Copies the earlier parse's block whose bytes stand unchanged at `start`, if there is one
    /// (the next one in order, else one with the same header line), and goes on after it.
    fn copy_block(
        &mut self,
        c: &mut Config,
        kind: BlockKind,
        t: &[Token],
        start: usize,
        header_end: usize,
        line: u32,
    ) -> bool {
        let Some(prev) = self.previous else {
            return false;
        };
        let ki = kind_index(kind);
        let layout = prev.layout;
        let input = self.input;
        let same = |i: usize| {
            layout.spans[ki].get(i).is_some_and(|s| {
                let old = &layout.bytes[s.start..s.end];
                s.reusable && input.get(start..start + old.len()) == Some(old)
            })
        };
        let cursor = self.cursor[ki];
        let header = &input[start..header_end];
        let found = if same(cursor) {
            Some(cursor)
        } else if same(cursor + 1) {
            // The block before it was deleted or changed.
            Some(cursor + 1)
        } else if layout.spans[ki]
            .get(cursor)
            .is_some_and(|s| &layout.bytes[s.start..s.header_end] == header)
        {
            // Changed in place: parsed, and the next block is looked for after it.
            self.cursor[ki] = cursor + 1;
            None
        } else {
            // Moved: looked for by its header line (the index is built on the first search).
            layout
                .by_header()
                .get(&header_hash(ki, header))
                .and_then(|candidates| candidates.iter().map(|&i| i as usize).find(|&i| same(i)))
        };
        let Some(i) = found else {
            return false;
        };
        let span = layout.spans[ki][i];
        let blocks = match kind {
            BlockKind::Virtual => &prev.config.virtual_servers,
            BlockKind::Failover => &prev.config.failover_services,
        };
        let (Some(vs), Some(lines)) = (blocks.get(i), prev.source.block(kind, i)) else {
            return false;
        };
        // The config must be the one the layout came from: at least the name must match.
        if t.get(1).map(|t| t.text) != Some(vs.name.as_bytes()) {
            return false;
        }
        // The lines inside are counted from the header line: shared, not shifted.
        let lines = BlockLines {
            line,
            inner: Arc::clone(&lines.inner),
        };
        match kind {
            BlockKind::Virtual => {
                c.virtual_servers.push(Arc::clone(vs));
                self.source.virtual_servers.push(lines);
            }
            BlockKind::Failover => {
                c.failover_services.push(Arc::clone(vs));
                self.source.failover_services.push(lines);
            }
        }
        let end = start + (span.end - span.start);
        self.lines.resume_at(end, line + span.lines - 1);
        self.cursor[ki] = i + 1;
        self.copied += 1;
        if let Some(spans) = &mut self.spans {
            spans[ki].push(Span {
                start,
                header_end,
                end,
                from: u32::try_from(i).ok(),
                ..span
            });
        }
        true
    }

    fn parse_block(
        &mut self,
        c: &mut Config,
        kind: BlockKind,
        name: String,
        line: u32,
    ) -> Result<(), SyntaxError> {
        let list = match kind {
            BlockKind::Virtual => &mut self.source.virtual_servers,
            BlockKind::Failover => &mut self.source.failover_services,
        };
        let index = list.len();
        list.push(BlockLines::new(line));
        let mut vs = VirtualServer::new(name);
        while let Some(st) = self.block_statement()? {
            let err = |code| SyntaxError {
                code,
                line: st.line,
            };
            let t = &st.tokens;
            let ctx = Ctx {
                block: Some((kind, index)),
                server: None,
                line: st.line,
            };
            match keyword(&t[0], VIRTUAL_KEYWORDS) {
                Some("server") => {
                    let name = block_header(t).map_err(err)?;
                    self.parse_server(&mut vs, kind, index, name, st.line)?;
                }
                Some(k) => {
                    self.virtual_keyword(&mut vs, k, t, ctx).map_err(err)?;
                    self.record(ctx, k);
                }
                None => return Err(err(unknown(&t[0], VIRTUAL_KEYWORDS))),
            }
            self.recycle(st);
        }
        match kind {
            BlockKind::Virtual => c.virtual_servers.push(Arc::new(vs)),
            BlockKind::Failover => c.failover_services.push(Arc::new(vs)),
        }
        Ok(())
    }

    fn virtual_keyword(
        &mut self,
        vs: &mut VirtualServer,
        k: &'static str,
        t: &[Token],
        ctx: Ctx,
    ) -> R<()> {
        match k {
            "active" => vs.active = boolean(value(t)?)?,
            "address" => {
                let (a, d) = values2(t)?;
                vs.address = Some(InterfaceAddress {
                    address: self.host(a)?,
                    device: text(d)?,
                });
            }
            "sorry_server" => {
                let a = lexer::inet_aton(value(t)?.text).ok_or(ErrorCode::BadHostname)?;
                vs.sorry_server = (!a.is_unspecified()).then_some(a);
            }
            "vip_nmask" => vs.vip_nmask = netmask(value(t)?)?,
            "fwmark" => {
                let v = num(value(t)?)?;
                let m: u32 = self.ranged(ctx, k, v, 0, u32::MAX as i64, vs.fwmark.unwrap_or(0));
                vs.fwmark = (m != 0).then_some(m);
            }
            "protocol" => {
                vs.protocol = match word(value(t)?)? {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    _ => return Err(ErrorCode::BadArgument),
                }
            }
            "port" => {
                let v = self.port(value(t)?)?;
                vs.port = self.ranged(ctx, k, v, 0, 65535, vs.port);
            }
            "scheduler" => {
                let name = word(value(t)?)?;
                vs.scheduler = if name == "pcc" {
                    // Releases before 9/2000 called least-connection "pcc".
                    self.diag(
                        Severity::Warning,
                        ctx,
                        k,
                        "`scheduler = pcc` is the pre-2000 name of `lc`; lc is used".into(),
                    );
                    Scheduler::Lc
                } else {
                    Scheduler::from_name(name).ok_or(ErrorCode::BadArgument)?
                };
            }
            "persistent" => {
                let v = num(value(t)?)?;
                vs.persistent = self.ranged(ctx, k, v, 0, u32::MAX as i64, vs.persistent);
            }
            "pmask" => {
                // Piranha ignored a pmask that was not an address; we refuse it.
                // 255.255.255.255 means "no mask", as in Piranha.
                vs.pmask = netmask(value(t)?)?.filter(|m| *m != Ipv4Addr::BROADCAST);
            }
            "client_monitor" => vs.client_monitor = text(value(t)?)?,
            "send_program" => vs.send_program = Some(text(value(t)?)?),
            "send" => vs.send = Some(text(value(t)?)?),
            "expect" => vs.expect = Some(text(value(t)?)?),
            "use_regex" => vs.use_regex = boolean(value(t)?)?,
            "timeout" => {
                let v = num(value(t)?)?;
                vs.timeout = self.ranged(ctx, k, v, 0, u32::MAX as i64, vs.timeout);
            }
            "reentry" => {
                let v = num(value(t)?)?;
                vs.reentry = self.ranged(ctx, k, v, 0, u32::MAX as i64, vs.reentry);
            }
            "load_monitor" => vs.load_monitor = Some(text(value(t)?)?),
            "quiesce_server" => vs.quiesce_server = boolean(value(t)?)?,
            "start_cmd" => vs.start_cmd = Some(text(value(t)?)?),
            "stop_cmd" => vs.stop_cmd = Some(text(value(t)?)?),
            "master" => vs.master = Some(self.host(value(t)?)?),
            "dirs" => vs.dirs = Some(list(t)?),
            _ => return Err(ErrorCode::BadCommand),
        }
        Ok(())
    }

    fn parse_server(
        &mut self,
        vs: &mut VirtualServer,
        kind: BlockKind,
        block: usize,
        name: String,
        line: u32,
    ) -> Result<(), SyntaxError> {
        let index = vs.servers.len();
        let lines = match kind {
            BlockKind::Virtual => &mut self.source.virtual_servers,
            BlockKind::Failover => &mut self.source.failover_services,
        };
        if let Some(b) = lines.get_mut(block) {
            let base = b.line;
            Arc::make_mut(&mut b.inner)
                .servers
                .push((line.saturating_sub(base), KeywordLines::default()));
        }
        let mut rs = RealServer::new(name, vs.port);
        while let Some(st) = self.block_statement()? {
            let err = |code| SyntaxError {
                code,
                line: st.line,
            };
            let t = &st.tokens;
            let ctx = Ctx {
                block: Some((kind, block)),
                server: Some(index),
                line: st.line,
            };
            let k = keyword(&t[0], SERVER_KEYWORDS)
                .ok_or_else(|| err(unknown(&t[0], SERVER_KEYWORDS)))?;
            self.server_keyword(&mut rs, k, t, ctx).map_err(err)?;
            self.record(ctx, k);
            self.recycle(st);
        }
        vs.servers.push(rs);
        Ok(())
    }

    fn server_keyword(
        &mut self,
        rs: &mut RealServer,
        k: &'static str,
        t: &[Token],
        ctx: Ctx,
    ) -> R<()> {
        match k {
            "address" => rs.address = Some(self.host(value(t)?)?),
            "active" => rs.active = boolean(value(t)?)?,
            "weight" => {
                let v = num(value(t)?)?;
                rs.weight = self.ranged(ctx, k, v, 0, i32::MAX as i64, rs.weight);
            }
            "port" => {
                // Only a number here (Piranha's getNum), not a service name.
                let v = num(value(t)?)?;
                rs.port = self.ranged(ctx, k, v, 0, 65535, rs.port);
            }
            _ => return Err(ErrorCode::BadCommand),
        }
        Ok(())
    }

    /// `getHostname`: a dotted quad (inet_aton) or a name the resolver knows; else "invalid
    /// argument", as in Piranha.
    fn host(&self, tok: &Token) -> R<Host> {
        let name = text(tok)?;
        if let Some(address) = lexer::inet_aton(tok.text) {
            return Ok(Host { name, address });
        }
        self.lookups.set(self.lookups.get() + 1);
        let address = self.resolver.host(&name).ok_or(ErrorCode::BadArgument)?;
        Ok(Host { name, address })
    }

    /// `primary`, `primary_private`, `backup_private`: 0.0.0.0 is "invalid host name or ip address".
    fn nonzero_host(&self, tok: &Token) -> R<Host> {
        let h = self.host(tok)?;
        if h.address.is_unspecified() {
            return Err(ErrorCode::BadHostname);
        }
        Ok(h)
    }

    /// `getPort`: a number, else a TCP service name, else "invalid argument".
    fn port(&self, tok: &Token) -> R<i64> {
        match lexer::strtol(tok.text) {
            Ok(v) => Ok(v),
            Err(_) => {
                let name = text(tok)?;
                self.lookups.set(self.lookups.get() + 1);
                self.resolver
                    .tcp_service(&name)
                    .map(i64::from)
                    .ok_or(ErrorCode::BadArgument)
            }
        }
    }

    /// `keepalive` / `deadtime`: an integer as Piranha (decimal, 0x, octal) or, as an extension,
    /// decimal seconds with a fraction (`0.2`).
    fn seconds(
        &mut self,
        ctx: Ctx,
        keyword: &'static str,
        tok: &Token,
        current: Duration,
    ) -> R<Duration> {
        if tok.text.contains(&b'.') {
            return decimal_seconds(tok.text).ok_or(ErrorCode::IntExpected);
        }
        let v = num(tok)?;
        let secs: u64 = self.ranged(ctx, keyword, v, 0, u32::MAX as i64, current.as_secs());
        Ok(Duration::from_secs(secs))
    }
}

/// `12.5` -> 12.5 s; at most nanosecond precision (further digits are dropped).
pub(crate) fn decimal_seconds(t: &[u8]) -> Option<Duration> {
    let s = std::str::from_utf8(t).ok()?;
    let (int, frac) = s.split_once('.')?;
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    if secs > u32::MAX as u64 {
        return None;
    }
    let mut nanos: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += (d - b'0') as u32 * 10u32.pow(8 - i as u32);
    }
    Some(Duration::new(secs, nanos))
}

const GLOBAL_KEYWORDS: &[&str] = &[
    "serial_no",
    "service",
    "primary",
    "primary_private",
    "primary_shared",
    "backup",
    "backup_active",
    "backup_private",
    "backup_shared",
    "heartbeat",
    "heartbeat_port",
    "keepalive",
    "deadtime",
    "heartbeat_key_file",
    "network",
    "nat_router",
    "nat_nmask",
    "reservation_conflict_action",
    "debug_level",
    "rsh_command",
    "sync",
    "ipvsadm",
    "active_cmd",
    "inactive_cmd",
    "monitor_links",
    "syncdaemon",
    "syncd_iface",
    "syncd_id",
    "tcp_timeout",
    "tcpfin_timeout",
    "udp_timeout",
    "hard_shutdown",
    "virtual",
    "failover",
];

const VIRTUAL_KEYWORDS: &[&str] = &[
    "active",
    "address",
    "sorry_server",
    "vip_nmask",
    "fwmark",
    "protocol",
    "port",
    "scheduler",
    "persistent",
    "pmask",
    "client_monitor",
    "send_program",
    "send",
    "expect",
    "use_regex",
    "timeout",
    "reentry",
    "load_monitor",
    "quiesce_server",
    "start_cmd",
    "stop_cmd",
    "master",
    "dirs",
    "server",
];

const SERVER_KEYWORDS: &[&str] = &["address", "active", "weight", "port"];

/// Every keyword the parser knows at each level (for documentation and tests).
pub fn keywords() -> (
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
) {
    (GLOBAL_KEYWORDS, VIRTUAL_KEYWORDS, SERVER_KEYWORDS)
}

fn keyword(tok: &Token, known: &'static [&'static str]) -> Option<&'static str> {
    known.iter().copied().find(|k| tok.is(k))
}

/// `port=80` is one token. Piranha 0.8.6 called it an unknown command; we say what is wrong.
fn glued_equal(tok: &Token, known: &'static [&'static str]) -> bool {
    match tok.text.iter().position(|b| *b == b'=') {
        Some(i) if i > 0 => known.iter().any(|k| k.as_bytes() == &tok.text[..i]),
        _ => false,
    }
}

fn unknown(tok: &Token, known: &'static [&'static str]) -> ErrorCode {
    if glued_equal(tok, known) {
        ErrorCode::EqualExpected
    } else {
        ErrorCode::BadCommand
    }
}

/// `NAME {` after `virtual`, `failover` or `server`.
fn block_header(t: &[Token]) -> R<String> {
    if t.len() < 3 {
        return Err(ErrorCode::MissingArgs);
    }
    if t.len() > 3 {
        return Err(ErrorCode::ExtraArgs);
    }
    if !t[2].is("{") {
        return Err(ErrorCode::MissingArgs);
    }
    text(&t[1])
}

/// Piranha's CHECK_ARGS: `KEYWORD = VALUE...` with exactly `count` values.
fn values<'t, 'a>(t: &'t [Token<'a>], count: usize) -> R<&'t [Token<'a>]> {
    if t.len() < 2 || !t[1].is("=") {
        return Err(ErrorCode::EqualExpected);
    }
    if t.len() < count + 2 {
        return Err(ErrorCode::MissingArgs);
    }
    if t.len() > count + 2 {
        return Err(ErrorCode::ExtraArgs);
    }
    Ok(&t[2..])
}

fn value<'t, 'a>(t: &'t [Token<'a>]) -> R<&'t Token<'a>> {
    Ok(&values(t, 1)?[0])
}

fn values2<'t, 'a>(t: &'t [Token<'a>]) -> R<(&'t Token<'a>, &'t Token<'a>)> {
    let v = values(t, 2)?;
    Ok((&v[0], &v[1]))
}

/// `dirs = [ a b c ]`.
fn list(t: &[Token]) -> R<Vec<String>> {
    if t.len() < 2 || !t[1].is("=") {
        return Err(ErrorCode::EqualExpected);
    }
    if t.len() < 3 || !t[2].is("[") {
        return Err(ErrorCode::ListExpected);
    }
    let close = t[3..]
        .iter()
        .position(|x| x.is("]"))
        .ok_or(ErrorCode::ListExpected)?
        + 3;
    if close + 1 != t.len() {
        return Err(ErrorCode::ExtraArgs);
    }
    t[3..close].iter().map(text).collect()
}

/// A token as text. lvs.cf is read as bytes; a value that is not UTF-8 is refused.
fn text(tok: &Token) -> R<String> {
    word(tok).map(str::to_owned)
}

/// The token as text, borrowed (for values compared with a fixed set of words).
fn word<'a>(tok: &Token<'a>) -> R<&'a str> {
    std::str::from_utf8(tok.text).map_err(|_| ErrorCode::BadArgument)
}

/// `getNum`.
fn num(tok: &Token) -> R<i64> {
    lexer::strtol(tok.text).map_err(|e| match e {
        IntError::NotInteger | IntError::Overflow => ErrorCode::IntExpected,
    })
}

/// `getBoolean`: an integer that is 0 or 1.
fn boolean(tok: &Token) -> R<bool> {
    match num(tok)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(ErrorCode::BoolExpected),
    }
}

/// A dotted quad for a netmask; 0.0.0.0 means none.
fn netmask(tok: &Token) -> R<Option<Ipv4Addr>> {
    let m = lexer::inet_aton(tok.text).ok_or(ErrorCode::BadNetmask)?;
    Ok((!m.is_unspecified()).then_some(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StaticResolver;

    fn file(blocks: &[(&str, &str)]) -> Vec<u8> {
        let mut t = String::from("network = nat\n");
        for (name, sched) in blocks {
            t.push_str(&format!(
                "virtual {name} {{\n     address = 10.0.0.{} eth0:1\n     scheduler = {sched}\n}}\n",
                t.len() % 250 + 1
            ));
        }
        t.into_bytes()
    }

    /// Copies `next` from `first`'s parse; returns how many blocks were copied and whether the
    /// search index of moved blocks had to be built.
    fn reparse(first: &[u8], next: &[u8]) -> (usize, bool) {
        let r = StaticResolver::standard();
        let (parsed, layout) = parse_reusing(first.to_vec(), &r, None).unwrap();
        let prev = Previous {
            config: &parsed.config,
            source: &parsed.source,
            layout: &layout,
        };
        let (_, l2) = parse_reusing(next.to_vec(), &r, Some(prev)).unwrap();
        (l2.copied_blocks(), layout.by_header.get().is_some())
    }

    #[test]
    fn blocks_changed_in_place_or_deleted_need_no_search() {
        let abc = [("a", "wlc"), ("b", "wlc"), ("c", "wlc"), ("d", "wlc")];
        // b changed in place: c and d found after it.
        let changed = [("a", "wlc"), ("b", "rr"), ("c", "wlc"), ("d", "wlc")];
        // b deleted.
        let deleted = [("a", "wlc"), ("c", "wlc"), ("d", "wlc")];
        let first = file(&abc);
        // Addresses depend on the position in the file: rebuild each block's text as in `first`.
        let text = |names: &[(&str, &str)]| {
            let mut t = String::from("network = nat\n");
            let whole = String::from_utf8(first.clone()).unwrap();
            for (name, sched) in names {
                let start = whole.find(&format!("virtual {name} {{")).unwrap();
                let end = start + whole[start..].find("}\n").unwrap() + 2;
                t.push_str(&whole[start..end].replace("wlc", sched));
            }
            t.into_bytes()
        };
        assert_eq!(reparse(&first, &text(&changed)), (3, false));
        assert_eq!(reparse(&first, &text(&deleted)), (3, false));
        // Moved: found by its header line.
        let moved = [("d", "wlc"), ("a", "wlc"), ("b", "wlc"), ("c", "wlc")];
        assert_eq!(reparse(&first, &text(&moved)), (4, true));
    }
}
