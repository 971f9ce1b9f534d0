# deepfaked: build, test and demo. On a fresh Debian 12 machine `make demo` and
# `make test` work as the first commands run: each target installs what it needs.

GO      ?= go
PYTHON  ?= /usr/bin/python3
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
ORT_LIB := third_party/onnxruntime/libonnxruntime.so.1
FLOAT_MODELS := models/backbone.onnx models/head.onnx
# The configs and the demo run the INT8 backbone (see docs/models.md: Quantising).
MODELS  := $(FLOAT_MODELS) models/backbone.int8.onnx
DEMO_VIDEO := /usr/share/doc/opencv-doc/examples/data/Megamind.avi
GOFILES := $(shell find . -name '*.go' -not -path './third_party/*' -not -path './build/*' 2>/dev/null) go.mod go.sum
# What the binary is built from (tests are not).
SRCFILES := $(filter-out %_test.go,$(GOFILES))
# Both architectures' builds: PIE and full RELRO (bind now), as Debian's hardening asks.
GOBUILD := -trimpath -buildmode=pie -ldflags "-X github.com/deepfaked/deepfaked/internal/buildinfo.version=$(VERSION) -extldflags=-Wl,-z,relro,-z,now"

# Packages whose goroutines meet (race detector) and that touch gocv Mats (leak profile).
RACE_PKGS := ./capture/... ./daemon/... ./infer/... ./train/...
MAT_PKGS  := ./capture/... ./daemon/... ./train/...

.PHONY: FORCE all deps models testmodels build test test-short test-web vet units systemd-live backbone soak demo bench bench-quality fmt clean install arm64 arm64-check deb deb-check

all: build

# Idempotent: installs only what is missing.
deps:
	@sh scripts/deps.sh

$(ORT_LIB):
	@sh scripts/deps.sh

# The model this project ships (shipped/, see shipped/MODEL_CARD.md) unless
# told otherwise: WEIGHTS=imagenet (online), WEIGHTS=path/to/mnasnet.pth or
# WEIGHTS=random export a backbone and an untrained head instead, and quantise
# that backbone. models/.weights records which; a default `make models` keeps
# another export rather than overwrite it.
WEIGHTS ?= shipped
ifeq ($(WEIGHTS),shipped)
models: deps
	@sh scripts/install-shipped-model.sh "$(origin WEIGHTS)"
else
models: deps $(MODELS)

# Rewritten only when WEIGHTS changes, so that a change re-exports.
models/.weights: FORCE
	@mkdir -p models
	@echo '$(WEIGHTS)' | cmp -s - $@ || echo '$(WEIGHTS)' >$@
models/backbone.onnx models/head.onnx: models/.weights
endif
models/%: EXPORT_WEIGHTS = $(WEIGHTS)

# The tests' own models: random weights (seeded), whatever `make models`
# installed, so that a test's expectations do not move with a model release.
TEST_MODELS := build/testmodels/backbone.onnx build/testmodels/head.onnx build/testmodels/backbone.int8.onnx
testmodels: deps $(TEST_MODELS)
build/testmodels/%: EXPORT_WEIGHTS = random

# One export writes both files (a pattern rule with two targets runs once).
%/backbone.onnx %/head.onnx: tools/export_model.py
	$(PYTHON) tools/export_model.py --weights $(EXPORT_WEIGHTS) --out $*

# Calibrated on every face Haar finds in the demo video. Without labelled
# faces there is no accuracy guard here: run quantize with --eval on yours.
%/backbone.int8.onnx: %/backbone.onnx | bin/deepfaked
	bin/deepfaked quantize --config configs/demo.yaml --float $< \
		--calib-video $(DEMO_VIDEO) --calib-fps 0 --out $@

FORCE:

build: deps bin/deepfaked

bin/deepfaked: $(SRCFILES)
	$(GO) build $(GOBUILD) -o $@ ./cmd/deepfaked

vet: deps
	@unformatted=$$(gofmt -l $(filter %.go,$(GOFILES))); [ -z "$$unformatted" ] || { echo "gofmt -w needed: $$unformatted" >&2; exit 1; }
	$(GO) vet ./...

