#!/usr/bin/env python3
"""Differential tests of an ipvsadm re-implementation against Debian's ipvsadm, on a real kernel.

Runs INSIDE the VM booted by integration-tests/vm/run (it changes the kernel's IPVS table and
creates network interfaces, so it refuses to run elsewhere). Standard library only.

    integration-tests/vm/run integration-tests/vm/differential.py [OPTIONS] [CASEFILE...]

Every case of the case files (default: integration-tests/vm/cases/*.cases) runs twice on the same
kernel, from the same clean state: once with the reference binary (/usr/sbin/ipvsadm, or
$REFERENCE) and once with the candidate ($CANDIDATE, default <repo>/target/release/ipvsadm).
Each command's stdout, stderr and exit status must be identical byte for byte. See
docs/vm-harness.md for the case format.
"""

import argparse
import datetime
import difflib
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_REFERENCE = "/usr/sbin/ipvsadm"
DEFAULT_CANDIDATE = os.path.join(REPO, "target", "release", "ipvsadm")
DEFAULT_CASES = os.path.join(REPO, "integration-tests", "vm", "cases")
DEFAULT_JSON = os.path.join(REPO, "target", "vm-out", "differential.json")
SCRATCH = "/tmp/ipvsadm-diff"  # bin dirs and the per-run working directory live here
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KERNEL_DEFAULT_TIMEOUTS = ("900", "120", "300")  # tcp tcpfin udp; --set 0 0 0 would keep values
COMMAND_TIMEOUT = 60  # seconds per command; emulated CPUs are slow, but not that slow
DIFF_LINES_PER_COMMAND = 40
DIFF_LINES_PER_CASE = 120

DIRECTIVE = re.compile(r"^##\s*([A-Za-z-]+):\s?(.*)$")
HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


class CaseFileError(Exception):
    pass


class HarnessError(Exception):
    pass


class Command:
    def __init__(self, text, binary, file, line):
        self.text = text  # shell text for /bin/sh -c; may span lines (here-documents)
        self.binary = binary  # "run" (the binary under test), "REF" or "CAND"
        self.file = file
        self.line = line

    def label(self):
        first = self.text.split("\n", 1)[0]
        return first if self.binary == "run" else f"{self.binary}: {first}"


class Case:
    def __init__(self, name, file, line):
        self.name = name
        self.file = file
        self.line = line
        self.setup = []
        self.teardown = []
        self.commands = []

    def where(self):
        return f"{os.path.relpath(self.file, REPO)}:{self.line}"


