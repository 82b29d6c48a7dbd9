#!/usr/bin/env python3
"""The full cluster test of issue 8, on a real IPVS kernel, in one VM boot.

    integration-tests/vm/run integration-tests/vm/cluster.py

Runs INSIDE the VM (refuses elsewhere). Needs target/release/{pulse,lvsd,nanny} (cargo build
--release -p pulse -p lvsd -p nanny). Python standard library only. Every check prints PASS/FAIL,
figures print as "  figure: ..."; the last line is "N passed, M failed"; exit 0 only if all passed.
The routers' logs (their syslog) and figures.json go to target/vm-out/cluster/.

The HOWTO's five-node NAT cluster (docs/howto.md), in network namespaces this script creates and
removes (clu-*):

    client clu-c 192.0.2.50 --+-- brpub (in clu-sw) --+-- clu-r1 eth0 192.0.2.2    primary
                                                      +-- clu-r2 eth0 192.0.2.3    backup
       VIP 192.0.2.100 floats on eth0 of the active router (eth0:1)
    clu-r1 eth1 10.11.12.252 --+-- brpriv (in clu-sw) --+-- clu-rs1 10.11.12.11 (weight 1)
    clu-r2 eth1 10.11.12.253 --+                        +-- clu-rs2 10.11.12.12 (weight 2)
       NAT router 10.11.12.1 floats on eth1 of the      +-- clu-rs3 10.11.12.13 (weight 3)
       active router (eth1:1): the real servers'            (+ 10.11.12.14 "rs4", added by a
       default gateway                                        reload, in clu-rs3)

Each router runs pulse through the init script (init.d/pulse start/stop/reload/status) inside
integration-tests/vm/cluster/router-exec, which gives it its own /run (pid and lock files),
/etc/sysconfig (pulse settings, ha/lvs.cf) and /dev/log, as a router with its own disk has. The
routers' prerequisites are the shipped files: etc/sysctl.d/90-piranha-rs-router.conf (sysctl -p in
the namespace) and etc/nftables/piranha-rs-nat.nft (nft -f in the namespace).

The scenarios, in order:
 1. start: r1 active (VIP, NAT router address, table), r2 standby; sync daemons master/backup;
 2. a real server stopped: out of the table within its nanny timeout, no client error after
    that; started again: back after reentry;
 3. requests through the VIP reach the real servers in proportion to their weights (wrr);
 4. init.d/pulse reload on both routers after a config change (a weight changed, a real server
    added) under client load: zero failed requests;
 5. crash of the active router under client load, syncdaemon = 1: the backup takes over; outage
    and failed requests; long-lived connections opened before survive;
 6. polite failover (init.d/pulse stop on the active router) under load, figures only;
 7. the same crash with syncdaemon = 0: the long-lived connections break;
 8. init.d/pulse stop on both: no VIP, no IPVS service, no sync daemon, no process left.

What a crash is here: SIGKILL of the active pulse, and in the same instant SIGKILL of every other
process of that router (lvsd, the nannies) and its two cables pulled (the switch ports go down).
SIGKILL of pulse alone leaves the router's kernel running: its floating addresses stay up (it
keeps answering ARP for the VIP and the NAT gateway) and lvsd, told by PR_SET_PDEATHSIG, removes
the IPVS services; two routers would then hold the VIP. A router that dies (power, kernel panic)
takes all of that with it at once; that is what the backup must cope with, so that is what is
simulated. The dead router is then "rebooted": its kernel state (floating addresses, IPVS table,
sync daemons, /run) cleared, cables back, pulse started by the init script; it stays standby.
"""
import contextlib
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PULSE = os.environ.get("PULSE", os.path.join(REPO, "target/release/pulse"))
LVSD = os.environ.get("LVSD", os.path.join(REPO, "target/release/lvsd"))
NANNY = os.environ.get("NANNY", os.path.join(REPO, "target/release/nanny"))
INIT = os.path.join(REPO, "init.d/pulse")
HELPERS = os.path.join(REPO, "integration-tests/vm/cluster")
ROUTER_EXEC = os.path.join(HELPERS, "router-exec")
RS_SERVER = os.path.join(HELPERS, "rs-server.py")
SYSCTL_FILE = os.path.join(REPO, "etc/sysctl.d/90-piranha-rs-router.conf")
NFT_FILE = os.path.join(REPO, "etc/nftables/piranha-rs-nat.nft")
IPVSADM = "/usr/sbin/ipvsadm"  # Debian's: the reference reader of the table
OUT = os.path.join(REPO, "target/vm-out/cluster")
WORK = "/tmp/clu"
TIME_BOUND = int(os.environ.get("CLUSTER_TIMEOUT", "1200"))

