//! `parse_reusing` (copying unchanged blocks from the previous parse) must give exactly what
//! `parse` gives for the same bytes, whatever changed between the two files.

use lvs_config::{
    diff, load_bytes, load_bytes_reusing, parse, parse_reusing, Config, Diagnostic, Layout, Loaded,
    Parsed, Previous, SourceMap, StaticResolver, SyntaxError,
};
use proptest::prelude::*;
use std::net::Ipv4Addr;

/// A small deterministic generator (xorshift), so one seed makes one file.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One block (or a run of global lines), each line ending in `\n` or `\r\n`.
fn chunk(g: &mut Gen) -> String {
    let nl = if g.chance(10) { "\r\n" } else { "\n" };
    let mut lines: Vec<String> = Vec::new();
    match g.below(10) {
        0 => {
            lines.push(format!("serial_no = {}", g.below(1000)));
            // Global settings the checks of a block read.
            match g.below(6) {
                0 => lines.push(format!("primary = 10.0.0.{}", g.below(3) + 1)),
                1 => lines.push("network = direct".into()),
                2 => lines.push("network = nat".into()),
                3 => lines.push(format!("backup = 10.0.1.{}", g.below(3) + 1)),
                _ => {}
            }
            if g.chance(30) {
                lines.push("# a comment".into());
            }
            if g.chance(20) {
                lines.push(String::new());
            }
        }
        1 => {
            lines.push(format!("failover f{} {{", g.below(4)));
            lines.push("     active = 1".into());
            lines.push(format!(
                "     address = 192.0.2.{} eth0:1",
                g.below(250) + 1
            ));
            lines.push(format!("     port = {}", g.below(1000) + 1));
            lines.push("}".into());
        }
        _ => {
            lines.push(format!("virtual vs{} {{", g.below(12)));
            lines.push("     active = 1".into());
            let addr = if g.chance(10) {
                "localhost".to_string() // a name look-up
            } else if g.chance(20) {
                format!("10.0.{}.{}", g.below(2), g.below(3) + 1) // maybe a router's address
            } else {
                format!("10.0.{}.{}", g.below(3), g.below(250) + 1)
            };
            if g.chance(95) {
                // Without one, an active virtual server is an error.
                lines.push(format!("     address = {addr} eth0:1"));
            }
            if g.chance(10) {
                lines.push("     sorry_server = 10.9.9.9".into());
            }
            let port = if g.chance(10) {
                "http".to_string() // a service look-up
            } else {
                (g.below(3) + 79).to_string()
            };
            lines.push(format!("     port = {port}"));
            if g.chance(40) {
                let s = ["wlc", "rr", "lc", "sh"][g.below(4) as usize];
                lines.push(format!("     scheduler = {s}"));
            }
            if g.chance(10) {
                lines.push("     scheduler = rr".into()); // given twice: a warning, maybe
            }
            if g.chance(10) {
                lines.push("     persistent = 99999999999".into()); // out of range: an error
            }
            if g.chance(20) {
                lines.push("  # inside a block".into());
            }
            for r in 0..g.below(4) {
                lines.push(format!("     server rs{r} {{"));
                lines.push(format!(
                    "         address = 192.168.{r}.{}",
                    g.below(250) + 1
                ));
                lines.push("         active = 1".into());
                lines.push(format!("         weight = {}", g.below(5)));
                lines.push("     }".into());
            }
            lines.push("}".into());
        }
    }
    let mut out = String::new();
    for l in lines {
        out.push_str(&l);
        out.push_str(nl);
    }
    out
}

fn file(g: &mut Gen) -> Vec<String> {
    let mut chunks = vec!["network = nat\n".to_string()];
    for _ in 0..g.below(12) + 1 {
        chunks.push(chunk(g));
    }
    chunks
}

