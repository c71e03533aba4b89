# Endpoint manager latency in process, next to the reference bridge + host-local (bench/endpoint.ts).
# Needs root (network namespaces). Writes bench/results/endpoint.json.
.PHONY: bench-endpoint

bench-endpoint: npm-deps
	npx tsc -p bench/endpoint.tsconfig.json
	node --enable-source-maps .cache/bench-endpoint/bench/endpoint.js
