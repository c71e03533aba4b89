# castnet's data plane against the kernel's bridge + VXLAN flooding, same run, same topology
# (docs/benchmarks.md) → bench/results/dataplane.json. Needs root: it builds its own namespaces.
#   BENCH_DATAPLANE_NODES=3      leave out the node without members (default 4)
#   BENCH_AGENT_PROFILE=DIR      run the agents under node --cpu-prof, profiles in DIR
#   BENCH_AGENT_NODE_ARGS=...    extra Node.js flags for the agents, e.g. --max-semi-space-size=2
#   BENCH_NICE=0                 do not raise the benchmark's priority (default nice -10)
#   BENCH_SENDERS=2              sending processes in the sender pod (default 1)
.PHONY: bench-dataplane

bench-dataplane: build
	npx tsc -p bench/dataplane.tsconfig.json
	node .cache/bench-dataplane/bench/dataplane.js
