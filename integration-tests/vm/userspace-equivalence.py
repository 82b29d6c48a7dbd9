#!/usr/bin/env python3
"""The userspace IPVS backend against the kernel's: the same table and the same sequence of client
connections pick the same real servers (issue 7).

    integration-tests/vm/run integration-tests/vm/userspace-equivalence.py [--filter WORD]...

Runs INSIDE the real-kernel VM (refuses elsewhere: it rewrites the IPVS table and creates network
namespaces). Needs target/release/ipvsd and target/release/ipvsadm ($IPVSD, $IPVSADM override).
Python standard library only.

Topology: the VM's root namespace is the director (virtual addresses 10.0.0.1-9 on a dummy
interface, forwarding on); real servers 10.10.0.11-14 in namespace `rs` and clients 10.20.0.2-41
in namespace `cl`, each behind a veth pair, routed through the director (what masquerading
needs). Every scenario runs twice, from a clean table, with our ipvsadm: first against ipvsd
(IPVS_BACKEND=userspace; it proxies), then against the kernel (IPVS_BACKEND=kernel; NAT). The
client agent (userspace-peer.py, in `cl`) makes one connection at a time, from a given source
address and port, and reports which real server answered; held connections stay open until the
scenario closes them, so that the least-connection schedulers see controlled counts (active: held
and established; inactive: closed, in TIME_WAIT). A scenario passes when both runs saw the same
servers in the same order. The last line is "N passed, M failed"; exit status 0 only when all
passed. The full report: target/vm-out/userspace-equivalence.json.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IPVSADM = os.environ.get("IPVSADM", os.path.join(REPO, "target/release/ipvsadm"))
IPVSD = os.environ.get("IPVSD", os.path.join(REPO, "target/release/ipvsd"))
PEER = os.path.join(REPO, "integration-tests/vm/userspace-peer.py")
OUT = os.path.join(REPO, "target/vm-out")
WORK = "/tmp/userspace-eq"
CTL = os.path.join(WORK, "ipvsd.sock")
AGENT = os.path.join(WORK, "agent.sock")

RS = ["10.10.0.11", "10.10.0.12", "10.10.0.13", "10.10.0.14"]
CLIENTS = [f"10.20.0.{i}" for i in range(2, 42)]
VIPS = [f"10.0.0.{i}" for i in range(1, 10)]
SETTLE = 0.6  # seconds for both backends to see closes (TCG is slow)

procs = []


def log(msg):
    print(msg, flush=True)


def sh(cmd, check=True, env=None):
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {p.returncode}: {p.stderr.strip()}")
    return p


class Run:
    """One backend: how ipvsadm reaches it."""

    def __init__(self, name):
        self.name = name
        self.env = dict(os.environ, LC_ALL="C", IPVS_BACKEND=name, IPVSD_SOCKET=CTL)

    def adm(self, args):
        p = subprocess.run([IPVSADM] + args.split(), capture_output=True, text=True, env=self.env)
        if p.returncode != 0:
            raise RuntimeError(f"[{self.name}] ipvsadm {args}: {p.stderr.strip()}")
        return p.stdout


class Agent:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("rw")

    def cmd(self, line):
        self.f.write(line + "\n")
        self.f.flush()
        answer = self.f.readline().strip()
        if not answer.startswith("ok"):
            raise RuntimeError(f"agent {line}: {answer}")
        return answer.split()[1:]


class Scenario:
    """The context a scenario runs in: its backend, the agent, the observations."""

    def __init__(self, run, agent):
        self.run = run
        self.agent = agent
        self.seen = []
        self.held = {}

    def adm(self, args):
        return self.run.adm(args)

    def conn(self, vip, vport, src=CLIENTS[0], sport=0, hold=False):
        try:
            w = self.agent.cmd(f"conn {src} {sport} {vip} {vport} {'hold' if hold else 'close'}")
        except RuntimeError as e:
            # No server for it: the kernel refuses (ICMP), ipvsd resets; both are "-".
            if "refused" in str(e) or "reset" in str(e):
                self.seen.append("-")
                return "-"
            raise
        self.seen.append(w[0])
        if hold:
            self.held[len(self.seen) - 1] = w[1]
        return w[0]

    def release(self, *indexes):
        """Closes the held connections that were the given picks (0-based)."""
        for i in indexes:
            self.agent.cmd(f"release {self.held.pop(i)}")
        time.sleep(SETTLE)

    def release_all(self):
        for i in list(self.held):
            self.agent.cmd(f"release {self.held.pop(i)}")

    def note(self, what):
        self.seen.append(what)


def dests(s, svc, weights, port=8080, extra=""):
    for ip, w in zip(RS, weights):
        s.adm(f"-a {svc} -r {ip}:{port} -m -w {w} {extra}")


# ---------------------------------------------------------------------------------- scenarios

def sc_rr(s):
    svc = "-t 10.0.0.1:8001"
    s.adm(f"-A {svc} -s rr")
    dests(s, svc, [1, 1, 1, 1])
    for _ in range(10):
        s.conn("10.0.0.1", 8001)


def sc_wrr(s):
    svc = "-t 10.0.0.1:8002"
    s.adm(f"-A {svc} -s wrr")
    dests(s, svc, [4, 3, 2, 1])
    for _ in range(12):
        s.conn("10.0.0.1", 8002)
    s.adm(f"-e {svc} -r {RS[0]}:8080 -m -w 0")
    for _ in range(6):
        s.conn("10.0.0.1", 8002)
    s.adm(f"-e {svc} -r {RS[0]}:8080 -m -w 5")
    for _ in range(8):
        s.conn("10.0.0.1", 8002)
    s.adm(f"-d {svc} -r {RS[3]}:8080")
    for _ in range(6):
        s.conn("10.0.0.1", 8002)
    s.adm(f"-a {svc} -r {RS[3]}:8080 -m -w 2")
    for _ in range(6):
        s.conn("10.0.0.1", 8002)


def least(sched, port, weights, first, release, then):
    def sc(s):
        svc = f"-t 10.0.0.1:{port}"
        s.adm(f"-A {svc} -s {sched}")
        dests(s, svc, weights, port=8081)
        for _ in range(first):
            s.conn("10.0.0.1", port, hold=True)
        s.release(*release)
        for _ in range(then):
            s.conn("10.0.0.1", port, hold=True)
        s.release_all()
    return sc


def sc_fo(s):
    svc = "-t 10.0.0.1:8007"
    s.adm(f"-A {svc} -s fo")
    dests(s, svc, [2, 5, 5, 1])
    for _ in range(3):
        s.conn("10.0.0.1", 8007)
    s.adm(f"-e {svc} -r {RS[1]}:8080 -m -w 0")
    for _ in range(3):
        s.conn("10.0.0.1", 8007)


def sc_sh(s):
    svc = "-t 10.0.0.1:8009"
    s.adm(f"-A {svc} -s sh")
    dests(s, svc, [1, 2, 1, 1])
    for c in CLIENTS:
        s.conn("10.0.0.1", 8009, src=c)


def sc_sh_port(s):
    svc = "-t 10.0.0.1:8010"
    s.adm(f"-A {svc} -s sh -b sh-port")
    dests(s, svc, [1, 1, 1, 1])
    for src in CLIENTS[:2]:
        for p in range(21000, 21020):
            s.conn("10.0.0.1", 8010, src=src, sport=p)


def sc_sh_fallback(s):
    svc = "-t 10.0.0.1:8011"
    s.adm(f"-A {svc} -s sh -b sh-fallback")
    dests(s, svc, [1, 1, 1, 1])
    s.adm(f"-e {svc} -r {RS[1]}:8080 -m -w 0")
    for c in CLIENTS:
        s.conn("10.0.0.1", 8011, src=c)


def sc_mh(s):
    svc = "-t 10.0.0.1:8012"
    s.adm(f"-A {svc} -s mh")
    dests(s, svc, [1, 1, 2, 1])
    for c in CLIENTS:
        s.conn("10.0.0.1", 8012, src=c)


def sc_mh_port_fallback(s):
    svc = "-t 10.0.0.1:8013"
    s.adm(f"-A {svc} -s mh -b mh-port,mh-fallback")
    dests(s, svc, [1, 1, 1, 1])
    s.adm(f"-e {svc} -r {RS[2]}:8080 -m -w 0")
    for p in range(22000, 22030):
        s.conn("10.0.0.1", 8013, src=CLIENTS[3], sport=p)


def sc_dh(s):
    for v in VIPS[1:]:
        s.adm(f"-A -t {v}:80 -s dh")
        dests(s, f"-t {v}:80", [1, 1, 1, 1])
    for v in VIPS[1:]:
        s.conn(v, 80)


def locality(sched, port):
    def sc(s):
        for v in VIPS[1:4]:
            s.adm(f"-A -t {v}:{port} -s {sched}")
            dests(s, f"-t {v}:{port}", [1, 1, 1, 1], port=8081)
        for v in VIPS[1:4]:
            for _ in range(4):
                s.conn(v, port, hold=True)
        s.release(0, 5, 9)
        for v in VIPS[1:4]:
            for _ in range(2):
                s.conn(v, port, hold=True)
        s.release_all()
    return sc


def sc_persistence(s):
    svc = "-t 10.0.0.1:8017"
    s.adm(f"-A {svc} -s rr -p 120 -M 255.255.255.252")
    dests(s, svc, [1, 1, 1, 1])
    for _ in range(2):
        for c in CLIENTS[:12]:
            s.conn("10.0.0.1", 8017, src=c)


def sc_thresholds(s):
    svc = "-t 10.0.0.1:8018"
    s.adm(f"-A {svc} -s rr")
    dests(s, svc, [1, 1, 1, 1], port=8081)
    s.adm(f"-e {svc} -r {RS[0]}:8081 -m -w 1 -x 2 -y 1")
    for _ in range(10):
        s.conn("10.0.0.1", 8018, hold=True)
    ones = [i for i, n in enumerate(s.seen) if n == RS[0]]
    s.release(*ones[:1])
    for _ in range(4):
        s.conn("10.0.0.1", 8018, hold=True)
    s.release(*[i for i in s.held if s.seen[i] == RS[0]])
    for _ in range(4):
        s.conn("10.0.0.1", 8018, hold=True)
    s.release_all()


SCENARIOS = [
    ("rr", sc_rr),
    ("wrr with edits", sc_wrr),
    ("lc with held connections", least("lc", 8003, [1, 1, 1, 1], 6, [0, 2], 4)),
    ("wlc with held connections", least("wlc", 8004, [3, 2, 1, 1], 8, [1, 4], 5)),
    ("sed with held connections", least("sed", 8005, [3, 1, 1, 2], 7, [2], 4)),
    ("nq with held connections", least("nq", 8006, [1, 2, 3, 1], 6, [0], 4)),
    ("fo", sc_fo),
    ("ovf with held connections", least("ovf", 8008, [2, 1, 3, 1], 7, [1], 2)),
    ("sh by source address", sc_sh),
    ("sh with sh-port", sc_sh_port),
    ("sh with sh-fallback", sc_sh_fallback),
    ("mh by source address", sc_mh),
    ("mh with mh-port and mh-fallback", sc_mh_port_fallback),
    ("dh by virtual address", sc_dh),
    ("lblc", locality("lblc", 81)),
    ("lblcr", locality("lblcr", 82)),
    ("persistence with a /30 mask", sc_persistence),
    ("thresholds", sc_thresholds),
]


# ---------------------------------------------------------------------------------- set-up

def setup():
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(OUT, exist_ok=True)
    batch = ["link set lo up", "link add vip0 type dummy", "link set vip0 up"]
    batch += [f"addr add {v}/32 dev vip0" for v in VIPS]
    batch += [
        "netns add rs",
        "link add rsh type veth peer name rs0 netns rs",
        "addr add 10.10.0.1/24 dev rsh",
        "link set rsh up",
        "netns add cl",
        "link add clh type veth peer name cl0 netns cl",
        "addr add 10.20.0.1/24 dev clh",
        "link set clh up",
    ]
    with open(os.path.join(WORK, "root.batch"), "w") as f:
        f.write("\n".join(batch) + "\n")
    sh(f"ip -batch {WORK}/root.batch")
    rs = ["link set lo up", "link set rs0 up"] + [f"addr add {ip}/24 dev rs0" for ip in RS]
    rs.append("route add default via 10.10.0.1")
    cl = ["link set lo up", "link set cl0 up"] + [f"addr add {ip}/24 dev cl0" for ip in CLIENTS]
    cl.append("route add default via 10.20.0.1")
    for ns, cmds in (("rs", rs), ("cl", cl)):
        with open(os.path.join(WORK, f"{ns}.batch"), "w") as f:
            f.write("\n".join(cmds) + "\n")
        sh(f"ip -n {ns} -batch {WORK}/{ns}.batch")
    for k in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
              "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.rsh.rp_filter=0",
              "net.ipv4.conf.clh.rp_filter=0"):
        sh(f"sysctl -q -w {k}")
    procs.append(subprocess.Popen(["ip", "netns", "exec", "rs", "python3", PEER, "servers"] + RS))
    procs.append(subprocess.Popen(["ip", "netns", "exec", "cl", "python3", PEER, "client", AGENT]))
    deadline = time.time() + 60
    while not os.path.exists(AGENT):
        if time.time() > deadline:
            raise RuntimeError("the client agent did not start")
        time.sleep(0.1)
    # the real servers answer
    while sh(f"ip netns exec rs python3 -c \"import socket; socket.create_connection(('{RS[3]}', 8081), 1).close()\"",
             check=False).returncode != 0:
        if time.time() > deadline:
            raise RuntimeError("the real servers did not start")
        time.sleep(0.2)
    return Agent(AGENT)


def teardown():
    for p in procs:
        p.kill()
    sh("ip netns del rs", check=False)
    sh("ip netns del cl", check=False)
    sh("ip link del vip0", check=False)


def run_all(run, agent, chosen):
    results = {}
    ipvsd = None
    if run.name == "userspace":
        if os.path.exists(CTL):
            os.unlink(CTL)
        ipvsd = subprocess.Popen([IPVSD, "--socket", CTL, "--threads", "2"],
                                 stderr=open(os.path.join(OUT, "userspace-equivalence-ipvsd.log"), "w"))
        deadline = time.time() + 30
        while not os.path.exists(CTL):
            if time.time() > deadline:
                raise RuntimeError("ipvsd did not start")
            time.sleep(0.1)
    try:
        run.adm("-C")
        run.adm("--set 900 120 300")
        t0 = time.time()
        for name, fn in chosen:
            s = Scenario(run, agent)
            try:
                fn(s)
            except Exception as e:  # noqa: BLE001 - reported as a failed scenario
                s.note(f"error: {e}")
                s.release_all()
            results[name] = s.seen
        log(f"{run.name}: {len(chosen)} scenarios in {time.time() - t0:.1f}s")
        run.adm("-C")
    finally:
        if ipvsd is not None:
            ipvsd.terminate()
            ipvsd.wait(timeout=30)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--filter", action="append", default=[])
    args = ap.parse_args()
    if "virtme_" not in open("/proc/cmdline").read():
        sys.exit("userspace-equivalence.py: run it in the VM (integration-tests/vm/run); refusing to touch this machine")
    for b in (IPVSADM, IPVSD):
        if not os.access(b, os.X_OK):
            sys.exit(f"userspace-equivalence.py: {b} missing (cargo build --release)")
    chosen = [(n, f) for n, f in SCENARIOS
              if not args.filter or any(w.lower() in n.lower() for w in args.filter)]
    agent = setup()
    try:
        # ipvsd first: the kernel keeps connection entries (TIME_WAIT) after a flush, which
        # would catch the same client addresses and ports in a later run.
        ours = run_all(Run("userspace"), agent, chosen)
        kernel = run_all(Run("kernel"), agent, chosen)
    finally:
        teardown()
    passed = failed = 0
    report = []
    for name, _ in chosen:
        a, b = ours.get(name, []), kernel.get(name, [])
        ok = a == b and a and not any(x.startswith("error") for x in a)
        report.append({"scenario": name, "pass": bool(ok), "kernel": b, "userspace": a})
        if ok:
            passed += 1
            servers = sorted(set(a))
            log(f"PASS {name} ({len(a)} connections, servers {' '.join(x.rsplit('.', 1)[-1] for x in servers)})")
        else:
            failed += 1
            log(f"FAIL {name}")
            log(f"  kernel:    {' '.join(x.rsplit('.', 1)[-1] for x in b)}")
            log(f"  userspace: {' '.join(x.rsplit('.', 1)[-1] for x in a)}")
    with open(os.path.join(OUT, "userspace-equivalence.json"), "w") as f:
        json.dump(report, f, indent=1)
    log(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
