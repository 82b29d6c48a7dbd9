#!/usr/bin/env bash
# pulse failover benchmark (issue 6), in network namespaces on the host (root; no traffic leaves
# the namespaces it creates): death of the active router (SIGKILL + cable pulled) to the first
# TCP connection to the VIP from a client whose ARP cache points at the dead router, for pulse
# (0.1/0.3 and 2/5) and, in the same run and harness, Debian's keepalived (VRRPv3, advert_int
# 0.1, priorities 200/100). Exit status 1 if a target is missed.
#
#   integration-tests/bench/pulse-bench.sh [--runs N (20)] [--slow-runs M (5)] [--no-keepalived]
#
# keepalived is installed with apt-get when missing (NO_KEEPALIVED=1 skips it).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
extra=()
if [ "${NO_KEEPALIVED:-0}" = 1 ]; then
  extra=(--no-keepalived)
elif [ ! -x /usr/sbin/keepalived ]; then
  apt-get install -y keepalived >/dev/null
fi
cargo build --release -p pulse --bin pulse --example pulse-bench
exec "$repo/target/release/examples/pulse-bench" --pulse "$repo/target/release/pulse" \
  "${extra[@]}" "$@"
