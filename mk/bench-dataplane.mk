# castnet's data plane against the kernel's bridge + VXLAN flooding, same run, same topology
# (docs/benchmarks.md) → bench/results/dataplane.json. Needs root: it builds its own namespaces.
#   BENCH_DATAPLANE_NODES=3      leave out the node without members (default 4)
#   BENCH_AGENT_NODE_OPTIONS=... extra Node.js options for the agents, e.g. --cpu-prof
.PHONY: bench-dataplane

bench-dataplane: build
	npx tsc -p bench/dataplane.tsconfig.json
	node .cache/bench-dataplane/bench/dataplane.js
