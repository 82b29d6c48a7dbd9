#!/usr/bin/env python3
"""lvsd benchmark, run INSIDE the real-kernel VM:

    VM_MEMORY=6G VM_ENV="SERVICES PATTERN" SERVICES=1000 PATTERN=sequential \\
        integration-tests/vm/run integration-tests/bench/lvsd-bench.py

A config of SERVICES virtual servers x 4 real servers (nannies: the real nanny, checking real
servers that do not exist: the VM has no route to them, so every check fails at once and no real
server ever enters the table).

1. Piranha's way: one `/usr/sbin/ipvsadm -A -t VIP:80 -s wlc` process per service (what Piranha's
   lvsd ran, fork + exec each), timed.
2. lvsd start: time from launching lvsd until it says every virtual service is in the kernel
   (and `ipvsadm -Ln` agrees), beside step 1, as a ratio. Target: under 1 s.
3. Reload with one virtual server changed (its scheduler): time from SIGHUP until lvsd says the
   reload is done, as this script sees it and as lvsd measures it (from the signal's arrival,
   taken in its handler, and the reload itself); the kernel requests lvsd made; `ipvsadm -Ln` before/after differs in that one
   service's line only. Target: under 100 ms, only that service touched. Then the same with one
   virtual server added.
4. A drift check of the whole table on SIGUSR2 (one service deleted by hand first).
5. SIGTERM: time until lvsd has exited with every service removed.

LVSD_ARGS (passed with VM_ENV) adds options to lvsd's command line.

Python standard library only. Prints a table, also saved to target/vm-out/bench-lvsd-PATTERN.txt.
"""
import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LVSD = os.environ.get("LVSD", os.path.join(REPO, "target/release/lvsd"))
NANNY = os.environ.get("NANNY", os.path.join(REPO, "target/release/nanny"))
IPVSADM = "/usr/sbin/ipvsadm"
N = int(os.environ.get("SERVICES", "1000"))
OUT = os.path.join(REPO, "target/vm-out")
WORK = "/tmp/lvsd-bench"
# The config lives on a plain tmpfs when the VM has one: /tmp in the VM is an overlay over the
# host's file system (9p), where a path lookup can wait on the host; a router's lvs.cf is on a
# local disk. (The nanny stays in WORK: /dev/shm may be mounted noexec.)
CFG_DIR = "/dev/shm/lvsd-bench" if os.path.isdir("/dev/shm") else WORK
CFG = os.path.join(CFG_DIR, "lvs.cf")


def progress(msg):
    print(f"lvsd-bench: {msg}", file=sys.stderr, flush=True)


PATTERN = os.environ.get("PATTERN", "sequential")
QUIET_MAX = int(os.environ.get("QUIET_MAX", "120"))


def cpu_ns(pid):
    """Time the process has spent on a CPU (all threads), from /proc/PID/schedstat."""
    return schedstat(pid)[0]


def schedstat(pid):
    """(ns on a CPU, ns runnable but waiting for a CPU) from /proc/PID/schedstat."""
    try:
        w = open(f"/proc/{pid}/schedstat").read().split()
        return int(w[0]), int(w[1])
    except (OSError, ValueError, IndexError):
        return 0, 0


def who_runs(samples=5):
    """Which programs the runnable (R) and uninterruptible (D) tasks belong to, over a few
    samples 0.2 s apart: what keeps the VM's run queue long."""
    seen = {}
    for _ in range(samples):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                stat = open(f"/proc/{pid}/stat").read()
            except OSError:
                continue
            comm = stat[stat.find("(") + 1:stat.rfind(")")]
            state = stat[stat.rfind(")") + 2:][:1]
            if state in "RD":
                seen[(comm, state)] = seen.get((comm, state), 0) + 1
        time.sleep(0.2)
    top = sorted(seen.items(), key=lambda x: -x[1])[:6]
    return ("tasks R/D per sample: " + ", ".join(f"{c} {s} {n / samples:.1f}" for (c, s), n in top)
            if top else "no task R or D")


