# pgward: `make demo` runs a secure local cluster, `make test` runs every test.
# Both install what a fresh Debian machine lacks (PostgreSQL 15, pinned Go tools).

SHELL   := /bin/bash
# Every build and test uses Go 1.27.3, fetched from the module proxy (76 MB,
# once) by the machine's own go command: 1.26.8, the machine's, has known
# vulnerabilities in crypto/x509, crypto/tls and net/http (make vulncheck
# finds them). go.mod still says 1.26.8, so a plain `go build` works too.
export GOTOOLCHAIN := go1.27.3
BIN     := bin/pgward
PKGS    := ./...
VERSION := $(shell cat VERSION)
LDFLAGS := -s -w -X github.com/pgward/pgward/internal/cli.Version=$(VERSION)

.PHONY: all build demo deps test lint unit e2e e2e-smoke e2e-faults fuzz clean demo-down dashboard-picture generate manifests install-namespaced kube-binaries bench bench-operator bench-kube bench-backup images images-reproduce image-check scan vulncheck kube-up kube-down objectstore-up objectstore-down

all: build

deps: ## install PostgreSQL from Debian if missing, and the pinned tools
	@hack/install-deps.sh

# Static and reproducible: the same binary goes into the images.
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/pgward
	@# The same binary is the kubectl plugin when called kubectl-pgward.
	@ln -sf pgward $(dir $(BIN))kubectl-pgward

demo: deps build ## start the 3-instance sample cluster locally
	$(BIN) local up -f config/samples/cluster-example.yaml
	$(BIN) local status

demo-down:
	$(BIN) local down

generate: ## regenerate deep-copy code
	"$$(hack/tools.sh controller-gen)/controller-gen" object paths=./api/...

manifests: generate ## regenerate the CRD, RBAC, webhook configurations and dist/install.yaml
	hack/manifests.sh

# The namespaced install for your namespaces (docs/operator.md): the RBAC of
# dist/install.yaml, from the same markers, as a Role in each of them, and
# the operator told to watch only those. dist/install-namespaced.yaml is the
# same for namespace db.
install-namespaced: ## write bin/install-namespaced.yaml for NAMESPACES=a,b
	@test -n "$(NAMESPACES)" || { echo 'usage: make install-namespaced NAMESPACES=a,b' >&2; exit 1; }
	@mkdir -p bin
	go run ./hack/genmanifests -namespaces "$(NAMESPACES)" -out bin/install-namespaced.yaml
	@echo "wrote bin/install-namespaced.yaml (the namespaces must exist): kubectl apply -f bin/install-namespaced.yaml"

kube-binaries: ## build kube-apiserver, kube-controller-manager, etcd and kubectl for the operator tests (cached)
	@hack/kube-binaries.sh >/dev/null

# A local S3 store (versitygw over TLS, bucket pgward) to try backups
# against; its state stays in ~/.cache/pgward/objectstore. The last two
# lines printed are exports: eval "$$(make -s objectstore-up | tail -n 2)".
objectstore-up: ## start the local S3 object store for backups (versitygw, TLS, bucket pgward)
	@hack/objectstore-up.sh

objectstore-down: ## stop it (its data stays; hack/objectstore-down.sh --purge removes it)
	@hack/objectstore-down.sh

# --- Images and a real one-node Kubernetes (root only) ---

images: ## build pgward/postgresql:15, pgward/pgward:$(VERSION) and the test cluster's pause image into bin/images (no daemon)
	@hack/install-deps.sh --kube
	hack/images.sh

# Rebuild the images from nothing (fresh root filesystem, empty Go build
# cache) and compare digests with bin/images (a few minutes; not in make test).
images-reproduce:
	hack/images.sh --reproduce

image-check: ## pgward's image rules and Dockle (any finding fails), and SBOMs (SPDX, CycloneDX) next to each image
	hack/image-check.sh

