# castnet's data plane against the kernel's bridge + VXLAN flooding, same run, same topology
# (docs/benchmarks.md). Needs root: it builds its own namespaces. Two runs:
#   dense  (the headline) 3 nodes, every node with members  → bench/results/dataplane.json
#   sparse a 4th node without members                       → bench/results/dataplane-sparse.json
# Knobs (defaults in bench/dataplane.ts):
#   BENCH_TRIAL_SECONDS=10       seconds of messages per trial (at least 10)
#   BENCH_SENDERS=2              sending processes in the sender pod
#   BENCH_SEARCH_ROUNDS=1        alternating lossless-rate searches (the best counts)
#   BENCH_CPU_REPEATS=3          alternating CPU trials (the median counts)
#   BENCH_AGENT_PROFILE=DIR      run the agents under node --cpu-prof, profiles in DIR
#   BENCH_AGENT_NODE_ARGS=...    extra Node.js flags for the agents, e.g. --max-semi-space-size=2
#   BENCH_NICE=0                 do not raise the benchmark's priority (default nice -10)
.PHONY: bench-dataplane bench-dataplane-dense bench-dataplane-sparse

bench-dataplane: bench-dataplane-dense bench-dataplane-sparse

.cache/bench-dataplane/bench/dataplane.js: build bench/dataplane.ts bench/dataplane-traffic.ts bench/proc.ts
	npx tsc -p bench/dataplane.tsconfig.json

bench-dataplane-dense: .cache/bench-dataplane/bench/dataplane.js
	BENCH_DATAPLANE_TOPOLOGY=dense node .cache/bench-dataplane/bench/dataplane.js

bench-dataplane-sparse: .cache/bench-dataplane/bench/dataplane.js bench-dataplane-dense
	BENCH_DATAPLANE_TOPOLOGY=sparse node .cache/bench-dataplane/bench/dataplane.js