# The race detector slows CPU-bound tests (the model's accuracy checks) several
# times over; on a loaded 2-core machine ./infer ran past go test's default 10 m.
test: deps models testmodels build vet units
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race -timeout 30m $(RACE_PKGS)
	$(GO) test -count=1 -tags matprofile $(MAT_PKGS)
	$(PYTHON) -m unittest tools.test_train_backbone
	$(MAKE) --no-print-directory test-web

# The edit-test loop: every package's tests but those that take seconds
# (testenv.Long: models, daemons, broker outages, videos), no race detector.
# make test runs them all.
test-short: deps testmodels
	$(GO) test -short -count=1 ./...

# The daemon's page in headless Chromium (chromedp; make deps installs
# chromium) against the binary on a real video with a real mosquitto;
# screenshots of each page in build/web-e2e.
test-web: deps testmodels build
	$(GO) test -count=1 -tags e2e -run TestWebE2E ./cmd/deepfaked/

demo: deps models build
	@sh scripts/demo.sh

# Pipeline throughput and latency, and per-face model time (see docs/benchmarks.md).
bench: deps models build
	@sh scripts/bench.sh

# The systemd units: sandbox score at most 2.5 of 10 (systemd-analyze security)
# and systemd-analyze verify on a `make install` into a staging tree.
units: build models
	@sh scripts/check-units.sh

# The installed units under a real systemd booted in a Debian 12 root file
# system (root; ../shared/tools/fresh-debian.sh builds it). Not in make test.
systemd-live: deps models build
	@bash scripts/systemd-live.sh $(ROOTFS)

# Fine-tune the whole backbone (hours on a CPU; --resume continues):
# $(BACKBONE_OUT)/backbone.onnx and backbone.pth. Not in make test.
BACKBONE_DATA ?= ../shared/data/dfdc-pretrain ../shared/data/hardfake/train
BACKBONE_INIT ?= ../shared/models/backbone/mnasnet0_75_dfdc.pth
BACKBONE_OUT  ?= build/backbone
backbone: deps
	$(PYTHON) tools/train_backbone.py $(addprefix --data ,$(BACKBONE_DATA)) --init $(BACKBONE_INIT) --out $(BACKBONE_OUT) $(BACKBONE_ARGS)

# Ten minutes (SOAK=...) of 4 looping cameras against mosquitto, the broker
# restarted halfway: RSS and goroutines flat, no gocv Mat left (not in test).
SOAK ?= 10m
soak: deps testmodels build
	DEEPFAKED_SOAK=$(SOAK) $(GO) test -count=1 -tags matprofile -run '^TestSoak$$' -timeout 60m -v ./daemon

# arm64 (Jetson, Raspberry Pi): a cgo cross-build against a sysroot of
# Debian's arm64 packages (build/arm64/sysroot, made on first use), and a
# check that runs it under qemu-aarch64-static against the x86-64 binary's
# verdicts. Neither is in make test (minutes of downloads and emulation).
ARM64_BIN  := bin/deepfaked-linux-arm64
ARM64_ROOT := build/arm64/sysroot
ARM64_ORT  := third_party/onnxruntime-arm64/libonnxruntime.so.1
ARM64_ENV  = CGO_ENABLED=1 GOOS=linux GOARCH=arm64 PKG_CONFIG_PATH= \
	PKG_CONFIG_LIBDIR=$(abspath build/arm64) \
	CC="aarch64-linux-gnu-gcc --sysroot=$(abspath $(ARM64_ROOT))" \
	CXX="aarch64-linux-gnu-g++ --sysroot=$(abspath $(ARM64_ROOT))"
arm64: $(ARM64_BIN)
# PKG_CONFIG_LIBDIR: the sysroot's opencv4.pc only, never the host's.
$(ARM64_BIN): $(SRCFILES) scripts/arm64-sysroot.sh
	@sh scripts/arm64-sysroot.sh build/arm64
	@sh scripts/fetch-ort.sh arm64 $(dir $(ARM64_ORT))
	$(ARM64_ENV) $(GO) build $(GOBUILD) -o $@ ./cmd/deepfaked