def parse_case_file(path):
    """Parse one .cases file into a list of Case."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    cases = []
    case = None
    i = 0

    def fail(lineno, msg):
        raise CaseFileError(f"{os.path.relpath(path, REPO)}:{lineno}: {msg}")

    while i < len(lines):
        lineno = i + 1
        line = lines[i]
        i += 1
        stripped = line.strip()
        m = DIRECTIVE.match(stripped)
        if m:
            key, value = m.group(1).lower(), m.group(2).strip()
            if key == "case":
                if not value:
                    fail(lineno, "case without a name")
                case = Case(value, path, lineno)
                cases.append(case)
            elif key in ("setup", "teardown"):
                if case is None:
                    fail(lineno, f"'## {key}:' before the first '## case:'")
                if not value:
                    fail(lineno, f"empty '## {key}:'")
                getattr(case, key).append(value)
            else:
                fail(lineno, f"unknown directive '## {key}:' (known: case, setup, teardown)")
            continue
        if stripped == "" or stripped.startswith("#"):
            continue  # blank line or comment
        if case is None:
            fail(lineno, "command before the first '## case:'")
        binary = "run"
        text = stripped
        for prefix in ("REF:", "CAND:"):
            if text.startswith(prefix):
                binary = prefix[:-1]
                text = text[len(prefix):].strip()
        if not text:
            fail(lineno, "empty command")
        # Backslash-newline continuations: keep them, /bin/sh joins the lines.
        while text.endswith("\\") and i < len(lines):
            text += "\n" + lines[i]
            i += 1
        # Here-documents: the body (kept verbatim, '#' lines included) up to each delimiter.
        for hd in HEREDOC.finditer(text):
            strip_tabs, delim = hd.group(1) == "-", hd.group(3)
            while True:
                if i >= len(lines):
                    fail(lineno, f"here-document not closed by a line '{delim}'")
                body = lines[i]
                i += 1
                text += "\n" + body
                if (body.lstrip("\t") if strip_tabs else body) == delim:
                    break
        case.commands.append(Command(text, binary, path, lineno))
    for c in cases:
        if not c.commands:
            raise CaseFileError(f"{c.where()}: case '{c.name}' has no command")
    return cases


class Runner:
    def __init__(self, reference, candidate):
        self.reference = reference
        self.candidate = candidate
        shutil.rmtree(SCRATCH, ignore_errors=True)
        self.bindir = {}
        for kind, target in (("REF", reference), ("CAND", candidate)):
            d = os.path.join(SCRATCH, kind.lower())
            os.makedirs(d)
            # Same name in both directories, run by name through PATH: argv[0] is "ipvsadm".
            os.symlink(target, os.path.join(d, "ipvsadm"))
            self.bindir[kind] = d
        self.workdir = os.path.join(SCRATCH, "work")
        # Paths that could leak into outputs and differ between the two runs.
        self.replacements = []
        for kind, target in (("REF", reference), ("CAND", candidate)):
            self.replacements.append((self.bindir[kind].encode(), b"<BINDIR>"))
            self.replacements.append((os.path.realpath(target).encode(), b"<IPVSADM>"))
        self.replacements.sort(key=lambda r: -len(r[0]))

    def env(self, kind):
        return {"PATH": self.bindir[kind] + ":" + SYSTEM_PATH, "LC_ALL": "C", "HOME": "/root"}

    def normalize(self, data):
        for old, new in self.replacements:
            data = data.replace(old, new)
        return data

    def shell(self, text, kind):
        """Run shell text with `ipvsadm` resolving to the `kind` binary; return the result triple."""
        # A plain command line (words only, no shell syntax) is run directly: under emulation every
        # process costs ~80 ms, so skipping /bin/sh nearly halves a case's time. Anything else goes
        # through the shell. The outputs are the same either way.
        argv = plain_argv(text)
        executable = None
        if argv is not None and argv[0] == "ipvsadm":
            # argv[0] stays "ipvsadm" (it is printed in messages), as when sh finds it in PATH.
            executable = os.path.join(self.bindir[kind], "ipvsadm")
        proc = subprocess.Popen(
            argv if argv is not None else ["/bin/sh", "-c", text], executable=executable,
            cwd=self.workdir, env=self.env(kind),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        try:
            out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
            status = proc.returncode
            if status < 0:
                status = f"killed by signal {-status}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            status = f"timeout after {COMMAND_TIMEOUT}s"
        return {"stdout": self.normalize(out), "stderr": self.normalize(err), "status": status}

    def reset(self):
        """Clean kernel state with the reference binary: no daemons, no services, default timeouts.

        One `ipvsadm -R` process does it all (a restore goes on after kernel errors such as
        "No daemon is running"); then the table is checked empty, in the same process count as
        one command."""
        script = ("--stop-daemon master\n--stop-daemon backup\n-C\n--set "
                  + " ".join(KERNEL_DEFAULT_TIMEOUTS) + "\n-Sn\n-L --timeout\n")
        r = subprocess.run([self.reference, "-R"], env=self.env("REF"), input=script.encode(),
                           capture_output=True, timeout=COMMAND_TIMEOUT)
        expected = ("Timeout (tcp tcpfin udp): " + " ".join(KERNEL_DEFAULT_TIMEOUTS) + "\n").encode()
        if r.stdout != expected:
            raise HarnessError(f"reset failed ({r.returncode}): stdout {r.stdout!r}, "
                               f"stderr {r.stderr.decode(errors='replace').strip()}")

    def run_case(self, case, kind):
        """One run of a case with `kind` ("REF" or "CAND") as the binary under test."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        os.makedirs(self.workdir)
        self.reset()
        run = {"setup": [], "commands": [], "teardown": [], "error": None}
        for text in case.setup:
            r = self.shell(text, "REF")
            run["setup"].append(r)
            if r["status"] != 0:
                run["error"] = f"setup `{text}` failed: {r['status']}: {decode(r['stderr']).strip()}"
                break
        if run["error"] is None:
            for cmd in case.commands:
                run["commands"].append(self.shell(cmd.text, kind if cmd.binary == "run" else cmd.binary))
        for text in case.teardown:  # always, even after a failed setup
            r = self.shell(text, "REF")
            run["teardown"].append(r)
            if r["status"] != 0 and run["error"] is None:
                run["error"] = f"teardown `{text}` failed: {r['status']}: {decode(r['stderr']).strip()}"
        return run


PLAIN_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./\[\]-]+")