def cpu_by_program(window=5.0):
    """CPU time (from /proc/PID/schedstat) and voluntary wake-ups per second of each program
    over `window` seconds: who keeps the VM's vCPUs busy, and how often the nannies wake."""
    def snapshot():
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                comm = open(f"/proc/{pid}/comm").read().strip()
                ns = int(open(f"/proc/{pid}/schedstat").read().split()[0])
                status = open(f"/proc/{pid}/status").read()
                woke = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
            except (OSError, ValueError, IndexError):
                continue
            out[pid] = (comm, ns, woke)
        return out
    a = snapshot()
    t0 = time.monotonic()
    time.sleep(window)
    b = snapshot()
    span = time.monotonic() - t0
    use = {}
    for pid, (comm, ns, woke) in b.items():
        if pid in a:
            cpu, w = use.get(comm, (0, 0))
            use[comm] = (cpu + ns - a[pid][1], w + woke - a[pid][2])
    top = sorted(use.items(), key=lambda x: -x[1][0])[:4]
    return "CPU per second: " + ", ".join(
        f"{c} {cpu / span / 1e6:.0f} ms ({w / span:.0f} wake-ups)" for c, (cpu, w) in top)


def vip(i):
    """The virtual address of service i. PATTERN=sequential (default): 10.0.0.1, 10.0.0.2, ... as
    addresses are handed out in practice. PATTERN=one-bucket: 10.a.b.1. The kernel hashes an IPv4
    service by address XOR port into 256 buckets, so that table lands in one bucket and each
    service added walks all those added before it (kernel time, the same for any tool)."""
    if PATTERN == "one-bucket":
        return f"10.{i // 250}.{i % 250 + 1}.1"
    j = i + 1
    return f"10.{(j >> 16) & 255}.{(j >> 8) & 255}.{j & 255}"


def config(changed=None, added=False):
    out = ["network = nat", "hard_shutdown = 1"]
    for i in range(N + (1 if added else 0)):
        sched = "rr" if i == changed else "wlc"
        out.append(f"virtual vs{i} {{\n     active = 1\n     address = {vip(i)} eth0:1\n     port = 80\n"
                   f"     scheduler = {sched}\n     client_monitor = {NANNY}")
        for r in range(1, 5):
            out.append(f"     server rs{r} {{\n         address = 192.168.{r}.{i % 250 + 1}\n"
                       f"         active = 1\n         weight = {r}\n     }}")
        out.append("}")
    return "\n".join(out) + "\n"


def write(text):
    with open(CFG + ".tmp", "w") as f:
        f.write(text)
    os.rename(CFG + ".tmp", CFG)


def listing():
    return subprocess.run([IPVSADM, "-Ln"], capture_output=True, text=True, check=True).stdout


def services_in_kernel():
    return sum(1 for l in listing().splitlines() if l.startswith(("TCP", "UDP", "FWM")))


