//! `ipvsadm -R`: commands from stdin, one per line.
//!
//! Lines are cut into tokens exactly as ipvsadm's `config_stream_read` does (including its
//! quirks), and each line runs as its own command line. The deliberate difference from ipvsadm:
//! consecutive table changes are applied with one [`Backend::apply_all`] call instead of one
//! request each. A batch is applied before anything that prints to stdout, reads the table,
//! exits, or waits for more input, and its errors are printed in line order, so the output,
//! the exit status and the resulting table are those of ipvsadm.

use std::io::Read;

use ipvs::{Backend, Change, Error};

use crate::args::{self, Command, Lookup, Stop};
use crate::exec::{self, Ctx, Flow};

/// `MAX_LINE_LENGTH`: the longest token `fscanf("%4096[^ \t\n\r]")` reads at once.
const MAX_TOKEN: usize = 4096;

/// One step of `config_stream_read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The tokens of one line (without the program name; `ipvsadm` tokens dropped). Empty for
    /// a line ipvsadm skips.
    Line(Vec<String>),
    /// The reader returned NULL: the restore ends.
    End,
    /// More input is needed to decide (never returned once `eof` is set).
    NeedMore,
}

fn is_delim(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Reads one record from `buf[*pos..]` like `config_stream_read`; `*pos` moves only when a
/// record is complete. `eof`: no more bytes will follow `buf`.
pub fn next_record(buf: &[u8], pos: &mut usize, eof: bool) -> Record {
    let mut i = *pos;
    let mut tokens: Vec<String> = Vec::new();
    let mut ntoken = 0;
    loop {
        if i >= buf.len() {
            if !eof {
                return Record::NeedMore;
            }
            // fscanf hit EOF before a conversion.
            *pos = i;
            return if ntoken == 0 {
                Record::End
            } else {
                Record::Line(tokens)
            };
        }
        if is_delim(buf[i]) {
            // "%[^ \t\n\r]" fails on white space: skip blanks up to a newline by hand.
            loop {
                if i >= buf.len() {
                    if !eof {
                        return Record::NeedMore;
                    }
                    // EOF here discards the tokens read so far and ends the restore.
                    *pos = i;
                    return Record::End;
                }
                let c = buf[i];
                i += 1;
                match c {
                    b'\n' => {
                        *pos = i;
                        return Record::Line(tokens);
                    }
                    b'\t' | b'\r' | b' ' => {}
                    _ => {
                        i -= 1;
                        break;
                    }
                }
            }
            continue;
        }
        let start = i;
        while i < buf.len() && !is_delim(buf[i]) && i - start < MAX_TOKEN {
            i += 1;
        }
        if i >= buf.len() && !eof {
            return Record::NeedMore;
        }
        let raw = &buf[start..i];
        // strdup stops at a NUL byte.
        let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
        let tail = if i < buf.len() && is_delim(buf[i]) {
            i += 1;
            Some(buf[i - 1])
        } else {
            None
        };
        if raw != b"ipvsadm" {
            ntoken += 1;
            tokens.push(String::from_utf8_lossy(raw).into_owned());
        }
        if tail == Some(b'\n') {
            *pos = i;
            return Record::Line(tokens);
        }
    }
}

enum Item {
    Change,
    Message(String),
}

/// Changes (and popt error messages) waiting to be applied / printed, in line order.
#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    changes: Vec<Change>,
}

impl Batch {
    fn push_change(&mut self, c: Change) {
        self.items.push(Item::Change);
        self.changes.push(c);
    }

    fn push_message(&mut self, m: String) {
        self.items.push(Item::Message(m));
    }

    /// Applies the batch and prints its errors; the result of its last line, if any.
    fn flush(&mut self, backend: &mut dyn Backend, ctx: &mut Ctx) -> Option<i32> {
        if self.items.is_empty() {
            return None;
        }
        let results = if self.changes.is_empty() {
            Vec::new()
        } else {
            backend.apply_all(&self.changes)
        };
        let mut results = results.into_iter();
        let mut changes = self.changes.drain(..);
        let mut last = 0;
        for item in self.items.drain(..) {
            last = match item {
                Item::Change => {
                    let change = changes.next();
                    let r = results.next().unwrap_or_else(|| {
                        let op = change
                            .as_ref()
                            .map_or(ipvs::Operation::Flush, exec::operation_of);
                        Err(Error::new(op, ipvs::error::EIO))
                    });
                    exec::report(&r, ctx)
                }
                Item::Message(m) => {
                    ctx.eprint(&m);
                    -1
                }
            };
        }
        Some(last)
    }
}