arm64-check: build models $(ARM64_BIN)
	@sh scripts/arm64-check.sh $(ARM64_BIN)

# Debian packages for amd64 and arm64 in dist/, checked with lintian; the
# amd64 one installed, run and purged in a fresh Debian 12 root (deb-check).
deb: build models $(ARM64_BIN)
	@sh scripts/deb.sh amd64 bin/deepfaked $(ORT_LIB)
	@sh scripts/deb.sh arm64 $(ARM64_BIN) $(ARM64_ORT) $(ARM64_ROOT)
deb-check: deb
	@sh scripts/deb-check.sh

# A service install: binary, ONNX Runtime, units, the default config unless
# there, docs (the example configs among them) and the man page, the shipped model
# read-only in $(PREFIX)/share/deepfaked/models (its card in the docs) and
# copied into /var/lib/deepfaked/models where absent (training replaces
# head.onnx there). Nothing under /etc is overwritten. scripts/deb.sh stages
# the Debian package with it (PREFIX=/usr UNITDIR=/lib/systemd/system SEED=0:
# the postinst seeds the state directory).
PREFIX  ?= /usr/local
UNITDIR ?= /etc/systemd/system
BIN     ?= bin/deepfaked
CONFIG  ?= configs/deepfaked.yaml
SEED    ?= 1
UNITS   := deepfaked.service deepfaked-train.service deepfaked-train.timer
EXAMPLE_CONFIGS := configs/raspberry-pi.yaml configs/jetson.yaml
DOCS    := README.md $(wildcard docs/*.md) shipped/MODEL_CARD.md
install: build models
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/deepfaked
	install -D -m 0644 $(ORT_LIB) $(DESTDIR)/usr/lib/deepfaked/libonnxruntime.so.1
	install -d $(DESTDIR)$(UNITDIR)
	# The units name /usr/local/bin and /usr/share/doc: PREFIX's instead.
	for u in $(UNITS); do \
		sed -e 's#/usr/local/bin/#$(PREFIX)/bin/#g' -e 's#/usr/share/doc/#$(PREFIX)/share/doc/#g' systemd/$$u >$(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -d $(DESTDIR)/etc/deepfaked
	[ -e $(DESTDIR)/etc/deepfaked/deepfaked.yaml ] || install -m 0644 $(CONFIG) $(DESTDIR)/etc/deepfaked/deepfaked.yaml
	install -d $(DESTDIR)$(PREFIX)/share/doc/deepfaked/examples $(DESTDIR)$(PREFIX)/share/deepfaked/models
	install -m 0644 $(DOCS) $(DESTDIR)$(PREFIX)/share/doc/deepfaked/
	# Examples are documentation (Debian policy 12.2), not configuration: replaced on upgrade.
	install -m 0644 $(EXAMPLE_CONFIGS) $(DESTDIR)$(PREFIX)/share/doc/deepfaked/examples/
	install -D -m 0644 docs/deepfaked.1 $(DESTDIR)$(PREFIX)/share/man/man1/deepfaked.1
	install -m 0644 $(MODELS) $(DESTDIR)$(PREFIX)/share/deepfaked/models/
	# Into a staging tree (DESTDIR) no user is made: the package's postinst makes it.
	[ -n "$(DESTDIR)" ] || sh scripts/adduser.sh
	if [ "$(SEED)" = 1 ]; then \
		install -d -m 0750 $(DESTDIR)/var/lib/deepfaked $(DESTDIR)/var/lib/deepfaked/models && \
		for m in $(MODELS); do [ -e $(DESTDIR)/var/lib/deepfaked/$$m ] || install -m 0644 $$m $(DESTDIR)/var/lib/deepfaked/$$m || exit 1; done; \
	fi
	# The state is the service user's, as systemd's StateDirectory= and the
	# package's postinst make it, so that its commands can run before the service.
	[ -n "$(DESTDIR)" ] || [ ! -d /var/lib/deepfaked ] || chown -R deepfaked:deepfaked /var/lib/deepfaked

# Head-training quality and speed against the reference recipe (needs ../shared).
bench-quality: deps build
	DEEPFAKED=bin/deepfaked sh tools/bench_quality.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
