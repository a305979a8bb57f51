# pgward: `make demo` runs a secure local cluster, `make test` runs every test.
# Both install what a fresh Debian machine lacks (PostgreSQL 15, pinned Go tools).

SHELL := /bin/bash
BIN   := bin/pgward
PKGS  := ./...

.PHONY: all build demo deps test lint unit e2e fuzz clean demo-down generate manifests kube-binaries bench bench-operator

all: build

deps: ## install PostgreSQL from Debian if missing, and the pinned tools
	@hack/install-deps.sh

build:
	CGO_ENABLED=0 go build -trimpath -o $(BIN) ./cmd/pgward

demo: deps build ## start the 3-instance sample cluster locally
	$(BIN) local up -f config/samples/cluster-example.yaml
	$(BIN) local status

demo-down:
	$(BIN) local down

generate: ## regenerate deep-copy code
	"$$(hack/tools.sh controller-gen)/controller-gen" object paths=./api/...

manifests: generate ## regenerate the CRD, RBAC, webhook configurations and dist/install.yaml
	hack/manifests.sh

kube-binaries: ## build kube-apiserver, kube-controller-manager, etcd and kubectl for the operator tests (cached)
	@hack/kube-binaries.sh >/dev/null

# The HA benchmarks of docs/benchmarks.md (about 20 minutes): failover by
# kill -9 and by a 30 s SIGSTOP, and switchover, 20 rounds each, with
# synchronous replication.
bench: deps build
	$(BIN) bench failover -f config/samples/cluster-sync.yaml --kills 20
	$(BIN) bench switchover -f config/samples/cluster-sync.yaml --rounds 20
	$(BIN) bench failover -f config/samples/cluster-sync.yaml --mode freeze --freeze 30s --kills 20

# The operator benchmark: 100 Clusters against a real API server; prints
# the operator's peak RSS and reconcile latency (docs/benchmarks.md).
bench-operator: kube-binaries
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh)" go test -run '^$$' -bench BenchmarkOperator -benchtime 1x -timeout 20m ./internal/kube/

lint:
	"$$(hack/tools.sh)/golangci-lint" run $(PKGS)

unit: kube-binaries
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh)" go test -count=1 $(PKGS)

fuzz: ## run each fuzz target briefly
	hack/fuzz.sh 10s

# Every test: lint (any finding fails), unit and integration tests against
# real PostgreSQL (the e2e tests in test/e2e run the built binary as a user
# would) and against a real kube-apiserver, etcd and kube-controller-manager
# built from source (the operator's tests; a cold build takes ~10 minutes,
# then it is cached), and a short fuzzing pass. Packages run one at a time
# (-p 1): the end-to-end and operator tests start real servers, and sharing
# two cores between them would only make their timing noisier.
test: deps lint kube-binaries
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh)" go test -p 1 -count=1 -timeout 30m $(PKGS)
	hack/fuzz.sh 5s

clean:
	rm -rf bin
