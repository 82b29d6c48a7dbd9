#!/usr/bin/env python3
"""lvsd on a real IPVS kernel: every scenario of issue 5 in one VM boot.

    integration-tests/vm/run integration-tests/vm/lvsd-scenarios.py [--filter WORD]...

Runs INSIDE the VM (refuses elsewhere: it rewrites the IPVS table and creates a network
namespace). Needs target/release/lvsd and target/release/nanny (the real nanny; $LVSD and $NANNY
override). Python standard library only.

Real servers are Python listeners (lvsd-rs-server.py) in a network namespace `rs`, reached over a
veth pair: 10.10.0.11-14 there, 10.10.0.1 here. The reference reader of the table is Debian's
/usr/sbin/ipvsadm. Each check prints PASS/FAIL; the last line is "N passed, M failed"; the exit
status is 0 only if every check passed. lvsd's log is kept in target/vm-out/lvsd-scenarios/.
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LVSD = os.environ.get("LVSD", os.path.join(REPO, "target/release/lvsd"))
NANNY = os.environ.get("NANNY", os.path.join(REPO, "target/release/nanny"))
IPVSADM = "/usr/sbin/ipvsadm"
OUT = os.path.join(REPO, "target/vm-out/lvsd-scenarios")
WORK = "/tmp/lvsd-vm"
CTL = os.path.join(WORK, "rs.sock")
CFG = os.path.join(WORK, "lvs.cf")

RS1, RS2, RS3, RS4 = "10.10.0.11", "10.10.0.12", "10.10.0.13", "10.10.0.14"
FOREIGN = "TCP 10.99.0.1:25 rr"

results = []
running = []  # every lvsd started, so that a failed scenario leaves none behind


def log(msg):
    print(msg, flush=True)


def check(name, ok, detail=""):
    results.append((name, bool(ok)))
    log(f"{'PASS' if ok else 'FAIL'} {name}" + (f" ({detail})" if detail else ""))
    return ok


def sh(cmd, check_rc=True):
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def ipvsadm(args):
    return sh(f"{IPVSADM} {args}")


def table():
    """ipvsadm -Ln as {service line: {dest line}}, blanks normalised, counters dropped."""
    t = {}
    cur = None
    for line in ipvsadm("-Ln").splitlines()[3:]:
        w = line.split()
        if not w:
            continue
        if w[0] == "->":
            t[cur].add(f"{w[1]} {w[2]} {w[3]}")
        else:
            cur = " ".join(w)
            t[cur] = set()
    return t


def stats():
    """Conns counter per service (ipvsadm -Ln --stats)."""
    out = {}
    for line in ipvsadm("-Ln --stats").splitlines()[3:]:
        w = line.split()
        if w and w[0] in ("TCP", "UDP", "FWM"):
            out[f"{w[0]} {w[1]}"] = int(w[2])
    return out


def rs(cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(CTL)
    s.sendall(cmd.encode())
    answer = s.recv(1024).decode().strip()
    s.close()
    if not answer.startswith("ok"):
        raise RuntimeError(f"rs {cmd}: {answer}")


def kernel_lines(lines):
    """The "kernel (...)" request lines of a log, without lvsd's "lvs: " stdout prefix."""
    out = []
    for l in lines:
        if l.startswith("lvs: "):
            l = l[len("lvs: "):]
        if l.startswith("kernel"):
            out.append(l)
    return out


def wait_for(cond, timeout, step=0.25):
    t0 = time.time()
    while True:
        try:
            if cond():
                return True, time.time() - t0
        except Exception:
            pass
        if time.time() - t0 > timeout:
            return False, time.time() - t0
        time.sleep(step)


def fmt_table(t):
    lines = []
    for s in sorted(t):
        lines.append(s)
        lines.extend(f"  -> {d}" for d in sorted(t[s]))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- config