# Timing an operator would pick for a LAN pair that must fail over in about two seconds:
# a heartbeat every 0.5 s, the partner dead after 2 s (four heartbeats) of silence.
KEEPALIVE = "0.5"
DEADTIME = "2"
NANNY_TIMEOUT = 1  # lvs.cf "timeout": nanny checks every second, one failure removes
REENTRY = 3  # lvs.cf "reentry": seconds of passing checks before a server comes back
LONG_LIVED = 12  # long-lived connections per failover

SW = "clu-sw"
CLIENT = "clu-c"
CLIENT_IP = "192.0.2.50"
VIP = "192.0.2.100"
NATGW = "10.11.12.1"
ROUTERS = {
    "r1": {"ns": "clu-r1", "pub": "192.0.2.2", "priv": "10.11.12.252"},
    "r2": {"ns": "clu-r2", "pub": "192.0.2.3", "priv": "10.11.12.253"},
}
RS = {"rs1": ("clu-rs1", "10.11.12.11"), "rs2": ("clu-rs2", "10.11.12.12"),
      "rs3": ("clu-rs3", "10.11.12.13"), "rs4": ("clu-rs3", "10.11.12.14")}
NAMESPACES = [SW, CLIENT, "clu-r1", "clu-r2", "clu-rs1", "clu-rs2", "clu-rs3"]

results = []
figures = {}
rs_procs = {}
collectors = []
created = []  # paths this script created outside WORK, removed at the end
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)
HOME_NS = None


