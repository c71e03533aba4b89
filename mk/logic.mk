# Pure-logic micro-benchmarks (pkg/frame, pkg/resolve). Compiled to .cache/ so that unrelated
# in-progress files elsewhere in the tree cannot break the run.
.PHONY: bench-resolve

bench-resolve: npm-deps
	@rm -rf $(CACHE)/bench-logic
	npx tsc --outDir $(CACHE)/bench-logic --rootDir . --target ES2022 --module nodenext --moduleResolution nodenext \
	  --strict --esModuleInterop --skipLibCheck --types node --ignoreConfig bench/resolve.ts
	node $(CACHE)/bench-logic/bench/resolve.js
