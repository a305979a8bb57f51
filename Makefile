# pgward: `make demo` runs a secure local cluster, `make test` runs every test.
# Both install what a fresh Debian machine lacks (PostgreSQL 15, pinned Go tools).

SHELL := /bin/bash
BIN   := bin/pgward
PKGS  := ./...

.PHONY: all build demo deps test lint unit e2e fuzz clean demo-down generate

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

lint:
	"$$(hack/tools.sh)/golangci-lint" run $(PKGS)

unit:
	go test -count=1 $(PKGS)

fuzz: ## run each fuzz target briefly
	hack/fuzz.sh 10s

# Every test: lint (any finding fails), unit and integration tests against
# real PostgreSQL (the e2e tests in test/e2e run the built binary as a user
# would), and a short fuzzing pass.
test: deps lint
	go test -count=1 -timeout 30m $(PKGS)
	hack/fuzz.sh 5s

clean:
	rm -rf bin
