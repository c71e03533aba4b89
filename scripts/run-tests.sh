#!/usr/bin/env bash
# Runs the whole jest suite and ends with the plain "N passed, N failed" line CI reads.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
npx jest --ci --json --outputFile="$out" "$@"
rc=$?
if [ -s "$out" ]; then
  node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`)' "$out"
fi
rm -f "$out"
exit $rc
