# lockstep build. `make test` is what CI runs (.ci/run); it installs what the
# tests need by itself.

SHELL     := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/lockstep-io/lockstep/internal/version.Version=$(VERSION)
BIN       := bin
FUZZTIME  ?= 20s
# Debian packages the tests talk to as real peers (installed by `make deps`).
DEB_DEPS  ?= dbus-daemon nftables iptables systemd snmpd snmptrapd snmp smitools rsyslog stress-ng
# ... and what make package and make boot-test check the packages with.
DEB_DEPS  += lintian rpm rpmlint cpio man-db mmdebstrap systemd-container util-linux
# The HA schedules and kill -9 rounds of `make test`, run once quiet and
# once under CPU load (LOAD_PER_CORE busy loops per core); the operations
# each schedule ran are kept under TESTOUT (a failing sequence replays
# with LOCKSTEP_HA_REPLAY, see internal/hapair).
HA_SCHEDULES  ?= 100
HA_KILLS      ?= 20
LOAD_PER_CORE ?= 1
TESTOUT       ?= $(CURDIR)/test-output
HA_RUN         = $(GO) test -count=1 -run 'TestRandomSchedules|TestKillLoop' -v -artifacts
HA_FILTER      = grep -E '^(ok|FAIL|---|\s+(schedule|pair)_test)'

# under_load runs $(1) with stress-ng's busy loops on every core, for
# $(2) at most; the trap stops them when $(1) ends, whatever the outcome,
# so that nothing is left behind.
define under_load
	@hogs=$$(( $(LOAD_PER_CORE) * $$(nproc) )); \
	stress-ng --cpu $$hogs --timeout $(2) --quiet & hog=$$!; \
	trap 'kill $$hog 2>/dev/null; wait $$hog 2>/dev/null' EXIT; \
	echo "under CPU load: $$hogs stress-ng busy loops (pid $$hog)"; \
	$(1)
endef

.PHONY: all build test deps lint vet fmt-check demo bench fuzz soak clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

deps:
	@missing=""; for p in $(DEB_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(GO) mod download

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

lint: fmt-check vet
	@if command -v staticcheck >/dev/null 2>&1; then staticcheck ./...; else echo "staticcheck not installed; skipped"; fi

test: deps fmt-check vet
	@# Every package under the race detector but internal/hapair: its
	@# lockstepd processes are built without it, and under it the package
	@# took 11 of its 12 minutes; it runs without it just after.
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v '/internal/hapair$$')
	@# internal/hapair's real processes, without -race; its HA schedules
	@# and kill loop run at full count below.
	$(GO) test -count=1 -timeout 15m -skip 'TestRandomSchedules|TestKillLoop' ./internal/hapair
	@# The random fault schedules at full count (>= 200 seeds), without -race:
	@# the race detector cannot hold that many scenarios in one process.
	$(GO) test -count=1 -timeout 10m -run 'TestRandomSchedules' -v ./internal/scenario | grep -E 'random schedules|^(ok|FAIL|---|\s+schedule_test)'
	@# The 24 h memory soak (internal/memsoak), without -race: the race
	@# detector's own memory grows with what it has seen.
	$(GO) test -count=1 -timeout 5m -run 'TestMemorySoak24h' ./internal/memsoak
	@# Admin commands through lockstepd's D-Bus API interleaved with storage
	@# faults (>= 200 seeds), lockstepd and the lab in process on a scaled
	@# clock; a failing seed's report path and replay are printed.
	LOCKSTEP_ADMIN_SEEDS=200 $(GO) test -count=1 -timeout 20m -run 'TestAdminSchedules' -v ./internal/adminsched | grep -E 'admin schedules|seed [0-9]+:|^\s+[a-z-]+ .*\(after step|^(ok|FAIL|---)'
	@# HA: the partition/pause/kill schedules (>= 100) and the kill -9 loop
	@# on the active, two real lockstepd processes each: quiet, then
	@# under CPU load on every core (other seeds).
	@mkdir -p $(TESTOUT)/ha-quiet $(TESTOUT)/ha-load
	LOCKSTEP_HA_SCHEDULES=$(HA_SCHEDULES) LOCKSTEP_HA_KILLS=$(HA_KILLS) $(HA_RUN) -timeout 15m -outputdir $(TESTOUT)/ha-quiet ./internal/hapair | $(HA_FILTER)
	$(call under_load,LOCKSTEP_HA_SEED=1001 LOCKSTEP_HA_SCHEDULES=$(HA_SCHEDULES) LOCKSTEP_HA_KILLS=$(HA_KILLS) $(HA_RUN) -timeout 20m -outputdir $(TESTOUT)/ha-load ./internal/hapair | $(HA_FILTER),25m)
	@# The deb and rpm packages, checked; then installed and booted.
	$(MAKE) package
	$(MAKE) boot-test

