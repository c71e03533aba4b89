# Live migration of a real guest under a 1,000 msg/s stream, with castnet's handover and with the
# guest left to re-join by IGMP (--no-vm-group-handover), in the same run (bench/migration.ts,
# docs/benchmarks.md). Needs root. → bench/results/migration.json
# Knobs: BENCH_RATE=1000 (msg/s), BENCH_REPEATS=3 (trials per mode, alternating).
.PHONY: bench-migration

.cache/bench-migration/bench/migration.js: build guest-image bench/migration.ts
	npx tsc -p bench/migration.tsconfig.json

bench-migration: .cache/bench-migration/bench/migration.js
	node .cache/bench-migration/bench/migration.js
