# conjur-swarm: `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
# The Go toolchain every target builds and tests with (the module proxy serves it; Go 1.26.8's standard
# library has reachable vulnerabilities that govulncheck reports, see docs/security.md).
export GOTOOLCHAIN ?= go1.27.3
BIN       := bin/conjur-swarm
TAG       ?= latest
PLUGIN    ?= cyberark/conjur
IMAGE     ?= conjur-swarm-agent:$(TAG)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
HOST_ARCH := $(shell $(GO) env GOARCH 2>/dev/null || echo amd64)
ARCH      ?= $(HOST_ARCH)
# A plugin cannot be a multi-arch manifest: other architectures get a -ARCH tag.
ARCH_SUFFIX := $(if $(filter $(HOST_ARCH),$(ARCH)),,-$(ARCH))
RELEASE_ARCHS ?= amd64 arm64
LDFLAGS   := -s -w -X main.version=$(VERSION)
FUZZTIME  ?= 30s
SOAK_DURATION ?= 60s
SOAK_GETS     ?= 100000
SOAK_WORKERS  ?= 64
BENCHTIME ?= 1s
CLUSTER_FLAGS ?=
STATICCHECK_VERSION ?= v0.8.2

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/conjur-swarm (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/conjur-swarm

.PHONY: run
run: build ## Run the plugin against the embedded Conjur-compatible server (socket under ./run/)
	./$(BIN) serve --dev

.PHONY: run-per-stack
run-per-stack: build ## Like run, in the per-stack identity mode: two stacks, each read as its own Conjur host with JWTs the plugin signs (keys under ./run/state)
	CONJUR_SWARM_IDENTITY=per-request ./$(BIN) serve --dev

.PHONY: deps
deps: ## Install the host tools the tests drive when one is missing (busybox, dash, jq, iproute2, util-linux; apt-get as root; scripts/deps.sh)
	scripts/deps.sh

.PHONY: test
# FuzzRenderRoundTrip sources dotenv bundles with dash, bash and busybox ash; the docs' shell image is the
# host's busybox: make deps installs what is missing first.
test: deps ## Run every test: unit, race, the plugin socket, e2e when a Docker daemon answers, the swarm lab when root; every benchmark once (-benchtime 1x); a 5-second storm
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 14m ./...
	$(MAKE) --no-print-directory bench-smoke

# Every package with a benchmark (found, so that a new one cannot be forgotten).
BENCH_PKGS := $(addprefix ./,$(sort $(dir $(shell grep -rl --include='*_test.go' '^func Benchmark' internal cmd bench 2>/dev/null))))
# A storm small enough for make test (about 5 s): every phase of make bench runs once, nothing is written.
SMOKE_FLAGS := -tasks 200 -secrets 5 -variables 50 -nodes 5 -rounds 1 -samples 100 -bounded-tasks 40 -scale-nodes 10 -scale-tasks 40 -extras=false

# Without -race: the race detector's slowdown on a loaded machine trips the benchmarks' fetch timeouts.
.PHONY: bench-smoke
bench-smoke: build ## Every benchmark once (-benchtime 1x) and make bench's storm at a small size (about 5 s); part of make test, writes nothing
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x $(BENCH_PKGS)
	mkdir -p build/bench
	$(GO) build -o build/bench/storm ./bench/storm
	build/bench/storm -plugin $(BIN) $(SMOKE_FLAGS) | tail -n 1

# The storm at a small size for profiling the plugin (make bench-profile PROFILE_FLAGS='...' for another).
PROFILE_FLAGS ?= -tasks 1000 -secrets 5 -nodes 20 -rounds 1 -samples 200 -server-slots 0 -scale-tasks 0 -extras=false

.PHONY: bench-profile
bench-profile: ## The storm at a small size, each plugin process writing the CPU, allocation and peak-heap profiles of each run to build/bench/profile/<process>/ (go tool pprof; windows.txt names the runs); writes no report
	mkdir -p build/bench
	$(GO) build -tags profile -o build/bench/conjur-swarm-profile ./cmd/conjur-swarm
	$(GO) build -o build/bench/storm ./bench/storm
	rm -rf build/bench/profile
	build/bench/storm -plugin build/bench/conjur-swarm-profile -profile build/bench/profile $(PROFILE_FLAGS) | tail -n 1

.PHONY: tidy-check
tidy-check: ## Fail when `go mod tidy` would change go.mod or go.sum (prints the diff)
	$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit the result"; exit 1; }

.PHONY: lint
lint: tidy-check ## go mod tidy -diff, go vet, staticcheck and govulncheck (offline database; fails on a reachable vulnerability)
	$(GO) vet ./...
	staticcheck=$$(GO='$(GO)' scripts/gotool.sh honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)) && "$$staticcheck" ./...
	GO='$(GO)' scripts/vulncheck.sh

