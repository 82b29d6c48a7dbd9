#!/usr/bin/env bash
# pulse's longer scenario suites, in network namespaces on the host (root; every namespace,
# veth and bridge is created and removed by the tests; no traffic leaves them):
#   - 20 simultaneous starts: never two holders, the primary ends up active;
#   - a soak of 30 random failures (crash with cables pulled, orderly stop, partition and heal,
#     standby restart): after each, exactly one holder and no address left elsewhere;
#   - a rolling upgrade against Piranha 0.8.6's own pulse, built from its upstream sources
#     (DirtyBackup/pulse.c.original and PiranhaLastVerBackupSourceFiles/ of
#     github.com/ssocopsacc/piranha at 3841c91) into target/piranha-pulse/, never into the
#     repository. PIRANHA_GIT=DIR/.git avoids the download; NO_PIRANHA=1 skips it. Needs gcc
#     and libpopt-dev.
#
#   integration-tests/pulse/run.sh        (about four minutes)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
commit=3841c9116d823405921fa138da5a5f04580ae836

if [ "${NO_PIRANHA:-0}" != 1 ]; then
  out="$repo/target/piranha-pulse"
  src="$out/src"
  mkdir -p "$src"
  if [ ! -x "$out/pulse" ]; then
    git_dir="${PIRANHA_GIT:-}"
    if [ -z "$git_dir" ]; then
      if [ ! -d "$out/piranha.git" ] &&
          ! timeout 120 git clone --bare --quiet https://github.com/ssocopsacc/piranha "$out/piranha.git"; then
        # CI machines reach only package registries: the interop part is skipped, loudly.
        echo "SKIPPED: Piranha's sources could not be fetched (set PIRANHA_GIT to a local clone)" >&2
        rm -rf "$out/piranha.git"
      fi
      git_dir="$out/piranha.git"
    fi
    if [ -d "$git_dir" ]; then
      git --git-dir="$git_dir" show "$commit:DirtyBackup/pulse.c.original" > "$src/pulse.c"
      git --git-dir="$git_dir" show "$commit:DirtyBackup/linkstate.c_orig" > "$src/linkstate.c"
      for f in lvsconfig.c lvsconfig.h util.c util.h globals.h; do
        git --git-dir="$git_dir" show "$commit:PiranhaLastVerBackupSourceFiles/$f" > "$src/$f"
      done
      # The flags of Piranha's Makefile (-O0 -g), plus -fcommon for today's gcc.
      if ! gcc -Wall -g -O0 -fcommon -Wno-format -DVERSION='"0.8.6"' -DRELEASE='"1"' \
          -DDATE="\"$(date +%d/%b/%Y)\"" -o "$out/pulse" \
          "$src/pulse.c" "$src/lvsconfig.c" "$src/util.c" "$src/linkstate.c" -lpopt \
          2> "$out/build.log"; then
        echo "Piranha's pulse did not build (see $out/build.log; needs libpopt-dev)" >&2
        rm -f "$out/pulse"
      fi
    fi
  fi
  if [ -x "$out/pulse" ]; then
    export PIRANHA_PULSE="$out/pulse"
  fi
fi

cargo test --release --locked -p pulse --test scenarios -- --ignored --test-threads 1
