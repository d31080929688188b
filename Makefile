# Vigil. `make run` runs the agent on its embedded default; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
# The module proxy is the only registry this project needs; never fall back to VCS.
export GOPROXY ?= https://proxy.golang.org
export GOFLAGS ?= -buildvcs=false

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN     := $(CURDIR)/bin/vigil

.PHONY: all build run test test-deps unit e2e lint fmt tidy bench eval-redflags clean

all: build

# One build per invocation; tests reuse it through VIGIL_BIN.
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/vigil

run: build
	@echo "vigil: OTLP in on 127.0.0.1:4317 (gRPC) and 127.0.0.1:4318 (HTTP); own metrics on 127.0.0.1:8888/metrics;"
	@echo "       remote write in on 127.0.0.1:19291/api/v1/write; pipeline metrics on 127.0.0.1:8889/metrics;"
	@echo "       health on 127.0.0.1:13133. Ctrl-C stops it."
	$(BIN)

# Installs the real backends the end-to-end tests drive (Debian packages).
test-deps:
	scripts/test-deps.sh

test: test-deps build
	VIGIL_BIN=$(BIN) $(GO) test -count=1 -timeout 30m ./...

# Unit tests only (no binary, no backends).
unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e: build
	VIGIL_BIN=$(BIN) $(GO) test -count=1 -timeout 30m ./e2e/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Two test-only dependencies of upstream packages are not served by the module
# proxy here (scraper/scrapertest v0.161.0, pkg/semconvtest); -e keeps tidy going.
tidy:
	$(GO) mod tidy -e

bench:
	@echo "bench: not yet (see the benchmarks issue)"

# Every simulator scenario over held-out seeds through the red-flag detectors
# (about 10 minutes on 2 cores); EVAL_FLAGS="-seeds 1-5" for the tuning seeds.
eval-redflags:
	$(GO) run ./connectors/redflagconnector/internal/eval/cmd/evalredflags $(EVAL_FLAGS)

clean:
	rm -rf bin
