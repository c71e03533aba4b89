#!/usr/bin/env bash
# A kubeconfig exec credential plugin for the tests (client.authentication.k8s.io/v1), as cloud
# providers' plugins work: it prints an ExecCredential carrying the bearer token in
# $CASTNET_TEST_TOKEN_FILE, valid for an hour, and appends a line to $CASTNET_TEST_EXEC_LOG each
# time it runs. With CASTNET_TEST_EXEC_FAIL set it fails as a broken plugin does (that message on
# stderr, exit status 1); with CASTNET_TEST_EXEC_OUTPUT set it prints that instead of a credential.
set -euo pipefail
if [ -n "${CASTNET_TEST_EXEC_FAIL:-}" ]; then
  echo "$CASTNET_TEST_EXEC_FAIL" >&2
  exit 1
fi
if [ -n "${CASTNET_TEST_EXEC_OUTPUT:-}" ]; then
  echo "$CASTNET_TEST_EXEC_OUTPUT"
  exit 0
fi
echo "$(date -u +%s)" >>"$CASTNET_TEST_EXEC_LOG"
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"%s"}}\n' \
  "$(cat "$CASTNET_TEST_TOKEN_FILE")" "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)"
