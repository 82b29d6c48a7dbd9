//! Reading a real server's load average (Piranha's `getRemoteLoad`, spec §4.6).
//!
//! `-U none` reads nothing. `-U rsh` / `-U ssh` run `CMD RIP uptime`; any other command runs as
//! `CMD RIP` (`rup RIP`, `ruptime RIP`, or a program of the operator's). The command gets one
//! interval to answer (external.rs). The 1-minute load average is taken from its output by
//! [`parse_load`].

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// The command to run for `-U CMD`, or None for `none`. `rsh` and `ssh` (also as the last part
/// of a path, e.g. `/usr/bin/ssh`: an extension) get `uptime` appended.
pub fn load_argv(cmd: &OsStr, host: &str) -> Option<Vec<OsString>> {
    let b = cmd.as_bytes();
    if b == b"none" {
        return None;
    }
    let base = b.rsplit(|&c| c == b'/').next().unwrap_or(b);
    let mut argv = vec![cmd.to_owned(), OsString::from(host)];
    if base == b"rsh" || base == b"ssh" {
        argv.push(OsString::from("uptime"));
    }
    Some(argv)
}

/// The 1-minute load average in the output of `uptime`, `rup` or `ruptime`, as the C `float`
/// Piranha kept it in.
///
/// Accepted: `load average: 0.15, 0.20, 0.18` (uptime, rup), `load averages: 0.15 0.20 0.18`
/// (BSD uptime), `load 0.15, 0.20, 0.18` (ruptime, Piranha's #550126 fix). The number may use a
/// decimal comma (`0,15, 0,20, 0,18`: uptime in some locales). Each occurrence of `load` is
/// tried in turn, so a host name containing "load" does not confuse it (Piranha took the first
/// `load`, then the first `:` after it, which for `loadbalancer1 up 2:03, … load average: …`
/// was the clock).
pub fn parse_load(out: &[u8]) -> Option<f32> {
    let mut from = 0;
    while let Some(k) = find(&out[from..], b"load") {
        let at = from + k + 4;
        if let Some(v) = number_after_load(&out[at..]) {
            return Some(v);
        }
        from = at;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn number_after_load(s: &[u8]) -> Option<f32> {
    let mut i = 0;
    // " average", " averages", optionally followed by ':', or just ':' / blanks.
    for word in [&b" averages"[..], &b" average"[..]] {
        if s.starts_with(word) {
            i = word.len();
            break;
        }
    }
    if s.get(i) == Some(&b':') {
        i += 1;
    }
    let blanks = s[i..]
        .iter()
        .take_while(|&&c| c == b' ' || c == b'\t')
        .count();
    if blanks == 0 && i == 0 {
        // "loads", "loadbalancer": not the word "load".
        return None;
    }
    i += blanks;
    let start = i;
    let mut text = String::new();
    while let Some(&c) = s.get(i) {
        if c.is_ascii_digit() {
            text.push(c as char);
        } else if c == b'.' {
            text.push('.');
        } else if c == b',' && s.get(i + 1).is_some_and(u8::is_ascii_digit) {
            // A decimal comma: "0,15, 0,20" (the separator is followed by a blank).
            text.push('.');
        } else {
            break;
        }
        i += 1;
    }
    if i == start || !text.bytes().next().is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    // Piranha: the number must be followed by ',' or ' ' (we also take the end of a line).
    match s.get(i) {
        Some(b',' | b' ' | b'\n' | b'\r' | b'\t') | None => {}
        _ => return None,
    }
    // strtod of the longest valid prefix ("1.2.3" reads 1.2), then stored in a float.
    let mut end = text.len();
    while end > 0 {
        if let Ok(v) = text[..end].parse::<f64>() {
            return Some(v as f32);
        }
        end -= 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_for_each_command() {
        let w = |v: Option<Vec<OsString>>| {
            v.map(|v| {
                v.iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(load_argv(OsStr::new("none"), "10.0.0.2"), None);
        assert_eq!(
            w(load_argv(OsStr::new("ssh"), "10.0.0.2")),
            Some(vec!["ssh".into(), "10.0.0.2".into(), "uptime".into()])
        );
        assert_eq!(
            w(load_argv(OsStr::new("rsh"), "10.0.0.2")),
            Some(vec!["rsh".into(), "10.0.0.2".into(), "uptime".into()])
        );
        assert_eq!(
            w(load_argv(OsStr::new("/usr/bin/ssh"), "h")),
            Some(vec!["/usr/bin/ssh".into(), "h".into(), "uptime".into()])
        );
        assert_eq!(
            w(load_argv(OsStr::new("rup"), "10.0.0.2")),
            Some(vec!["rup".into(), "10.0.0.2".into()])
        );
        assert_eq!(
            w(load_argv(OsStr::new("ruptime"), "10.0.0.2")),
            Some(vec!["ruptime".into(), "10.0.0.2".into()])
        );
        assert_eq!(
            w(load_argv(OsStr::new("/opt/getload"), "h")),
            Some(vec!["/opt/getload".into(), "h".into()])
        );
    }

    #[test]
    fn outputs() {
        let cases: &[(&str, Option<f32>)] = &[
            (
                " 10:01:02 up 3 days,  2:03,  2 users,  load average: 0.15, 0.20, 0.18\n",
                Some(0.15),
            ),
            (
                "web1          up  2 days,  3:04,  load average: 1.50, 1.20, 0.90\n",
                Some(1.5),
            ),
            (
                "web1          up   2+03:04,     3 users,  load 0.15, 0.20, 0.18\n",
                Some(0.15),
            ),
            (
                "10:01  up 3 days, load averages: 2.31 1.98 1.80\n",
                Some(2.31),
            ),
            (
                " 10:01:02 up 1 min,  load average: 0,15, 0,20, 0,18\n",
                Some(0.15),
            ),
            (
                "loadbalancer1 up 2:03, 1 user, load average: 3.00, 2.00, 1.00",
                Some(3.0),
            ),
            ("load average: 12.5", Some(12.5)),
            ("load average: 1.2.3, 1, 1", Some(1.2)),
            ("load average: 1.00, 1.00, 1.00", Some(1.0)),
            ("nothing here", None),
            ("load average: n/a", None),
            ("load average: 0.15x", None),
            ("loads 1.0", None),
            ("", None),
        ];
        for (out, want) in cases {
            assert_eq!(parse_load(out.as_bytes()), *want, "{out:?}");
        }
        // The value is a C float: 0.15 is 0.150000006.
        assert_eq!(parse_load(b"load average: 0.15,"), Some(0.15f32));
    }
}
