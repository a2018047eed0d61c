# logkv: the everyday commands. `make help` lists them.
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 30s
BENCHTIME ?= 1s
STATICCHECK_VERSION ?= v0.6.1

.PHONY: help test race short lint fmt vet staticcheck fuzz fuzz-seeds bench run

help:
	@echo "make test        the test suite with the race detector (what CI runs)"
	@echo "make short       the suite without -race, in -short mode (quick local loop)"
	@echo "make lint        gofmt, go vet and staticcheck"
	@echo "make fuzz        fuzz every Fuzz target for FUZZTIME each (default $(FUZZTIME))"
	@echo "make bench       go test benchmarks (BENCHTIME=$(BENCHTIME))"
	@echo "make run         go run ./cmd/kvbench -engine memory"

test:
	$(GO) test -race -timeout 20m $(PKGS)

race: test

short:
	$(GO) test -short $(PKGS)

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

# Every FuzzXxx target in the module, each fuzzed for FUZZTIME. The seed
# corpora alone run as part of `make test`.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) $(PKGS)

run:
	$(GO) run ./cmd/kvbench -engine memory
