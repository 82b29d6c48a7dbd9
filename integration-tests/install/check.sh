#!/usr/bin/env bash
# Checks the install path in temporary directories (nothing outside them is touched; no root
# needed): `make install DESTDIR=...` places exactly the expected files, a second install keeps
# changed configs, IPVSADM=replace refuses to clobber a foreign ipvsadm (and FORCE=1 keeps a
# copy that uninstall puts back), `make uninstall` removes everything but the configs (and a
# file changed since), the man pages render, and scripts/build-deb builds a package whose
# contents are those of make install.
#   integration-tests/install/check.sh        (runs `make` first; SKIP_BUILD=1: use target/release)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
export MAKEFLAGS=--no-print-directory
build="${CARGO_TARGET_DIR:-target}/release"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    make build
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fails=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what="$1"; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
quiet() { "$@" >/dev/null 2>&1; }
# Files and links under a root, one relative path per line.
tree() { (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort); }
sha() { sha256sum <"$1" | cut -d' ' -f1; }

expected="$tmp/expected"
{
    printf '%s\n' \
        etc/init.d/pulse \
        etc/sysconfig/ha/lvs.cf \
        etc/sysconfig/pulse \
        lib/systemd/system/piranha-gui.service \
        lib/systemd/system/pulse.service \
        usr/lib/piranha-rs/install-manifest \
        usr/lib/piranha-rs/ipvsadm \
        usr/sbin/lvs usr/sbin/lvsd usr/sbin/nanny usr/sbin/pulse usr/sbin/send_arp \
        usr/share/doc/piranha-rs/compatibility.md \
        usr/share/doc/piranha-rs/gui.md \
        usr/share/doc/piranha-rs/howto.md \
        usr/share/doc/piranha-rs/install.md \
        usr/share/doc/piranha-rs/nanny-protocol.md \
        usr/share/doc/piranha-rs/examples/90-piranha-rs-router.conf \
        usr/share/doc/piranha-rs/examples/lvs.cf.sample \
        usr/share/doc/piranha-rs/examples/piranha-rs-nat.nft \
        usr/share/man/man5/lvs.cf.5.gz \
        usr/share/man/man8/ipvsadm.8.gz usr/share/man/man8/lvs.8.gz \
        usr/share/man/man8/lvsd.8.gz usr/share/man/man8/nanny.8.gz \
        usr/share/man/man8/pulse.8.gz usr/share/man/man8/send_arp.8.gz \
        usr/share/man/man8/piranha-gui.8.gz usr/share/man/man8/piranha-passwd.8.gz
    # Binaries of later issues, installed when the build made them.
    for b in ipvsd piranha-gui piranha_gui piranha-passwd; do
        if [ -x "$build/$b" ]; then echo "usr/sbin/$b"; fi
    done
} | sort >"$expected"