# A CVE scan of the images' SBOMs with Grype. Its vulnerability database is
# downloaded from the Internet, which these build machines cannot reach:
# run it where it can (it is not part of make test).
scan: image-check
	hack/scan.sh

kube-up: images ## start a one-node Kubernetes (containerd, kubelet, CoreDNS, kube-router) with the images imported
	@hack/kube-binaries.sh --node >/dev/null
	hack/kube-up.sh

kube-down: ## stop it and restore the host
	hack/kube-down.sh

# End-to-end tests with real pods (test/kube): the operator installed from
# dist/install.yaml, Clusters in namespaces that enforce the restricted Pod
# Security Standard. The cluster is started fresh and always torn down.
E2E_SMOKE = go test -tags e2e_kube -count=1 -v -timeout 40m -run '^(TestOperatorInstall|TestFailover|TestBackupAndRecovery|TestLeaseFencing|TestPodShape|TestUserImageWithoutPgward|TestPluginFenceHibernateOnPods|TestMetricsOnPods|TestImportOnPods)$$' ./test/kube/
E2E_ENV = KUBECONFIG=$${PGWARD_KUBE_DIR:-/var/lib/pgward-kube}/kubeconfig PGWARD_KUBECTL=$$(hack/kube-binaries.sh --node)/kubectl
# make e2e also brings up CSI storage with volume snapshots (PGWARD_KUBE_CSI=1:
# hack/kube-csi.sh) for TestCSISnapshots and the volume-snapshot tests; the
# smoke run does not (CI time).
e2e: images
	@hack/kube-binaries.sh --node >/dev/null
	PGWARD_KUBE_CSI=1 hack/kube-up.sh
	trap 'hack/kube-down.sh' EXIT; $(E2E_ENV) go test -tags e2e_kube -count=1 -v -timeout 75m ./test/kube/

# What CI runs on every change: the operator installed, the synchronous
# sample Ready, the app writing through <c>-rw over verify-full TLS, two
# failovers and a switchover, no acknowledged write lost; backups and a
# recovery; the primary Lease (operator stopped, primary frozen); pod
# shape; a user's image without pgward; fencing and hibernation through
# the plugin; the exporters scraped; a logical import.
e2e-smoke: kube-up
	trap 'hack/kube-down.sh' EXIT; $(E2E_ENV) $(E2E_SMOKE)

# The Kubernetes numbers of docs/benchmarks.md: apply → 3 instances Ready,
# kill -9 of the primary's postgres and deletion of the primary's pod →
# first acknowledged write through <c>-rw (10 rounds each).
bench-kube: kube-up
	trap 'hack/kube-down.sh' EXIT; $(E2E_ENV) go test -tags e2e_kube -count=1 -v -timeout 60m -run '^$$' -bench . -benchtime 1x ./test/kube/

# The HA benchmarks of docs/benchmarks.md (about 20 minutes): failover by
# kill -9 and by a 30 s SIGSTOP, and switchover, 20 rounds each, with
# synchronous replication.
bench: deps build
	$(BIN) bench failover -f config/samples/cluster-sync.yaml --kills 20
	$(BIN) bench switchover -f config/samples/cluster-sync.yaml --rounds 20
	$(BIN) bench failover -f config/samples/cluster-sync.yaml --mode freeze --freeze 30s --kills 20

# The goals of docs/benchmarks.md as a check that fails when a figure misses
# them (benchmarks stay out of the tests; CI runs this short version):
# kill -9 of the primary's postgres -> first acknowledged write p50 <= 2 s,
# switchover write pause p50 <= 1 s, no acknowledged write lost and never two
# writable primaries in either. ROUNDS=20 for the full run.
ROUNDS ?= 3
bench-check: deps build
	$(BIN) bench failover -f config/samples/cluster-sync.yaml --kills $(ROUNDS) --goal-p50 2s
	$(BIN) bench switchover -f config/samples/cluster-sync.yaml --rounds $(ROUNDS) --goal-p50 1s