class TimeBound(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def check(name, ok, detail=""):
    results.append((name, bool(ok)))
    log(f"{'PASS' if ok else 'FAIL'} {name}" + (f" ({detail})" if detail else ""))
    return ok


def figure(key, value, text):
    figures[key] = value
    log(f"  figure: {text}")


def sh(cmd, check_rc=True, timeout=60):
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def nsx(ns, cmd, check_rc=True):
    return sh(f"ip netns exec {ns} {cmd}", check_rc)


def wait_for(cond, timeout, step=0.2):
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


# ---------------------------------------------------------------------------- namespaces

def setns(fd):
    if libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


def enter(ns):
    """Moves the calling thread into network namespace ns (sockets made then belong to it)."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        setns(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def in_client():
    enter(CLIENT)
    try:
        yield
    finally:
        setns(HOME_NS)


def ns_inode(ns):
    st = os.stat(f"/run/netns/{ns}")
    return (st.st_dev, st.st_ino)


def ns_pids(ns):
    """Pids of the processes whose network namespace is ns."""
    want = ns_inode(ns)
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            st = os.stat(f"/proc/{d}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == want:
            out.append(int(d))
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def veth(ns, ifname, port, bridge, addrs):
    sh(f"ip -n {SW} link add {port} type veth peer name {ifname} netns {ns}")
    sh(f"ip -n {SW} link set {port} master {bridge} up")
    for a in addrs:
        sh(f"ip -n {ns} addr add {a}/24 dev {ifname}")
    sh(f"ip -n {ns} link set {ifname} up")


def setup_network():
    for ns in NAMESPACES:
        sh(f"ip netns add {ns}")
        sh(f"ip -n {ns} link set lo up")
    for br in ("brpub", "brpriv"):
        sh(f"ip -n {SW} link add {br} type bridge")
        sh(f"ip -n {SW} link set {br} up")
    veth(CLIENT, "eth0", "c-pub", "brpub", [CLIENT_IP])
    for r, d in ROUTERS.items():
        veth(d["ns"], "eth0", f"{r}-pub", "brpub", [d["pub"]])
        veth(d["ns"], "eth1", f"{r}-priv", "brpriv", [d["priv"]])
        # The router prerequisites, as docs/howto.md installs them.
        nsx(d["ns"], f"sysctl -q -p {SYSCTL_FILE}")
        nsx(d["ns"], f"nft -f {NFT_FILE}")
    for name in ("rs1", "rs2", "rs3"):
        ns, ip = RS[name]
        addrs = [ip] + ([RS["rs4"][1]] if name == "rs3" else [])
        veth(ns, "eth0", f"{name}-priv", "brpriv", addrs)
        sh(f"ip -n {ns} route add default via {NATGW}")


def start_rs(name):
    ns, ip = RS[name]
    logf = open(os.path.join(OUT, f"{name}.log"), "a")
    p = subprocess.Popen(["ip", "netns", "exec", ns, "python3", RS_SERVER, name, ip, "80"],
                         stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    logf.close()
    rs_procs[name] = p

    def listening():
        with contextlib.suppress(OSError):
            enter(ns)
            try:
                socket.create_connection((ip, 80), timeout=1).close()
                return True
            finally:
                setns(HOME_NS)
        return False
    ok, _ = wait_for(listening, 30, 0.2)
    if not ok:
        raise RuntimeError(f"{name}: the server did not start")


def stop_rs(name):
    p = rs_procs.pop(name)
    # ip netns exec execs python: the pid is the server's.
    p.send_signal(signal.SIGTERM)
    p.wait(10)


# ---------------------------------------------------------------------------- routers

class Collector(threading.Thread):
    """The router's /dev/log: pulse, lvsd and the nannies log there as daemons."""

    def __init__(self, r):
        super().__init__(daemon=True)
        self.path = os.path.join(WORK, r, "log")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.out = open(os.path.join(OUT, f"{r}.log"), "w")
        self.lock = threading.Lock()
        self.lines = []

    def run(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            # "<PRI>Mmm dd hh:mm:ss ident[pid]: msg" -> "ident[pid]: msg"
            text = re.sub(rb"^<\d+>\w{3} [ \d]\d \d\d:\d\d:\d\d ", b"", data)
            line = f"{time.time():.3f} {text.decode(errors='replace').rstrip()}"
            with self.lock:
                self.lines.append(line)
                self.out.write(line + "\n")
                self.out.flush()

    def count(self):
        with self.lock:
            return len(self.lines)

    def since(self, mark):
        with self.lock:
            return self.lines[mark:]


def rdir(r):
    return os.path.join(WORK, r)


def setup_routers():
    for r in ROUTERS:
        d = rdir(r)
        os.makedirs(os.path.join(d, "run", "lock"))  # /run/lock: /var/lock
        os.makedirs(os.path.join(d, "sysconfig", "ha"))
        with open(os.path.join(d, "sysconfig", "pulse"), "w") as f:
            f.write(f'PULSE={PULSE}\nOPTIONS="--lvsd {LVSD}"\nSTOP_TIMEOUT=20\n')
        c = Collector(r)
        c.start()
        collectors.append(c)
        ROUTERS[r]["log"] = c


def init(r, action, timeout=60):
    """init.d/pulse ACTION on router r; returns (exit status, output)."""
    p = subprocess.run(["ip", "netns", "exec", ROUTERS[r]["ns"], ROUTER_EXEC, rdir(r), INIT, action],
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).strip()


def lvs_cf(serial, sync, servers):
    """lvs.cf of both routers: docs/howto.md's, with this test's timing and programs."""
    blocks = "".join(
        f"     server {n} {{\n         address = {RS[n][1]}\n         active = 1\n"
        f"         weight = {w}\n     }}\n" for n, w in servers)
    return f"""serial_no = {serial}
primary = {ROUTERS['r1']['pub']}
primary_private = {ROUTERS['r1']['priv']}
service = lvs
backup_active = 1
backup = {ROUTERS['r2']['pub']}
backup_private = {ROUTERS['r2']['priv']}
heartbeat = 1
heartbeat_port = 539
keepalive = {KEEPALIVE}
deadtime = {DEADTIME}
network = nat
nat_router = {NATGW} eth1:1
nat_nmask = 255.255.255.0
syncdaemon = {1 if sync else 0}
syncd_iface = eth1
syncd_id = 1
virtual web {{
     active = 1
     address = {VIP} eth0:1
     vip_nmask = 255.255.255.0
     port = 80
     send = "GET / HTTP/1.0\\r\\n\\r\\n"
     expect = "HTTP"
     use_regex = 0
     load_monitor = none
     scheduler = wrr
     protocol = tcp
     timeout = {NANNY_TIMEOUT}
     reentry = {REENTRY}
     quiesce_server = 0
     client_monitor = {NANNY}
{blocks}}}
"""


SERVERS = [("rs1", 1), ("rs2", 2), ("rs3", 3)]
SERVERS_RELOADED = [("rs1", 1), ("rs2", 2), ("rs3", 1), ("rs4", 1)]


def write_cf(r, text):
    path = os.path.join(rdir(r), "sysconfig", "ha", "lvs.cf")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def addresses(r):
    out = sh(f"ip -n {ROUTERS[r]['ns']} -4 -o addr show")
    return set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out))


def holds(r):
    a = addresses(r)
    return VIP in a and NATGW in a


def holds_none(r):
    a = addresses(r)
    return VIP not in a and NATGW not in a


def table(r):
    """Debian's ipvsadm -Ln in the router: {service: {real server address: weight}}."""
    t = {}
    cur = None
    for line in nsx(ROUTERS[r]["ns"], f"{IPVSADM} -Ln").splitlines()[3:]:
        w = line.split()
        if not w:
            continue
        if w[0] == "->":
            t[cur][w[1].split(":")[0]] = int(w[3])
        else:
            cur = " ".join(w[:2])
            t[cur] = {}
    return t


def web(r):
    return table(r).get(f"TCP {VIP}:80")


def weights_are(r, servers):
    return web(r) == {RS[n][1]: w for n, w in servers}


def complete(r, servers):
    t = web(r)
    return t is not None and set(t) == {RS[n][1] for n, _ in servers}


def daemons(r):
    return nsx(ROUTERS[r]["ns"], f"{IPVSADM} -L --daemon").strip()


