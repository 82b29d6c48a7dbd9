#!/usr/bin/env bash
# Benchmark of the userspace IPVS backend (issue 7), on the host, loopback only: ipvsd against
# HAProxy (Debian's, `mode tcp`, the same number of worker threads; as configured by default and
# with `option splice-auto`), in the same run on the same cores: short HTTP connections (wrk:
# req/s, p99 latency), bulk transfer (Gbit/s) and memory per open connection.
#
#   integration-tests/bench/userspace-bench.sh [options]
#     --threads 1,2 (worker threads to compare)  --seconds 10  --rounds 3  --conns 64
#     --idle 4000 (connections for the memory figure)  --body 100 (response body bytes)
#     --short-only (only the short-connection figures, for quick iterations)
#
# Needs the haproxy and wrk packages (apt-get install haproxy wrk); root only to install them
# (loopback addresses and ports above 1024 need no privilege). Figures and the command are
# recorded in docs/performance.md.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
for tool in haproxy wrk; do
  command -v "$tool" >/dev/null || { echo "userspace-bench: $tool missing (apt-get install haproxy wrk)" >&2; exit 2; }
done
cargo build --release -p ipvsd -p ipvsadm --bins --example userspace-bench
exec "$repo/target/release/examples/userspace-bench" \
  --ipvsd "$repo/target/release/ipvsd" --ipvsadm "$repo/target/release/ipvsadm" \
  --haproxy "$(command -v haproxy)" --wrk "$(command -v wrk)" "$@"
