#!/usr/bin/env bash
# Kubernetes' own network end-to-end tests (e2e.test of the pinned release) on the real multi-node
# cluster (cluster.sh) with castnet as its only CNI (CASTNET_CLUSTER_CNI=castnet: helm install
# castnet --set mode=primary). The tests chosen, and the ones left out with their reasons, are in
# test/e2e/primary-selection.txt; the result goes to bench/results/e2e-primary.json
# ({passed, failed, skipped, tests: [{name, result, reason}]}). Exits non-zero when a test failed.
#
# Needs `make build upstream e2e-tools image` (make e2e-primary runs them). A cluster that was
# already up with castnet is used and left running; one started here is stopped at the end; a
# running cluster with the bridge network is refused (`make cluster-down` first).
# Environment: CASTNET_E2E_FOCUS (a regex) narrows the selection further, e.g. to one test (a rerun:
# the report keeps the earlier results of the tests it did not run);
# CASTNET_E2E_PROCS (default 4) tests at once; CASTNET_E2E_TIMEOUT (default 90m) the whole run;
# CASTNET_E2E_SELECTION (default test/e2e/primary-selection.txt) and CASTNET_E2E_OUT (default
# bench/results/e2e-primary.json): `make test-e2e`, CI's reduced run, names its own.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CACHE=${CASTNET_CACHE:-$repo/.cache}
BIN=$CACHE/bin
SELECTION=${CASTNET_E2E_SELECTION:-$repo/test/e2e/primary-selection.txt}
OUT=${CASTNET_E2E_OUT:-$repo/bench/results/e2e-primary.json}
WORK=$CACHE/e2e
# The whole run; a hung test fails it rather than CI.
TIMEOUT=${CASTNET_E2E_TIMEOUT:-90m}
# Tests at once (ginkgo -p).
PROCS=${CASTNET_E2E_PROCS:-4}

log() { echo "e2e-primary: $*" >&2; }
die() {
  log "$*"
  exit 1
}

for b in e2e.test ginkgo agnhost coredns kubectl; do
  [ -x "$BIN/$b" ] || die "missing $BIN/$b: run \`make e2e-tools\` (and \`make upstream\`)"
done

was_up=0
if "$here/cluster.sh" status >/dev/null 2>&1; then
  was_up=1
  [ "$(cat "$CACHE/cluster/cni" 2>/dev/null)" = castnet ] ||
    die "the running cluster's pod network is not castnet: \`make cluster-down\` first"
fi
cleanup() { [ "$was_up" = 1 ] || "$here/cluster.sh" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
CASTNET_CLUSTER_CNI=castnet "$here/cluster.sh" up

# The selection file's regexes, joined.
joined() {
  { grep -E "^$1 " "$SELECTION" || true; } | sed -E "s/^$1 //; s/ \\| .*$//" | paste -sd '|'
}
focus=$(joined focus)
[ -n "$focus" ] || die "$SELECTION selects no test (no \"focus <regex>\" line)"
skip=$(joined skip)
[ -z "${CASTNET_E2E_FOCUS:-}" ] || focus="($focus).*($CASTNET_E2E_FOCUS)|($CASTNET_E2E_FOCUS).*($focus)"

rm -rf "$WORK" && mkdir -p "$WORK"
start=$(date +%s)
rc=0
# As upstream's hack/ginkgo-e2e.sh: the ginkgo CLI runs the tests on $PROCS processes at once (most
# of a test's time is waiting for pods), and the [Serial] ones alone at the end.
(cd "$WORK" && timeout "$TIMEOUT" "$BIN/ginkgo" --procs="$PROCS" --no-color --timeout=2h \
  --focus="$focus" ${skip:+--skip="$skip"} --json-report=report.json --output-dir="$WORK" \
  "$BIN/e2e.test" -- \
  --kubeconfig="$CACHE/cluster/kubeconfig" --provider=local --kubectl-path="$BIN/kubectl" \
  --num-nodes="$("$here/cluster.sh" nodes | wc -l)" --report-dir="$WORK" >"$WORK/e2e.log" 2>&1) || rc=$?
log "e2e.test exited $rc after $(($(date +%s) - start)) s (log: $WORK/e2e.log)"
[ -s "$WORK/report.json" ] || die "e2e.test wrote no report:"$'\n'"$(tail -20 "$WORK/e2e.log")"
# castnet's own checks on the same cluster: multicast across nodes on the primary network, and pods
# reaching a host beyond it (masquerade).
if [ -z "${CASTNET_E2E_FOCUS:-}" ]; then
  : >"$WORK/castnet.jsonl"
  for check in multicast egress; do
    if ! "$here/e2e-$check.sh" >"$WORK/$check.jsonl" 2>"$WORK/$check.log"; then
      rc=1
      # A check that died before its verdict is a failure in the report too, not a missing line.
      [ -s "$WORK/$check.jsonl" ] || jq -cn --arg name "castnet: $check (e2e-$check.sh)" \
        --arg reason "$(tail -3 "$WORK/$check.log")" '{name: $name, result: "failed", reason: $reason}' \
        >"$WORK/$check.jsonl"
    fi
    cat "$WORK/$check.jsonl" >>"$WORK/castnet.jsonl"
  done
fi
mkdir -p "$(dirname "$OUT")"
CASTNET_E2E_RERUN=$([ -n "${CASTNET_E2E_FOCUS:-}" ] && echo 1 || echo 0) \
  node "$here/e2e-report.mjs" "$SELECTION" "$WORK/report.json" "$OUT" "$WORK/castnet.jsonl"
exit $rc
