#!/bin/sh
# Launcher for the castnet program (agent, controller, lab, operator commands).
here=$(dirname "$(readlink -f "$0")")
# The agent's heap is mostly short-lived frames: a 1 MiB young generation keeps its RSS ~15 MB lower
# (under the 80 MB goal) at the same CPU per message (make bench-dataplane, docs/benchmarks.md).
case "$1" in
agent) exec node --enable-source-maps --max-semi-space-size=1 "$here/../dist/cmd/castnet/main.js" "$@" ;;
*) exec node --enable-source-maps "$here/../dist/cmd/castnet/main.js" "$@" ;;
esac
