# piranha-rs: build and install (docs/install.md).
#
#   make                                   build the release binaries (cargo build --release --locked)
#   make install [DESTDIR=...] [PREFIX=/usr] [IPVSADM=beside|replace] [FORCE=1] [STRIP=1]
#   make uninstall [DESTDIR=...] [PREFIX=/usr]
#   make check-man                         render every man page, fail on any groff warning
#   make deb                               scripts/build-deb: target/piranha-rs_VERSION_ARCH.deb
#
# install places pulse, lvsd (+ the `lvs` link), nanny and send_arp in $(SBINDIR); the init
# script, the systemd unit, the man pages and the examples; lvs.cf and /etc/sysconfig/pulse only
# where they do not exist yet. This project's ipvsadm goes to $(PKGLIBDIR)/ipvsadm, beside the
# distribution's; IPVSADM=replace installs it as $(SBINDIR)/ipvsadm instead, and refuses to
# overwrite an ipvsadm that is not piranha-rs's unless FORCE=1 (the other one is then kept in
# $(PKGLIBDIR) and put back by uninstall). A manifest of what was installed, with checksums, lets
# uninstall remove exactly that: never the configuration, never a file changed since.
#
# The daemons find each other under /usr/sbin (pulse runs /usr/sbin/lvsd, lvs.cf's client_monitor
# is /usr/sbin/nanny): with another PREFIX set `--lvsd` in OPTIONS and `client_monitor`.

SHELL := /bin/sh
.SHELLFLAGS := -ec
.ONESHELL:

PREFIX     ?= /usr
DESTDIR    ?=
SBINDIR    ?= $(PREFIX)/sbin
PKGLIBDIR  ?= $(PREFIX)/lib/piranha-rs
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/piranha-rs
SYSCONFDIR ?= /etc
HADIR      ?= $(SYSCONFDIR)/sysconfig/ha
INITDIR    ?= $(SYSCONFDIR)/init.d
UNITDIR    ?= /lib/systemd/system
IPVSADM    ?= beside
FORCE      ?= 0
# STRIP=1: strip the binaries (the release profile keeps line tables for backtraces).
STRIP      ?= 0

CARGO      ?= cargo
CARGOFLAGS ?=
TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
BUILD      := $(TARGET_DIR)/release

# Installed in $(SBINDIR). OPTIONAL_BINS are installed when the build produced them.
BINS          := pulse lvsd nanny send_arp
OPTIONAL_BINS := ipvsd piranha-gui piranha_gui piranha-passwd
MAN5          := lvs.cf.5
MAN8          := pulse.8 lvsd.8 nanny.8 send_arp.8 ipvsadm.8 piranha-gui.8 piranha-passwd.8
EXAMPLES      := etc/lvs.cf.sample etc/sysctl.d/90-piranha-rs-router.conf etc/nftables/piranha-rs-nat.nft
DOCS          := docs/howto.md docs/install.md docs/compatibility.md docs/nanny-protocol.md docs/gui.md

MANIFEST   := $(PKGLIBDIR)/install-manifest
SAVED_IPVSADM := $(PKGLIBDIR)/ipvsadm.before-piranha-rs

.PHONY: all build install uninstall check-man deb

all: build

build:
	$(CARGO) build --release --locked --workspace --bins $(CARGOFLAGS)

