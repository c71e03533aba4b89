#!/usr/bin/env bash
# Runs the whole jest suite and ends with the plain "N passed, N failed" line CI reads.
# The loopback test cluster is stopped afterwards when the suite started it, so nothing keeps
# running after `make test`; a cluster someone started with `make k8s-up` is left alone.
set -uo pipefail
cd "$(dirname "$0")/.."
cluster_was_up=0
scripts/k8s/cluster.sh status >/dev/null 2>&1 && cluster_was_up=1
out=$(mktemp)
npx jest --ci --json --outputFile="$out" "$@"
rc=$?
if [ -s "$out" ]; then
  node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`)' "$out"
fi
rm -f "$out"
[ "$cluster_was_up" = 1 ] || scripts/k8s/cluster.sh down >/dev/null 2>&1 || true
bin/castnet lab clean >/dev/null 2>&1 || true
exit $rc
