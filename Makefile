# Vigil. `make run` runs the agent on its embedded default; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
# Modules come through the module proxy the environment configures (go env GOPROXY).
export GOFLAGS ?= -buildvcs=false

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN     := $(CURDIR)/bin/vigil
# The testbed of real instrumented services (benchmarks/testbed), one binary
# re-executed per service replica.
TESTBED_BIN := $(CURDIR)/bin/testbed
# The benchmark peer: upstream components only, its own module (benchmarks/peer).
PEER_BIN    := $(CURDIR)/bin/peer
# vmagent, M1's second peer, installed once into a gitignored cache.
VMAGENT_BIN := $(CURDIR)/benchmarks/.cache/bin/vmagent
# Helm for the chart tests, and a real kube-apiserver for `make test-kube`,
# built once into the gitignored .cache/ and reused.
HELM_VERSION := v3.19.5
HELM_BIN     := $(CURDIR)/.cache/bin/helm-$(HELM_VERSION)
KUBE_APISERVER_BIN := $(CURDIR)/.cache/bin/kube-apiserver
# The collector's mdatagen, pinned in scripts/mdatagen/go.mod, generates each
# component's internal/metadata, lifecycle tests and documentation.md from its
# metadata.yaml.
MDATAGEN_VERSION = $(shell cd scripts/mdatagen && $(GO) list -m -f '{{.Version}}' go.opentelemetry.io/collector/cmd/mdatagen)
MDATAGEN_BIN     = $(CURDIR)/.cache/bin/mdatagen-$(MDATAGEN_VERSION)
COMPONENTS       := $(patsubst %/metadata.yaml,%,$(wildcard receivers/*/metadata.yaml processors/*/metadata.yaml exporters/*/metadata.yaml connectors/*/metadata.yaml extensions/*/metadata.yaml))
# helm-docs, pinned in scripts/helmdocs/go.mod, writes the chart's README.md
# from its README.md.gotmpl and the `# --` comments of values.yaml.
HELMDOCS_VERSION = $(shell cd scripts/helmdocs && $(GO) list -m -f '{{.Version}}' github.com/norwoodj/helm-docs)
HELMDOCS_BIN     = $(CURDIR)/.cache/bin/helm-docs-$(HELMDOCS_VERSION)


# Alertmanager with its web UI (Debian's has none) for the end-to-end browser
# test, built once into a gitignored cache (about a minute).
AM_UI_VERSION := v0.28.1
AM_UI_BIN     := $(CURDIR)/.cache/alertmanager-$(AM_UI_VERSION)/alertmanager

.PHONY: generate check-generated chart-docs check-chart-docs test-node all build testbed peer vmagent helm kube-apiserver alertmanager-ui run test test-deps test-kube unit e2e lint fmt tidy bench eval-redflags chart-dashboards fuzz soak vulncheck clean

all: build

# One build per invocation; tests reuse it through VIGIL_BIN. Static
# (CGO_ENABLED=0), as in the image: the node test puts this very binary in it.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/vigil

testbed:
	$(GO) build -trimpath -o $(TESTBED_BIN) ./benchmarks/cmd/testbed

# The upstream collector the benchmarks compare against, built from the same
# module versions and replace pins as vigil (benchmarks/peer/go.mod).
peer:
	cd benchmarks/peer && $(GO) build -trimpath -ldflags "-s -w" -o $(PEER_BIN) .

vmagent: $(VMAGENT_BIN)

$(VMAGENT_BIN):
	GOBIN=$(dir $(VMAGENT_BIN)) $(GO) install github.com/VictoriaMetrics/VictoriaMetrics/app/vmagent@v1.151.0

# Helm from the module proxy (about 1.5 minutes cold), with the -X flags of
# Helm's own release build: the version `helm version` prints (go install
# leaves "v3.19") and the default Kubernetes version of its k8s modules, 1.34
# (go install leaves 1.20, below the chart's kubeVersion). The tests pass
# --kube-version anyway.
HELM_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=34 \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=34
helm: $(HELM_BIN)

$(HELM_BIN):
	mkdir -p $(dir $(HELM_BIN))
	GOBIN=$(CURDIR)/.cache/helm-install $(GO) install -ldflags "$(HELM_LDFLAGS)" helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(CURDIR)/.cache/helm-install/helm $@

# k8s.io/kubernetes v1.37.2's kube-apiserver (about 7-9 minutes cold on 2 cores).
kube-apiserver:
	scripts/kube-apiserver.sh

alertmanager-ui: $(AM_UI_BIN)

$(AM_UI_BIN):
	GOBIN=$(dir $(AM_UI_BIN)) $(GO) install -trimpath github.com/prometheus/alertmanager/cmd/alertmanager@$(AM_UI_VERSION)

run: build
	@echo "vigil: OTLP in on 127.0.0.1:4317 (gRPC) and 127.0.0.1:4318 (HTTP); own metrics on 127.0.0.1:8888/metrics;"
	@echo "       remote write in on 127.0.0.1:19291/api/v1/write; pipeline metrics and ALERTS on 127.0.0.1:8889/metrics;"
	@echo "       status page on http://127.0.0.1:8890/; health on 127.0.0.1:13133. Ctrl-C stops it."
	$(BIN)

# Installs the real backends the end-to-end tests drive (Debian packages).
test-deps:
	scripts/test-deps.sh

# Progress as the tests run (scripts/testprogress): slow tests named while
# they run, skips with their reason, failures with their output.
test: test-deps build testbed peer helm alertmanager-ui
	$(GO) build -o bin/testprogress ./scripts/testprogress
	set -o pipefail; VIGIL_BIN=$(BIN) TESTBED_BIN=$(TESTBED_BIN) PEER_BIN=$(PEER_BIN) HELM_BIN=$(HELM_BIN) VIGIL_AM_UI_BIN=$(AM_UI_BIN) \
		$(GO) test -json -count=1 -timeout 40m ./... 2>&1 | bin/testprogress

# The Helm chart against a real kube-apiserver + etcd (e2e/kube_test.go):
# strict server-side dry run, helm install/upgrade, RBAC by SubjectAccessReview.
# Not part of `make test` (building the API server is slow); .ci/run calls it
# when the chart changed (scripts/chart-changed.sh).
# The chart on a one-node cluster built here (e2e/node_test.go): etcd, the
# API server, controller-manager, scheduler and a kubelet (v1.37.2, built
# once into .cache/bin) driving containerd and runc; images built locally.
# Needs root and Debian's containerd, runc, containernetworking-plugins,
# etcd-server and iptables.
test-node: build helm
	scripts/kube-apiserver.sh kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy
	VIGIL_BIN=$(BIN) HELM_BIN=$(HELM_BIN) KUBE_BIN_DIR=$(CURDIR)/.cache/bin \
		$(GO) test -count=1 -timeout 20m -run 'TestNodeDaemonSet' -v ./e2e/

test-kube: build helm kube-apiserver
	scripts/test-deps.sh etcd
	VIGIL_BIN=$(BIN) HELM_BIN=$(HELM_BIN) KUBE_APISERVER_BIN=$(KUBE_APISERVER_BIN) \
		$(GO) test -count=1 -timeout 15m -run 'TestKubeAPIServer' -v ./e2e/

# Unit tests only (no binary, no backends).
unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e: build testbed helm alertmanager-ui
	$(GO) build -o bin/testprogress ./scripts/testprogress
	set -o pipefail; VIGIL_BIN=$(BIN) TESTBED_BIN=$(TESTBED_BIN) HELM_BIN=$(HELM_BIN) VIGIL_AM_UI_BIN=$(AM_UI_BIN) \
		$(GO) test -json -count=1 -timeout 40m ./e2e/... 2>&1 | bin/testprogress

# Copies the Grafana dashboards into the chart (files/dashboards), where
# dashboards.enabled renders them into ConfigMaps; Helm reads no file outside
# the chart.
chart-dashboards:
	cp deploy/grafana/*.json deploy/helm/vigil/files/dashboards/

$(MDATAGEN_BIN): scripts/mdatagen/go.mod scripts/mdatagen/go.sum
	cd scripts/mdatagen && $(GO) build -o $(MDATAGEN_BIN) go.opentelemetry.io/collector/cmd/mdatagen

# Regenerates every component's generated code from its metadata.yaml.
generate: $(MDATAGEN_BIN)
	@for c in $(COMPONENTS); do (cd $$c && $(MDATAGEN_BIN) metadata.yaml) || exit 1; done

# Fails when a metadata.yaml and the code generated from it disagree: it
# regenerates, and names the files that changed (now rewritten: commit them).
check-generated: $(MDATAGEN_BIN)
	@sum() { find $(COMPONENTS) -type f -print0 | sort -z | xargs -0 sha256sum; }; \
	before=$$(sum); $(MAKE) --no-print-directory generate || exit 1; after=$$(sum); \
	if [ "$$before" != "$$after" ]; then \
		echo "generated code was not current with metadata.yaml; make generate rewrote:"; \
		diff <(echo "$$before") <(echo "$$after") | awk '/^>/ {print "  " $$3}'; exit 1; fi

$(HELMDOCS_BIN): scripts/helmdocs/go.mod scripts/helmdocs/go.sum
	cd scripts/helmdocs && $(GO) build -o $(HELMDOCS_BIN) github.com/norwoodj/helm-docs/cmd/helm-docs

# Rewrites deploy/helm/vigil/README.md from README.md.gotmpl and values.yaml.
chart-docs: $(HELMDOCS_BIN)
	HELM_DOCS=$(HELMDOCS_BIN) scripts/chart-docs.sh deploy/helm/vigil

# Fails, with the diff, when the chart's README.md is stale; rewrites nothing.
check-chart-docs: $(HELMDOCS_BIN)
	@HELM_DOCS=$(HELMDOCS_BIN) scripts/chart-docs.sh -check deploy/helm/vigil

lint: check-generated check-chart-docs
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@out=$$(git ls-files -z | xargs -0 grep -l -m1 -P '\A\x7fELF' 2>/dev/null); if [ -n "$$out" ]; then echo "compiled binaries in the tree:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd benchmarks/peer && $(GO) vet .

# Every Fuzz* test for FUZZTIME each (go test -fuzztime syntax), with the
# executions of each target; CI runs it with a small FUZZTIME.
FUZZTIME ?= 30s
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

# About 10 minutes of mixed traffic through the agent profile, reporting RSS
# drift and goroutines (e2e TestSoak; SOAK=30m for longer). Not in CI.
SOAK ?= 10m
soak: test-deps build
	VIGIL_BIN=$(BIN) VIGIL_SOAK=$(SOAK) VIGIL_SOAK_REPORT=$(CURDIR)/bin/soak.txt \
		$(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./e2e/

# govulncheck against the Go vulnerability database's OSV files from the
# golang.org/x/vulndb module (vuln.go.dev is not reachable from here).
vulncheck:
	scripts/govulncheck.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

# Two test-only dependencies of upstream packages are not served by the module
# proxy here (scraper/scrapertest v0.161.0, pkg/semconvtest); -e keeps tidy going.
tidy:
	$(GO) mod tidy -e
	cd benchmarks/peer && $(GO) mod tidy -e

# Side-by-side benchmark (benchmarks/README.md). `make bench WORKLOAD=T1` runs one
# workload (or a comma-separated list); `make bench` runs them all and rewrites
# benchmarks/RESULTS.md. Extra driver flags: BENCH_FLAGS="-reps 5 -window 30s".
# vmagent is best effort: without it M1's vmagent side is reported n/a.
bench: build peer
	-@$(MAKE) --no-print-directory vmagent
	$(GO) build -o $(CURDIR)/bin/bench ./benchmarks/cmd/bench
	$(CURDIR)/bin/bench -workload $(or $(WORKLOAD),all) $(if $(WORKLOAD),,-md benchmarks/RESULTS.md) \
		-vigil $(BIN) -peer $(PEER_BIN) -vmagent $(VMAGENT_BIN) $(BENCH_FLAGS)

# The red-flag detectors measured twice, both written to benchmarks/RESULTS.md:
# every simulator scenario over held-out seeds (a few minutes), and the
# testbed of real services against bin/vigil (its full plan, about 45
# minutes; needs root for cgroups, toxiproxy and PostgreSQL from test-deps).
# EVAL_FLAGS="-seeds 1-5 -testbed-seed 1" for the tuning seeds;
# "-testbed-seed 101,102" for two held-out testbed runs, one after the other,
# in one report; "-sim=false" for the testbed alone; "-testbed=false" for the
# simulator alone.
eval-redflags: test-deps build testbed
	$(GO) run ./connectors/redflagconnector/internal/eval/cmd/evalredflags -results benchmarks/RESULTS.md \
		-testbed -vigil $(BIN) -testbed-bin $(TESTBED_BIN) -toxiproxy $(CURDIR)/.cache/bin/toxiproxy-server $(EVAL_FLAGS)
	$(GO) run ./connectors/redflagconnector/internal/eval/cmd/evalredflags -results benchmarks/RESULTS.md -mesh

clean:
	rm -rf bin
