#!/usr/bin/env bash
# ipvsadm benchmark, run inside the real-kernel VM (integration-tests/vm/run this-script):
# a table of SERVICES TCP services x 4 real servers restored with -R, then listed with -Ln and
# saved with -S -n, by Debian's /usr/sbin/ipvsadm and by this project's ipvsadm, on the same
# kernel and the same input. Prints each time and the ratios (reference / ours).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
ours="${CANDIDATE:-$repo/target/release/ipvsadm}"
ref=/usr/sbin/ipvsadm
services="${SERVICES:-10000}"
out="${OUT:-$repo/target/vm-out}"
mkdir -p "$out"
input="${INPUT:-}"

if [ "${1:-}" != "--in-namespace" ]; then
input="$(mktemp)"
# 10,000 services x (1 -A + 4 -a) = 50,000 lines. PATTERN picks the virtual addresses:
# - sequential (default): 10.0.0.1, 10.0.0.2, ... as addresses are handed out in practice;
# - one-bucket: 10.a.b.1 (last octet always 1). The kernel hashes an IPv4 service by its address
#   XOR port, masked to 8 bits, so this table lands in ONE of the 256 hash buckets and every
#   service added costs a walk of all services added before it: kernel time both tools pay, so
#   it compresses the ratio. Run both to see the difference.
awk -v n="$services" -v pattern="${PATTERN:-sequential}" 'BEGIN {
  for (i = 0; i < n; i++) {
    if (pattern == "one-bucket") {
      a = int(i / 250); b = i % 250 + 1;
      vip = sprintf("10.%d.%d.1", a, b);
    } else {
      j = i + 1;
      vip = sprintf("10.%d.%d.%d", int(j / 65536) % 256, int(j / 256) % 256, j % 256);
    }
    printf "-A -t %s:80 -s wlc\n", vip;
    for (r = 1; r <= 4; r++)
      printf "-a -t %s:80 -r 192.168.%d.%d:80 -m -w %d\n", vip, r, i % 250 + 1, r;
  }
}' > "$input"
fi
lines=$(wc -l < "$input")

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
time_cmd() { # time_cmd OUTFILE cmd...  -> prints milliseconds
  local t0 t1 f="$1"; shift
  t0=$(now); "$@" > "$f" 2>&1; t1=$(now); ms "$t0" "$t1"
}

# Each tool runs in a network namespace of its own, created for it: IPVS state is per namespace,
# so both start from the same, empty kernel state. (In one namespace the second tool would pay
# for the first one's leftovers: a flushed table's destinations stay on the kernel's "dest
# trash" list for up to three minutes, and every destination added meanwhile walks that list.)
if [ "${1:-}" = "--in-namespace" ]; then
  name="$2" bin="$3"
  r=$(time_cmd "$out/bench-$name-R.txt" "$bin" -R < "$input")
  l=$(time_cmd "$out/bench-$name-Ln.txt" "$bin" -Ln)
  s=$(time_cmd "$out/bench-$name-Sn.txt" "$bin" -S -n)
  # Flush (estimators stop), and keep the namespace until both tools are done: tearing one
  # down runs in a kernel worker that would compete with the other tool's timing.
  "$ref" -C
  echo "$r $l $s"
  exit 0
fi

namespaces=()
cleanup() { for ns in "${namespaces[@]}"; do ip netns delete "$ns" 2>/dev/null || true; done; rm -f "$input"; }
trap cleanup EXIT
run_tool() { # run_tool NAME BINARY
  local name="$1" bin="$2" ns="ipvsbench-$1-$$"
  ip netns add "$ns"
  # Without a local table (lo down) the kernel calls every real server "not unicast".
  ip -n "$ns" link set lo up
  namespaces+=("$ns")
  INPUT="$input" ip netns exec "$ns" "$0" --in-namespace "$name" "$bin"
}

# Ours first: whatever the kernel has warmed up by then (slab caches) favours the second run.
read -r our_R our_L our_S < <(run_tool ours "$ours")
read -r ref_R ref_L ref_S < <(run_tool reference "$ref")

# Both tools must have built and listed the same table.
same_L=$(cmp -s "$out/bench-reference-Ln.txt" "$out/bench-ours-Ln.txt" && echo yes || echo NO)
same_S=$(cmp -s "$out/bench-reference-Sn.txt" "$out/bench-ours-Sn.txt" && echo yes || echo NO)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.1fx", a / b }'; }

{
echo "ipvsadm benchmark: $services TCP services x 4 real servers ($lines restore lines, ${PATTERN:-sequential} addresses), kernel $(uname -r)"
printf '%-12s %14s %14s %8s %s\n' operation "reference ms" "ours ms" ratio "same output"
printf '%-12s %14s %14s %8s %s\n' "-R" "$ref_R" "$our_R" "$(ratio "$ref_R" "$our_R")" "-"
printf '%-12s %14s %14s %8s %s\n' "-Ln" "$ref_L" "$our_L" "$(ratio "$ref_L" "$our_L")" "$same_L"
printf '%-12s %14s %14s %8s %s\n' "-S -n" "$ref_S" "$our_S" "$(ratio "$ref_S" "$our_S")" "$same_S"
} | tee "$out/bench-ipvsadm-${PATTERN:-sequential}.txt"
[ "$same_L" = yes ] && [ "$same_S" = yes ]
