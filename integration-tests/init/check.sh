#!/usr/bin/env bash
# Checks init.d/pulse with the real pulse in a network namespace of its own (root needed):
# every action and its LSB exit code, the pid and lock files, the floating address coming up on
# start and gone after stop, and a config error reported by start. Loopback/namespace only.
#   integration-tests/init/check.sh [PULSE_BINARY]   (default target/debug/pulse, built if absent)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
pulse="${1:-$repo/target/debug/pulse}"
[ -x "$pulse" ] || (cd "$repo" && cargo build --locked -p pulse)
ns="initchk-$$"
dir="$(mktemp -d)"
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add eth0 type veth peer name eth0p
ip -n "$ns" addr add 10.9.0.1/24 dev eth0
ip -n "$ns" link set eth0 up
ip -n "$ns" link set eth0p up

cat > "$dir/lvs.cf" <<CF
serial_no = 1
primary = 10.9.0.1
service = lvs
backup_active = 0
backup = 0.0.0.0
heartbeat_port = 5390
keepalive = 1
deadtime = 3
network = direct
virtual web {
     active = 1
     address = 10.9.0.100 eth0:1
     vip_nmask = 255.255.255.0
     port = 80
     scheduler = wlc
     protocol = tcp
     server rs1 {
         address = 10.9.1.11
         active = 1
     }
}
CF
cat > "$dir/sysconfig" <<SC
PULSE=$pulse
CONFIG=$dir/lvs.cf
PIDFILE=$dir/pulse.pid
LOCKFILE=$dir/lock/pulse
STOP_TIMEOUT=10
OPTIONS="--test-start"
SC

fails=0
init() { ip netns exec "$ns" env PULSE_SYSCONFIG="$dir/sysconfig" "$repo/init.d/pulse" "$@"; }
expect() { # expect CODE DESCRIPTION ACTION...
    local want="$1" what="$2"; shift 2
    local got=0
    init "$@" >"$dir/out" 2>&1 || got=$?
    if [ "$got" = "$want" ]; then
        echo "ok   $what (exit $got)"
    else
        echo "FAIL $what: exit $got, wanted $want; output: $(cat "$dir/out")"
        fails=$((fails + 1))
    fi
}
check() { # check DESCRIPTION COMMAND...
    local what="$1"; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
vip_up() { ip -n "$ns" -4 addr show dev eth0 | grep -q "10.9.0.100/24"; }
wait_for() { local i=0; while [ $i -lt 50 ]; do "$@" && return 0; sleep 0.1; i=$((i + 1)); done; return 1; }

expect 3 "status before start" status
expect 7 "reload while stopped" reload
expect 0 "stop while stopped" stop
expect 0 "start" start
check "pid file names a live pulse" kill -0 "$(cat "$dir/pulse.pid")"
check "lock file created" test -f "$dir/lock/pulse"
check "lone primary brings the VIP up" wait_for vip_up
expect 0 "status while running" status
expect 0 "start while running" start
expect 0 "reload while running" reload
expect 0 "condrestart while running" condrestart
check "pulse running after condrestart" wait_for kill -0 "$(cat "$dir/pulse.pid" 2>/dev/null || echo 0)"
expect 0 "restart" restart
check "VIP up after restart" wait_for vip_up
pid=$(cat "$dir/pulse.pid")
expect 0 "stop" stop
check "pulse gone" bash -c "! kill -0 $pid 2>/dev/null"
check "VIP removed on stop" bash -c "! ip -n $ns -4 addr show dev eth0 | grep -q 10.9.0.100"
check "lock file removed" test ! -e "$dir/lock/pulse"
expect 3 "status after stop" status
expect 0 "condrestart while stopped" condrestart
expect 3 "condrestart did not start it" status
echo 999999 > "$dir/pulse.pid"
expect 1 "status with a stale pid file" status
rm -f "$dir/pulse.pid"; mkdir -p "$dir/lock"; touch "$dir/lock/pulse"
expect 2 "status with a stale lock file" status
rm -f "$dir/lock/pulse"
echo "bogus_keyword = 1" >> "$dir/lvs.cf"
expect 1 "start with a config error" start
check "the error names the file and line" grep -q "lvs.cf" "$dir/out"
mv "$dir/lvs.cf" "$dir/gone.cf"
expect 6 "start without lvs.cf" start
expect 1 "unknown action" frobnicate
check "usage printed" grep -q "Usage: pulse {start|stop|status|restart|condrestart|reload}" "$dir/out"
sed -i "s|^PULSE=.*|PULSE=$dir/no-such-pulse|" "$dir/sysconfig"
expect 5 "start without the pulse binary" start

if [ "$fails" -ne 0 ]; then
    echo "init.d/pulse: $fails check(s) failed"
    exit 1
fi
echo "init.d/pulse: all checks passed"
