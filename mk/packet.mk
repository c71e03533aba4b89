# Frame I/O benchmark (pkg/packet): capture → inject forwarding vs the kernel bridge, same run.
# Needs root (network namespaces). Writes bench/results/packet.json.
.PHONY: bench-packet

bench-packet: npm-deps
	npx tsc -p bench/packet.tsconfig.json
	node .cache/bench-packet/bench/packet.js
