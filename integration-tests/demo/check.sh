#!/usr/bin/env bash
# Runs the one-command demo (scripts/demo) non-interactively and checks it end to end, as root:
# pulse -> lvsd -> nanny reports -> IPVS table (kernel, or the userspace daemon ipvsd when the
# kernel has none) -> HTTP traffic through the VIP from the root namespace.
#
#   integration-tests/demo/check.sh
#
# Three runs of the demo:
#   1. up; curl through the VIP reaches all 3 real servers; `ipvsadm -Ln` (the exact command the
#      demo printed) shows 3 real servers and counts the connections; stopping rs2 takes it out of
#      the table within 5 s and curl keeps working with rs1 and rs3; starting it puts it back;
#      SIGINT -> exit 0, and no namespace, veth, address, route, process or ipvsd socket is left.
#   2. a second run after that Ctrl-C comes up and serves; then the demo script is killed with -9
#      (its daemons and namespaces stay behind);
#   3. a third run removes those leftovers first, comes up and serves; SIGINT -> clean again.
#
# Builds the release binaries first when it can (cargo on PATH, target/ writable); in the
# real-kernel VM (integration-tests/vm/run integration-tests/demo/check.sh) it uses the host's.
# CHECK_BACKEND=kernel|userspace: the backend the demo must pick (default: the kernel's IPVS when
# the router namespace has /proc/net/ip_vs, else userspace). Each wait is bounded; the whole check
# takes 6-17 s on the host (binaries built), about 260 s in the VM (boot included).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${CARGO_TARGET_DIR:-$repo/target}/release"
demo="$repo/scripts/demo"
state=/run/piranha-demo
vip=10.213.1.100
work="$(mktemp -d)"
fails=0
demo_pid=""

ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what="$1"; shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
wait_for() { # wait_for SECONDS COMMAND...
    local tries=$(($1 * 10)); shift
    while [ "$tries" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1; tries=$((tries - 1))
    done
    return 1
}
now_ms() { date +%s%3N; }
# running PID: the process exists and is not a zombie (an orphan's zombie waits for whichever
# ancestor reaps it, which is not the demo's business).
running() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

finish() {
    # Whatever happened, leave nothing behind.
    if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
        kill -TERM "$demo_pid" 2>/dev/null || true
        wait_for 30 bash -c "! kill -0 $demo_pid" || true
    fi
    "$demo" cleanup >/dev/null 2>&1 || true
    ip netns del pdemo-fbt 2>/dev/null || true
    rm -rf "$work"
}
trap finish EXIT

[ "$(id -u)" -eq 0 ] || { echo "check.sh: run as root"; exit 2; }
if [ -f "$state/demo.pid" ] && kill -0 "$(cat "$state/demo.pid")" 2>/dev/null; then
    echo "check.sh: a demo is running (pid $(cat "$state/demo.pid")); stop it first"
    exit 2
fi
if command -v cargo >/dev/null 2>&1 && [ -w "$repo/target" ]; then
    (cd "$repo" && cargo build --release --locked -q -p pulse -p lvsd -p nanny -p ipvsadm -p ipvsd &&
        cargo build --release --locked -q -p ipvsd --example demo-httpd)
fi

# The machine's network state and the demo's, to compare.
snapshot() {
    {
        echo "## netns"; ip netns list | awk '{print $1}' | sort
        echo "## links"; ip -o link | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
        echo "## addresses"; ip -o addr | awk '{print $2, $3, $4}' | sort
        echo "## routes"; ip route | sort
    } >"$1"
}
snapshot "$work/before"

# start_demo N: runs scripts/demo in the background (as a job of its own, so SIGINT reaches it
# as from a terminal) and waits for its "ready" line.
start_demo() {
    local n=$1
    set -m
    DEMO_SKIP_SETUP=1 "$demo" >"$work/demo$n.out" 2>&1 &
    demo_pid=$!
    set +m
    local t0; t0=$(now_ms)
    if wait_for 60 grep -q '^demo: ready' "$work/demo$n.out"; then
        ok "run $n: demo up in $(($(now_ms) - t0)) ms"
        return 0
    fi
    fail "run $n: demo not up within 60 s; its output:"
    sed 's/^/    /' "$work/demo$n.out"
    [ -f /var/log/piranha-demo/pulse.log ] && sed 's/^/    pulse.log: /' /var/log/piranha-demo/pulse.log
    return 1
}

# curl_names N FILE: N requests through the VIP; the answers (one name a line) into FILE; true
# when every request was answered.
curl_names() {
    local good=0
    : >"$2"
    for _ in $(seq 1 "$1"); do
        if curl -sf -m 3 "http://$vip/" >>"$2" 2>/dev/null; then good=$((good + 1)); fi
    done
    [ "$good" -eq "$1" ]
}
distinct() { sort -u "$1" | tr '\n' ' ' | sed 's/ $//'; }

rs_in_table() { # rs_in_table N: the table lists exactly N real servers
    [ "$("$demo" ipvsadm -Ln 2>/dev/null | grep -c -- '-> 10.213.2.1[0-9]:80')" -eq "$1" ]
}
has_rs2() { "$demo" ipvsadm -Ln 2>/dev/null | grep -q -- '-> 10.213.2.12:80'; }
no_rs2() { ! has_rs2; }

# Every process of the running demo: what it recorded, and what runs in its namespaces.
demo_pids() {
    {
        awk '{print $2}' "$state/pids" 2>/dev/null
        for ns in pdemo-router pdemo-rs1 pdemo-rs2 pdemo-rs3; do ip netns pids "$ns" 2>/dev/null; done
    } | sort -un
}

# stop_demo N SIGNAL: ends run N with SIGNAL and checks that it left nothing behind.
stop_demo() {
    local n=$1 sig=$2 pids rc=0 p left="" sockets
    pids=$(demo_pids)
    sockets=$(ls "$state"/*.sock 2>/dev/null || true)
    kill "-$sig" "$demo_pid"
    local t0; t0=$(now_ms)
    if ! wait_for 40 bash -c "! kill -0 $demo_pid"; then
        fail "run $n: demo still running 40 s after SIG$sig"
        return
    fi
    wait "$demo_pid" || rc=$?
    demo_pid=""
    check "run $n: SIG$sig -> exit 0 (got $rc) in $(($(now_ms) - t0)) ms" [ "$rc" -eq 0 ]
    for p in $pids; do running "$p" && left="$left $p"; done
    check "run $n: none of its $(echo "$pids" | wc -w) processes left${left:+ (left:$left)}" [ -z "$left" ]
    check "run $n: control socket and state removed (${sockets:-no socket})" [ ! -e "$state" ]
    snapshot "$work/after$n"
    # Lines that appeared or went away; the demo's own (pdemo*, 10.213.*) must not differ, any
    # other difference is something else on the machine and only reported.
    local diffs; diffs=$(diff "$work/before" "$work/after$n" | grep '^[<>]' || true)
    if echo "$diffs" | grep -qE 'pdemo|10\.213\.'; then
        fail "run $n: namespaces, links, addresses or routes of the demo left:"
        printf '    %s\n' "$diffs"
    else
        ok "run $n: no namespace, veth, address or route of the demo left"
        [ -z "$diffs" ] || { echo "     (other changes on this machine meanwhile:)"; printf '    %s\n' "$diffs"; }
    fi
}

# ------------------------------------------------------------------------------------- run 1
start_demo 1 || exit 1
backend=$(cat "$state/backend")
if [ -n "${CHECK_BACKEND:-}" ]; then
    want=$CHECK_BACKEND
elif ip netns exec pdemo-router test -e /proc/net/ip_vs; then
    want=kernel
else
    want=userspace
fi
check "backend $backend (expected $want)" [ "$backend" = "$want" ]
if [ "$backend" = userspace ]; then
    check "ipvsd runs in pdemo-router, socket $state/ipvsd.sock (not /run/ipvsd.sock)" \
        bash -c "[ -S $state/ipvsd.sock ] && ip netns pids pdemo-router | grep -qx $(cat "$state/ipvsd.pid")"
fi

curl_names 12 "$work/c1"
check "12 requests through http://$vip/ from the root namespace, all answered: $(distinct "$work/c1")" \
    bash -c "[ \$(wc -l <$work/c1) -eq 12 ] && [ \"$(distinct "$work/c1")\" = 'rs1 rs2 rs3' ]"

cmd=$(grep -m1 '^ *ip netns exec pdemo-router ' "$work/demo1.out" | sed 's/^ *//')
check "the printed ipvsadm command: $cmd" [ -n "$cmd" ]
eval "$cmd" >"$work/table" 2>&1 || true
sed 's/^/    /' "$work/table"
check "ipvsadm -Ln lists the VIP with 3 real servers (Masq)" \
    bash -c "grep -q 'TCP  $vip:80 rr' $work/table && [ \$(grep -c -- '-> 10.213.2.1[1-3]:80 *Masq' $work/table) -eq 3 ]"
conns=$("$demo" ipvsadm -Ln --stats | awk '$1 == "TCP" {print $3}')
check "the table counted the requests (service Conns $conns >= 12)" [ "${conns:-0}" -ge 12 ]

t0=$(now_ms)
"$demo" stop rs2 >/dev/null
if wait_for 5 no_rs2; then
    ok "stopped rs2: out of the table after $(($(now_ms) - t0)) ms"
else
    fail "stopped rs2: still in the table after 5 s"
fi
check "2 real servers listed" rs_in_table 2
curl_names 10 "$work/c2"
check "10 requests while rs2 is down, all answered: $(distinct "$work/c2")" \
    bash -c "[ \$(wc -l <$work/c2) -eq 10 ] && [ \"$(distinct "$work/c2")\" = 'rs1 rs3' ]"
t0=$(now_ms)
"$demo" start rs2 >/dev/null
if wait_for 8 has_rs2; then
    ok "started rs2: back in the table after $(($(now_ms) - t0)) ms"
else
    fail "started rs2: not back in the table after 8 s"
fi
curl_names 12 "$work/c3"
check "12 requests after rs2 came back, all answered: $(distinct "$work/c3")" \
    bash -c "[ \$(wc -l <$work/c3) -eq 12 ] && [ \"$(distinct "$work/c3")\" = 'rs1 rs2 rs3' ]"
stop_demo 1 INT
log=${DEMO_LOGS:-/var/log/piranha-demo}/pulse.log
check "run 1: pulse stopped lvsd with SIGTERM and lvsd removed its service (pulse.log)" \
    bash -c "grep -q 'lvs: shutting down virtual service web' $log && grep -q 'lvs: lvsd stopped' $log && ! grep -q 'did not stop' $log"

# ------------------------------------------------------------------------------------- run 2
if start_demo 2; then
    curl_names 6 "$work/c4"
    check "run 2: 6 requests answered: $(distinct "$work/c4")" \
        bash -c "[ \"$(distinct "$work/c4")\" = 'rs1 rs2 rs3' ]"
    left=$(demo_pids)
    kill -KILL "$demo_pid"
    wait "$demo_pid" 2>/dev/null || true
    demo_pid=""
    n=0; for p in $left; do running "$p" && n=$((n + 1)); done
    ok "run 2: demo script killed with -9; $n of its processes and its namespaces stay behind"

    # --------------------------------------------------------------------------------- run 3
    if start_demo 3; then
        check "run 3: removed the leftovers first" grep -q 'removing what a previous run left behind' "$work/demo3.out"
        gone=""; for p in $left; do running "$p" && gone="$gone $p"; done
        check "run 3: the killed run's processes are gone${gone:+ (alive:$gone)}" [ -z "$gone" ]
        curl_names 6 "$work/c5"
        check "run 3: 6 requests answered: $(distinct "$work/c5")" \
            bash -c "[ \"$(distinct "$work/c5")\" = 'rs1 rs2 rs3' ]"
        stop_demo 3 INT
    fi
fi

# ------------------------------------------------------------------- ipvsd: service before VIP
# pulse may add the VIP after lvsd programmed the service (or drop and re-add it): ipvsd's
# listener (IP_FREEBIND) must serve as soon as the address exists, whatever the order.
ns=pdemo-fbt
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" "$bin/examples/demo-httpd" rsX 127.0.0.1:8081 2>/dev/null &
fb_httpd=$!
ip netns exec "$ns" "$bin/ipvsd" --socket "$work/fbt.sock" --threads 1 2>"$work/fbt.log" &
fb_ipvsd=$!
fb() { ip netns exec "$ns" env IPVS_BACKEND=userspace IPVSD_SOCKET="$work/fbt.sock" "$bin/ipvsadm" "$@"; }
if wait_for 10 test -S "$work/fbt.sock" && fb -A -t 10.213.9.1:80 -s rr && fb -a -t 10.213.9.1:80 -r 127.0.0.1:8081 -m; then
    check "ipvsd: no answer before the VIP exists" bash -c "! ip netns exec $ns curl -s -m 2 http://10.213.9.1/"
    ip -n "$ns" addr add 10.213.9.1/32 dev lo
    check "ipvsd: the service added before its VIP serves once the VIP is added" \
        bash -c "[ \"\$(ip netns exec $ns curl -s -m 2 http://10.213.9.1/)\" = rsX ]"
else
    fail "ipvsd: could not start it or program the service ($(cat "$work/fbt.log"))"
fi
kill "$fb_httpd" "$fb_ipvsd" 2>/dev/null || true
wait "$fb_httpd" "$fb_ipvsd" 2>/dev/null || true
ip netns del "$ns"
check "ipvsd: its socket removed at exit" [ ! -e "$work/fbt.sock" ]

if [ "$fails" -ne 0 ]; then
    echo "demo check: $fails check(s) failed (backend $backend)"
    exit 1
fi
echo "demo check: all checks passed (backend $backend)"
