# The Helm chart (charts/castnet) and the manifests rendered from it into deploy/.
# test/chart/helm.test.ts fails when deploy/ is out of sync: run `make manifests` after editing the chart.
.PHONY: manifests chart-lint

HELM := $(CACHE)/bin/helm
# The Kubernetes version the manifests are rendered for (the test cluster's).
MANIFESTS_KUBE_VERSION := 1.37.0

manifests: upstream
	scripts/render-manifests.sh

chart-lint: upstream
	$(HELM) lint --strict charts/castnet --kube-version $(MANIFESTS_KUBE_VERSION)
