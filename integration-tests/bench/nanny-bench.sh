#!/usr/bin/env bash
# nanny benchmark (issue 4), on the host, loopback only: 1,000 nanny processes checking 1,000
# loopback HTTP servers every second (send/expect) for 60 s, with this project's nanny and, when
# it can be built, Piranha 0.8.6's C nanny; prints CPU, Pss and down-detection times.
#
#   integration-tests/bench/nanny-bench.sh [nanny-bench options]
#     --nannies N (1000)  --seconds S (60)  --kills K (8)
#
# Piranha's nanny is built from its upstream sources (PiranhaLastVerBackupSourceFiles/ of
# github.com/ssocopsacc/piranha at 3841c91) into target/piranha-nanny/, never into the repository.
# Set PIRANHA_GIT to a local clone's .git directory to avoid the download; set NO_PIRANHA=1 to
# skip it. It needs gcc and libpopt-dev, and root (its ICMP socket), like Piranha itself.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
commit=3841c9116d823405921fa138da5a5f04580ae836

cargo build --release -p nanny --bin nanny --example nanny-bench

extra=()
if [ "${NO_PIRANHA:-0}" != 1 ]; then
  out="$repo/target/piranha-nanny"
  src="$out/src"
  mkdir -p "$src"
  if [ ! -x "$out/nanny" ]; then
    git_dir="${PIRANHA_GIT:-}"
    if [ -z "$git_dir" ]; then
      if [ ! -d "$out/piranha.git" ]; then
        git clone --bare --quiet https://github.com/ssocopsacc/piranha "$out/piranha.git"
      fi
      git_dir="$out/piranha.git"
    fi
    for f in nanny.c nanny.h util.c util.h ipvs_exec.c globals.h; do
      git --git-dir="$git_dir" show "$commit:PiranhaLastVerBackupSourceFiles/$f" > "$src/$f"
    done
    # The flags of Piranha's Makefile (-O0 -g), plus -fcommon for today's gcc.
    if ! gcc -Wall -g -O0 -fcommon -Wno-format -DVERSION='"0.8.6"' -DRELEASE='"1"' \
        -DDATE="\"$(date +%d/%b/%Y)\"" -o "$out/nanny" \
        "$src/nanny.c" "$src/ipvs_exec.c" "$src/util.c" -lpopt -lm 2> "$out/build.log"; then
      echo "Piranha's nanny did not build (see $out/build.log; needs libpopt-dev)" >&2
      rm -f "$out/nanny"
    fi
  fi
  if [ -x "$out/nanny" ]; then
    extra=(--piranha-nanny "$out/nanny")
  fi
fi

exec "$repo/target/release/examples/nanny-bench" --nanny "$repo/target/release/nanny" \
  "${extra[@]}" "$@"
