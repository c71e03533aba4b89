# The real multi-node Kubernetes cluster on this machine (scripts/cluster/cluster.sh, docs/testing.md):
# control plane + CASTNET_CLUSTER_NODES (default 3) nodes, each with its own kubelet, containerd,
# kube-proxy and namespaces. `make cluster-up` writes .cache/cluster/kubeconfig.
.PHONY: cluster-up cluster-down cluster-status

cluster-up: upstream image
	@scripts/cluster/cluster.sh up

cluster-down:
	@scripts/cluster/cluster.sh down

cluster-status:
	@scripts/cluster/cluster.sh status

# castnet on the real cluster: pod start with and without castnet, join → first delivery, and
# `helm upgrade` under a 1,000 msg/s stream (bench/cluster.ts) → bench/results/cluster.json.
.PHONY: bench-cluster
bench-cluster: build cluster-up
	npx tsc -p bench/cluster.tsconfig.json
	node --enable-source-maps .cache/bench-cluster/bench/cluster.js
