# Kubernetes' own network end-to-end tests with castnet as the cluster network (docs/testing.md,
# "Kubernetes' network e2e tests"): e2e.test and agnhost of the pinned release, built with Go into
# .cache/bin (scripts/upstream/e2e, on demand: `make upstream` does not build them), then the
# selection of test/e2e/primary-selection.txt on the real cluster in primary mode
# → bench/results/e2e-primary.json.
.PHONY: e2e-tools e2e-primary

e2e-tools:
	@scripts/upstream/build.sh e2e coredns ginkgo

e2e-primary: build upstream e2e-tools
	@$(MAKE) --no-print-directory image
	@scripts/cluster/e2e-primary.sh

# CI's reduced form (make test runs it through scripts/run-tests.sh, after the real cluster's own
# suite): test/e2e/ci-selection.txt and castnet's multicast check → .cache/e2e-ci.json, leaving the
# full run's bench/results/e2e-primary.json alone.
.PHONY: test-e2e
test-e2e: build upstream e2e-tools
	@$(MAKE) --no-print-directory image
	@CASTNET_E2E_SELECTION=test/e2e/ci-selection.txt CASTNET_E2E_OUT=$(CACHE)/e2e-ci.json \
		scripts/cluster/e2e-primary.sh

# Pod-to-pod TCP throughput (iperf2) and UDP request/response latency (sockperf ping-pong) across
# nodes, castnet primary against the reference bridge + host-local + static routes, each on a fresh
# cluster, alternating (bench/e2e-primary.ts, docs/benchmarks.md) → "bench" in
# bench/results/e2e-primary.json. Starts and stops the cluster itself: `make cluster-down` first.
# Knobs: BENCH_ROUNDS=3 (rounds, each system once a round), BENCH_TRIALS=2, BENCH_SECONDS=10.
.PHONY: bench-e2e-primary
bench-e2e-primary: build upstream
	@$(MAKE) --no-print-directory image
	npx tsc -p bench/e2e-primary.tsconfig.json
	node .cache/bench-e2e-primary/bench/e2e-primary.js
