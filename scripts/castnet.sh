#!/bin/sh
# Launcher for the castnet program (agent, controller, lab, operator commands).
here=$(dirname "$(readlink -f "$0")")
exec node --enable-source-maps "$here/../dist/cmd/castnet/main.js" "$@"
