// Pins the ginkgo CLI that runs e2e.test on several processes at once (`ginkgo -p`), at the version
// k8s.io/kubernetes v1.37.2 requires (scripts/upstream/e2e/go.mod), as upstream's hack/ginkgo-e2e.sh.
module castnet.test/upstream/ginkgo

go 1.26.0

require github.com/onsi/ginkgo/v2 v2.32.0 // indirect

require (
	github.com/Masterminds/semver/v3 v3.4.0 // indirect
	github.com/go-task/slim-sprig/v3 v3.0.0 // indirect
	github.com/google/pprof v0.0.0-20260402051712-545e8a4df936 // indirect
	golang.org/x/mod v0.35.0 // indirect
	golang.org/x/sync v0.20.0 // indirect
	golang.org/x/tools v0.44.0 // indirect
)

tool github.com/onsi/ginkgo/v2/ginkgo