/// `restore_table`: runs every line of `input`; the flow of the whole `ipvsadm -R`.
pub fn run(
    prog: &str,
    input: &mut dyn Read,
    backend: &mut dyn Backend,
    lookup: &dyn Lookup,
    ctx: &mut Ctx,
) -> Flow {
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = 0;
    let mut eof = false;
    let mut batch = Batch::default();
    let mut result = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match next_record(&buf, &mut pos, eof) {
            Record::NeedMore => {
                // About to wait for input: apply what is pending first.
                if let Some(r) = batch.flush(backend, ctx) {
                    result = r;
                }
                buf.drain(..pos);
                pos = 0;
                match input.read(&mut chunk) {
                    Ok(0) => eof = true,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => eof = true,
                }
            }
            Record::End => break,
            Record::Line(tokens) => {
                if tokens.is_empty() {
                    continue;
                }
                let mut argv = Vec::with_capacity(tokens.len() + 1);
                argv.push(prog.to_string());
                argv.extend(tokens);
                match args::parse(&argv, lookup) {
                    Ok(Command::Apply(change)) => batch.push_change(change),
                    Err(Stop::Fail { message }) => batch.push_message(message),
                    other => {
                        // The pending lines' results are superseded by this line's.
                        let _ = batch.flush(backend, ctx);
                        let flow = match other {
                            // No restore inside a restore.
                            Ok(Command::Restore) => exec::stop(prog, args::tryhelp(prog), ctx),
                            Ok(cmd) => exec::execute(&cmd, backend, ctx),
                            Err(s) => exec::stop(prog, s, ctx),
                        };
                        match flow {
                            Flow::Done(r) => result = r,
                            Flow::Exit(c) => return Flow::Exit(c),
                        }
                    }
                }
            }
        }
    }
    if let Some(r) = batch.flush(backend, ctx) {
        result = r;
    }
    Flow::Done(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fwm, tcp, FakeKernel, FakeLookup, Session};
    use std::path::Path;

    fn records(input: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            match next_record(input.as_bytes(), &mut pos, true) {
                Record::Line(t) => out.push(t),
                Record::End => return out,
                Record::NeedMore => unreachable!(),
            }
        }
    }

    fn toks(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tokenizer_follows_config_stream_read() {
        assert_eq!(records(""), Vec::<Vec<String>>::new());
        assert_eq!(records("-C\n"), vec![toks(&["-C"])]);
        assert_eq!(records("-C"), vec![toks(&["-C"])]);
        assert_eq!(records("-C "), vec![toks(&["-C"])]);
        // Two blanks before EOF: the line is lost.
        assert_eq!(records("-C  "), Vec::<Vec<String>>::new());
        assert_eq!(records("-Z\n-C  "), vec![toks(&["-Z"])]);
        assert_eq!(
            records("\n  \t-A\t-t  1.2.3.4:80\r\n"),
            vec![toks(&[]), toks(&["-A", "-t", "1.2.3.4:80"])]
        );
        assert_eq!(
            records("ipvsadm -A -t 1.2.3.4:80 -s ipvsadm\nipvsadm\n"),
            vec![toks(&["-A", "-t", "1.2.3.4:80", "-s"]), toks(&[])]
        );
        assert_eq!(records("# a comment\n"), vec![toks(&["#", "a", "comment"])]);
        assert_eq!(records("-s \"rr\"\n"), vec![toks(&["-s", "\"rr\""])]);
        assert_eq!(records("ipvsadm"), Vec::<Vec<String>>::new());
        let long = "x".repeat(5000);
        assert_eq!(
            records(&format!("{long}\n")),
            vec![vec!["x".repeat(4096), "x".repeat(904)]]
        );
        assert_eq!(records("a\0b c\n"), vec![toks(&["a", "c"])]);
    }

    #[test]
    fn tokenizer_waits_for_more_input() {
        let mut pos = 0;
        assert_eq!(next_record(b"-A -t", &mut pos, false), Record::NeedMore);
        assert_eq!(pos, 0);
        assert_eq!(next_record(b"-C  ", &mut pos, false), Record::NeedMore);
        assert_eq!(
            next_record(b"-C\n-Z", &mut pos, false),
            Record::Line(toks(&["-C"]))
        );
        assert_eq!(pos, 3);
        assert_eq!(next_record(b"-C\n-Z", &mut pos, false), Record::NeedMore);
        assert_eq!(
            next_record(b"-C\n-Z", &mut pos, true),
            Record::Line(toks(&["-Z"]))
        );
        assert_eq!(next_record(b"-C\n-Z", &mut pos, true), Record::End);
    }

    #[test]
    fn lines_are_applied_in_one_batch() {
        let mut s = Session::default();
        let o = s.restore(
            "-A -t 10.0.0.1:80 -s rr\n\
             \n\
             ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.5 -m\n\
             \t -a -t 10.0.0.1:80 -r 10.0.0.6 -m -w 2\r\n\
             -A -f 1\n\
             --set 10 20 30",
        );
        assert_eq!((o.stdout.as_str(), o.stderr.as_str(), o.code), ("", "", 0));
        // The unterminated last line is only known complete at EOF: what came before is
        // applied before waiting for more input.
        assert_eq!(s.kernel.batches, vec![4, 1]);
        assert_eq!(s.kernel.services.len(), 2);
        assert_eq!(s.dests(&tcp("10.0.0.1", 80)).len(), 2);
        assert_eq!(s.kernel.services[1].0.id, fwm(1));
        assert_eq!(s.kernel.timeouts.udp, 30);
    }

    #[test]
    fn kernel_errors_print_and_continue() {
        let mut s = Session::default();
        let o = s.restore(
            "-A -t 10.0.0.1:80\n\
             -A -t 10.0.0.1:80\n\
             -a -t 10.0.0.9:80 -r 10.0.0.5\n\
             -A -t 10.0.0.1:80 -s\n\
             -A -t 10.0.0.2:80 -s \"rr\"\n\
             -A -t 10.0.0.3:80\n",
        );
        assert_eq!(
            o.stderr,
            "Service already exists\nService not defined\n-s: missing argument\nScheduler or persistence engine not found\n"
        );
        assert_eq!(o.code, 0);
        assert_eq!(s.kernel.services.len(), 2);
        assert_eq!(s.kernel.batches, vec![5]);
    }

    #[test]
    fn exit_status_is_the_last_lines() {
        let mut s = Session::default();
        let o = s.restore("-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n");
        assert_eq!(
            (o.stderr.as_str(), o.code),
            ("Service already exists\n", 255)
        );
        let o = s.restore("-A -t 10.0.0.1:80\n-A -t 10.0.0.2:80\n");
        assert_eq!((o.stderr.as_str(), o.code), ("Service already exists\n", 0));
        let o = s.restore("-A -t 10.0.0.3:80 -s\n");
        assert_eq!((o.stderr.as_str(), o.code), ("-s: missing argument\n", 255));
        let o = s.restore("-A -t 10.0.0.3:80 -s\n\n-Ln\n");
        assert_eq!(o.code, 0);
        let o = s.restore("");
        assert_eq!((o.stdout.as_str(), o.stderr.as_str(), o.code), ("", "", 0));
    }

    #[test]
    fn validation_errors_abort() {
        let mut s = Session::default();
        let o = s.restore(
            "-A -t 10.0.0.1:80\n\
             -A -t 10.0.0.1:80\n\
             -A -t 10.0.0.2\n\
             -A -t 10.0.0.3:80\n",
        );
        assert_eq!(
            (o.stderr.as_str(), o.code),
            (
                "Service already exists\nZero port specified for non-persistent service\n",
                2
            )
        );
        assert_eq!(s.kernel.services.len(), 1);
        assert_eq!(s.kernel.applied.len(), 2);
    }

    #[test]
    fn comments_and_nested_restore_abort() {
        let tryhelp = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n";
        let mut s = Session::default();
        let o = s.restore("-A -t 10.0.0.1:80\n# a comment\n-A -t 10.0.0.2:80\n");
        assert_eq!((o.stderr.as_str(), o.code), (tryhelp, 255));
        assert_eq!(s.kernel.services.len(), 1);
        let mut s = Session::default();
        let o = s.restore("-A -t 10.0.0.1:80\n-R\n-A -t 10.0.0.2:80\n");
        assert_eq!((o.stderr.as_str(), o.code), (tryhelp, 255));
        assert_eq!(s.kernel.services.len(), 1);
        let mut s = Session::default();
        let o = s.restore("-R -n\n");
        assert_eq!(
            (o.stderr.as_str(), o.code),
            ("Illegal 'numeric' option with the 'restore' command\n", 2)
        );
        // A trailing comment is an unexpected argument.
        let o = s.restore("-A -t 10.0.0.1:80 # web\n");
        assert_eq!((o.stderr.as_str(), o.code), ("unexpected argument #\n", 2));
    }

    #[test]
    fn listing_lines_see_earlier_lines() {
        let mut s = Session::default();
        let o = s.restore("-A -t 10.0.0.1:80\n-Ln\n-A -t 10.0.0.2:80\n-C\n-L -n\n");
        assert_eq!(o.code, 0);
        let first = o
            .stdout
            .find("TCP  10.0.0.1:80 wlc")
            .expect("first listing");
        assert!(!o.stdout[first..].contains("10.0.0.2"), "{o:?}");
        assert_eq!(o.stdout.matches("IP Virtual Server version").count(), 2);
        assert_eq!(s.kernel.batches, vec![1, 2]);
        assert!(s.kernel.services.is_empty());
    }

    #[test]
    fn help_and_version_lines_end_the_restore() {
        let mut s = Session::default();
        let o = s.restore("-A -t 10.0.0.1:80\n-v\n-A -t 10.0.0.2:80\n");
        assert_eq!(
            (o.stdout.as_str(), o.code),
            (
                "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n",
                0
            )
        );
        assert_eq!(s.kernel.services.len(), 1);
        let o = s.restore("-h\n");
        assert!(o.stdout.contains("Usage:\n  ipvsadm -A|E"));
        assert_eq!(o.code, 0);
    }

    #[test]
    fn missing_service_listing_exits_1() {
        let mut s = Session::default();
        let o = s.restore("-A -t 10.0.0.1:80\n-L -t 10.0.0.2:80\n-A -t 10.0.0.3:80\n");
        assert_eq!((o.stderr.as_str(), o.code), ("No such service\n", 1));
        assert_eq!(s.kernel.services.len(), 1);
    }

    /// A reader handing out one byte per call (a terminal typing slowly).
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn slow_input_gives_the_same_result() {
        let input = "-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n  -a -t 10.0.0.1:80 -r 10.0.0.5\n-A -t 10.0.0.2:80 -s\n-Ln\n-C ";
        let mut fast = FakeKernel::default();
        let mut slow = FakeKernel::default();
        let mut outs = Vec::new();
        for (k, trickle) in [(&mut fast, false), (&mut slow, true)] {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut ctx = Ctx {
                out: &mut out,
                err: &mut err,
                conn_path: Path::new("/nonexistent"),
            };
            let flow = if trickle {
                run(
                    "ipvsadm",
                    &mut Trickle(input.as_bytes()),
                    k,
                    &FakeLookup::standard(),
                    &mut ctx,
                )
            } else {
                run(
                    "ipvsadm",
                    &mut input.as_bytes(),
                    k,
                    &FakeLookup::standard(),
                    &mut ctx,
                )
            };
            outs.push((flow, out, err));
        }
        assert_eq!(outs[0], outs[1]);
        assert_eq!(outs[0].0, Flow::Done(0));
        assert_eq!(fast.services, slow.services);
        assert!(fast.services.is_empty());
        // Slow input is applied line by line; fast input in batches.
        assert_eq!(fast.batches, vec![3, 1]);
        assert!(slow.batches.iter().all(|&n| n == 1));
    }
}
