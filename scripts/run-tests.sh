#!/usr/bin/env bash
# Runs the whole jest suite and ends with the plain "N passed, N failed" line CI reads.
#   1. everything but test/cluster, two files at a time (the loopback apiserver, the lab, the kernel);
#   2. then test/cluster, one file at a time, on the real multi-node cluster (scripts/cluster), which
#      is started here and, unless it was already up, stopped afterwards;
#   3. then CI's reduced run of Kubernetes' own [sig-network] e2e tests with castnet as the only CNI
#      (test/e2e/ci-selection.txt and castnet's multicast and egress checks, scripts/cluster/e2e-primary.sh), on
#      the same cluster brought up again in primary mode; its counts join the summary line.
# The loopback test cluster and the real cluster are stopped afterwards when this run started them,
# so nothing keeps running after `make test`; clusters someone started by hand are left alone.
# Arguments are passed to a single jest run instead (e.g. a test file).
set -uo pipefail
cd "$(dirname "$0")/.."
k8s_was_up=0
scripts/k8s/cluster.sh status >/dev/null 2>&1 && k8s_was_up=1
real_was_up=0
scripts/cluster/cluster.sh status >/dev/null 2>&1 && real_was_up=1

results=()
jest_run() {
  local out
  out=$(mktemp)
  node --experimental-vm-modules node_modules/jest/bin/jest.js --ci --json --outputFile="$out" "$@"
  local rc=$?
  results+=("$out")
  return $rc
}

# The e2e run wants the cluster in primary mode: a bridge cluster this run started goes first; one
# someone started by hand is left alone, and the e2e run is then not possible (it says so).
e2e_out=.cache/e2e-ci.json
e2e_run() {
  [ "$real_was_up" = 1 ] || scripts/cluster/cluster.sh down >/dev/null 2>&1 || true
  rm -f "$e2e_out"
  CASTNET_E2E_SELECTION=test/e2e/ci-selection.txt CASTNET_E2E_OUT="$e2e_out" scripts/cluster/e2e-primary.sh
  local rc=$?
  [ -s "$e2e_out" ] || echo '{"passed":0,"failed":1,"skipped":0}' >"$e2e_out"
  results+=("$e2e_out")
  return $rc
}

rc=0
if [ $# -gt 0 ]; then
  jest_run "$@" || rc=1
else
  jest_run --testPathIgnorePatterns '/test/cluster/' || rc=1
  [ "$k8s_was_up" = 1 ] || scripts/k8s/cluster.sh down >/dev/null 2>&1 || true
  if scripts/cluster/cluster.sh up; then
    jest_run --runInBand test/cluster || rc=1
  else
    echo "run-tests: the real cluster did not come up (scripts/cluster/cluster.sh up); its suite did not run" >&2
    rc=1
  fi
  e2e_run || rc=1
fi

node -e '
  const fs = require("fs");
  let p = 0, f = 0, s = 0;
  for (const file of process.argv.slice(1)) {
    if (!fs.statSync(file).size) continue;
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    // jest'\''s --json, or the e2e report ({passed, failed, skipped}).
    p += r.numPassedTests ?? r.passed; f += r.numFailedTests ?? r.failed; s += r.numPendingTests ?? r.skipped;
  }
  console.log(`${p} passed, ${f} failed, ${s} skipped`);
' "${results[@]}"
rm -f "${results[@]/$e2e_out/}"
[ "$k8s_was_up" = 1 ] || scripts/k8s/cluster.sh down >/dev/null 2>&1 || true
[ "$real_was_up" = 1 ] || scripts/cluster/cluster.sh down >/dev/null 2>&1 || true
bin/castnet lab clean >/dev/null 2>&1 || true
exit $rc