def plain_argv(text):
    """The words of `text` if it is a plain command line (no quotes, redirections, pipes,
    variables, globs or here-documents), else None."""
    words = text.split()
    if not words or any(not PLAIN_WORD.fullmatch(w) for w in words):
        return None
    if "\n" in text or "\t" in text:
        return None
    return words


def decode(data):
    return data.decode("utf-8", errors="backslashreplace")


def jsonable(triple):
    if triple is None:
        return None
    return {"stdout": decode(triple["stdout"]), "stderr": decode(triple["stderr"]),
            "status": triple["status"]}


def visible(data):
    """A bytes line as text, with control characters escaped (trailing blanks show before '$')."""
    text = decode(data)
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def render(triple):
    """A result triple as lines: every output line ends with '$' so that trailing blanks show."""
    lines = []
    for name in ("stdout", "stderr"):
        data = triple[name]
        if not data:
            lines.append(f"{name}: (empty)")
            continue
        parts = data.split(b"\n")
        final_newline = parts[-1] == b""
        if final_newline:
            parts.pop()
        for n, part in enumerate(parts):
            end = "$" if final_newline or n < len(parts) - 1 else "  [no newline at end]"
            lines.append(f"{name}: {visible(part)}{end}")
    lines.append(f"exit: {triple['status']}")
    return lines


def transcript(cmds, results, out):
    for cmd, r in zip(cmds, results):
        shown = cmd.text.split("\n")
        out.write(f"$ {cmd.binary + ': ' if cmd.binary != 'run' else ''}{shown[0]}\n")
        for more in shown[1:]:
            out.write(f"> {more}\n")
        for line in render(r):
            if line.endswith(": (empty)"):
                continue
            out.write(f"  {line}\n")