/// One change an operator (or a broken editor) might make.
fn edit(g: &mut Gen, chunks: &mut Vec<String>) {
    let n = chunks.len() as u64;
    let i = g.below(n) as usize;
    match g.below(9) {
        0 => chunks[i] = chunk(g),
        1 if chunks.len() > 1 => {
            chunks.remove(i);
        }
        2 => {
            let c = chunks[i].clone();
            chunks.insert(g.below(n + 1) as usize, c);
        }
        3 => {
            let j = g.below(n) as usize;
            chunks.swap(i, j);
        }
        4 => chunks.insert(i, "# moved down a line\n\n".into()),
        5 => chunks[i] = chunks[i].replace("\r\n", "\n"),
        6 => {
            // The last line without its line end.
            let last = chunks.len() - 1;
            while chunks[last].ends_with('\n') || chunks[last].ends_with('\r') {
                chunks[last].pop();
            }
        }
        7 => chunks[i] = chunks[i].replacen("active = 1", "active = 0", 1),
        8 => {
            // A syntax error somewhere, or a cut in the middle of a block.
            if g.chance(50) {
                chunks.insert(i, "nonsense here\n".into());
            } else {
                let c = &mut chunks[i];
                let cut = g.below(c.len() as u64 + 1) as usize;
                c.truncate(cut);
            }
        }
        _ => chunks.push(chunk(g)),
    }
}

/// What two loads must agree on: the config, the source map and the diagnostics.
type View<'a> = (&'a Config, &'a SourceMap, &'a [Diagnostic]);

trait Viewed {
    fn view(&self) -> View<'_>;
}

impl Viewed for Parsed {
    fn view(&self) -> View<'_> {
        (&self.config, &self.source, &self.diagnostics)
    }
}

impl Viewed for Loaded {
    fn view(&self) -> View<'_> {
        (&self.config, &self.source, &self.diagnostics)
    }
}

/// A fresh parse (or load) and one that copied blocks give the same result for `text`.
fn same<T: Viewed>(
    text: &[u8],
    full: &Result<T, SyntaxError>,
    reused: &Result<(T, Layout), SyntaxError>,
) {
    let shown = || String::from_utf8_lossy(text).into_owned();
    match (full, reused) {
        (Ok(a), Ok((b, _))) => {
            let (a, b) = (a.view(), b.view());
            assert_eq!(a.0, b.0, "config differs for:\n{}", shown());
            assert_eq!(a.1, b.1, "source map differs for:\n{}", shown());
            assert_eq!(a.2, b.2, "diagnostics differ for:\n{}", shown());
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "errors differ for:\n{}", shown()),
        (a, b) => panic!(
            "a fresh parse gave {:?}, one copying blocks {:?} for:\n{}",
            a.as_ref().err(),
            b.as_ref().err(),
            shown()
        ),
    }
}

fn previous<'p>(p: &'p (Parsed, Layout)) -> Previous<'p> {
    Previous {
        config: &p.0.config,
        source: &p.0.source,
        layout: &p.1,
    }
}

/// A chain of edits from `seed`, each version loaded two ways: `fresh` from nothing and
/// `reusing` from the version before (so layouts made by copying are used again); the two must
/// always agree.
/// The diff against the old config pairs the blocks a reload copied (walking both lists) as the
/// diff of a fresh parse pairs them (by name), wherever names are unique: with duplicate names
/// (an error lvsd never runs with) any pairing in order is as good.
fn same_diff(old: &Config, full: &Config, reused: &Config) {
    let unique = |c: &Config| {
        [&c.virtual_servers, &c.failover_services]
            .iter()
            .all(|blocks| {
                let mut names: Vec<&str> = blocks.iter().map(|v| v.name.as_str()).collect();
                names.sort_unstable();
                names.windows(2).all(|w| w[0] != w[1])
            })
    };
    if unique(old) && unique(full) {
        assert_eq!(
            diff(old, full),
            diff(old, reused),
            "diff after a copying reload"
        );
    }
}

