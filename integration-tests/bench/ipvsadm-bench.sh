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
input="$(mktemp)"

# 10,000 services x (1 -A + 4 -a) = 50,000 lines.
awk -v n="$services" 'BEGIN {
  for (i = 0; i < n; i++) {
    a = int(i / 250); b = i % 250 + 1;
    printf "-A -t 10.%d.%d.1:80 -s wlc\n", a, b;
    for (r = 1; r <= 4; r++)
      printf "-a -t 10.%d.%d.1:80 -r 192.168.%d.%d:80 -m -w %d\n", a, b, r, b, r;
  }
}' > "$input"
lines=$(wc -l < "$input")

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
time_cmd() { # time_cmd OUTFILE cmd...  -> prints milliseconds
  local t0 t1 f="$1"; shift
  t0=$(now); "$@" > "$f" 2>&1; t1=$(now); ms "$t0" "$t1"
}

run_tool() { # run_tool NAME BINARY
  local name="$1" bin="$2"
  "$ref" -C
  local r l s
  r=$(time_cmd "$out/bench-$name-R.txt" "$bin" -R < "$input")
  l=$(time_cmd "$out/bench-$name-Ln.txt" "$bin" -Ln)
  s=$(time_cmd "$out/bench-$name-Sn.txt" "$bin" -S -n)
  echo "$r $l $s"
}

read -r ref_R ref_L ref_S < <(run_tool reference "$ref")
read -r our_R our_L our_S < <(run_tool ours "$ours")
"$ref" -C

# Both tools must have built and listed the same table.
same_L=$(cmp -s "$out/bench-reference-Ln.txt" "$out/bench-ours-Ln.txt" && echo yes || echo NO)
same_S=$(cmp -s "$out/bench-reference-Sn.txt" "$out/bench-ours-Sn.txt" && echo yes || echo NO)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.1fx", a / b }'; }

{
echo "ipvsadm benchmark: $services TCP services x 4 real servers ($lines restore lines), kernel $(uname -r)"
printf '%-12s %14s %14s %8s %s\n' operation "reference ms" "ours ms" ratio "same output"
printf '%-12s %14s %14s %8s %s\n' "-R" "$ref_R" "$our_R" "$(ratio "$ref_R" "$our_R")" "-"
printf '%-12s %14s %14s %8s %s\n' "-Ln" "$ref_L" "$our_L" "$(ratio "$ref_L" "$our_L")" "$same_L"
printf '%-12s %14s %14s %8s %s\n' "-S -n" "$ref_S" "$our_S" "$(ratio "$ref_S" "$our_S")" "$same_S"
} | tee "$out/bench-ipvsadm.txt"
rm -f "$input"
[ "$same_L" = yes ] && [ "$same_S" = yes ]
