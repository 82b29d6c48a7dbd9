#!/usr/bin/env python3
"""Security probes against a running piranha-gui (started by run.sh).

Environment: BASE (http://127.0.0.1:PORT), PASSWORD, CONFIG (the lvs.cf it edits), LVSD (for
--config-test), GUI (the binary), PASSWD (piranha-passwd), WORK (a scratch directory),
MAX_BODY (the server's --max-body).
"""
import hashlib
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse

BASE = os.environ["BASE"]
URL = urllib.parse.urlparse(BASE)
HOST, PORT = URL.hostname, URL.port
PASSWORD = os.environ["PASSWORD"]
CONFIG = os.environ["CONFIG"]
LVSD = os.environ["LVSD"]
GUI = os.environ["GUI"]
PASSWD = os.environ["PASSWD"]
WORK = os.environ["WORK"]
MAX_BODY = int(os.environ.get("MAX_BODY", "1048576"))

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + what)
    else:
        failed += 1
        print("FAIL " + what)
    return cond


def request(method, path, body=None, headers=None, source=None, raw=False):
    """One request on its own connection: (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection(
        HOST, PORT, timeout=20, source_address=(source, 0) if source else None
    )
    h = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    out = r.read()
    hdrs = {}
    for k, v in r.getheaders():
        hdrs.setdefault(k.lower(), []).append(v)
    conn.close()
    return r.status, hdrs, out


def file_state():
    with open(CONFIG, "rb") as f:
        data = f.read()
    return hashlib.sha256(data).hexdigest(), os.stat(CONFIG).st_mtime_ns


def login(source=None):
    st, h, body = request("POST", "/api/login", {"password": PASSWORD}, source=source)
    if st != 200:
        return None, None
    cookie = h["set-cookie"][0].split(";")[0]
    return cookie, json.loads(body)["csrf_token"]


# ------------------------------------------------------------------ routes
PAGES = ["/", "/control", "/global", "/redundancy", "/virtual", "/virtual/new", "/virtual/0",
         "/virtual/0/server/new", "/virtual/0/server/0", "/config", "/static/app.js",
         "/static/style.css", "/metrics", "/no/such/page"]
API = ["/api/session", "/api/status", "/api/config", "/api/config/validate", "/api/apply",
       "/api/global", "/api/virtual", "/api/virtual/0", "/api/virtual/0/servers",
       "/api/virtual/0/servers/0", "/api/nothing", "/logout"]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def unauthenticated():
    before = file_state()
    leaks = []
    bad = []
    probes = 0
    for path in PAGES + API:
        for m in METHODS:
            for cookie in (None, "piranha_session=" + "0" * 64, "piranha_session=garbage"):
                for accept in ("text/html,*/*;q=0.8", "*/*"):
                    hdrs = {"Accept": accept}
                    if cookie:
                        hdrs["Cookie"] = cookie
                    body = {"fields": {"primary": "192.0.2.99"}} if m in ("POST", "PUT", "DELETE", "PATCH") else None
                    st, h, out = request(m, path, body, hdrs)
                    probes += 1
                    redirect_to_login = st == 303 and h.get("location") == ["/login"]
                    if not (st == 401 or redirect_to_login):
                        bad.append(f"{m} {path} ({cookie and 'bad cookie' or 'no cookie'}, {accept}) -> {st}")
                    if st != 401 and (b"serial_no" in out or b"virtual" in out.lower()):
                        leaks.append(f"{m} {path}")
    check(not bad, f"unauthenticated requests refused on every route and method ({probes} probes)" + (": " + "; ".join(bad[:10]) if bad else ""))
    check(not leaks, "no configuration data leaks without a session" + (": " + ", ".join(leaks[:10]) if leaks else ""))
    check(file_state() == before, "lvs.cf untouched by unauthenticated requests")
    # The login page and its stylesheet are the only open routes.
    st, h, out = request("GET", "/login")
    check(st == 200 and b'type="password"' in out, "the login page is open")
    cookies = h.get("set-cookie", [])
    check(any("HttpOnly" in c and "SameSite=Strict" in c for c in cookies), "login cookie HttpOnly, SameSite=Strict")
    st, _, _ = request("GET", "/static/login.css")
    check(st == 200, "the login page's stylesheet is open")


def session_cookie_flags():
    st, h, body = request("POST", "/api/login", {"password": PASSWORD})
    c = h.get("set-cookie", [""])[0]
    check(st == 200 and "HttpOnly" in c and "SameSite=Strict" in c and "Path=/" in c,
          "session cookie is HttpOnly and SameSite=Strict: " + c.split(";", 1)[-1].strip())
    check("Secure" not in c, "no Secure flag without TLS (it is set with TLS)")
    # Form login needs the login form's token (login CSRF).
    st, _, _ = request("POST", "/login", b"password=" + urllib.parse.quote(PASSWORD).encode(),
                       {"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 403, f"form login without the form's CSRF token refused ({st})")


def csrf():
    cookie, token = login()
    if not check(cookie is not None, "API login works"):
        return
    st, _, out = request("GET", "/api/config", headers={"Cookie": cookie})
    serial = json.loads(out)["serial_no"]
    before = file_state()
    targets = [
        ("PUT", "/api/global", {"fields": {"primary": "192.0.2.77"}}),
        ("POST", "/api/virtual", {"fields": {"name": "evil", "address": "192.0.2.8", "device": "eth0"}}),
        ("PUT", "/api/virtual/0", {"fields": {"active": "0"}}),
        ("DELETE", "/api/virtual/0", {}),
        ("POST", "/api/virtual/0/servers", {"fields": {"name": "x", "address": "192.0.2.9"}}),
        ("PUT", "/api/virtual/0/servers/0", {"fields": {"weight": "5"}}),
        ("DELETE", "/api/virtual/0/servers/0", {}),
        ("PUT", "/api/config", {"config": {}}),
        ("POST", "/api/apply", None),
        ("POST", "/logout", b""),
    ]
    bad = []
    for m, path, body in targets:
        for desc, hdrs in [
            ("no token", {"Cookie": cookie}),
            ("wrong token", {"Cookie": cookie, "X-CSRF-Token": "0" * 64}),
            ("truncated token", {"Cookie": cookie, "X-CSRF-Token": token[:-1]}),
            ("right token, foreign Origin", {"Cookie": cookie, "X-CSRF-Token": token, "Origin": "http://evil.example"}),
            ("right token, foreign Referer", {"Cookie": cookie, "X-CSRF-Token": token, "Referer": "http://evil.example/x"}),
            ("right token, cross-site fetch", {"Cookie": cookie, "X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"}),
        ]:
            st, _, _ = request(m, path, body, hdrs)
            if st != 403:
                bad.append(f"{m} {path} with {desc} -> {st}")
    check(not bad, f"state-changing requests without a valid CSRF token / from another origin refused ({len(targets) * 6} probes)" + (": " + "; ".join(bad[:10]) if bad else ""))
    check(file_state() == before, "lvs.cf untouched by CSRF probes")
    # The session still works (logout was refused).
    st, _, _ = request("GET", "/api/status", headers={"Cookie": cookie})
    check(st == 200, "the session survived the refused logout")
    # A form-encoded body (what a cross-site form can send) is refused even with the token.
    st, _, _ = request("PUT", "/api/global", b"fields=x", {"Cookie": cookie, "X-CSRF-Token": token,
                                                         "Content-Type": "application/x-www-form-urlencoded"})
    check(st == 415, f"API writes need application/json ({st})")
    # And the right token, same origin, works.
    st, _, out = request("PUT", "/api/global", {"serial_no": serial, "fields": {"tcp_timeout": "901"}},
                         {"Cookie": cookie, "X-CSRF-Token": token, "Origin": BASE})
    check(st == 200, f"the right token from the same origin is accepted ({st})")
    return cookie, token


def malformed(cookie, token):
    hdr = {"Cookie": cookie, "X-CSRF-Token": token}
    before = file_state()
    cases = [
        ("PUT", "/api/virtual/0", {"fields": {"port": "80;rm -rf /"}}, "port"),
        ("PUT", "/api/virtual/0", {"fields": {"port": "65536"}}, "port"),
        ("PUT", "/api/virtual/0", {"fields": {"port": " 80"}}, "port"),
        ("PUT", "/api/virtual/0", {"fields": {"address": "192.0.2.999"}}, "address"),
        ("PUT", "/api/virtual/0", {"fields": {"vip_nmask": "255.255.0.255"}}, "vip_nmask"),
        ("PUT", "/api/virtual/0", {"fields": {"active": "yes"}}, "active"),
        ("PUT", "/api/virtual/0", {"fields": {"name": "two words"}}, "name"),
        ("PUT", "/api/virtual/0", {"fields": {"send": "GET /\nHost: x"}}, "send"),
        ("PUT", "/api/virtual/0", {"fields": {"scheduler": "random"}}, "scheduler"),
        ("PUT", "/api/virtual/0", {"fields": {"timeout": "0"}}, "timeout"),
        ("PUT", "/api/virtual/0", {"fields": {"fwmark": "-1"}}, "fwmark"),
        ("PUT", "/api/virtual/0", {"fields": {"expect": "x" * 5000}}, "expect"),
        ("PUT", "/api/virtual/0", {"fields": {"bogus": "1"}}, "bogus"),
        ("PUT", "/api/virtual/0/servers/0", {"fields": {"weight": "-1"}}, "weight"),
        ("PUT", "/api/virtual/0/servers/0", {"fields": {"weight": "1e3"}}, "weight"),
        ("PUT", "/api/virtual/0/servers/0", {"fields": {"address": ""}}, "address"),
        ("PUT", "/api/global", {"fields": {"keepalive": "-2"}}, "keepalive"),
        ("PUT", "/api/global", {"fields": {"deadtime": "NaN"}}, "deadtime"),
        ("PUT", "/api/global", {"fields": {"heartbeat_port": "0x21b"}}, "heartbeat_port"),
        ("PUT", "/api/global", {"fields": {"network": "bridge"}}, "network"),
        ("PUT", "/api/global", {"fields": {"primary": "evil host;"}}, "primary"),
        ("PUT", "/api/global", {"fields": {"active_cmd": "a\"b'c d"}}, "active_cmd"),
    ]
    bad = []
    for m, path, body, field in cases:
        st, _, out = request(m, path, body, hdr)
        try:
            j = json.loads(out)
        except ValueError:
            j = {}
        fields = [e.get("field") for e in j.get("errors", [])]
        if st != 422 or field not in fields:
            bad.append(f"{m} {path} {body['fields']} -> {st} {fields}")
    check(not bad, f"malformed values rejected beside their field ({len(cases)} cases)" + (": " + "; ".join(bad[:5]) if bad else ""))
    shapes = [
        (b"{not json", "malformed JSON", 400),
        (json.dumps({"fields": {"port": 80}}).encode(), "a number instead of a string", 400),
        (json.dumps({"fields": {"port": "80"}, "extra": 1}).encode(), "an unknown member", 400),
        (json.dumps({"fields": ["port"]}).encode(), "fields not an object", 400),
        (b"\xff\xfe", "not UTF-8", 400),
    ]
    for body, what, want in shapes:
        st, _, _ = request("PUT", "/api/virtual/0", body, hdr)
        check(st == want, f"{what} refused with {want} ({st})")
    st, _, _ = request("PUT", "/api/virtual/0", b"{" + b" " * (MAX_BODY + 10) + b"}", hdr)
    check(st == 413, f"a body above --max-body refused with 413 ({st})")
    st, _, _ = request("PUT", "/api/virtual/99", {"fields": {"port": "81"}}, hdr)
    check(st == 422, f"an edit of a virtual server that does not exist refused ({st})")
    st, _, _ = request("GET", "/api/virtual/0/../../config", headers=hdr)
    check(st == 400, f"a dot-dot path refused ({st})")
    check(file_state() == before, "lvs.cf untouched by every malformed request")


def concurrent(cookie, token):
    hdr = {"Cookie": cookie, "X-CSRF-Token": token}
    st, _, out = request("GET", "/api/config", headers=hdr)
    start = json.loads(out)["serial_no"]
    n = 24
    results = []
    snapshots = set()
    stop = threading.Event()
    torn = []

    def reader():
        deadline = time.time() + 60
        reads = 0
        while not stop.is_set() and time.time() < deadline and reads < 20000:
            reads += 1
            with open(CONFIG, "rb") as f:
                data = f.read()
            if not data.startswith(b"serial_no = ") or b"\nhard_shutdown = " not in data \
                    or not data.endswith(b"\n"):
                torn.append(data[:80])
            snapshots.add(data)

    def writer(i):
        body = {"fields": {"tcp_timeout": str(1000 + i), "udp_timeout": str(2000 + i)}}
        st, _, _ = request("PUT", "/api/global", body, hdr)
        results.append(st)

    r = threading.Thread(target=reader)
    r.start()
    ws = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for w in ws:
        w.start()
    for w in ws:
        w.join(60)
    stop.set()
    r.join(60)
    check(results.count(200) == n, f"{n} concurrent saves all succeeded, one after the other ({results.count(200)}/{n})")
    st, _, out = request("GET", "/api/config", headers=hdr)
    end = json.loads(out)["serial_no"]
    check(end == start + n, f"serial_no went from {start} to {end} (+{n}): no save was lost")
    check(not torn, f"no torn file seen in {len(snapshots)} distinct snapshots")
    bad = 0
    for i, data in enumerate(list(snapshots)[:30]):
        p = os.path.join(WORK, f"snapshot-{i}.cf")
        with open(p, "wb") as f:
            f.write(data)
        if subprocess.run([LVSD, "--config-test", "-c", p], capture_output=True).returncode != 0:
            bad += 1
    check(bad == 0, f"every snapshot seen during the saves parses and validates (lvsd --config-test, {min(30, len(snapshots))} files)")
    # The same revision edited by many at once: exactly one wins, the others get 409.
    results.clear()
    ws = [threading.Thread(target=lambda i=i: results.append(request(
        "PUT", "/api/global", {"serial_no": end, "fields": {"tcp_timeout": str(3000 + i)}}, hdr)[0]))
        for i in range(8)]
    for w in ws:
        w.start()
    for w in ws:
        w.join(60)
    check(sorted(results) == [200] + [409] * 7, f"8 saves of the same revision: one 200, seven 409 ({sorted(results)})")
    check(subprocess.run([LVSD, "--config-test", "-c", CONFIG], capture_output=True).returncode == 0,
          "the final lvs.cf validates")
    with open(CONFIG + ".bak") as f:
        bak = f.read()
    check(f"serial_no = {end}\n" in bak, "lvs.cf.bak is the revision before the last save")


def rate_limit():
    # Per client (127.0.0.2): five failures, then refused even with the right password.
    codes = [request("POST", "/api/login", {"password": "wrong"}, source="127.0.0.2")[0] for _ in range(5)]
    check(codes == [401] * 5, f"five wrong passwords get 401 ({codes})")
    st, h, _ = request("POST", "/api/login", {"password": PASSWORD}, source="127.0.0.2")
    check(st == 429 and "retry-after" in h, f"the sixth attempt is rate limited, even with the right password ({st})")
    st, _, _ = request("POST", "/login", b"password=x&csrf=y", {"Content-Type": "application/x-www-form-urlencoded",
                                                              "Cookie": "piranha_login=y"}, source="127.0.0.2")
    check(st == 429, f"the form login is limited too ({st})")
    cookie, _ = login(source="127.0.0.3")
    check(cookie is not None, "another client can still log in")
    # Global: failures from many addresses add up (default 20 per minute).
    for a in range(4, 8):
        for _ in range(5):
            request("POST", "/api/login", {"password": "wrong"}, source=f"127.0.0.{a}")
    st, _, _ = request("POST", "/api/login", {"password": PASSWORD}, source="127.0.0.9")
    check(st == 429, f"the global limit stops a fresh client after 20+ failures in a minute ({st})")


def no_start_without_password():
    env = dict(os.environ)
    missing = os.path.join(WORK, "no-such-password-file")
    p = subprocess.run([GUI, "-n", "-l", "127.0.0.1:0", "-c", CONFIG, "-p", missing],
                       capture_output=True, text=True, timeout=30, env=env)
    check(p.returncode == 1 and "piranha-passwd" in p.stderr,
          f"no start without a password file (exit {p.returncode}): {p.stderr.strip().splitlines()[-1] if p.stderr else ''}")
    world = os.path.join(WORK, "world-readable.passwd")
    subprocess.run([PASSWD, "--stdin", "-f", world], input="another password\n", text=True, check=True,
                   capture_output=True)
    check(oct(os.stat(world).st_mode & 0o777) == "0o600", "piranha-passwd writes mode 600")
    with open(world) as f:
        check(f.read().startswith("$argon2id$"), "the password file holds an argon2id hash")
    os.chmod(world, 0o644)
    p = subprocess.run([GUI, "-n", "-l", "127.0.0.1:0", "-c", CONFIG, "-p", world],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 1 and "chmod 600" in p.stderr, f"no start with a world-readable password file (exit {p.returncode})")
    empty = os.path.join(WORK, "empty.passwd")
    with open(empty, "w") as f:
        f.write("\n")
    os.chmod(empty, 0o600)
    p = subprocess.run([GUI, "-n", "-l", "127.0.0.1:0", "-c", CONFIG, "-p", empty],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 1, f"no start with an empty password file (exit {p.returncode})")
    p = subprocess.run([PASSWD, "--stdin", "-f", os.path.join(WORK, "short.passwd")], input="short\n",
                       text=True, capture_output=True)
    check(p.returncode == 1 and not os.path.exists(os.path.join(WORK, "short.passwd")), "piranha-passwd refuses a short password")


def metrics(cookie):
    st, h, out = request("GET", "/metrics", headers={"Cookie": cookie})
    text = out.decode()
    check(st == 200 and "piranha_config_serial_no" in text and "piranha_lvsd_up" in text, "metrics with a session")
    token = os.environ.get("METRICS_TOKEN")
    if token:
        st, _, out = request("GET", "/metrics", headers={"Authorization": "Bearer " + token})
        check(st == 200 and b"piranha_pulse_up" in out, "metrics with the read-only bearer token")
        st, _, _ = request("GET", "/api/config", headers={"Authorization": "Bearer " + token})
        check(st == 401, "the metrics token opens nothing else")
        st, _, _ = request("GET", "/metrics", headers={"Authorization": "Bearer " + token[:-1] + "x"})
        check(st == 401, "a wrong metrics token is refused")


def main():
    unauthenticated()
    session_cookie_flags()
    got = csrf()
    if got:
        cookie, token = got
        malformed(cookie, token)
        concurrent(cookie, token)
        metrics(cookie)
    no_start_without_password()
    rate_limit()  # last: it locks the test clients out for a minute
    print(f"security: {passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 and passed > 0 else 1)


if __name__ == "__main__":
    main()
