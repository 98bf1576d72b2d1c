# mailpass: build, test, benchmark, lint, install.

CARGO   ?= cargo
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(DESTDIR)$(PREFIX)/bin
CONFDIR := $(DESTDIR)$(PREFIX)/share/mailpass/dovecot-conf
UNITDIR := $(DESTDIR)$(PREFIX)/share/mailpass/systemd
# The fail2ban filter and jail, the nginx sample for the web page (as the Debian package has them).
SAMPLEDIR := $(DESTDIR)$(PREFIX)/share/mailpass
MANDIR  := $(DESTDIR)$(PREFIX)/share/man/man1
BASHDIR := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR  := $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions
FISHDIR := $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
BIN     := target/release/mailpass
# Where `make` puts the man pages and completions build.rs generated, for `make install`.
GEN     := target/release

.PHONY: all build deps test bench lint install clean clean-test-cache demo deb

all: build

# build.rs writes the man pages and the shell completions into its OUT_DIR (see build.rs for why), a path with a
# hash in it that only cargo knows: cargo names it in its JSON message "build-script-executed" (also when nothing
# was rebuilt), and from there they are copied to $(GEN)/man/ and $(GEN)/completions/.
build:
	@set -e; \
	echo "$(CARGO) build --release"; \
	messages=$$($(CARGO) build --release --message-format=json-render-diagnostics); \
	out=$$(printf '%s\n' "$$messages" | grep '"reason":"build-script-executed"' \
		| grep '"package_id":"[^"]*#mailpass@' | sed 's/.*"out_dir":"\([^"]*\)".*/\1/'); \
	if [ -z "$$out" ] || [ ! -d "$$out/man" ] || [ ! -d "$$out/completions" ]; then \
		echo "make: cargo did not report where build.rs put the man pages and completions" >&2; exit 1; \
	fi; \
	rm -rf $(GEN)/man $(GEN)/completions; \
	cp -R "$$out/man" "$$out/completions" $(GEN)/; \
	echo "man pages in $(GEN)/man/, shell completions in $(GEN)/completions/"

# The unit tests of the library and the binary and every integration test in tests/ (the end-to-end ones
# start real Dovecots: run as root, with the packages .ci/run installs). Not `--all-targets`: cargo would also
# run the benches as plain programs. The crate has no doc tests (its modules are private). `--no-fail-fast`:
# every test binary runs, so one failure does not hide the others (the exit status still fails).
test: deps
	$(CARGO) build
	$(CARGO) test --no-fail-fast --lib --bins --tests

# BENCH_ITERS=N sets the number of measured rounds (default 40 for login, 30 for dovecot, 20 idle rounds for
# storm, 20 rounds for web); MAILPASS_BIN another binary to measure. benches/dovecot.rs starts real Dovecots (2.3,
# and 2.4 when the end-to-end tests' chroot exists) and needs root. benches/storm.rs releases 500 logins at once:
# without a cap on concurrent verifications that takes about 12 GiB for some 15 s. benches/web.rs starts a
# Dovecot 2.3 and `mailpass web` and needs root.
bench:
	$(CARGO) build --release
	$(CARGO) bench --bench login
	$(CARGO) bench --bench dovecot
	$(CARGO) bench --bench storm
	$(CARGO) bench --bench web

# A throwaway Dovecot on loopback wired to mailpass, a demo user with 2FA, real IMAP logins. Needs root;
# installs Dovecot and libsodium-dev from Debian packages if they are missing, then builds mailpass.
demo:
	bash demo/demo.sh

# The Debian packages the build and the tests need (installed when missing; needs root then).
deps:
	scripts/install-deps.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Installs what `make` built; it does not build (so that `sudo make install` does not run cargo as root).
install:
	@test -x $(BIN) || { echo "$(BIN) is missing: run 'make' first" >&2; exit 1; }
	@test -d $(GEN)/man -a -d $(GEN)/completions || \
		{ echo "$(GEN)/man or $(GEN)/completions is missing: run 'make' first" >&2; exit 1; }
	install -D -m 0755 $(BIN) $(BINDIR)/mailpass
	@set -e; for f in $(GEN)/man/*.1; do \
		echo "install -D -m 0644 $$f $(MANDIR)/$${f##*/}"; \
		install -D -m 0644 "$$f" "$(MANDIR)/$${f##*/}"; \
	done
	install -D -m 0644 $(GEN)/completions/mailpass.bash $(BASHDIR)/mailpass
	install -D -m 0644 $(GEN)/completions/_mailpass $(ZSHDIR)/_mailpass
	install -D -m 0644 $(GEN)/completions/mailpass.fish $(FISHDIR)/mailpass.fish
	@set -e; for f in dovecot-conf/*; do \
		if [ -f "$$f" ]; then \
			echo "install -D -m 0644 $$f $(CONFDIR)/$${f##*/}"; \
			install -D -m 0644 "$$f" "$(CONFDIR)/$${f##*/}"; \
		fi; \
	done
	@set -e; for f in contrib/systemd/*; do \
		echo "install -D -m 0644 $$f $(UNITDIR)/$${f##*/}"; \
		install -D -m 0644 "$$f" "$(UNITDIR)/$${f##*/}"; \
	done
	@set -e; for f in contrib/fail2ban/*/* contrib/nginx/*; do \
		echo "install -D -m 0644 $$f $(SAMPLEDIR)/$${f#contrib/}"; \
		install -D -m 0644 "$$f" "$(SAMPLEDIR)/$${f#contrib/}"; \
	done

# target/debian/mailpass_<version>_<arch>.deb, with plain dpkg-deb from a staged tree (scripts/make-deb.sh says
# what goes where); needs no root.
deb: build
	scripts/make-deb.sh

clean:
	$(CARGO) clean

# The Debian chroots the tests build with debootstrap and reuse (Debian 13 with Dovecot 2.4, Debian 12 minbase).
clean-test-cache:
	rm -rf --one-file-system /var/cache/mailpass-test