install:
	@D='$(DESTDIR)'
	case '$(IPVSADM)' in
	    beside|replace) ;;
	    *) echo "make install: IPVSADM must be beside (the default) or replace, not '$(IPVSADM)'" >&2; exit 2 ;;
	esac
	for b in $(BINS) ipvsadm; do
	    if [ ! -x '$(BUILD)'/$$b ]; then
	        echo "make install: $(BUILD)/$$b is missing: run make first (as a user; install as root)" >&2
	        exit 1
	    fi
	done
	new=$$(mktemp); trap 'rm -f "$$new"' EXIT
	# record PATH (without DESTDIR): its checksum, or "symlink" for a link.
	record() {
	    if [ -L "$$D$$1" ]; then echo "symlink $$1" >>"$$new"
	    else echo "$$(sha256sum <"$$D$$1" | cut -d' ' -f1) $$1" >>"$$new"; fi
	}
	# recorded_sum PATH: the checksum the manifest holds for PATH, if any.
	recorded_sum() {
	    [ -f "$$D$(MANIFEST)" ] || return 0
	    awk -v p="$$1" '$$2 == p && $$1 != "symlink" { print $$1 }' "$$D$(MANIFEST)"
	}
	put() { # put MODE SOURCE DEST
	    install -d "$$D$$(dirname "$$3")"
	    rm -f "$$D$$3"
	    install -m "$$1" "$$2" "$$D$$3"
	    record "$$3"
	}
	putbin() { # putbin SOURCE DEST
	    install -d "$$D$$(dirname "$$2")"
	    rm -f "$$D$$2"
	    if [ '$(STRIP)' = 1 ]; then install -s -m 0755 "$$1" "$$D$$2"
	    else install -m 0755 "$$1" "$$D$$2"; fi
	    record "$$2"
	}
	link() { # link TARGET NAME
	    install -d "$$D$$(dirname "$$2")"
	    ln -sfn "$$1" "$$D$$2"
	    record "$$2"
	}
	config() { # config SOURCE DEST: only where there is none
	    if [ -e "$$D$$2" ] || [ -L "$$D$$2" ]; then
	        echo "  kept     $$2 (exists; not overwritten)"
	    else
	        install -d "$$D$$(dirname "$$2")"
	        install -m 0644 "$$1" "$$D$$2"
	        echo "  created  $$2"
	    fi
	}

	echo "Installing piranha-rs into $${D:-/}"
	for b in $(BINS); do putbin '$(BUILD)'/$$b '$(SBINDIR)'/$$b; done
	for b in $(OPTIONAL_BINS); do
	    if [ -x '$(BUILD)'/$$b ]; then putbin '$(BUILD)'/$$b '$(SBINDIR)'/$$b; fi
	done
	link lvsd '$(SBINDIR)/lvs'

	if [ '$(IPVSADM)' = replace ]; then
	    dst='$(SBINDIR)/ipvsadm'
	    if [ -e "$$D$$dst" ] || [ -L "$$D$$dst" ]; then
	        have=; if [ -f "$$D$$dst" ]; then have=$$(sha256sum <"$$D$$dst" | cut -d' ' -f1); fi
	        if cmp -s "$$D$$dst" '$(BUILD)/ipvsadm' || { [ -n "$$have" ] && [ "$$have" = "$$(recorded_sum "$$dst")" ]; } \
	            || [ "$$(readlink "$$D$$dst" || true)" = '$(PKGLIBDIR)/ipvsadm' ]; then
	            : # ours: this build, what an earlier make install put there, or a link to ours
	        elif [ '$(FORCE)' = 1 ]; then
	            install -d "$$D$(PKGLIBDIR)"
	            if [ -e "$$D$(SAVED_IPVSADM)" ] || [ -L "$$D$(SAVED_IPVSADM)" ]; then
	                echo "make install: FORCE=1: $$dst is not ours; $(SAVED_IPVSADM) already holds an earlier one: this one is overwritten" >&2
	            else
	                cp -Pp "$$D$$dst" "$$D$(SAVED_IPVSADM)"
	                echo "make install: FORCE=1: the other $$dst was saved as $(SAVED_IPVSADM) (make uninstall puts it back)" >&2
	            fi
	        else
	            {
	            echo "make install: $$dst exists and is not piranha-rs's ipvsadm (the distribution's?): not replacing it."
	            if command -v dpkg >/dev/null 2>&1 && [ -z "$$D" ]; then
	                owner=$$(dpkg -S "$$dst" 2>/dev/null || dpkg -S /sbin/ipvsadm 2>/dev/null || true)
	                [ -z "$$owner" ] || echo "  dpkg: $$owner"
	            fi
	            echo "  Choose one:"
	            echo "  - keep both (the default): make install          -> ours is $(PKGLIBDIR)/ipvsadm"
	            echo "  - Debian/Ubuntu: move the package's aside for good (survives its upgrades), then replace:"
	            echo "        dpkg-divert --local --rename --add /sbin/ipvsadm   (the path the package ships: dpkg -L ipvsadm)"
	            echo "        make install IPVSADM=replace"
	            echo "  - RHEL: rpm -e ipvsadm (pulse, lvsd and nanny do not need any ipvsadm), then make install IPVSADM=replace"
	            echo "  - overwrite it anyway, keeping a copy that make uninstall puts back:"
	            echo "        make install IPVSADM=replace FORCE=1"
	            } >&2
	            exit 1
	        fi
	    fi
	    putbin '$(BUILD)/ipvsadm' "$$dst"
	    if [ -e "$$D/sbin/ipvsadm" ] && [ ! "$$D/sbin/ipvsadm" -ef "$$D$$dst" ]; then
	        echo "  note: /sbin/ipvsadm (another ipvsadm) stays; $$dst comes first in root's PATH"
	    fi
	else
	    putbin '$(BUILD)/ipvsadm' '$(PKGLIBDIR)/ipvsadm'
	fi

	put 0755 init.d/pulse '$(INITDIR)/pulse'
	put 0644 etc/systemd/pulse.service '$(UNITDIR)/pulse.service'
	put 0644 etc/systemd/piranha-gui.service '$(UNITDIR)/piranha-gui.service'
	for m in $(MAN5); do
	    install -d "$$D$(MANDIR)/man5"
	    gzip -9nc docs/man/$$m >"$$D$(MANDIR)/man5/$$m.gz"; record "$(MANDIR)/man5/$$m.gz"
	done
	for m in $(MAN8); do
	    install -d "$$D$(MANDIR)/man8"
	    gzip -9nc docs/man/$$m >"$$D$(MANDIR)/man8/$$m.gz"; record "$(MANDIR)/man8/$$m.gz"
	done
	link lvsd.8.gz '$(MANDIR)/man8/lvs.8.gz'
	for f in $(EXAMPLES); do put 0644 $$f '$(DOCDIR)'/examples/$$(basename $$f); done
	for f in $(DOCS); do put 0644 $$f '$(DOCDIR)'/$$(basename $$f); done

	config etc/lvs.cf.sample '$(HADIR)/lvs.cf'
	config etc/sysconfig/pulse '$(SYSCONFDIR)/sysconfig/pulse'

	# The manifest: this install's files, plus those of earlier installs still present.
	install -d "$$D$(PKGLIBDIR)"
	if [ -f "$$D$(MANIFEST)" ]; then
	    while read -r sum path; do
	        if [ -e "$$D$$path" ] || [ -L "$$D$$path" ]; then
	            awk -v p="$$path" '$$2 == p { f = 1 } END { exit !f }' "$$new" || echo "$$sum $$path" >>"$$new"
	        fi
	    done <"$$D$(MANIFEST)"
	fi
	sort -k2 "$$new" >"$$D$(MANIFEST)"
	chmod 0644 "$$D$(MANIFEST)"
	echo "  $$(wc -l <"$$D$(MANIFEST)") files and links, listed in $(MANIFEST)"

	echo
	if [ '$(IPVSADM)' = replace ]; then
	    echo "ipvsadm: piranha-rs's is $(SBINDIR)/ipvsadm."
	else
	    echo "ipvsadm: piranha-rs's is $(PKGLIBDIR)/ipvsadm, beside the distribution's (pulse, lvsd and"
	    echo "  nanny use neither). To make it the system's ipvsadm: make install IPVSADM=replace"
	    echo "  (on Debian first: dpkg-divert --local --rename --add /sbin/ipvsadm). See docs/install.md."
	fi
	echo "pulse is not enabled (as with Piranha). On the routers, once lvs.cf is ready:"
	echo "  systemd: systemctl daemon-reload && systemctl enable --now pulse"
	echo "  SysV:    update-rc.d pulse defaults (Debian), chkconfig --add pulse && chkconfig pulse on (RHEL,"
	echo "           whose scripts live in /etc/rc.d/init.d: /etc/init.d points there); then service pulse start"
	echo "Router prerequisites (NAT): $(DOCDIR)/examples/90-piranha-rs-router.conf and piranha-rs-nat.nft."