def config(**kw):
    """The scenario config; keyword arguments replace parts (see the defaults)."""
    p = dict(
        globals="",
        hard="1",
        network="nat",
        web_sched="wlc",
        web_extra="",
        web_servers=[("rs1", RS1, 80, 1), ("rs2", RS2, 80, 1)],
        webq_timeout="1",
        dns_active="1",
        mark_active="1",
        new_vs="",
        tcp_timeout="901",
    )
    p.update(kw)
    servers = "".join(
        f"     server {n} {{\n         address = {a}\n         active = 1\n         port = {port}\n"
        f"         weight = {w}\n     }}\n"
        for n, a, port, w in p["web_servers"]
    )
    return f"""serial_no = 1
network = {p['network']}
nat_router = 10.10.0.1 veth0:1
tcp_timeout = {p['tcp_timeout']}
tcpfin_timeout = 121
udp_timeout = 301
hard_shutdown = {p['hard']}
{p['globals']}virtual web {{
     active = 1
     address = 10.0.0.1 eth0:1
     port = 80
     scheduler = {p['web_sched']}
{p['web_extra']}     timeout = 1
     reentry = 2
     client_monitor = {NANNY}
{servers}}}
virtual webq {{
     active = 1
     address = 10.0.0.2 eth0:2
     port = 8080
     scheduler = rr
     persistent = 60
     pmask = 255.255.255.0
     quiesce_server = 1
     timeout = {p['webq_timeout']}
     reentry = 2
     client_monitor = {NANNY}
     server rs3 {{
         address = {RS3}
         active = 1
     }}
     server rs4 {{
         address = {RS4}
         active = 1
     }}
}}
virtual dns {{
     active = {p['dns_active']}
     address = 10.0.0.3 eth0:3
     port = 53
     protocol = udp
     scheduler = rr
     send = "PING"
     expect = "PONG"
     timeout = 1
     reentry = 2
     client_monitor = {NANNY}
     server ns1 {{
         address = {RS1}
         active = 1
     }}
}}
virtual mark {{
     active = {p['mark_active']}
     address = 10.0.0.4 eth0:4
     fwmark = 7
     port = 443
     scheduler = sh
     timeout = 1
     reentry = 2
     client_monitor = {NANNY}
     server m1 {{
         address = {RS2}
         active = 1
     }}
}}
virtual sorry {{
     active = 1
     address = 10.0.0.5 eth0:5
     port = 80
     sorry_server = 10.10.0.99
     timeout = 1
     reentry = 2
     client_monitor = {NANNY}
     server s1 {{
         address = {RS4}
         active = 1
     }}
}}
virtual off {{
     active = 0
     address = 10.0.0.6 eth0:6
     server x {{
         address = {RS3}
         active = 1
     }}
}}
{p['new_vs']}"""


def expected(**kw):
    """The table lvsd must build once every check passes (weights 1: nanny's slow start begins
    at max(1, W/32), which is W for W = 1)."""
    fwd = {"nat": "Masq", "direct": "Route", "tunnel": "Tunnel"}[kw.get("network", "nat")]
    web_servers = kw.get("web_servers", [("rs1", RS1, 80, 1), ("rs2", RS2, 80, 1)])
    web_line = f"TCP 10.0.0.1:80 {kw.get('web_sched', 'wlc')}" + kw.get("web_flags", "")
    direct = kw.get("network", "nat") != "nat"
    t = {
        web_line: {f"{a}:{80 if direct else p} {fwd} {w}" for _, a, p, w in web_servers},
        "TCP 10.0.0.2:8080 rr persistent 60 mask 255.255.255.0": {
            f"{RS3}:8080 {fwd} 1",
            f"{RS4}:8080 {fwd} 1",
        },
        "TCP 10.0.0.5:80 wlc": {f"{RS4}:80 {fwd} 1"},
        FOREIGN: {"10.99.0.2:25 Route 1"},
    }
    if kw.get("dns", True):
        t["UDP 10.0.0.3:53 rr"] = {f"{RS1}:53 {fwd} 1"}
    if kw.get("mark", True):
        t["FWM 7 sh"] = {f"{RS2}:443 {fwd} 1"}
    t.update(kw.get("extra", {}))
    for k, v in kw.get("override", {}).items():
        if v is None:
            t.pop(k, None)
        else:
            t[k] = v
    return t


