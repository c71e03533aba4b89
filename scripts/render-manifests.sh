#!/usr/bin/env bash
# Renders charts/castnet into deploy/ (both modes), for `kubectl apply` without Helm, and the uninstall
# node cleanup on its own (it is a Helm hook, left out of the others so that applying them never runs
# it). test/chart/helm.test.ts runs this with --check to fail when deploy/ is out of sync.
set -euo pipefail
cd "$(dirname "$0")/.."
helm=${CASTNET_CACHE:-.cache}/bin/helm
check=${1:-}
template() {
  "$helm" template castnet charts/castnet --namespace castnet-system --kube-version 1.37.0 "$@"
}
render() { # name
  echo "# Generated from charts/castnet by \`make manifests\` ($1). Do not edit."
  case $1 in
    node-cleanup) template --show-only templates/node-cleanup.yaml ;;
    *) template --include-crds --no-hooks --set "mode=$1" ;;
  esac
}
status=0
for name in secondary primary node-cleanup; do
  file=deploy/castnet-$name.yaml
  if [ "$check" = --check ]; then
    if ! render "$name" | cmp -s - "$file"; then
      echo "deploy/: $file is out of sync with charts/castnet: run \`make manifests\`" >&2
      status=1
    fi
  else
    render "$name" >"$file"
    echo "wrote $file"
  fi
done
exit $status