STORM_FLAGS ?=

.PHONY: bench
bench: build ## Benchmarks and the Swarm-leader-change storm; rewrites docs/benchmarks.md; ends with a RESULT line
	mkdir -p build/bench
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(BENCH_PKGS) | tee build/bench/go-bench.txt
	$(GO) build -o build/bench/storm ./bench/storm
	build/bench/storm -plugin $(BIN) -go-bench build/bench/go-bench.txt -doc docs/benchmarks.md $(STORM_FLAGS)

.PHONY: e2e
e2e: ## The end-to-end suite against the local Docker Engine in swarm mode
	$(GO) test -count=1 -timeout 15m -v ./e2e/

.PHONY: e2e-cluster
e2e-cluster: ## The three-manager + one-worker swarm lab (root; issue 12); the last line is CLUSTER {json}
	mkdir -p build
	status=0; $(GO) test -count=1 -timeout 30m -v ./e2e/cluster/ -args -cluster.require -cluster.lock-wait=20m -cluster.storm-tasks=200 -cluster.doc $(CURDIR)/docs/benchmarks.md $(CLUSTER_FLAGS) \
	  2>&1 | tee build/e2e-cluster.txt || status=$$?; \
	grep '^CLUSTER ' build/e2e-cluster.txt | tail -n 1; exit $$status

.PHONY: fuzz
fuzz: ## Run every fuzz target in the repo for FUZZTIME each (default 30s); failing inputs become seeds
	GO='$(GO)' FUZZTIME='$(FUZZTIME)' scripts/fuzz.sh

.PHONY: soak
soak: ## Soak: SOAK_GETS GetSecret calls (100000) through the plugin socket with faults, at most SOAK_DURATION (60s)
	$(GO) test -count=1 -run '^TestSoak$$' -v -timeout 15m ./internal/reliability/ \
	  -args -soak='$(SOAK_DURATION)' -soak-gets='$(SOAK_GETS)' -soak-workers='$(SOAK_WORKERS)'

.PHONY: plugin
plugin: ## Build the managed plugin and `docker plugin create $(PLUGIN):$(TAG)` (ARCH=arm64: $(PLUGIN):$(TAG)-arm64; replaces a disabled one of that name; an enabled one only with FORCE=1)
	FORCE='$(FORCE)' GOARCH='$(ARCH)' plugin/build.sh '$(PLUGIN):$(TAG)$(ARCH_SUFFIX)' build/plugin$(ARCH_SUFFIX) '$(GO)' '$(LDFLAGS)'

.PHONY: upgrade
upgrade: ## Upgrade the installed $(PLUGIN):$(TAG) in place from a new build, keeping its settings (scripts/upgrade-plugin.sh; refuses on the leader of several managers)
	NO_CREATE=1 GOARCH='$(ARCH)' plugin/build.sh '$(PLUGIN):$(TAG)$(ARCH_SUFFIX)' build/plugin$(ARCH_SUFFIX) '$(GO)' '$(LDFLAGS)'
	scripts/upgrade-plugin.sh '$(PLUGIN):$(TAG)$(ARCH_SUFFIX)' build/plugin$(ARCH_SUFFIX)

.PHONY: release
release: ## Plugin directories and agent images for $(RELEASE_ARCHS), with SHA256SUMS, under build/release/ (no docker needed)
	plugin/release.sh build/release '$(VERSION)' '$(GO)' '$(LDFLAGS)' $(RELEASE_ARCHS)

.PHONY: image
image: ## Build the agents' image $(IMAGE) (bootstrap-agent; rollout-agent with --entrypoint) with docker import; prints its sha256 id
	plugin/image.sh '$(IMAGE)' build/agent '$(GO)' '$(LDFLAGS)' '$(VERSION)'

SHELL_IMAGE ?= conjur-swarm-shell:latest

.PHONY: shell-image
shell-image: ## Build $(SHELL_IMAGE), a shell and tools from the host's busybox, for the docs' checks; prints its sha256 id
	plugin/shell-image.sh '$(SHELL_IMAGE)' build/shell-image

.PHONY: clean
clean: ## Remove build outputs
	rm -rf bin run build