LISTENERS = [
    ("http", RS1, 80), ("http", RS2, 80), ("tcp", RS3, 8080), ("tcp", RS4, 8080),
    ("udp", RS1, 53), ("tcp", RS2, 443), ("http", RS4, 80), ("http", RS3, 80),
]


# ---------------------------------------------------------------------------------- lvsd

class Lvsd:
    def __init__(self, name, text, args=("-n",), repair="2"):
        self.name = name
        with open(CFG, "w") as f:
            f.write(text)
        self.logpath = os.path.join(OUT, f"{name}.log")
        self.logf = open(self.logpath, "w")
        self.started = time.time()
        self.proc = subprocess.Popen(
            [LVSD, *args, "-c", CFG, "--repair-interval", repair],
            stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        running.append(self.proc)

    def text(self):
        with open(self.logpath) as f:
            return f.read()

    def lines(self):
        return self.text().splitlines()

    def mark(self):
        return len(self.lines())

    def since(self, mark):
        return self.lines()[mark:]

    def wait_log(self, pattern, mark=0, timeout=30):
        rx = re.compile(pattern)
        ok, _ = wait_for(lambda: any(rx.search(l) for l in self.since(mark)), timeout, 0.1)
        return ok

    def reload(self, text, timeout=30):
        with open(CFG + ".tmp", "w") as f:
            f.write(text)
        os.rename(CFG + ".tmp", CFG)
        m = self.mark()
        t0 = time.time()
        self.proc.send_signal(signal.SIGHUP)
        ok = self.wait_log(r"configuration (reloaded|not reloaded|unchanged)", m, timeout)
        return ok, time.time() - t0, self.since(m)

    def nanny_pids(self):
        pids = {}
        for l in self.lines():
            m = re.search(r"create_monitor for (\S+) running as pid (\d+)", l)
            if m:
                pids[m.group(1)] = int(m.group(2))
        return pids

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=60):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(60) is None:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def nanny_processes():
    """Pids of running processes whose program is NANNY."""
    real = os.path.realpath(NANNY)
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.path.realpath(f"/proc/{d}/exe") == real:
                    out.append(int(d))
            except OSError:
                pass
    return out


def alive(pid):
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def owned_gone(t):
    return set(t) == {FOREIGN}


# ---------------------------------------------------------------------------------- set-up

