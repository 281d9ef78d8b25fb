# scopeflags: make run starts the server on the embedded SQLite default with
# example rules; make test runs every test against real SQLite and PostgreSQL.

ADDR ?= 127.0.0.1:8080
DB   ?= scopeflags.db
# Tests that need PostgreSQL read this DSN; they fail (not skip) if it is set
# and the server is unreachable.
SCOPEFLAGS_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
export SCOPEFLAGS_TEST_POSTGRES

GO ?= go

.PHONY: run test bench bench-ofrep bench-cluster soak-ofrep lint fuzz build js-deps

run:
	$(GO) run ./cmd/feature-info serve -examples -addr '$(ADDR)' -db '$(DB)'

build:
	$(GO) build -o bin/feature-info ./cmd/feature-info

test: lint js-deps
	$(GO) test -race -count=1 -timeout 9m ./...

# The real OpenFeature JS clients (pinned by the lockfile) that the OFREP
# tests in cmd/feature-info run under Node, and axe-core, which the browser
# tests there inject into every page to check its accessibility; each is
# installed again only when its lockfile changes. Without npm the tests
# skip, except in CI.
OFREP_JS = cmd/feature-info/testdata/ofrep-js
AXE_JS   = cmd/feature-info/testdata/axe-js
js-deps: $(OFREP_JS)/node_modules/.package-lock.json $(AXE_JS)/node_modules/.package-lock.json

%/node_modules/.package-lock.json: %/package-lock.json %/package.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $* --no-audit --no-fund --loglevel=error && touch $@; \
	elif [ "$$CI" = true ]; then echo "npm is not installed; .ci/run installs it" >&2; exit 1; \
	else echo "npm not installed: the tests of $* skip" >&2; fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

# OFREP load figures over loopback with wrk (Debian package wrk): serve on
# SQLite with 100 flags, three rounds of each scenario, medians. Minutes;
# run it on a quiet machine. Not part of make test.
bench-ofrep:
	GO=$(GO) scripts/bench-ofrep.sh

# OFREP for 60 s at 64 connections while the rules change every second.
soak-ofrep:
	GO=$(GO) scripts/soak-ofrep.sh

# Change propagation across three servers on one PostgreSQL (docs/operations.md).
bench-cluster:
	$(GO) run ./scripts/bench-cluster -servers 3 -changes 200 -rate 10

# Longer fuzzing runs; the seed corpora already run in make test.
fuzz:
	$(GO) test ./rules -run '^$$' -fuzz 'FuzzParse$$' -fuzztime 60s
	$(GO) test ./rules -run '^$$' -fuzz FuzzCondition -fuzztime 60s
	$(GO) test ./rules -run '^$$' -fuzz FuzzParseDeclarations -fuzztime 60s
	$(GO) test ./scopes -run '^$$' -fuzz FuzzCompileScope -fuzztime 60s

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