def router_pids(r):
    return ns_pids(ROUTERS[r]["ns"])


def diagnose(r):
    """What every process of router r is doing (printed when a check about it failed)."""
    for p in router_pids(r):
        try:
            with open(f"/proc/{p}/status") as f:
                st = {k: v.strip() for k, v in (l.split(":", 1) for l in f if ":" in l)}
            with open(f"/proc/{p}/wchan") as f:
                wchan = f.read()
            stack = ""
            with contextlib.suppress(OSError), open(f"/proc/{p}/stack") as f:
                stack = " < ".join(l.split()[1].split("+")[0] for l in f.read().splitlines()[:4])
            log(f"     {r}: pid {p} {st.get('Name')} {st.get('State')} wchan {wchan} "
                f"SigPnd {st.get('SigPnd')} ShdPnd {st.get('ShdPnd')} SigBlk {st.get('SigBlk')} "
                f"SigCgt {st.get('SigCgt')} stack {stack}")
        except OSError:
            pass


def lvsd_answers(r, what):
    """lvsd of router r logs its status on SIGUSR1 (its main loop is alive)."""
    pids = [p for p in router_pids(r) if comm(p) == "lvsd"]
    c = ROUTERS[r]["log"]
    mark = c.count()
    for p in pids:
        os.kill(p, signal.SIGUSR1)
    ok, el = wait_for(lambda: any("lvsd[" in l and "status:" in l for l in c.since(mark)), 5, 0.1)
    if not check(f"{what}: lvsd on {r} answers SIGUSR1", len(pids) == 1 and ok,
                 f"pids {pids}, {el:.1f}s"):
        diagnose(r)


def status(r):
    return init(r, "status")[0]


def crash(r):
    """SIGKILL of r's pulse, of everything else running on r, and its cables pulled."""
    with open(os.path.join(rdir(r), "run", "pulse.pid")) as f:
        pid = int(f.read().strip())
    others = [p for p in router_pids(r) if p != pid]
    names = sorted(comm(p) for p in others)
    t = time.time()
    os.kill(pid, signal.SIGKILL)
    for p in others:
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)
    sh(f"ip -n {SW} link set {r}-pub down && ip -n {SW} link set {r}-priv down")
    log(f"     crashed {r}: SIGKILL pulse {pid} and {len(others)} more "
        f"({', '.join(names) or 'none'}), cables pulled in "
        f"{(time.time() - t) * 1000:.0f} ms")
    return t


def reboot(r, sync, servers):
    """The crashed router comes back: clean kernel state and /run, cables in, pulse started."""
    ns = ROUTERS[r]["ns"]
    for p in router_pids(r):
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)
    for ip, dev in ((VIP, "eth0"), (NATGW, "eth1")):
        sh(f"ip -n {ns} addr del {ip}/24 dev {dev}", check_rc=False)
    nsx(ns, f"{IPVSADM} -C")
    nsx(ns, f"{IPVSADM} --stop-daemon master", check_rc=False)
    nsx(ns, f"{IPVSADM} --stop-daemon backup", check_rc=False)
    run = os.path.join(rdir(r), "run")
    sh(f"rm -rf {run} && mkdir -p {run}/lock")
    sh(f"ip -n {SW} link set {r}-pub up && ip -n {SW} link set {r}-priv up")
    write_cf(r, lvs_cf(10, sync, servers))
    rc, out = init(r, "start")
    other = "r2" if r == "r1" else "r1"
    ok, _ = wait_for(lambda: status(r) == 0, 10)
    time.sleep(float(DEADTIME) + 1)
    check(f"{r} rebooted (syncdaemon = {int(sync)}): init.d/pulse start, it stays standby, "
          f"{other} stays active", rc == 0 and ok and holds_none(r) and holds(other)
          and not table(r), out)


# ---------------------------------------------------------------------------- clients