echo "== make install"
d1="$tmp/d1"
make install DESTDIR="$d1" >"$tmp/install1.log"
tree "$d1" >"$tmp/got"
if diff -u "$expected" "$tmp/got"; then pass "file list"; else fail "file list"; fi
check "lvs -> lvsd" test "$(readlink "$d1/usr/sbin/lvs")" = lvsd
check "lvs.8.gz -> lvsd.8.gz" test "$(readlink "$d1/usr/share/man/man8/lvs.8.gz")" = lvsd.8.gz
check "lvs.cf is the sample" cmp -s etc/lvs.cf.sample "$d1/etc/sysconfig/ha/lvs.cf"
check "sysconfig/pulse is ours" cmp -s etc/sysconfig/pulse "$d1/etc/sysconfig/pulse"
check "init script" cmp -s init.d/pulse "$d1/etc/init.d/pulse"
check "systemd unit" cmp -s etc/systemd/pulse.service "$d1/lib/systemd/system/pulse.service"
check "binaries are executable" test -x "$d1/usr/sbin/pulse" -a -x "$d1/usr/sbin/send_arp" -a -x "$d1/etc/init.d/pulse"
check "lvs.cf mode 644" test "$(stat -c %a "$d1/etc/sysconfig/ha/lvs.cf")" = 644
check "ipvsadm beside the system's, not in sbin" test ! -e "$d1/usr/sbin/ipvsadm"
check "note about ipvsadm printed" grep -q "dpkg-divert" "$tmp/install1.log"
check "pulse is not enabled" test ! -e "$d1/etc/systemd/system/multi-user.target.wants/pulse.service"
man_ok=1
for m in docs/man/*.[58]; do
    sec="${m##*.}"
    if ! gzip -dc "$d1/usr/share/man/man$sec/$(basename "$m").gz" | cmp -s - "$m"; then man_ok=0; fi
done
check "man pages are the gzipped sources" test $man_ok = 1
if command -v groff >/dev/null; then
    check "man pages render without warnings" quiet make check-man
else
    echo "SKIP man pages render (no groff: apt-get install groff-base)"
fi

echo "== a second install keeps the configuration"
echo "# changed by the admin" >>"$d1/etc/sysconfig/ha/lvs.cf"
echo 'OPTIONS="--forceactive"' >>"$d1/etc/sysconfig/pulse"
cfg_sum=$(sha "$d1/etc/sysconfig/ha/lvs.cf")
pulse_sum=$(sha "$d1/etc/sysconfig/pulse")
make install DESTDIR="$d1" >"$tmp/install2.log"
check "lvs.cf kept" test "$(sha "$d1/etc/sysconfig/ha/lvs.cf")" = "$cfg_sum"
check "sysconfig/pulse kept" test "$(sha "$d1/etc/sysconfig/pulse")" = "$pulse_sum"
check "kept is said" grep -q "kept     /etc/sysconfig/ha/lvs.cf" "$tmp/install2.log"
tree "$d1" >"$tmp/got"
if diff -u "$expected" "$tmp/got"; then pass "same file list"; else fail "same file list"; fi

echo "== make uninstall"
echo "# local change" >>"$d1/etc/init.d/pulse"
make uninstall DESTDIR="$d1" >"$tmp/uninstall.log"
tree "$d1" >"$tmp/got"
printf '%s\n' etc/init.d/pulse etc/sysconfig/ha/lvs.cf etc/sysconfig/pulse >"$tmp/left"
if diff -u "$tmp/left" "$tmp/got"; then
    pass "only the configs (and a changed file) are left"
else
    fail "only the configs (and a changed file) are left"
fi
check "the changed init script is reported" grep -q "kept     /etc/init.d/pulse (changed" "$tmp/uninstall.log"
check "config still changed" test "$(sha "$d1/etc/sysconfig/ha/lvs.cf")" = "$cfg_sum"
check "empty piranha-rs dirs removed" test ! -e "$d1/usr/lib/piranha-rs" -a ! -e "$d1/usr/share/doc/piranha-rs"
check "uninstall twice is harmless" quiet make uninstall DESTDIR="$d1"

echo "== IPVSADM=replace"
d2="$tmp/d2"
mkdir -p "$d2/usr/sbin"
printf '#!/bin/sh\necho foreign ipvsadm\n' >"$d2/usr/sbin/ipvsadm"
chmod 755 "$d2/usr/sbin/ipvsadm"
foreign=$(sha "$d2/usr/sbin/ipvsadm")
if make install DESTDIR="$d2" IPVSADM=replace >"$tmp/replace.log" 2>&1; then
    fail "refuses to clobber a foreign ipvsadm"
else
    pass "refuses to clobber a foreign ipvsadm"
fi
check "foreign ipvsadm untouched" test "$(sha "$d2/usr/sbin/ipvsadm")" = "$foreign"
check "says what to do (dpkg-divert, FORCE=1)" grep -q "dpkg-divert" "$tmp/replace.log"
check "mentions FORCE=1" grep -q "FORCE=1" "$tmp/replace.log"
dl="$tmp/dl"
mkdir -p "$dl/usr/sbin"
ln -s /nonexistent/other-ipvsadm "$dl/usr/sbin/ipvsadm"
check "refuses a foreign (dangling) ipvsadm link" sh -c "! make install DESTDIR='$dl' IPVSADM=replace >/dev/null 2>&1"
check "the link is untouched" test "$(readlink "$dl/usr/sbin/ipvsadm")" = /nonexistent/other-ipvsadm
check "bad IPVSADM value refused" sh -c "! make install DESTDIR='$tmp/dx' IPVSADM=yes >/dev/null 2>&1"
make install DESTDIR="$d2" IPVSADM=replace FORCE=1 >"$tmp/force.log" 2>&1
check "FORCE=1 replaces it" cmp -s "$build/ipvsadm" "$d2/usr/sbin/ipvsadm"
check "FORCE=1 keeps a copy" test "$(sha "$d2/usr/lib/piranha-rs/ipvsadm.before-piranha-rs")" = "$foreign"
check "replace again: ours is recognised" quiet make install DESTDIR="$d2" IPVSADM=replace
make uninstall DESTDIR="$d2" >"$tmp/uninstall2.log"
check "uninstall puts the foreign one back" test "$(sha "$d2/usr/sbin/ipvsadm")" = "$foreign"

d3="$tmp/d3"
make install DESTDIR="$d3" IPVSADM=replace STRIP=1 >/dev/null
check "replace installs /usr/sbin/ipvsadm" test -x "$d3/usr/sbin/ipvsadm"
check "an earlier (stripped) install of ours is recognised" quiet make install DESTDIR="$d3" IPVSADM=replace
make uninstall DESTDIR="$d3" >/dev/null
check "uninstall removes our /usr/sbin/ipvsadm" test ! -e "$d3/usr/sbin/ipvsadm"
check "missing build refused" sh -c "! make install DESTDIR='$tmp/dy' TARGET_DIR='$tmp/nothing' >/dev/null 2>&1"

echo "== scripts/build-deb"
scripts/build-deb --no-build >"$tmp/deb.log"
deb=$(sed -n 's/^build-deb: //p' "$tmp/deb.log")
check "package built ($deb)" test -f "$deb"
dpkg-deb -c "$deb" >"$tmp/deb-list"
awk '{print $6}' "$tmp/deb-list" | sed 's|^\./||' | grep -v -e '/$' -e '^$' | sort >"$tmp/deb-files"
{ grep -v -x 'usr/lib/piranha-rs/install-manifest' "$expected"; echo usr/share/doc/piranha-rs/copyright; } |
    sort >"$tmp/deb-expected"
if diff -u "$tmp/deb-expected" "$tmp/deb-files"; then
    pass "package contents = make install"
else
    fail "package contents = make install"
fi
check "package name" test "$(dpkg-deb -f "$deb" Package)" = piranha-rs
depends=$(dpkg-deb -f "$deb" Depends)
check "Depends has libc6 and iproute2 ($depends)" sh -c "echo '$depends' | grep -q 'libc6' && echo '$depends' | grep -q 'iproute2'"
ctl="$tmp/ctl"
dpkg-deb -e "$deb" "$ctl"
printf '%s\n' /etc/init.d/pulse /etc/sysconfig/ha/lvs.cf /etc/sysconfig/pulse >"$tmp/conffiles"
check "conffiles" cmp -s "$tmp/conffiles" "$ctl/conffiles"
check "no ipvsadm in the PATH directories" sh -c "! grep -q -E '^(usr/)?s?bin/ipvsadm$' '$tmp/deb-files'"
check "lvs link in the package" grep -q './usr/sbin/lvs -> lvsd' "$tmp/deb-list"
check "md5sums cover the binaries" grep -q ' usr/sbin/pulse$' "$ctl/md5sums"
# The maintainer scripts, run with recording stand-ins: they never enable or start pulse.
stub="$tmp/stub"
mkdir -p "$stub"
for c in systemctl update-rc.d invoke-rc.d deb-systemd-helper deb-systemd-invoke service chkconfig; do
    printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit 1\n' "$c" "$tmp/calls" >"$stub/$c"
    chmod 755 "$stub/$c"
done
# The system user and the config directory's group: recorded, never done to this machine.
for c in groupadd useradd chgrp chmod install; do
    printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit 0\n' "$c" "$tmp/calls" >"$stub/$c"
    chmod 755 "$stub/$c"
done
printf '#!/bin/sh\necho "getent $*" >>"%s"\nexit 2\n' "$tmp/calls" >"$stub/getent"
chmod 755 "$stub/getent"
: >"$tmp/calls"
PATH="$stub:$PATH" sh "$ctl/postinst" configure >"$tmp/postinst.log"
PATH="$stub:$PATH" sh "$ctl/postinst" configure 0.0.1-1 >/dev/null
check "postinst starts nothing" sh -c "! grep -E 'start|enable|restart|defaults' '$tmp/calls'"
check "postinst says how to divert ipvsadm" grep -q "dpkg-divert --local --rename --add /sbin/ipvsadm" "$tmp/postinst.log"
check "postinst says pulse is not enabled" grep -q "not enabled" "$tmp/postinst.log"
check "postinst says the GUI needs piranha-passwd" grep -q "piranha-passwd" "$tmp/postinst.log"
check "postinst creates the system group and user piranha" sh -c \
    "grep -q '^groupadd --system piranha$' '$tmp/calls' && grep -q '^useradd --system -g piranha .* piranha$' '$tmp/calls'"
check "the first configure gives lvs.cf's directory to the group piranha (once)" sh -c \
    "[ \$(grep -c '^chgrp piranha /etc/sysconfig/ha /etc/sysconfig/ha/lvs.cf$' '$tmp/calls') = 1 ] && grep -q '^chmod 2775 /etc/sysconfig/ha$' '$tmp/calls'"
for s in prerm postrm; do
    check "$s runs" env PATH="$stub:$PATH" sh "$ctl/$s" remove
done

echo
if [ "$fails" = 0 ]; then
    echo "install checks: all passed"
else
    echo "install checks: $fails failed"
    exit 1
fi
