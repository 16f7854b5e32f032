# identity-service — developer entry points. See README.md.
GO        ?= go
BUF       := $(GO) tool -modfile=tools/buf/go.mod buf
COVER_MIN ?= 80
# Bootstrap admin for `make run` (dev only; override on the command line).
IDENTITY_BOOTSTRAP_ADMIN_EMAIL    ?= admin@identity.local
IDENTITY_BOOTSTRAP_ADMIN_PASSWORD ?= change-me-on-first-login
export IDENTITY_BOOTSTRAP_ADMIN_EMAIL IDENTITY_BOOTSTRAP_ADMIN_PASSWORD

.PHONY: run build test generate check-generated lint bench bench-all fuzz clean

## run: the service on its embedded default (SQLite, in-process cache and events) with a bootstrap admin
run:
	$(GO) run ./cmd/identityd serve

## build: the identityd binary into bin/
build:
	$(GO) build -o bin/identityd ./cmd/identityd

## test: the whole suite with -race and the statement-coverage gate (generated code excluded),
## then the Prometheus rules checks (deploy/prometheus is a module of its own)
test:
	$(GO) test -race -timeout 9m -coverpkg=./... -coverprofile=coverage.out ./...
	./scripts/coverage.sh coverage.out $(COVER_MIN)
	cd deploy/prometheus && $(GO) test -count=1 ./...

## generate: gqlgen and buf code generation (committed; CI fails on drift)
generate:
	$(GO) tool gqlgen generate
	$(BUF) generate

## check-generated: fails when `make generate` changes any file
check-generated: generate
	@git diff --quiet -- graph rpc/gen && test -z "$$(git ls-files --others --exclude-standard -- graph rpc/gen)" \
		|| { git status --short -- graph rpc/gen; echo "generated code is out of date: run make generate and commit" >&2; exit 1; }

## lint: gofmt, go vet, buf lint
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	cd deploy/prometheus && $(GO) vet ./...
	$(BUF) lint

## bench: the short performance profile (Go benchmarks + cmd/identity-load against real
## processes, ~5 min); results and targets are in docs/PERFORMANCE.md
bench:
	GO=$(GO) ./scripts/bench.sh

## bench-all: every Go benchmark of the module
bench-all:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./...

## fuzz: every fuzz target for FUZZTIME each (default 30s; go test fuzzes one target per run); a
## failing input is saved under the package's testdata/fuzz/<Target>/ — commit it as a regression seed
fuzz:
	@set -e; for t in \
		./core/auth:FuzzRefreshToken \
		./core/apikey:FuzzParseAPIKey \
		./core/password:FuzzParsePHC \
		./core/token:FuzzVerify \
		./rest:FuzzDecodeJSON \
		./rest:FuzzProblem \
		./rpc:FuzzConnectError \
		./graph:FuzzPresentError; do \
		echo "--- fuzz $${t#*:} ($${t%%:*}) for $(or $(FUZZTIME),30s)"; \
		$(GO) test -run='^$$' -fuzz="^$${t#*:}$$" -fuzztime=$(or $(FUZZTIME),30s) $${t%%:*}; \
	done

clean:
	rm -rf bin coverage.out
