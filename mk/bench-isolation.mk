# What one pod flooding broadcast at full speed costs another tenant's multicast stream on the same
# node (bench/isolation.ts, docs/benchmarks.md): the real lab, 3 nodes; the victim streams at a fixed
# rate alone, under a flood on a network with the default rate limits, and under the same flood on a
# network whose limits are at the maximum, in the same run. Needs root. → bench/results/isolation.json
# Knobs: BENCH_VICTIM_PPS=5000, BENCH_TRIAL_SECONDS=10, BENCH_REPEATS=2, BENCH_FLOODERS=2 (flooding
#        processes in the hostile pod), BENCH_NICE=-10 (0: off).
.PHONY: bench-isolation

.cache/bench-isolation/bench/isolation.js: build bench/isolation.ts bench/dataplane-systems.ts bench/dataplane-traffic.ts
	npx tsc -p bench/isolation.tsconfig.json

bench-isolation: .cache/bench-isolation/bench/isolation.js
	node .cache/bench-isolation/bench/isolation.js
