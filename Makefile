# castnet build and test entry points. `make test` is what CI runs: it installs what it needs first,
# idempotently (Debian packages, npm packages, upstream binaries built with Go into .cache/).
SHELL := /bin/bash
.DEFAULT_GOAL := build
CACHE := $(CURDIR)/.cache
export GOFLAGS := -mod=mod
export GOTOOLCHAIN := local

.PHONY: build deps debian-deps python-deps npm-deps test test-unit test-go lint format clean lab

deps: debian-deps python-deps npm-deps

debian-deps:
	@scripts/install-debian-packages.sh scripts/debian-packages.txt

# The workload tests' Python packages (Cyclone DDS), in a venv under .cache/python.
python-deps: debian-deps
	@scripts/install-python-packages.sh scripts/python-requirements.txt

npm-deps: node_modules/.installed
node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build: npm-deps bin/castnet bin/castnet-cni

TS_SOURCES := $(shell find cmd pkg -name '*.ts' -not -name '*.test.ts' 2>/dev/null)
dist/.built: $(TS_SOURCES) tsconfig.json tsconfig.build.json package-lock.json
	npx tsc -p tsconfig.build.json
	@touch $@

bin/castnet: dist/.built scripts/castnet.sh
	@mkdir -p bin
	install -m 0755 scripts/castnet.sh $@

# The CNI plugin is a tiny self-contained Go forwarder: Multus thick runs it where no Node.js exists,
# and a Node executable's start-up alone exceeds the reference plugins' whole ADD (see README).
bin/castnet-cni: $(filter-out %_test.go,$(wildcard cmd/castnet-cni/*.go)) cmd/castnet-cni/go.mod
	@mkdir -p bin
	cd cmd/castnet-cni && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o ../../bin/castnet-cni .

lint: npm-deps
	npx tsc -p tsconfig.json --noEmit
	npx eslint .
	npx prettier --check .
	cd cmd/castnet-cni && test -z "$$(gofmt -l .)" && go vet ./...

# Unit tests only: pure logic, no root, no upstream tools. Built first: jest refuses a stale build
# (test/build-is-current.cjs).
test-unit: build
	node --experimental-vm-modules node_modules/jest/bin/jest.js --ci pkg

# The Go forwarder's unit tests (cmd/castnet-cni/main_test.go): stdin validation, VERSION, the
# per-verb answers when the agent is down, forwarding to a fake agent socket.
test-go:
	cd cmd/castnet-cni && go test -count=1 ./...

# build is a prerequisite, so it has finished before jest starts; jest itself also refuses to run
# against a dist/ or bin/ older than the sources (test/build-is-current.cjs).
test: deps build upstream e2e-tools image lint test-go
	scripts/run-tests.sh

clean:
	rm -rf dist bin

-include mk/*.mk