def setup():
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(OUT, exist_ok=True)
    for cmd in [
        "ip link set lo up",
        "ip netns add rs",
        "ip link add veth0 type veth peer name veth1 netns rs",
        "ip addr add 10.10.0.1/24 dev veth0",
        "ip link set veth0 up",
        "ip -n rs link set lo up",
        "ip -n rs link set veth1 up",
        f"ip -n rs addr add {RS1}/24 dev veth1",
        f"ip -n rs addr add {RS2}/24 dev veth1",
        f"ip -n rs addr add {RS3}/24 dev veth1",
        f"ip -n rs addr add {RS4}/24 dev veth1",
        "ip -n rs route add default via 10.10.0.1",
        # Local clients reach the VIPs through IPVS (for the connection counters).
        "ip route add 10.0.0.0/24 dev veth0",
    ]:
        sh(cmd)
    server = os.path.join(REPO, "integration-tests/vm/lvsd-rs-server.py")
    subprocess.Popen(["ip", "netns", "exec", "rs", "python3", server, CTL],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok, _ = wait_for(lambda: os.path.exists(CTL), 30, 0.1)
    if not ok:
        raise RuntimeError("real-server process did not start")
    for kind, ip, port in LISTENERS:
        rs(f"start {kind} {ip} {port}")
    ipvsadm("-C")
    ipvsadm("-A -t 10.99.0.1:25 -s rr")
    ipvsadm("-a -t 10.99.0.1:25 -r 10.99.0.2:25 -g -w 1")


def http_get(vip, port=80):
    s = socket.create_connection((vip, port), timeout=3)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = s.recv(100)
    s.close()
    return data


# ---------------------------------------------------------------------------------- scenarios

def scenario_main():
    """One lvsd through start, health changes, drift, reloads and SIGTERM."""
    # An owned service already in the kernel, with a wrong scheduler and a stray real server.
    ipvsadm("-A -t 10.0.0.1:80 -s rr")
    ipvsadm(f"-a -t 10.0.0.1:80 -r {RS1}:80 -m -w 1")
    ipvsadm("-a -t 10.0.0.1:80 -r 10.10.0.77:80 -m -w 1")
    d = Lvsd("main", config())
    ok = d.wait_log(r"virtual services in the kernel", 0, 30)
    t = table()
    check("start: every active virtual service is in the kernel at once", ok and all(
        s in t for s in ["TCP 10.0.0.1:80 wlc", "TCP 10.0.0.2:8080 rr persistent 60 mask 255.255.255.0",
                         "UDP 10.0.0.3:53 rr", "FWM 7 sh", "TCP 10.0.0.5:80 wlc"]),
        fmt_table(t))
    check("start: an owned service found in the kernel is adopted: scheduler fixed, stray real "
          "server removed, the configured one kept",
          t.get("TCP 10.0.0.1:80 wlc", set()) >= {f"{RS1}:80 Masq 1"}
          and not any("10.10.0.77" in x for x in t.get("TCP 10.0.0.1:80 wlc", set())),
          str(t.get("TCP 10.0.0.1:80 wlc")))
    check("start: the inactive virtual server is not in the kernel", not any("10.0.0.6" in s for s in t))
    check("start: the foreign service is untouched", t.get(FOREIGN) == {"10.99.0.2:25 Route 1"})
    forwarding = open("/proc/sys/net/ipv4/ip_forward").read().strip()
    said = [l for l in d.lines() if "prerequisite missing" in l and "ip_forward" in l]
    check("start: a NAT router's missing ip_forward is logged with its fix (and only when missing)",
          (forwarding == "0") == bool(said)
          and all("fix: sysctl -w net.ipv4.ip_forward=1" in l for l in said),
          f"ip_forward={forwarding}: {said}")
    line = next((l for l in d.lines() if "virtual services in the kernel" in l), "")
    log(f"     {line}")
    ok, el = wait_for(lambda: table() == expected(), 60)
    check("checks pass: the table is exactly as configured", ok, f"{el:.1f}s\n{fmt_table(table())}")
    check("timeouts set from tcp_timeout/tcpfin_timeout/udp_timeout",
          "901 121 301" in ipvsadm("-L --timeout"), ipvsadm("-L --timeout").strip())
    check("no sorry server at start while the real servers come up (no flapping)",
          "activate sorry_server" not in d.text())

    def status_kb(pid, field):
        with open(f"/proc/{pid}/status") as f:
            for l in f:
                if l.startswith(field + ":"):
                    return int(l.split()[1])
        return None

    def nice_of(pid):
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[16])

    nannies = [p for p in nanny_processes() if status_kb(p, "VmLck") is not None]
    locked = status_kb(d.proc.pid, "VmLck")
    check("lvsd's memory is locked in RAM (VmLck), its nannies' is not, and they run 5 nice "
          "levels below it",
          bool(nannies) and locked and locked >= status_kb(d.proc.pid, "VmRSS") // 2
          and all(status_kb(p, "VmLck") == 0 and nice_of(p) == nice_of(d.proc.pid) + 5
                  for p in nannies),
          f"lvsd VmLck {locked} kB of VmRSS {status_kb(d.proc.pid, 'VmRSS')} kB; nannies "
          f"{[(p, status_kb(p, 'VmLck'), nice_of(p)) for p in nannies]}")

    # Traffic through IPVS, so that connection counters prove which services reloads touch.
    try:
        for _ in range(3):
            http_get("10.0.0.1")
    except OSError as e:
        log(f"     (no traffic through the VIP: {e})")
    # The kernel folds its per-CPU counters every 2 s.
    wait_for(lambda: stats().get("TCP 10.0.0.1:80", 0) >= 3, 8)
    traffic = stats().get("TCP 10.0.0.1:80", 0)
    check("traffic through the VIP reaches the real servers (connection counter)", traffic >= 3,
          f"conns {traffic}")

    # Health: a TCP server stops and comes back.
    t0 = time.time()
    rs(f"stop http {RS2} 80")
    ok, el = wait_for(lambda: f"{RS2}:80 Masq 1" not in table().get("TCP 10.0.0.1:80 wlc", set()), 20, 0.1)
    check("real server stopped: removed within its timeout", ok and el < 6, f"{el:.1f}s (timeout 1 s)")
    rs(f"start http {RS2} 80")
    ok, el = wait_for(lambda: table() == expected(), 30, 0.1)
    check("real server started: back after reentry", ok, f"{el:.1f}s (reentry 2 s)")

    # Quiesce.
    rs(f"stop tcp {RS3} 8080")
    q = "TCP 10.0.0.2:8080 rr persistent 60 mask 255.255.255.0"
    ok, el = wait_for(lambda: f"{RS3}:8080 Masq 0" in table().get(q, set()), 20, 0.1)
    check("quiesce_server: a stopped server stays with weight 0", ok and el < 6, f"{el:.1f}s")
    rs(f"start tcp {RS3} 8080")
    ok, el = wait_for(lambda: table() == expected(), 30, 0.1)
    check("quiesce_server: back to its weight after reentry", ok, f"{el:.1f}s")

    # UDP.
    rs(f"stop udp {RS1} 53")
    ok, el = wait_for(lambda: table().get("UDP 10.0.0.3:53 rr") == set(), 20, 0.1)
    check("udp real server stopped: removed", ok, f"{el:.1f}s")
    rs(f"start udp {RS1} 53")
    ok, el = wait_for(lambda: table() == expected(), 30, 0.1)
    check("udp real server started: back", ok, f"{el:.1f}s")

    # Sorry server.
    rs(f"stop http {RS4} 80")
    ok, el = wait_for(lambda: table().get("TCP 10.0.0.5:80 wlc") == {"10.10.0.99:80 Masq 1"}, 20, 0.1)
    check("sorry server: added with weight 1 when no real server is up", ok, f"{el:.1f}s")
    rs(f"start http {RS4} 80")
    ok, el = wait_for(lambda: table() == expected(), 30, 0.1)
    check("sorry server: removed when a real server is back", ok, f"{el:.1f}s")

    # Drift: tampering with Debian's ipvsadm, repaired on SIGUSR2 and by the periodic repair.
    def tamper():
        ipvsadm(f"-d -t 10.0.0.1:80 -r {RS1}:80")
        ipvsadm(f"-e -t 10.0.0.2:8080 -r {RS3}:8080 -m -w 5")
        ipvsadm("-E -u 10.0.0.3:53 -s wlc")
        ipvsadm("-D -f 7")
        ipvsadm("-a -t 10.0.0.5:80 -r 10.10.0.55:80 -m -w 1")
    m = d.mark()
    tamper()
    ipvsadm("-a -t 10.99.0.1:25 -r 10.99.0.3:25 -g -w 2")
    want = expected(override={FOREIGN: {"10.99.0.2:25 Route 1", "10.99.0.3:25 Route 2"}})
    d.signal(signal.SIGUSR2)
    ok, el = wait_for(lambda: table() == want, 10, 0.1)
    check("drift (a real server deleted, a weight and a scheduler edited, a service deleted, a "
          "stray real server) repaired on SIGUSR2; the foreign service's new server kept", ok,
          f"{el:.1f}s\n{fmt_table(table())}")
    repairs = [l for l in d.since(m) if "repairing drift (" in l]
    # (Some may be the periodic repair's, which can run while the tampering goes on.)
    check("each repair is logged", len(repairs) >= 6, "\n".join(repairs))
    tamper()
    ok, el = wait_for(lambda: table() == want, 15, 0.1)
    check("drift repaired by the periodic repair (--repair-interval 2)", ok, f"{el:.1f}s")
    ipvsadm("-d -t 10.99.0.1:25 -r 10.99.0.3:25")

    # Reloads.
    base_stats = stats()
    pids = d.nanny_pids()

    def reload_case(name, text, want, check_untouched=(), timeout=30, settle=0.5):
        ok, el, lines = d.reload(text)
        done = next((l for l in lines if "configuration reloaded" in l or "not reloaded" in l
                     or "unchanged" in l), "")
        ok2, el2 = wait_for(lambda: table() == want, timeout, 0.1)
        check(f"reload: {name}", ok and ok2, f"{done}\n{fmt_table(table())}" if not ok2 else done)
        return lines

    lines = reload_case("scheduler changed in place (edit service)", config(web_sched="rr"),
                        expected(web_sched="rr"))
    kernel = kernel_lines(lines)
    check("reload: only the edited service reached the kernel: one edit, its two reads",
          kernel == ["kernel (virtual service web): -E -t 10.0.0.1:80 -s rr"]
          and any("(2 reads, 1 changes)" in l for l in lines), "\n".join(lines))
    s2 = stats()
    check("reload: the edited service kept its connection counter (not re-created)",
          s2.get("TCP 10.0.0.1:80", 0) >= base_stats.get("TCP 10.0.0.1:80", 0) > 0,
          f"{base_stats.get('TCP 10.0.0.1:80')} -> {s2.get('TCP 10.0.0.1:80')}")
    check("reload: no nanny restarted for a scheduler change", d.nanny_pids() == pids)

    reload_case("persistence added in place", config(web_sched="rr", web_extra="     persistent = 30\n"),
                expected(web_sched="rr", web_flags=" persistent 30"))
    reload_case("persistence removed", config(web_sched="rr"), expected(web_sched="rr"))

    three = [("rs1", RS1, 80, 1), ("rs2", RS2, 80, 1), ("rs3", RS3, 80, 1)]
    pids = d.nanny_pids()
    reload_case("real server added: enters after its first check", config(web_sched="rr", web_servers=three),
                expected(web_sched="rr", web_servers=three))
    now = d.nanny_pids()
    check("reload: existing nannies kept when a real server is added",
          all(now[k] == pids[k] for k in pids), str(now))
    lines = reload_case("real server removed: only it leaves", config(web_sched="rr"), expected(web_sched="rr"))
    check("reload: removing a real server deletes only its destination",
          kernel_lines(lines) == [f"kernel (virtual service web): -d -t 10.0.0.1:80 -r {RS3}:80"],
          "\n".join(lines))
    now = d.nanny_pids()
    check("reload: the other nannies of the service keep running", now["web/rs1"] == pids["web/rs1"]
          and now["web/rs2"] == pids["web/rs2"] and not alive(now.get("web/rs3", 0) or 0))

    # Weight change: that nanny restarts, the server stays in the table all along.
    pids = d.nanny_pids()
    w2 = [("rs1", RS1, 80, 1), ("rs2", RS2, 80, 2)]
    ok, el, lines = d.reload(config(web_sched="rr", web_servers=w2))
    gap = False
    t0 = time.time()
    while time.time() - t0 < 4:
        if f"{RS2}:80 Masq" not in " ".join(table().get("TCP 10.0.0.1:80 rr", set())):
            gap = True
        time.sleep(0.2)
    now = d.nanny_pids()
    check("reload: weight change restarts only that nanny", now["web/rs2"] != pids["web/rs2"]
          and now["web/rs1"] == pids["web/rs1"] and now["dns/ns1"] == pids["dns/ns1"], str(now))
    check("reload: the re-checked server never left the table", not gap)
    ok, el = wait_for(lambda: table() == expected(web_sched="rr", web_servers=w2), 90, 0.5)
    check("reload: the new weight arrives through the new nanny (slow start 1 -> 2)", ok, f"{el:.1f}s")

    # Check parameters: webq's nannies restart, nobody else's.
    pids = d.nanny_pids()
    reload_case("check parameter (timeout) changed: nannies restarted, table unchanged",
                config(web_sched="rr", web_servers=w2, webq_timeout="2"),
                expected(web_sched="rr", web_servers=w2))
    now = d.nanny_pids()
    check("reload: only the changed block's nannies restarted",
          now["webq/rs3"] != pids["webq/rs3"] and now["webq/rs4"] != pids["webq/rs4"]
          and now["web/rs1"] == pids["web/rs1"] and now["sorry/s1"] == pids["sorry/s1"], str(now))

    cur = dict(web_sched="rr", web_servers=w2, webq_timeout="2")
    new_vs = f"""virtual added {{
     active = 1
     address = 10.0.0.7 eth0:7
     port = 80
     timeout = 1
     reentry = 2
     client_monitor = {NANNY}
     server a1 {{
         address = {RS3}
         active = 1
         port = 80
     }}
}}
"""
    exp_cur = dict(web_sched="rr", web_servers=w2)
    added = {"TCP 10.0.0.7:80 wlc": {f"{RS3}:80 Masq 1"}}
    reload_case("virtual server added", config(**cur, new_vs=new_vs), expected(**exp_cur, extra=added))
    reload_case("virtual server removed (dns inactive) and one deactivated (mark)",
                config(**cur, new_vs=new_vs, dns_active="0", mark_active="0"),
                expected(**exp_cur, extra=added, dns=False, mark=False))
    moved = new_vs.replace("port = 80\n     timeout", "port = 8081\n     timeout")
    reload_case("virtual port changed: service replaced",
                config(**cur, new_vs=moved, dns_active="0", mark_active="0"),
                expected(**exp_cur, extra={"TCP 10.0.0.7:8081 wlc": {f"{RS3}:80 Masq 1"}}, dns=False, mark=False))
    cur2 = dict(cur, new_vs=moved, dns_active="0", mark_active="0")
    exp2 = dict(exp_cur, extra={"TCP 10.0.0.7:8081 wlc": {f"{RS3}:80 Masq 1"}}, dns=False, mark=False)
    reload_case("network nat -> direct: every real server re-added as direct routing",
                config(**cur2, network="direct"),
                expected(**exp2, network="direct",
                         override={"TCP 10.0.0.7:8081 wlc": {f"{RS3}:8081 Route 1"}}), timeout=60)
    reload_case("network back to nat", config(**cur2), expected(**exp2), timeout=60)
    # The nannies the last reload restarted are started by the pass after it: wait until their
    # pids are all logged.
    pids = d.nanny_pids()
    for _ in range(20):
        time.sleep(0.5)
        pids, last = d.nanny_pids(), pids
        if pids == last:
            break
    before = table()
    ok, el, lines = d.reload(config(**cur2).replace("scheduler = sh", "scheduler = sh").replace(
        "scheduler = rr\n     persistent = 60", "scheduler = bogus\n     persistent = 60"))
    time.sleep(1)
    after, pids_after = table(), d.nanny_pids()
    check("reload: a config with errors is refused, the running state kept",
          ok and any("not reloaded" in l for l in lines) and after == before and pids_after == pids,
          "\n".join(lines) + f"\ntable before:\n{fmt_table(before)}\nafter:\n{fmt_table(after)}\n"
          f"nannies changed: {sorted(set(pids.items()) ^ set(pids_after.items()))}")
    reload_case("IPVS timeouts changed", config(**cur2, tcp_timeout="902"), expected(**exp2))
    check("reload: new timeouts in the kernel", "902 121 301" in ipvsadm("-L --timeout"))
    lines = reload_case("rename only: nothing reaches the kernel",
                        config(**cur2, tcp_timeout="902").replace("virtual web {", "virtual www {"),
                        expected(**exp2))
    check("reload: a rename makes no kernel request", any("0 kernel requests" in l for l in lines),
          "\n".join(lines))
    end_stats = stats()
    check("reloads never re-created the web service (its connection counter survived them all)",
          end_stats.get("TCP 10.0.0.1:80", 0) >= base_stats.get("TCP 10.0.0.1:80", 0) > 0,
          f"{base_stats.get('TCP 10.0.0.1:80')} -> {end_stats.get('TCP 10.0.0.1:80')}")

    # SIGUSR1 status.
    m = d.mark()
    d.signal(signal.SIGUSR1)
    check("SIGUSR1 logs the state of every server", d.wait_log(r"status: www/rs1 .*: up, weight 1; nanny pid", m, 10))

    # SIGTERM.
    nannies = list(d.nanny_pids().values())
    t0 = time.time()
    d.signal(signal.SIGTERM)
    rc = d.wait(60)
    el = time.time() - t0
    check("SIGTERM: lvsd exits 0", rc == 0, f"exit {rc} after {el:.1f}s")
    t = table()
    check("SIGTERM: no owned service left, the foreign one intact", owned_gone(t)
          and t[FOREIGN] == {"10.99.0.2:25 Route 1"}, fmt_table(t))
    check("SIGTERM: no nanny left", not nanny_processes() and not any(alive(p) for p in nannies),
          str(nanny_processes()))
    d.stop()