uninstall:
	@D='$(DESTDIR)'
	if [ ! -f "$$D$(MANIFEST)" ]; then
	    echo "make uninstall: no $(MANIFEST) under $${D:-/}: nothing installed by make install here"
	    exit 0
	fi
	echo "Removing piranha-rs from $${D:-/}"
	kept=0
	while read -r sum path; do
	    f="$$D$$path"
	    if [ "$$sum" = symlink ]; then
	        if [ -L "$$f" ]; then rm -f "$$f"; fi
	    elif [ -f "$$f" ] && [ ! -L "$$f" ]; then
	        if [ "$$(sha256sum <"$$f" | cut -d' ' -f1)" = "$$sum" ]; then
	            rm -f "$$f"
	        else
	            echo "  kept     $$path (changed since it was installed)"
	            kept=$$((kept + 1))
	        fi
	    fi
	done <"$$D$(MANIFEST)"
	if [ -e "$$D$(SAVED_IPVSADM)" ] || [ -L "$$D$(SAVED_IPVSADM)" ]; then
	    if [ -e "$$D$(SBINDIR)/ipvsadm" ] || [ -L "$$D$(SBINDIR)/ipvsadm" ]; then
	        echo "  kept     $(SAVED_IPVSADM) ($(SBINDIR)/ipvsadm exists: put it back by hand)"
	    else
	        mv "$$D$(SAVED_IPVSADM)" "$$D$(SBINDIR)/ipvsadm"
	        echo "  restored $(SBINDIR)/ipvsadm (the one FORCE=1 replaced)"
	    fi
	fi
	rm -f "$$D$(MANIFEST)"
	for d in '$(PKGLIBDIR)' '$(DOCDIR)/examples' '$(DOCDIR)'; do
	    rmdir "$$D$$d" 2>/dev/null || true
	done
	for c in '$(HADIR)/lvs.cf' '$(SYSCONFDIR)/sysconfig/pulse'; do
	    if [ -e "$$D$$c" ]; then echo "  kept     $$c (configuration)"; fi
	done
	echo "Done."

check-man:
	@command -v groff >/dev/null || { echo "check-man: groff is missing (apt-get install groff)" >&2; exit 1; }
	fail=0
	for m in $(MAN5) $(MAN8); do
	    out=$$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z docs/man/$$m 2>&1)
	    if [ -n "$$out" ]; then echo "docs/man/$$m:"; echo "$$out"; fail=1; fi
	done
	[ $$fail = 0 ] && echo "check-man: $(words $(MAN5) $(MAN8)) man pages render without warnings"

deb:
	scripts/build-deb
