# Frame I/O benchmarks (pkg/packet, pkg/underlay). Need root: each runs in namespaces it creates.
#   bench-packet           capture → inject forwarding vs the kernel bridge  → bench/results/packet.json
#   bench-packet-underlay  node:dgram vs sendmmsg/recvmmsg, koffi call costs → bench/results/packet-underlay.json
.PHONY: bench-packet bench-packet-underlay bench-packet-build

bench-packet-build: npm-deps
	npx tsc -p bench/packet.tsconfig.json

bench-packet: bench-packet-build
	node .cache/bench-packet/bench/packet.js

bench-packet-underlay: bench-packet-build
	ns=cnbu$$$$; ip netns add $$ns && trap 'ip netns del '$$ns EXIT && \
	  ip netns exec $$ns node .cache/bench-packet/bench/packet-underlay.js
