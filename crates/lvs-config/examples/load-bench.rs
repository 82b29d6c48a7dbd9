//! How long lvs.cf takes to read, parse and validate: the larger part of an lvsd reload.
//!
//!     cargo run --release -p lvs-config --example load-bench [-- FILE] [ROUNDS]
//!
//! Without FILE, the benchmark's own config: 1,000 virtual servers x 4 real servers (the lvsd
//! benchmark's, integration-tests/bench/lvsd-bench.py). Prints the median and the spread of
//! parse, validate and both, over ROUNDS (default 200) rounds; then, for the generated config,
//! a reload's parse: the same file with one block changed, parsed again copying the unchanged
//! blocks from the first parse (`parse_reusing`), beside a full parse, as a ratio.
use lvs_config::{parse, parse_reusing, validate, Previous, StaticResolver};
use std::time::{Duration, Instant};

fn generated(changed: Option<u32>) -> String {
    let mut out = String::from("network = nat\nhard_shutdown = 1\n");
    for i in 0..1000u32 {
        let scheduler = if Some(i) == changed { "rr" } else { "wlc" };
        let j = i + 1;
        out.push_str(&format!(
            "virtual vs{i} {{\n     active = 1\n     address = 10.{}.{}.{} eth0:1\n     port = 80\n     scheduler = {scheduler}\n     client_monitor = /usr/sbin/nanny\n",
            (j >> 16) & 255,
            (j >> 8) & 255,
            j & 255
        ));
        for r in 1..=4 {
            out.push_str(&format!(
                "     server rs{r} {{\n         address = 192.168.{r}.{}\n         active = 1\n         weight = {r}\n     }}\n",
                i % 250 + 1
            ));
        }
        out.push_str("}\n");
    }
    out
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let pick = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "{name:<16} median {:7.3} ms   min {:7.3} ms   p90 {:7.3} ms",
        pick(0.5),
        pick(0.0),
        pick(0.9)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (text, what) = match args.first().filter(|a| a.parse::<usize>().is_err()) {
        Some(path) => match std::fs::read(path) {
            Ok(t) => (t, path.clone()),
            Err(e) => {
                eprintln!("load-bench: {path}: {e}");
                std::process::exit(1);
            }
        },
        None => (
            generated(None).into_bytes(),
            "1,000 x 4 generated".to_string(),
        ),
    };
    let rounds = args
        .iter()
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(200)
        .max(1);
    let resolver = StaticResolver::standard();
    let (mut p, mut v, mut both) = (Vec::new(), Vec::new(), Vec::new());
    let mut services = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let parsed = match parse(&text, &resolver) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("load-bench: {what}: line {}: {}", e.line, e.code.text());
                std::process::exit(1);
            }
        };
        let t1 = Instant::now();
        let diags = validate(&parsed.config, Some(&parsed.source));
        let t2 = Instant::now();
        services = parsed.config.virtual_servers.len();
        std::hint::black_box(diags);
        p.push(t1 - t0);
        v.push(t2 - t1);
        both.push(t2 - t0);
    }
    println!(
        "{what}: {} bytes, {services} virtual servers, {rounds} rounds",
        text.len()
    );
    summary("parse", p);
    summary("validate", v);
    summary("parse+validate", both);
    if args.iter().any(|a| a.parse::<usize>().is_err()) {
        return;
    }
    // A reload: the same file but for one block, against the first parse.
    let (first, layout) = match parse_reusing(text.clone(), &resolver, None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("load-bench: line {}: {}", e.line, e.code.text());
            std::process::exit(1);
        }
    };
    let changed = generated(Some(500)).into_bytes();
    let previous = Previous {
        config: &first.config,
        source: &first.source,
        layout: &layout,
    };
    let (mut full, mut copying) = (Vec::new(), Vec::new());
    let mut copied = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        std::hint::black_box(parse(&changed, &resolver).ok());
        let t1 = Instant::now();
        let input = changed.clone();
        let t2 = Instant::now();
        if let Ok((_, l)) = parse_reusing(input, &resolver, Some(previous)) {
            copied = l.copied_blocks();
        }
        let t3 = Instant::now();
        full.push(t1 - t0);
        copying.push(t3 - t2);
    }
    println!("one block changed: {copied} of {services} blocks copied");
    let (f, c) = (median(&mut full), median(&mut copying));
    summary("parse (full)", full);
    summary("parse (copying)", copying);
    println!("copying is {:.1}x faster", f / c);
}

fn median(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64()
}
