# Upstream binaries the tests run, built with the machine's Go at the versions pinned under
# scripts/upstream/<module>/go.mod (see docs/testing.md), and the loopback test cluster.
# scripts/upstream/build.sh is a no-op when .cache/bin already holds the pinned build.
.PHONY: upstream k8s-up k8s-down k8s-status

UPSTREAM_BIN := $(CACHE)/bin

upstream:
	@scripts/upstream/build.sh

# CASTNET_K8S_NAME=<name> selects another, independent cluster (default "default").
k8s-up: upstream
	@scripts/k8s/cluster.sh up

k8s-down:
	@scripts/k8s/cluster.sh down

k8s-status:
	@scripts/k8s/cluster.sh env
