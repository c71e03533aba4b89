# The controller benchmark on a private loopback cluster (bench/controller.ts): 1,000 nodes' reports,
# 10,000 groups, 100,000 memberships through the real `castnet controller`. Writes
# bench/results/controller.json. CASTNET_BENCH_NODES / _GROUPS / _SAMPLES scale it down.
.PHONY: bench-controller

bench-controller: build upstream
	npx tsc -p bench/controller.tsconfig.json
	node --expose-gc --enable-source-maps .cache/bench-controller/bench/controller.js
