# The CNI plugin's benchmark: castnet vs the reference bridge + host-local, same run (bench/cni.ts).
# Needs root (network namespaces). Writes bench/results/cni.json.
.PHONY: bench-cni

bench-cni: build debian-deps
	npx tsc -p bench/cni.tsconfig.json
	node --enable-source-maps .cache/bench-cni/bench/cni.js
