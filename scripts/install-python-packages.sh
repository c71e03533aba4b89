#!/usr/bin/env bash
# Installs the pinned Python packages of a requirements file into a venv ($CACHE/python), with pip
# from PyPI. A no-op when the venv already holds them: the venv records the hash of the
# requirements and the interpreter's version it was built from.
set -euo pipefail
req=${1:?usage: install-python-packages.sh REQUIREMENTS}
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${CASTNET_CACHE:-$repo/.cache}/python
python=${PYTHON:-python3}
key="$(sha256sum <"$req" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
[ -x "$venv/bin/python" ] && [ "$(cat "$venv/.key" 2>/dev/null)" = "$key" ] && exit 0
echo "installing Python packages from $req into $venv"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$key" >"$venv/.key"
