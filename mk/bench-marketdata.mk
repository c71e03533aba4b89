# A market-data-style multicast stream, castnet against the kernel's bridge + VXLAN flooding in the
# same run (bench/marketdata.ts, docs/benchmarks.md): one sender, 5 members on 3 nodes reading at
# default socket buffer sizes, 10,000 and 20,000 msg/s. Needs root. → bench/results/marketdata.json
# Knobs: BENCH_TRIAL_SECONDS=10, BENCH_REPEATS=2 (alternating trials per system and rate),
#        BENCH_SENDER_BATCH=1 (datagrams per send call), BENCH_NICE=-10 (0: off).
.PHONY: bench-marketdata

.cache/bench-marketdata/bench/marketdata.js: build bench/marketdata.ts bench/dataplane-systems.ts bench/dataplane-traffic.ts
	npx tsc -p bench/marketdata.tsconfig.json

bench-marketdata: .cache/bench-marketdata/bench/marketdata.js
	node .cache/bench-marketdata/bench/marketdata.js