def main():
    ap = argparse.ArgumentParser(
        description="Differential ipvsadm tests: reference vs candidate on a real IPVS kernel.")
    ap.add_argument("casefiles", nargs="*", help="case files (default: cases/*.cases)")
    ap.add_argument("--reference-only", action="store_true",
                    help="run only the reference binary and print what it does")
    ap.add_argument("--filter", action="append", default=[], metavar="SUBSTRING",
                    help="run only cases whose name contains SUBSTRING (case-insensitive; repeatable)")
    ap.add_argument("--list", action="store_true", help="list the selected cases and exit")
    ap.add_argument("--verbose", "-v", action="store_true",
                    help="print every command with the reference's output")
    ap.add_argument("--json", default=DEFAULT_JSON, help=f"report path (default {DEFAULT_JSON})")
    args = ap.parse_args()

    files = args.casefiles or sorted(glob.glob(os.path.join(DEFAULT_CASES, "*.cases")))
    cases = []
    try:
        for f in files:
            cases.extend(parse_case_file(os.path.abspath(f)))
    except (OSError, CaseFileError) as e:
        print(f"differential: {e}", file=sys.stderr)
        return 2
    names = {}
    for c in cases:
        if c.name in names:
            print(f"differential: {c.where()}: duplicate case name (first at {names[c.name]})",
                  file=sys.stderr)
            return 2
        names[c.name] = c.where()
    if args.filter:
        cases = [c for c in cases if any(s.lower() in c.name.lower() for s in args.filter)]
    if args.list:
        for c in cases:
            print(f"{c.where()}: {c.name}")
        return 0

    if "virtme_" not in open("/proc/cmdline").read() and not os.environ.get("IPVS_DIFF_ANYWHERE"):
        print("differential: refusing to run outside the VM (it rewrites the IPVS table and adds "
              "interfaces); use integration-tests/vm/run", file=sys.stderr)
        return 2
    reference = os.environ.get("REFERENCE", DEFAULT_REFERENCE)
    candidate = reference if args.reference_only else os.environ.get("CANDIDATE", DEFAULT_CANDIDATE)
    for what, path in (("reference", reference), ("candidate", candidate)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            hint = " (build it on the host: cargo build --release)" if what == "candidate" else ""
            print(f"differential: {what} binary {path} not found or not executable{hint}",
                  file=sys.stderr)
            return 2
    if not cases:
        print("differential: no case selected", file=sys.stderr)
        return 2
    mode = "reference-only" if args.reference_only else "differential"
    runner = Runner(reference, candidate)

    print(f"differential: {mode}, {len(cases)} cases, kernel {os.uname().release}")
    print(f"  reference {reference}")
    if not args.reference_only:
        same = os.path.realpath(candidate) == os.path.realpath(reference)
        print(f"  candidate {candidate}{' (the reference itself: a harness self-check)' if same else ''}")
    sys.stdout.flush()

    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    report = []
    failures = []  # (case, ref_run, cand_run, entry)
    passed = failed = 0
    for case in cases:
        tc = time.monotonic()
        try:
            ref_run = runner.run_case(case, "REF")
            cand_run = None if args.reference_only else runner.run_case(case, "CAND")
        except HarnessError as e:
            print(f"differential: {case.where()}: {e}", file=sys.stderr)
            return 2
        entry = {"name": case.name, "where": case.where(), "status": "pass", "error": None,
                 "duration_s": None, "setup": case.setup, "teardown": case.teardown, "commands": []}
        errors = [f"{kind} run: {r['error']}" for kind, r in (("reference", ref_run), ("candidate", cand_run))
                  if r is not None and r["error"]]
        mismatches = 0
        for n, cmd in enumerate(case.commands):
            ref = ref_run["commands"][n] if n < len(ref_run["commands"]) else None
            cand = None
            match = None
            if cand_run is not None:
                cand = cand_run["commands"][n] if n < len(cand_run["commands"]) else None
                match = ref is not None and cand is not None and ref == cand
                if not match:
                    mismatches += 1
            entry["commands"].append({"line": cmd.line, "command": cmd.text, "binary": cmd.binary,
                                      "reference": jsonable(ref), "candidate": jsonable(cand),
                                      "match": match})
        timeouts = [c["command"] for c in entry["commands"]
                    for r in (c["reference"], c["candidate"])
                    if r is not None and isinstance(r["status"], str) and r["status"].startswith("timeout")]
        if errors or mismatches or (args.reference_only and timeouts):
            entry["status"] = "fail"
            entry["error"] = "; ".join(errors) or None
            failed += 1
            failures.append((case, ref_run, cand_run, entry))
        else:
            passed += 1
        entry["duration_s"] = round(time.monotonic() - tc, 3)
        report.append(entry)

        if args.reference_only or args.verbose:
            print(f"\n=== {case.name} ({case.where()}){'' if entry['status'] == 'pass' else '  FAIL'}")
            if case.setup:
                print(f"  [setup: {'; '.join(case.setup)}]")
            if entry["error"]:
                print(f"  ERROR: {entry['error']}")
            transcript(case.commands, ref_run["commands"], sys.stdout)
        else:
            word = "PASS" if entry["status"] == "pass" else "FAIL"
            print(f"{word}  {case.name}  ({case.where()}, {entry['duration_s']:.1f}s)")
        sys.stdout.flush()
    duration = time.monotonic() - t0

    if failures and not args.reference_only:
        print("\n" + "=" * 30 + " failures " + "=" * 30)
        for case, ref_run, cand_run, entry in failures:
            print(f"\n--- FAIL: {case.name} ({case.where()})")
            if entry["error"]:
                print(f"    ERROR: {entry['error']}")
            budget = DIFF_LINES_PER_CASE
            for n, cmd in enumerate(case.commands):
                if entry["commands"][n]["match"]:
                    continue
                print(f"  $ {cmd.label()}   ({os.path.relpath(cmd.file, REPO)}:{cmd.line})")
                ref = ref_run["commands"][n] if n < len(ref_run["commands"]) else None
                cand = cand_run["commands"][n] if n < len(cand_run["commands"]) else None
                if ref is None or cand is None:
                    print("    (not run: setup failed)")
                    continue
                diff = list(difflib.unified_diff(render(ref), render(cand), "expected (reference)",
                                                 "got (candidate)", lineterm="", n=2))
                limit = min(DIFF_LINES_PER_COMMAND, budget)
                for line in diff[:limit]:
                    print(f"    {line}")
                if len(diff) > limit:
                    print(f"    ... {len(diff) - limit} more diff lines; see {args.json}")
                budget -= min(len(diff), limit)
                if budget <= 0:
                    print(f"    ... further commands of this case left out; see {args.json}")
                    break

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"mode": mode, "reference": reference,
                   "candidate": None if args.reference_only else candidate,
                   "kernel": os.uname().release, "started": started.isoformat(timespec="seconds"),
                   "duration_s": round(duration, 1), "passed": passed, "failed": failed,
                   "cases": report}, f, indent=1)
        f.write("\n")
    shutil.rmtree(SCRATCH, ignore_errors=True)
    print(f"\nreport: {os.path.relpath(os.path.abspath(args.json), REPO)}; {duration:.1f}s for "
          f"{len(cases)} cases")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
