#!/usr/bin/env bash
# Renders charts/castnet into deploy/ (both modes), for `kubectl apply` without Helm. The test in
# test/k8s/crds-helm.test.ts runs this with --check to fail when deploy/ is out of sync.
set -euo pipefail
cd "$(dirname "$0")/.."
helm=${CASTNET_CACHE:-.cache}/bin/helm
check=${1:-}
render() { # mode file
  {
    echo "# Generated from charts/castnet by \`make manifests\` (mode=$1). Do not edit."
    "$helm" template castnet charts/castnet --namespace castnet-system --kube-version 1.37.0 \
      --include-crds --set "mode=$1"
  }
}
status=0
for mode in secondary primary; do
  file=deploy/castnet-$mode.yaml
  if [ "$check" = --check ]; then
    if ! render "$mode" | cmp -s - "$file"; then
      echo "deploy/: $file is out of sync with charts/castnet: run \`make manifests\`" >&2
      status=1
    fi
  else
    render "$mode" >"$file"
    echo "wrote $file"
  fi
done
exit $status