def http_get(timeout=1.0):
    """One request through the VIP (from the client namespace); returns the server's name."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((VIP, 80))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    if not data.startswith(b"HTTP/1.0 200"):
        raise OSError(f"bad reply {data[:40]!r}")
    return data.split(b"\r\n\r\n", 1)[1].decode().strip()


class Load(threading.Thread):
    """A client loop of short requests through the VIP, each with a 1 s timeout, one every
    50 ms, bounded in count and time. results: (start, end, ok, server or error)."""

    def __init__(self, max_requests=3000, max_seconds=120, interval=0.05):
        super().__init__(daemon=True)
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.interval = interval
        self.halt = threading.Event()
        self.results = []
        self.lock = threading.Lock()

    def run(self):
        enter(CLIENT)
        t0 = time.time()
        while (not self.halt.is_set() and len(self.results) < self.max_requests
               and time.time() - t0 < self.max_seconds):
            t = time.time()
            try:
                r = (t, time.time(), True, http_get(1.0))
            except OSError as e:
                r = (t, time.time(), False, type(e).__name__)
            r = (r[0], time.time(), r[2], r[3])
            with self.lock:
                self.results.append(r)
            time.sleep(self.interval)

    def snapshot(self):
        with self.lock:
            return list(self.results)

    def finish(self):
        self.halt.set()
        self.join(10)
        return self.snapshot()


def outage(res):
    """(failed requests, outage in s: first failure's start to the start of the first
    success after the last failure, or None)."""
    fails = [r for r in res if not r[2]]
    if not fails:
        return 0, 0.0
    last = fails[-1][0]
    after = [r for r in res if r[2] and r[0] > last]
    if not after:
        return len(fails), None
    return len(fails), after[0][0] - fails[0][0]


def recovered(load, since, quiet=3.0):
    """True when the load has run successfully for `quiet` s after its last failure (and after
    `since`)."""
    res = load.snapshot()
    fails = [r[0] for r in res if not r[2]]
    start = max([since] + fails)
    return any(r[2] and r[0] > start for r in res) and res[-1][0] - start >= quiet


class Conn:
    """A long-lived connection through the VIP to an echo endpoint of a real server."""

    def __init__(self, avoid=frozenset()):
        """`avoid`: client ports that must not be used (for which a router's kernel still holds
        a connection entry from an earlier connection: that entry, not a sync daemon, would
        carry this connection across a failover)."""
        with in_client():
            for _ in range(100):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("0.0.0.0", 0))
                if s.getsockname()[1] not in avoid:
                    break
                s.close()
            s.settimeout(3)
            s.connect((VIP, 80))
            self.s = s
        self.port = self.s.getsockname()[1]
        self.f = self.s.makefile("rb")
        self.s.sendall(b"ECHO\n")
        self.name = self.f.readline().decode().strip()
        self.n = 0

    def ping(self, timeout=3):
        self.n += 1
        self.s.settimeout(timeout)
        msg = f"ping {self.n}"
        self.s.sendall(msg.encode() + b"\n")
        return self.f.readline().decode().strip() == f"{self.name} {msg}"

    def close(self):
        with contextlib.suppress(OSError):
            self.f.close()
            self.s.close()


def conn_entries(r):
    """r's kernel connection entries to the VIP's port 80, in any state:
    {client port: (state, real server, expires)}."""
    text = nsx(ROUTERS[r]["ns"], "cat /proc/net/ip_vs_conn")
    out = {}
    for line in text.splitlines()[1:]:
        w = line.split()
        # Pro FromIP FPrt ToIP TPrt DestIP DPrt State Expires (hex addresses and ports)
        if len(w) >= 9 and w[4] == "0050":
            rs = socket.inet_ntoa(bytes.fromhex(w[5]))
            out[int(w[2], 16)] = (w[7], rs, w[8])
    return out


def synced(r):
    """Connections to the VIP's port 80 in r's kernel table (ESTABLISHED)."""
    return sum(1 for e in conn_entries(r).values() if e[0] == "ESTABLISHED")


# ---------------------------------------------------------------------------- scenarios

def scenario_start():
    write_cf("r1", lvs_cf(1, True, SERVERS))
    write_cf("r2", lvs_cf(1, True, SERVERS))
    check("status before start: 3 (stopped) on both", status("r1") == 3 and status("r2") == 3)
    t0 = time.time()
    rc1, out1 = init("r1", "start")
    ok1, el1 = wait_for(lambda: holds("r1"), 20)
    rc2, out2 = init("r2", "start")
    check("init.d/pulse start on r1 then r2: exit 0", rc1 == 0 and rc2 == 0, f"{out1} / {out2}")
    check("r1 (primary) takes the VIP and the NAT router address", ok1, f"{el1:.1f}s")
    ok, el = wait_for(lambda: complete("r1", SERVERS), 30)
    figure("start_table_s", round(time.time() - t0, 1),
           f"r1 start to every real server in the table: {time.time() - t0:.1f} s")
    check("the IPVS table on r1 has the virtual service and its three real servers (Masq)", ok
          and "Masq" in nsx("clu-r1", f"{IPVSADM} -Ln"), str(table("r1")))
    time.sleep(float(DEADTIME) + 0.5)
    check("r2 (backup) stays standby: no floating address, no service", holds_none("r2")
          and not table("r2") and holds("r1"))
    check("status after start: 0 (running) on both", status("r1") == 0 and status("r2") == 0)
    d1, d2 = daemons("r1"), daemons("r2")
    check("syncdaemon = 1: master sync daemon on r1, backup on r2 (eth1, syncid 1)",
          "master sync daemon" in d1 and "eth1" in d1 and "backup sync daemon" in d2, f"{d1} / {d2}")
    lvsd_answers("r1", "after start")
    check("NAT prerequisites met: pulse logged nothing missing",
          not any("prerequisite missing" in l for c in collectors for l in c.since(0)))


def scenario_real_server():
    load = Load()
    load.start()
    time.sleep(1.5)
    t_stop = time.time()
    stop_rs("rs1")
    ok, el = wait_for(lambda: RS["rs1"][1] not in web("r1"), 20, 0.1)
    t_out = time.time()
    check("rs1 stopped: it leaves the table within its nanny timeout", ok and el < NANNY_TIMEOUT + 4,
          f"{el:.1f}s, timeout {NANNY_TIMEOUT} s")
    time.sleep(3)
    start_rs("rs1")
    t_start = time.time()
    ok, el = wait_for(lambda: RS["rs1"][1] in web("r1"), 30, 0.1)
    t_back = time.time()
    check("rs1 started: back in the table after reentry", ok and el >= REENTRY - 1,
          f"{el:.1f}s after its server came up, reentry {REENTRY} s")
    time.sleep(2)
    res = load.finish()
    window = [r for r in res if not r[2] and r[0] < t_out]
    after = [r for r in res if not r[2] and r[0] >= t_out]
    back = [r for r in res if r[2] and r[0] > t_back and r[3] == "rs1"]
    figure("rs_out_s", round(t_out - t_stop, 2),
           f"rs1 stop to out of the table: {t_out - t_stop:.2f} s, {len(window)} failed requests "
           f"meanwhile; start to back in: {t_back - t_start:.1f} s")
    check("no client error once rs1 is out of the table (and after it came back)", not after,
          f"{len(res)} requests, {len(after)} failed after removal: {after[:3]}")
    check("rs1 gets requests again once back", back, f"{len(back)} requests to rs1")


def scenario_weights():
    ok, el = wait_for(lambda: weights_are("r1", SERVERS), 120, 0.5)
    check("slow start done: weights 1, 2, 3 in the table", ok, f"{el:.0f}s more; {web('r1')}")
    n = 120
    counts = {}
    failed = 0
    with in_client():
        for _ in range(n):
            try:
                name = http_get(2.0)
                counts[name] = counts.get(name, 0) + 1
            except OSError:
                failed += 1
    total = sum(w for _, w in SERVERS)
    expected = {name: n * w // total for name, w in SERVERS}
    # wrr is periodic with period sum(w) = 6 (rs3, rs2, rs3, rs1, rs2, rs3): any 6k consecutive
    # connections go exactly k*w to each server. The tolerance of 1 covers a restart of the cycle
    # (the kernel resets wrr when a real server is edited); none is expected during the run.
    ok = failed == 0 and all(abs(counts.get(k, 0) - v) <= 1 for k, v in expected.items())
    figure("weights", counts, f"{n} requests through the VIP: {counts} (expected {expected})")
    check("requests reach the real servers in proportion to their weights (wrr 1:2:3, +-1)", ok
          and weights_are("r1", SERVERS), f"{failed} failed")


def scenario_reload():
    lvsd_answers("r1", "before the reload")
    load = Load()
    load.start()
    time.sleep(1.5)
    text = lvs_cf(2, True, SERVERS_RELOADED)
    write_cf("r1", text)
    write_cf("r2", text)
    t0 = time.time()
    rc1, o1 = init("r1", "reload")
    rc2, o2 = init("r2", "reload")
    check("init.d/pulse reload on both: exit 0", rc1 == 0 and rc2 == 0, f"{o1} / {o2}")
    ok, el = wait_for(lambda: weights_are("r1", SERVERS_RELOADED), 30, 0.2)
    if not check("reload applied: rs3 weight 3 -> 1, rs4 added", ok, f"{el:.1f}s; {web('r1')}"):
        diagnose("r1")
    time.sleep(2)
    res = load.finish()
    fails = [r for r in res if not r[2]]
    rs4 = sum(1 for r in res if r[2] and r[3] == "rs4")
    figure("reload_failed", len(fails), f"reload under load: {len(res)} requests, {len(fails)} "
           f"failed, {rs4} answered by the new rs4, table updated {el:.1f} s after the reload")
    check("zero failed requests across the reload", not fails and len(res) > 20, str(fails[:3]))
    check("the standby r2 reloaded too and stays standby", holds_none("r2") and not table("r2")
          and status("r2") == 0)


def failover(name, sync, active, backup, servers):
    """Crash of the active router under load with long-lived connections open."""
    stale = {} if sync else conn_entries(backup)
    conns = [Conn(frozenset(stale)) for _ in range(LONG_LIVED)]
    pings = sum(c.ping() for c in conns)
    spread = {}
    for c in conns:
        spread[c.name] = spread.get(c.name, 0) + 1
    check(f"{name}: {LONG_LIVED} long-lived connections open through the VIP",
          pings == LONG_LIVED, str(spread))
    if sync:
        ok, el = wait_for(lambda: synced(backup) >= LONG_LIVED, 20, 0.5)
        check(f"{name}: the backup's kernel has the connections (sync daemon)", ok,
              f"{synced(backup)} ESTABLISHED entries on {backup} after {el:.1f}s")
    else:
        time.sleep(3)
        log(f"     {backup} has {synced(backup)} ESTABLISHED entries (no sync daemon), "
            f"{len(stale)} entries left from its own active time (client ports avoided)")
        held = conn_entries(backup)
    load = Load()
    load.start()
    time.sleep(2)
    mark = ROUTERS[backup]["log"].count()
    t_kill = crash(active)
    ok, el = wait_for(lambda: holds(backup), 30, 0.05)
    t_vip = time.time()
    # More exact than the polling: when pulse logged its addresses up (collector's clock).
    for line in ROUTERS[backup]["log"].since(mark):
        if "floating addresses up" in line:
            t_vip = float(line.split()[0])
            break
    check(f"{name}: {backup} takes over the VIP and the NAT router address", ok,
          f"{el:.2f}s after the crash, deadtime {DEADTIME} s")
    ok, el2 = wait_for(lambda: complete(backup, servers), 30, 0.1)
    t_table = time.time()
    check(f"{name}: {backup}'s IPVS table built", ok, str(table(backup)))
    wait_for(lambda: recovered(load, t_kill), 30, 0.2)
    res = load.finish()
    fails, out = outage(res)
    before = [r for r in res if r[0] < t_kill]
    check(f"{name}: client load recovered", out is not None and res and res[-1][2],
          f"{len(res)} requests")
    figure(f"{name}_takeover_ms", round((t_vip - t_kill) * 1000),
           f"{name}: crash to VIP on {backup}: {(t_vip - t_kill) * 1000:.0f} ms, to its table "
           f"complete: {(t_table - t_kill) * 1000:.0f} ms")
    figure(f"{name}_outage_ms", None if out is None else round(out * 1000),
           f"{name}: outage {'?' if out is None else f'{out * 1000:.0f} ms'}, {fails} failed of "
           f"{len(res)} requests ({len(before)} before the crash, 1 s timeout each, one every 50 ms)")
    figures[f"{name}_failed"] = fails
    alive = 0
    fates = []
    for c in conns:
        try:
            ok = c.ping()
        except OSError as e:
            ok = type(e).__name__
        alive += ok is True
        fates.append(f"{c.port}->{c.name}: {ok}")
        c.close()
    figure(f"{name}_survivors", alive, f"{name}: {alive} of {LONG_LIVED} long-lived connections "
           f"work after the failover (syncdaemon = {int(sync)})")
    if sync:
        check(f"{name}: every long-lived connection survives (syncdaemon = 1)", alive == LONG_LIVED,
              f"{alive}/{LONG_LIVED}")
    else:
        check(f"{name}: without the sync daemon they break (syncdaemon = 0)", alive == 0,
              f"{alive}/{LONG_LIVED}" + ("" if alive == 0 else
              f"; {', '.join(fates)}; {backup}'s entries for these client ports before the "
              f"crash: {({c.port: held[c.port] for c in conns if c.port in held})}; "
              f"sloppy_tcp {nsx(ROUTERS[backup]['ns'], 'cat /proc/sys/net/ipv4/vs/sloppy_tcp')}"))
    check(f"{name}: init.d/pulse status on the crashed {active}: 1 (dead, pid file left)",
          status(active) == 1)


def scenario_polite():
    """r2 (active) is stopped by its init script: r1 takes over at once."""
    write_cf("r2", lvs_cf(11, False, SERVERS_RELOADED))
    lvsd_answers("r2", "before the polite failover")
    load = Load()
    load.start()
    time.sleep(1.5)
    t0 = time.time()
    rc, out = init("r2", "stop")
    t_stop = time.time()
    ok, el = wait_for(lambda: holds("r1"), 20, 0.05)
    check("polite failover: init.d/pulse stop on the active r2: exit 0, r1 takes over", rc == 0
          and ok, f"{out}; {time.time() - t0:.2f}s")
    wait_for(lambda: complete("r1", SERVERS_RELOADED), 30, 0.1)
    wait_for(lambda: recovered(load, t0), 30, 0.2)
    res = load.finish()
    fails, o = outage(res)
    figure("polite_failed", fails, f"polite failover: stop took {t_stop - t0:.2f} s, "
           f"{fails} failed of {len(res)} requests, outage "
           f"{'?' if o is None else f'{o * 1000:.0f} ms'}")
    check("the stopped r2 left nothing: no address, no service, no sync daemon, no process",
          holds_none("r2") and not table("r2") and not daemons("r2") and not router_pids("r2"),
          f"{daemons('r2')!r} {[comm(p) for p in router_pids('r2')]}")
    rc, out = init("r2", "start")
    ok, _ = wait_for(lambda: status("r2") == 0, 10)
    time.sleep(float(DEADTIME) + 1)
    check("r2 started again (syncdaemon = 0): standby", rc == 0 and ok and holds_none("r2")
          and holds("r1"), out)


def scenario_stop():
    for r in ("r1", "r2"):
        rc, out = init(r, "stop")
        check(f"init.d/pulse stop on {r}: exit 0", rc == 0, out)
    for r in ("r1", "r2"):
        left = [f"{p} {comm(p)}" for p in router_pids(r)]
        check(f"{r} after stop: no VIP, no NAT router address", holds_none(r), str(addresses(r)))
        check(f"{r} after stop: no IPVS service", not table(r), str(table(r)))
        check(f"{r} after stop: no sync daemon", not daemons(r), daemons(r))
        check(f"{r} after stop: no pulse, lvsd or nanny process left", not left, str(left))
        check(f"{r} after stop: status 3", status(r) == 3)


# ---------------------------------------------------------------------------- main

def cleanup():
    for ns in NAMESPACES:
        with contextlib.suppress(Exception):
            for p in ns_pids(ns):
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
    for p in rs_procs.values():
        with contextlib.suppress(Exception):
            p.kill()
            p.wait(5)
    time.sleep(0.5)
    for ns in NAMESPACES:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    for c in collectors:
        with contextlib.suppress(OSError):
            c.sock.close()
    for path in reversed(created):
        with contextlib.suppress(OSError):
            if os.path.isdir(path):
                os.rmdir(path)
            else:
                os.unlink(path)
    subprocess.run(["rm", "-rf", WORK])


def main():
    global HOME_NS
    if "virtme_" not in open("/proc/cmdline").read():
        print("cluster: not inside the VM; refusing to run", file=sys.stderr)
        return 2
    for p in (PULSE, LVSD, NANNY):
        if not os.access(p, os.X_OK):
            print(f"cluster: missing {p} (cargo build --release -p pulse -p lvsd -p nanny)",
                  file=sys.stderr)
            return 2
    t_start = time.time()
    HOME_NS = os.open("/proc/self/ns/net", os.O_RDONLY)

    def bound(_sig, _frame):
        raise TimeBound(f"global time bound of {TIME_BOUND} s reached")
    signal.signal(signal.SIGALRM, bound)
    signal.alarm(TIME_BOUND)
    scenarios = [
        ("start", scenario_start),
        ("real server", scenario_real_server),
        ("weights", scenario_weights),
        ("reload", scenario_reload),
        ("failover, syncdaemon = 1", lambda: failover("sync1", True, "r1", "r2", SERVERS_RELOADED)),
        ("reboot r1", lambda: reboot("r1", False, SERVERS_RELOADED)),
        ("polite failover", scenario_polite),
        ("failover, syncdaemon = 0", lambda: failover("sync0", False, "r1", "r2",
                                                      SERVERS_RELOADED)),
        ("reboot r1 again", lambda: reboot("r1", False, SERVERS_RELOADED)),
        ("stop", scenario_stop),
    ]
    try:
        subprocess.run(["rm", "-rf", WORK, OUT])
        os.makedirs(WORK)
        os.makedirs(OUT)
        # The routers' /dev/log and /etc/sysconfig are bind mounts over these.
        if not os.path.lexists("/dev/log"):
            open("/dev/log", "w").close()
            created.append("/dev/log")
        if not os.path.isdir("/etc/sysconfig"):
            os.mkdir("/etc/sysconfig")
            created.append("/etc/sysconfig")
        setup_network()
        for name in ("rs1", "rs2", "rs3", "rs4"):
            start_rs(name)
        setup_routers()
        log(f"   (set-up {time.time() - t_start:.0f}s)")
        for name, fn in scenarios:
            log(f"== {name}")
            t0 = time.time()
            fn()
            log(f"   ({time.time() - t0:.0f}s)")
    except BaseException as e:  # the time bound, a broken step: a failure, then clean up
        traceback.print_exc()
        check("the scenarios ran to the end", False, repr(e))
    finally:
        signal.alarm(0)
        cleanup()
    left = [ns for ns in NAMESPACES if os.path.exists(f"/run/netns/{ns}")]
    check("clean-up: every namespace of the test removed", not left, str(left))
    figures["kernel"] = os.uname().release
    figures["date"] = time.strftime("%Y-%m-%d")
    figures["runtime_s"] = round(time.time() - t_start)
    figures["keepalive"], figures["deadtime"] = KEEPALIVE, DEADTIME
    with open(os.path.join(OUT, "figures.json"), "w") as f:
        json.dump(figures, f, indent=1)
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    if failed:
        for r in ROUTERS:
            c = ROUTERS[r].get("log")
            if c:
                log(f"--- last lines of {r}'s log (all: target/vm-out/cluster/{r}.log)")
                for line in c.since(max(0, c.count() - 25)):
                    log(f"    {line}")
    log(f"   (total {time.time() - t_start:.0f}s)")
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
