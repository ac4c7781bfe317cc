# builder — common tasks. `make demo` and `make test` work on a fresh machine.
GO      ?= go
BIN     ?= bin/builder
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all build test test-short vet bench demo clean deps

all: build

build:
	$(GO) build -o $(BIN) ./cmd/builder

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Everything, including root-only tests (they skip when not root, and fail
# under CI=true when a prerequisite is missing).
test: vet build
	$(GO) test -count=1 -timeout 18m ./...

# The fast subset. -short leaves out the slow tests (testutil.SkipIfShort):
# the crash-safety test that kills dozens of CLI processes, interop with
# skopeo and umoci, every run through runc (only the built-in runtime is
# tested), building and running the examples, and the 120-layer overlay test.
# Root-only tests still run (or skip when not root) as in `make test`.
test-short:
	$(GO) test -short -count=1 ./...

# Benchmarks, not run by `test` or CI: the Go benchmarks, then the
# workloads of scripts/bench-workloads.sh on a tmpfs and a journaled ext4
# loop device, against references, ending in a table (root; about 10 min).
# BENCH_ONLY=go,unpack,copy,run,stages,export picks some, BENCH_SCALE=0.1
# shrinks the sizes, BENCH_VERBOSE=1 prints the timed commands;
# BUILDER_BENCH_MB sets the size of the layer benchmark tree.
bench: build
	GO=$(GO) BUILDER=$(BIN) scripts/bench.sh

deps:
	scripts/install-deps.sh
	scripts/rootless-users.sh

demo: build
	scripts/demo.sh

clean:
	rm -rf bin
