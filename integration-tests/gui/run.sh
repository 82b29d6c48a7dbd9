#!/usr/bin/env bash
# piranha-gui end to end: a real piranha-gui process on 127.0.0.1 with a temporary lvs.cf,
# password file and status directory; a browser test in real headless Chromium (Debian's
# chromium driven by playwright-core) that also runs a real lvsd with real nannies against the
# userspace IPVS daemon (ipvsd) and two real HTTP servers; then security probes (python3).
#
# Sets up what it needs: chromium, nodejs/npm and python3 from Debian if absent, playwright-core
# from the npm registry into target/gui-it. Everything it starts is stopped on exit (by pid).
# Exit status: 0 only if every check passed. Network: 127.0.0.0/8 only.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$REPO"
PW_DIR="$REPO/target/gui-it"
WORK="$(mktemp -d /tmp/piranha-gui-it.XXXXXX)"
PIDS=()

cleanup() {
    local rc=$?
    if [ -f "$WORK/pids" ]; then
        while read -r p; do PIDS+=("$p"); done < "$WORK/pids"
    fi
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    sleep 0.5
    for p in "${PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ]; then
        echo "--- piranha-gui log"; tail -n 30 "$WORK/gui.log" 2>/dev/null || true
        echo "--- lvsd log"; tail -n 30 "$WORK/lvsd.log" 2>/dev/null || true
        echo "--- ipvsd log"; tail -n 10 "$WORK/ipvsd.log" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT INT TERM

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "installing ${need_apt[*]} (Debian packages)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "run as root to install ${need_apt[*]}, or install them first" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
CHROMIUM="$(command -v chromium)"
if [ ! -d "$PW_DIR/node_modules/playwright-core" ]; then
    mkdir -p "$PW_DIR"
    (cd "$PW_DIR" && npm install --no-audit --no-fund --silent playwright-core@1 >/dev/null)
fi

echo "building piranha-gui, lvsd, nanny, ipvsd"
cargo build -q -p piranha-gui -p lvsd -p nanny -p ipvsd
BIN="$REPO/target/debug"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
GUI_PORT=$(free_port)
VPORT=$(free_port)
RS1_PORT=$(free_port)
RS2_PORT=$(free_port)
PASSWORD="piranha-it-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -p "$WORK/status" "$WORK/www"
echo "hello from a real server" > "$WORK/www/index.html"

wait_port() { # port
    for _ in $(seq 1 100); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# Two real servers.
python3 -m http.server --bind 127.0.0.1 --directory "$WORK/www" "$RS1_PORT" >"$WORK/rs1.log" 2>&1 &
PIDS+=($!)
python3 -m http.server --bind 127.0.0.1 --directory "$WORK/www" "$RS2_PORT" >"$WORK/rs2.log" 2>&1 &
RS2_PID=$!
PIDS+=("$RS2_PID")
# The userspace IPVS daemon lvsd will program.
"$BIN/ipvsd" --socket "$WORK/ipvsd.sock" --threads 1 >"$WORK/ipvsd.log" 2>&1 &
PIDS+=($!)

printf '%s\n' "$PASSWORD" | "$BIN/piranha-passwd" --stdin -f "$WORK/piranha.passwd" >/dev/null
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/metrics.token"
MAX_BODY=65536
"$BIN/piranha-gui" --nodaemon -l "127.0.0.1:$GUI_PORT" -c "$WORK/lvs.cf" -p "$WORK/piranha.passwd" \
    --status-dir "$WORK/status" --pulse-pidfile "$WORK/pulse.pid" --lvsd-pidfile "$WORK/lvs.pid" \
    --metrics-token-file "$WORK/metrics.token" --max-body "$MAX_BODY" >"$WORK/gui.log" 2>&1 &
PIDS+=($!)
wait_port "$GUI_PORT"
wait_port "$RS1_PORT"
wait_port "$RS2_PORT"
for _ in $(seq 1 50); do [ -S "$WORK/ipvsd.sock" ] && break; sleep 0.1; done

export BASE="http://127.0.0.1:$GUI_PORT" PASSWORD CONFIG="$WORK/lvs.cf" VPORT RS1_PORT RS2_PORT \
    RS2_PID LVSD="$BIN/lvsd" NANNY="$BIN/nanny" WORK CHROMIUM PW_DIR GUI="$BIN/piranha-gui" \
    PASSWD="$BIN/piranha-passwd" MAX_BODY METRICS_TOKEN="$(cat "$WORK/metrics.token")"

status=0
echo "=== browser (headless Chromium)"
node "$REPO/integration-tests/gui/browser.js" || status=1
echo "=== security"
python3 "$REPO/integration-tests/gui/security.py" || status=1

if [ "$status" -eq 0 ]; then
    echo "gui: all checks passed"
else
    echo "gui: FAILED"
fi
exit "$status"