class Log:
    """lvsd's stdout, read as it comes by a thread (so lvsd never blocks on a full pipe while
    the benchmark is busy elsewhere), each line with the time it arrived. Waiting sleeps on a
    condition and looks only at lines not seen yet: the benchmark must not compete with lvsd
    for the VM's two vCPUs (copying 20,000 lines every 2 ms did, in runs 1-7)."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = []
        self.cond = threading.Condition()
        self.counted = {}
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            now = time.monotonic()
            with self.cond:
                self.lines.append((now, raw.rstrip(b"\n").decode(errors="replace")))
                self.cond.notify_all()

    def snapshot(self):
        with self.cond:
            return list(self.lines)

    def mark(self):
        with self.cond:
            return len(self.lines)

    def wait(self, pattern, start=0, timeout=300):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    if rx.search(self.lines[i][1]):
                        return self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no line matching {pattern!r} in {timeout}s")
                self.cond.wait(left)

    def count(self, text):
        """Lines containing `text` so far (counted incrementally)."""
        with self.cond:
            seen, n = self.counted.get(text, (0, 0))
            n += sum(1 for _, l in self.lines[seen:] if text in l)
            self.counted[text] = (len(self.lines), n)
            return n


def save(log):
    with open(os.path.join(OUT, f"bench-lvsd-{PATTERN}.log"), "w") as f:
        f.write("\n".join(l for _, l in log.snapshot()) + "\n")


def main():
    if "virtme_" not in open("/proc/cmdline").read():
        print("lvsd-bench: not inside the VM; refusing to run", file=sys.stderr)
        return 2
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(CFG_DIR, exist_ok=True)
    # One pipe per nanny in lvsd: as an operator would (LimitNOFILE=, ulimit -n), give it room.
    import resource
    want = 8 * N + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError) as e:
        progress(f"cannot raise the open-file limit from {soft}/{hard}: {e}")
    progress(f"open-file limit {resource.getrlimit(resource.RLIMIT_NOFILE)}")
    # The VM's root file system is the host's, over 9p: every process's open program and
    # library files are open on the host too (in QEMU), and a few thousand nannies exhaust
    # QEMU's descriptors (EMFILE in the guest, an artefact of the harness). So the nanny binary
    # runs from the VM's tmpfs and its libraries are copied up into the VM's overlays (touch).
    global NANNY
    local = os.path.join(WORK, "nanny")
    shutil.copy(NANNY, local)
    NANNY = local
    libs = re.findall(r"(/\S+) \(0x", subprocess.run(["ldd", NANNY], capture_output=True,
                                                    text=True).stdout)
    for lib in libs:
        os.utime(os.path.realpath(lib))
    progress(f"nanny copied to {NANNY}; libraries copied up: {' '.join(libs)}")
    rows = []
    ok = True
    subprocess.run([IPVSADM, "-C"], check=True)

    # 1. Piranha's way.
    progress(f"Piranha's way: {N} ipvsadm -A processes")
    t0 = time.monotonic()
    for i in range(N):
        subprocess.run([IPVSADM, "-A", "-t", f"{vip(i)}:80", "-s", "wlc"], check=True)
    piranha = time.monotonic() - t0
    assert services_in_kernel() == N
    subprocess.run([IPVSADM, "-C"], check=True)

    # 2. lvsd start.
    progress(f"Piranha's way took {piranha:.1f} s; starting lvsd")
    write(config())
    t0 = time.monotonic()
    proc = subprocess.Popen([LVSD, "-n", "-c", CFG, "--repair-interval", "0",
                             *os.environ.get("LVSD_ARGS", "").split()],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = Log(proc)
    t_in, line = log.wait(r"virtual services in the kernel")
    start = t_in - t0
    self_ms = re.search(r"([\d.]+) ms after start", line).group(1)
    kernel_ms = re.search(r"changes in ([\d.]+) ms", line)
    in_kernel = services_in_kernel()
    ok &= in_kernel == N and start < 1.0
    rows.append(("start: all virtual services in the kernel", f"{piranha * 1000:.0f} ms",
                 f"{start * 1000:.0f} ms (lvsd: {self_ms} ms)", f"{piranha / start:.0f}x",
                 f"{in_kernel}/{N} services, kernel requests {kernel_ms.group(1) if kernel_ms else '?'} ms; target < 1 s: {'met' if start < 1.0 else 'NOT met'}"))
    # Every nanny started, every real server settled (timeout 10 s + 2 s), so the reload is
    # measured on a quiet daemon.
    progress(f"services in the kernel after {start * 1000:.0f} ms; waiting for {4 * N} nannies")
    t_spawn0 = time.monotonic()
    while log.count("create_monitor for") < 4 * N:
        if proc.poll() is not None:
            save(log)
            raise RuntimeError("lvsd exited:\n" + "\n".join(
                l for _, l in log.snapshot() if re.search(r"died|cannot|limit|error|warn", l)))
        time.sleep(0.5)
    spawned = time.monotonic() - t_spawn0
    time.sleep(15)
    rows.append(("start: all nannies running", "-", f"{(time.monotonic() - t0 - 15):.1f} s", "-",
                 f"{4 * N} nannies started in {spawned:.1f} s after the services"))
    # Starting thousands of processes in the emulated VM leaves its two vCPUs with a long run
    # queue for minutes (load average in the hundreds): a reload measured then times the queue,
    # not lvsd. Wait (bounded) until at most 3 tasks are runnable on 5 samples in a row, as on a
    # router whose nannies have settled.
    t_q = time.monotonic()
    calm = 0
    while calm < 5 and time.monotonic() - t_q < QUIET_MAX:
        runnable = int(open("/proc/loadavg").read().split()[3].split("/")[0])
        calm = calm + 1 if runnable <= 3 else 0
        time.sleep(1)
    quiet = time.monotonic() - t_q
    rows.append(("VM quiet again after the nanny start", "-", f"{quiet:.0f} s", "-",
                 f"at most 3 runnable tasks on 5 samples a second apart"
                 f"{'' if calm >= 5 else f' NOT reached in {QUIET_MAX} s'}; load average "
                 f"{open('/proc/loadavg').read().split()[0]}; {who_runs()}; {cpu_by_program()}"))

    # 3. Reloads.
    progress("nannies running; reloads")
    def reload(name, text, want_diff):
        nonlocal ok
        before = listing()
        write(text)
        mark = log.mark()
        cpu0, wait0 = schedstat(proc.pid)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGHUP)
        t1, done = log.wait(r"configuration (reloaded|not reloaded|unchanged)", mark)
        cpu1, wait1 = schedstat(proc.pid)
        cpu, queued = (cpu1 - cpu0) / 1e6, (wait1 - wait0) / 1e6
        after = listing()
        diff = [l[0] + " ".join(l[1:].split())
                for l in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
                if l[:1] in "+-" and not l.startswith(("+++", "---"))]
        took = re.search(r"reloaded in ([\d.]+) ms", done)
        # From the signal's arrival (lvsd's handler) to the reload done: what an operator waits.
        since = re.search(r"([\d.]+) ms after SIGHUP", done)
        loaded = re.search(r"file read and checked in ([\d.]+) ms", done)
        req = re.search(r"(\d+) kernel requests \((\d+) reads, (\d+) changes\)", done)
        same = diff == want_diff
        load = open("/proc/loadavg").read().split()[0]
        figure = since or took
        ok &= bool(figure) and float(figure.group(1)) < 100 and same
        if figure:
            reload_ms.append(float(figure.group(1)))
        rows.append((f"reload: {name}", "-", f"{(t1 - t0) * 1000:.0f} ms (lvsd: {since.group(1) if since else '?'} ms from SIGHUP, {took.group(1) if took else '?'} ms reloading)",
                     "-", f"lvsd on CPU {cpu:.1f} ms, waiting for a CPU {queued:.1f} ms; file read and checked in {loaded.group(1) if loaded else '?'} ms; kernel requests: {req.group(0) if req else '?'}; ipvsadm -Ln diff: "
                          f"{' | '.join(diff) if diff else 'none'} ({'only that service' if same else 'UNEXPECTED'}); "
                          f"VM load average {load}"))

    reload_ms = []
    for k in range(3):
        reload(f"one virtual server's scheduler changed ({k + 1} of 3)", config(changed=N // 2),
               [f"-TCP {vip(N // 2)}:80 wlc", f"+TCP {vip(N // 2)}:80 rr"])
        reload(f"the same scheduler changed back ({k + 1} of 3)", config(),
               [f"-TCP {vip(N // 2)}:80 rr", f"+TCP {vip(N // 2)}:80 wlc"])
    reload("one virtual server added", config(added=True),
           [f"+TCP {vip(N)}:80 wlc"])
    if reload_ms:
        med = sorted(reload_ms)[len(reload_ms) // 2]
        rows.append(("reload: median of the above", "-", f"lvsd: {med:.1f} ms from SIGHUP", "-",
                     f"min {min(reload_ms):.1f}, max {max(reload_ms):.1f} ms over "
                     f"{len(reload_ms)} reloads; target < 100 ms: "
                     f"{'met' if max(reload_ms) < 100 else 'met by the median only' if med < 100 else 'NOT met'}"))

    # Drift check of the whole owned table (what lvsd does every --repair-interval seconds),
    # on demand, with one service deleted behind lvsd's back.
    subprocess.run([IPVSADM, "-D", "-t", f"{vip(7)}:80"], check=True)
    mark = log.mark()
    t0 = time.monotonic()
    proc.send_signal(signal.SIGUSR2)
    t1, done = log.wait(r"drift check: ", mark)
    took = re.search(r"in ([\d.]+) ms \((\d+) reads\), (\d+) repairs", done)
    repaired = services_in_kernel() == N + 1
    ok &= repaired
    rows.append(("drift check of every owned service (SIGUSR2)", "-",
                 f"{(t1 - t0) * 1000:.0f} ms (lvsd: {took.group(1) if took else '?'} ms)", "-",
                 f"{took.group(2) if took else '?'} kernel reads, {took.group(3) if took else '?'} "
                 f"repairs (one service deleted by hand: {'back' if repaired else 'NOT back'})"))

    # 4. Shutdown.
    progress("stopping lvsd")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    while proc.poll() is None:
        time.sleep(0.01)
    stop = time.monotonic() - t0
    left = services_in_kernel()
    ok &= left == 0 and proc.returncode == 0
    rows.append(("SIGTERM: nannies stopped, services removed", "-", f"{stop * 1000:.0f} ms", "-",
                 f"exit {proc.returncode}, {left} services left"))

    save(log)
    report = [f"lvsd benchmark: {N} virtual servers x 4 real servers ({PATTERN} addresses), "
              f"kernel {os.uname().release}",
              f"{'what':48} {'Piranha (ipvsadm -A each)':>26} {'lvsd':>28} {'ratio':>6}  notes"]
    for r in rows:
        report.append(f"{r[0]:48} {r[1]:>26} {r[2]:>28} {r[3]:>6}  {r[4]}")
    text = "\n".join(report)
    print(text, flush=True)
    with open(os.path.join(OUT, f"bench-lvsd-{PATTERN}.txt"), "w") as f:
        f.write(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