def scenario_hard_shutdown():
    """hard_shutdown = 1: a dead nanny takes lvsd down (run as pulse runs it: --nofork)."""
    pidfile = os.path.join(WORK, "lvs.pid")
    d = Lvsd("hard1", config(), args=("--nofork", "--pidfile", pidfile), repair="5")
    ok, el = wait_for(lambda: table() == expected(), 60)
    check("hard_shutdown=1 (--nofork): table built", ok, f"{el:.1f}s")
    pid_ok = os.path.exists(pidfile) and open(pidfile).read().strip() == str(d.proc.pid)
    check("--nofork: pid file names lvsd", pid_ok)
    victims = nanny_processes()
    if victims:
        os.kill(victims[0], signal.SIGKILL)
    rc = d.wait(60)
    t = table()
    check("hard_shutdown=1: a killed nanny shuts lvsd down (exit 1), owned services removed",
          rc == 1 and owned_gone(t), f"exit {rc}\n{fmt_table(t)}")
    ok, _ = wait_for(lambda: not nanny_processes(), 15)
    check("hard_shutdown=1: no nanny left, pid file removed", ok and not os.path.exists(pidfile))
    d.stop()


def scenario_soft_shutdown():
    """hard_shutdown = 0: the nanny is restarted, lvsd goes on."""
    d = Lvsd("hard0", config(hard="0"))
    ok, el = wait_for(lambda: table() == expected(), 60)
    check("hard_shutdown=0: table built", ok, f"{el:.1f}s")
    pids = d.nanny_pids()
    victim = pids["web/rs1"]
    m = d.mark()
    os.kill(victim, signal.SIGKILL)
    ok = d.wait_log(r"nanny for child web/rs1 died.*restarting it", m, 20)
    ok2, el = wait_for(lambda: d.nanny_pids()["web/rs1"] != victim and alive(d.nanny_pids()["web/rs1"]), 30)
    check("hard_shutdown=0: the dead nanny is logged and restarted", ok and ok2, f"{el:.1f}s")
    check("hard_shutdown=0: lvsd still running, table intact", d.proc.poll() is None and table() == expected())
    d.signal(signal.SIGINT)
    rc = d.wait(60)
    check("SIGINT: clean exit, no owned service left", rc == 0 and owned_gone(table()))
    d.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--filter", action="append", default=[])
    args = ap.parse_args()
    if "virtme_" not in open("/proc/cmdline").read():
        print("lvsd-scenarios: not inside the VM; refusing to run", file=sys.stderr)
        return 2
    for p in (LVSD, NANNY):
        if not os.access(p, os.X_OK):
            print(f"lvsd-scenarios: missing {p} (cargo build --release -p lvsd -p nanny)", file=sys.stderr)
            return 2
    setup()
    scenarios = [("main", scenario_main), ("hard_shutdown", scenario_hard_shutdown),
                 ("soft_shutdown", scenario_soft_shutdown)]
    for name, fn in scenarios:
        if args.filter and not any(f in name for f in args.filter):
            continue
        log(f"== {name}")
        t0 = time.time()
        try:
            fn()
        except Exception as e:  # a broken scenario is a failure, the others still run
            import traceback
            traceback.print_exc()
            check(f"{name}: scenario ran to the end", False, repr(e))
        # Whatever happened, leave no lvsd or nanny behind for the next scenario.
        for proc in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for p in nanny_processes():
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        for s in list(table()):
            if s != FOREIGN:
                w = s.split()
                ipvsadm(f"-D {'-f' if w[0] == 'FWM' else '-t' if w[0] == 'TCP' else '-u'} {w[1]}")
        log(f"   ({time.time() - t0:.0f}s)")
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
