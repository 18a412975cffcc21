# vigil: build, test, benchmark and fuzz targets.

GO       ?= go
BIN      ?= bin
FUZZTIME ?= 15s

.PHONY: all build test test-ci vet fmt bench-baseline bench-live bench-restore fuzz clean

all: build

## build: compile the vigil binary into $(BIN)/vigil
build:
	$(GO) build -o $(BIN)/vigil ./cmd/vigil

## test: the whole test suite with the race detector
test:
	$(GO) test -race -count=1 -timeout 30m ./...

## test-ci: check that .ci/run installs what the tests need (gcc, rsync) only when missing
test-ci:
	.ci/run_test.sh

## vet: go vet and a gofmt check
vet:
	$(GO) vet ./...
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w .

## bench-baseline: initial copy of a folder, vigil against rsync (see docs/benchmarks.md)
bench-baseline:
	$(GO) run ./cmd/vigil-bench baseline $(BENCHFLAGS)

## bench-live: replication lag of live changes (see docs/benchmarks.md)
bench-live:
	$(GO) run ./cmd/vigil-bench live $(BENCHFLAGS)

## bench-restore: restore of dataset B against cp -a of the replica
bench-restore:
	$(GO) run ./cmd/vigil-bench restore $(BENCHFLAGS)

## fuzz: run every Fuzz target of every package for $(FUZZTIME) each
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

clean:
	rm -rf $(BIN)