# The backup benchmark of docs/benchmarks.md (a few minutes): pgbench -s 70
# (~1 GB), pg_basebackup vs `pgward local backup` into the local S3 store,
# restore, WAL archive lag under load and point-in-time recovery.
bench-backup: build objectstore-up
	eval "$$(hack/objectstore-up.sh | tail -n 2)" && $(BIN) bench backup --scale 70

# The operator benchmark: 100 Clusters against a real API server; prints
# the operator's peak RSS and reconcile latency (docs/benchmarks.md).
bench-operator: kube-binaries
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh)" go test -run '^$$' -bench BenchmarkOperator -benchtime 1x -timeout 20m ./internal/kube/

# The image builder (hack/image) and the CSI test driver (test/csi) are
# modules of their own: linted and tested
# with the same rules.
lint:
	"$$(hack/tools.sh)/golangci-lint" run $(PKGS)
	cd hack/image && "$$(../tools.sh)/golangci-lint" run --config ../../.golangci.yml ./...
	cd test/csi && "$$(../../hack/tools.sh)/golangci-lint" run --config ../../.golangci.yml ./...

# Known vulnerabilities that pgward's code reaches, in its dependencies and
# in the standard library, from a pinned copy of Go's vulnerability database
# (no Internet needed); a control module with a known one must be refused.
vulncheck:
	hack/vulncheck.sh

unit: kube-binaries
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh)" go test -count=1 $(PKGS)
	cd hack/image && go test -count=1 ./...
	cd test/csi && go test -count=1 ./...

# The local runtime's fault suite with 5 rounds of each process fault
# (make test runs it with 1): controller killed or frozen, managers killed,
# a replica's data deleted, a switchover interrupted, a full disk (root:
# tmpfs), damaged state files, racing and interrupted up/down.
e2e-faults: deps build
	PGWARD_FAULT_ROUNDS=5 go test -count=1 -v -timeout 30m -run '^(TestFaults|TestDiskFull|TestCorruptStateFiles|TestConcurrentUp|TestDownDuringUp|TestInterruptedUp|TestSwitchoverOutcome)$$' ./test/e2e/

fuzz: ## run each fuzz target briefly
	hack/fuzz.sh 10s

# Every test: lint (any finding fails), govulncheck, unit and integration tests against
# real PostgreSQL (the e2e tests in test/e2e run the built binary as a user
# would) and against a real kube-apiserver, etcd and kube-controller-manager
# built from source (the operator's tests; a cold build takes ~10 minutes,
# then it is cached), the container images built, checked (pgward's rules,
# Dockle) and given SBOMs, the Kubernetes smoke test on a real one-node
# cluster (real pods from those images), and a short fuzzing pass. Packages
# run one at a time (-p 1): the end-to-end and operator tests start real
# servers, and sharing two cores between them would only make their timing
# noisier. Building images and running pods needs root, as CI has.
test: deps lint vulncheck kube-binaries
	@hack/install-deps.sh --kube
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh)" go test -p 1 -count=1 -timeout 45m $(PKGS)
	cd hack/image && go test -count=1 ./...
	cd test/csi && go test -count=1 ./...
	$(MAKE) --no-print-directory bench-check
	hack/images.sh
	hack/image-check.sh
	@hack/kube-binaries.sh --node >/dev/null
	hack/kube-up.sh
	trap 'hack/kube-down.sh' EXIT; $(E2E_ENV) $(E2E_SMOKE)
	hack/fuzz.sh 5s

# docs/dashboard.png, drawn from a real run: a local cluster under pgbench
# with a kill -9 failover halfway, scraped by Debian's Prometheus, the
# dashboard's panels queried from it and drawn in headless Chromium
# (hack/dashboard-picture.sh; about 3 minutes; not in make test: Chromium
# is big). Needs apt-get install prometheus chromium.
dashboard-picture: deps build
	hack/dashboard-picture.sh

clean:
	rm -rf bin