.PHONY: package boot-test

# dist/lockstep_<version>_amd64.deb, lockstep-<version>.x86_64.rpm and the
# same for lockstep-lab (packaging/doc.go), then lintian, rpmlint and rpm's
# own queries on them (packaging/packages_test.go). VERSION=X.Y.Z sets the
# version; else the latest vX.Y.Z tag, else 0.0.0~git<date>.<hash>.
package: deps
	rm -f dist/lockstep_*.deb dist/lockstep-lab_*.deb dist/lockstep-*.rpm
	$(GO) run ./packaging --out dist $(if $(filter command line environment,$(origin VERSION)),--version $(VERSION))
	LOCKSTEP_PACKAGES=$(CURDIR)/dist $(GO) test -count=1 -timeout 10m -run 'TestDeb|TestRPM' ./packaging

# Installs the .deb into a minimal Debian tree (mmdebstrap, cached in
# /var/cache/lockstep-boot), boots it with systemd-nspawn and checks the
# daemon, the admin API, reload, the watchdog, an upgrade and purge
# (packaging/boot_test.go). Needs root.
boot-test: deps
	LOCKSTEP_BOOT_TEST=1 $(GO) test -count=1 -timeout 20m -run 'TestBoot' -v ./packaging

# S1 and S2 in-process (heartbeat off, then on), then lockstepd driven by
# lockstepctl over a private D-Bus against the lab: needs dbus-daemon.
demo: build deps
	$(BIN)/lockstep-lab demo --bin $(BIN)

# Every benchmark runs once (-benchtime 1x) and takes its own samples,
# so that percentiles rest on hundreds of measurements; the figures of
# docs/performance.md are rewritten from bench.out. One package at a
# time (-p 1): go test runs as many test binaries at once as there are
# cores, and two packages' benchmarks would share the 2 cores each
# measures on.
bench:
	$(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./... | tee bench.out
	$(GO) run ./internal/benchreport -doc docs/performance.md < bench.out

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

soak:
	LOCKSTEP_SOAK=1 $(GO) test -count=1 -timeout 180m -run 'TestRandomSchedules' -v ./internal/scenario | grep -E 'random schedules|^(ok|FAIL|---|\s+schedule_test)'
	@mkdir -p $(TESTOUT)/soak-quiet $(TESTOUT)/soak-load
	LOCKSTEP_HA_SCHEDULES=3000 LOCKSTEP_HA_KILLS=300 $(HA_RUN) -timeout 240m -outputdir $(TESTOUT)/soak-quiet ./internal/hapair | $(HA_FILTER)
	@# Under CPU load: as many schedules as an hour holds, then 100 kill -9.
	$(call under_load,LOCKSTEP_HA_SEED=100001 LOCKSTEP_HA_FOR=60m LOCKSTEP_HA_SCHEDULES=100000 LOCKSTEP_HA_KILLS=100 $(HA_RUN) -timeout 180m -outputdir $(TESTOUT)/soak-load ./internal/hapair | $(HA_FILTER),190m)
	LOCKSTEP_SOAK=1 $(GO) test -count=1 -timeout 150m -run 'TestAdminSchedules' -v ./internal/adminsched | grep -E 'admin schedules|seed [0-9]+:|^\s+[a-z-]+ .*\(after step|^(ok|FAIL|---)'
	LOCKSTEP_SOAK=1 LOCKSTEP_ADMIN_SEEDS=200 $(GO) test -count=1 -timeout 60m ./...

clean:
	rm -rf $(BIN) bench.out $(TESTOUT)