fn chain<T: Viewed>(
    seed: u64,
    fresh: impl Fn(&[u8]) -> Result<T, SyntaxError>,
    reusing: impl Fn(Vec<u8>, Option<Previous<'_>>) -> Result<(T, Layout), SyntaxError>,
) {
    let mut g = Gen(seed);
    let mut chunks = file(&mut g);
    let mut last: Option<(T, Layout)> = None;
    for _ in 0..6 {
        let text = chunks.concat().into_bytes();
        let full = fresh(&text);
        let previous = last.as_ref().map(|(t, layout)| {
            let (config, source, _) = t.view();
            Previous {
                config,
                source,
                layout,
            }
        });
        let reused = reusing(text.clone(), previous);
        same(&text, &full, &reused);
        if let (Some((old, _)), Ok(full), Ok((reused, _))) = (&last, &full, &reused) {
            same_diff(old.view().0, full.view().0, reused.view().0);
        }
        if let Ok(p) = reused {
            last = Some(p);
        }
        for _ in 0..g.below(3) + 1 {
            edit(&mut g, &mut chunks);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Parsing: copying unchanged blocks gives what a fresh parse gives.
    #[test]
    fn same_as_a_fresh_parse(seed in 1u64..u64::MAX) {
        let r = StaticResolver::standard();
        chain(seed, |t| parse(t, &r), |t, p| parse_reusing(t, &r, p));
    }

    /// The same with validation: the diagnostics of a load that skips the checks of copied
    /// blocks are those of a full load.
    #[test]
    fn load_same_as_a_fresh_load(seed in 1u64..u64::MAX) {
        let r = StaticResolver::standard();
        chain(seed, |t| load_bytes(t, &r), |t, p| load_bytes_reusing(t, &r, p));
    }
}

/// A block with a unique name (`id`), in one of a few versions.
fn named_block(id: u64, version: u64) -> String {
    let s = ["wlc", "rr", "lc"][version as usize % 3];
    format!(
        "virtual vs{id} {{\n     address = 10.1.{}.{} eth0:1\n     port = {}\n     scheduler = {s}\n     server a {{\n         address = 192.168.0.{}\n     }}\n}}\n",
        id / 250,
        id % 250 + 1,
        80 + version % 2,
        version % 250 + 1
    )
}

/// Chains of moves, swaps, insertions, deletions and changes of blocks with unique names.
fn diff_chain(seed: u64) {
    let r = StaticResolver::standard();
    let mut g = Gen(seed);
    let mut next_id = 0;
    let mut blocks: Vec<(u64, u64)> = (0..g.below(12) + 1)
        .map(|_| {
            next_id += 1;
            (next_id, g.below(6))
        })
        .collect();
    let text = |blocks: &[(u64, u64)]| {
        let mut t = String::from("network = nat\n");
        for &(id, v) in blocks {
            t.push_str(&named_block(id, v));
        }
        t.into_bytes()
    };
    let mut last = parse_reusing(text(&blocks), &r, None).unwrap();
    for _ in 0..8 {
        for _ in 0..g.below(3) + 1 {
            let n = blocks.len() as u64;
            match g.below(5) {
                0 if n > 1 => {
                    let b = blocks.remove(g.below(n) as usize);
                    blocks.insert(g.below(n) as usize, b);
                }
                1 if n > 1 => {
                    blocks.remove(g.below(n) as usize);
                }
                2 => {
                    next_id += 1;
                    blocks.insert(g.below(n + 1) as usize, (next_id, g.below(6)));
                }
                3 if n > 1 => {
                    let (i, j) = (g.below(n) as usize, g.below(n) as usize);
                    blocks.swap(i, j);
                }
                _ if n > 0 => {
                    let i = g.below(n) as usize;
                    blocks[i].1 = g.below(6);
                }
                _ => {}
            }
        }
        let t = text(&blocks);
        let full = parse(&t, &r).unwrap();
        let reused = parse_reusing(t.clone(), &r, Some(previous(&last))).unwrap();
        assert_eq!(
            diff(&last.0.config, &full.config),
            diff(&last.0.config, &reused.0.config),
            "diff after a copying reload"
        );
        last = reused;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The diff pairs the blocks a reload copied (found by walking both lists) as it pairs the
    /// blocks of a fresh parse (by name).
    #[test]
    fn diff_pairs_copied_blocks_as_by_name(seed in 1u64..u64::MAX) {
        diff_chain(seed);
    }
}

fn big(n: usize, changed: Option<usize>) -> Vec<u8> {
    let mut out = String::from("network = nat\n");
    for i in 0..n {
        let s = if Some(i) == changed { "rr" } else { "wlc" };
        out.push_str(&format!(
            "virtual vs{i} {{\n     active = 1\n     address = 10.0.{}.{} eth0:1\n     scheduler = {s}\n     server a {{\n         address = 192.168.0.{}\n         active = 1\n     }}\n}}\n",
            i / 250,
            i % 250 + 1,
            i % 250 + 1
        ));
    }
    out.into_bytes()
}

#[test]
fn one_block_changed_is_the_only_one_parsed() {
    let r = StaticResolver::standard();
    let first = parse_reusing(big(1000, None), &r, None).unwrap();
    assert_eq!(first.1.copied_blocks(), 0);
    assert_eq!(first.1.reusable_blocks(), 1000);
    let text = big(1000, Some(500));
    let second = parse_reusing(text.clone(), &r, Some(previous(&first))).unwrap();
    assert_eq!(second.1.copied_blocks(), 999);
    assert_eq!(second.0.config.virtual_servers[500].scheduler.name(), "rr");
    // Copied, not cloned: the same allocation as the running config's block.
    let (a, b) = (
        &first.0.config.virtual_servers,
        &second.0.config.virtual_servers,
    );
    assert!(std::sync::Arc::ptr_eq(&a[499], &b[499]));
    assert!(!std::sync::Arc::ptr_eq(&a[500], &b[500]));
    same(&text, &parse(&text, &r), &Ok(second));
}

#[test]
fn a_block_that_looked_a_name_up_is_parsed_again() {
    let text = b"virtual www {\n     address = web.example eth0:1\n}\nvirtual b {\n     address = 10.0.0.2 eth0:1\n}\n".to_vec();
    let mut r = StaticResolver::standard();
    r.hosts
        .insert("web.example".into(), Ipv4Addr::new(10, 0, 0, 1));
    let first = parse_reusing(text.clone(), &r, None).unwrap();
    assert_eq!(first.1.reusable_blocks(), 1);
    // The name now resolves elsewhere: the same bytes must give the new address.
    r.hosts
        .insert("web.example".into(), Ipv4Addr::new(10, 0, 0, 9));
    let second = parse_reusing(text, &r, Some(previous(&first))).unwrap();
    assert_eq!(second.1.copied_blocks(), 1);
    let a = second.0.config.virtual_servers[0].address.as_ref().unwrap();
    assert_eq!(a.address.address, Ipv4Addr::new(10, 0, 0, 9));
}

#[test]
fn a_config_that_is_not_the_layouts_own_is_not_copied_from() {
    let r = StaticResolver::standard();
    let first = parse_reusing(big(3, None), &r, None).unwrap();
    // A config with fewer blocks than the layout: the missing one is parsed.
    let short = parse(&big(2, None), &r).unwrap();
    let text = big(3, None);
    let p = Previous {
        config: &short.config,
        source: &short.source,
        layout: &first.1,
    };
    let again = parse_reusing(text.clone(), &r, Some(p)).unwrap();
    assert_eq!(again.1.copied_blocks(), 2);
    same(&text, &parse(&text, &r), &Ok(again));
}

#[test]
fn a_copied_block_is_checked_again_when_a_global_setting_it_depends_on_changes() {
    let r = StaticResolver::standard();
    let block = "virtual www {\n     active = 1\n     address = 10.0.0.1 eth0:1\n     server a {\n         address = 192.168.0.1\n         active = 1\n     }\n}\n";
    let first = load_bytes_reusing(
        format!("primary = 10.0.0.2\n{block}").into_bytes(),
        &r,
        None,
    )
    .unwrap();
    assert!(!first.0.has_errors());
    let previous = Previous {
        config: &first.0.config,
        source: &first.0.source,
        layout: &first.1,
    };
    // The router now owns the virtual address: an error in the (copied) block.
    let text = format!("primary = 10.0.0.1\n{block}").into_bytes();
    let second = load_bytes_reusing(text.clone(), &r, Some(previous)).unwrap();
    assert_eq!(second.1.copied_blocks(), 1);
    assert!(second.0.has_errors());
    same(&text, &load_bytes(&text, &r), &Ok(second));
}
