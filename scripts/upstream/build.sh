#!/usr/bin/env bash
# Builds the upstream commands the tests run (Kubernetes, etcd, helm, cnitool, containerd, runc,
# crictl, multus) with the machine's Go, at the versions pinned by the go.mod/go.sum beside this
# script, into $CACHE/bin.
#
# Usage: scripts/upstream/build.sh [module-dir...]   (default: every dir here with a `commands` file
# and no `on-demand` file; an on-demand module, such as e2e, is built only when named)
#
# Each module dir holds a go.mod (pinned versions, `tool` lines), go.sum, `commands` ("name package"
# per line; "name package test" builds the package's test binary with `go test -c`, as Kubernetes'
# e2e.test) and optionally:
#  - `ldflags`: -X version stamps; @VERSION@, @MAJOR@, @MINOR@ are replaced by the version of the
#    module's first `require`.
#  - `env`: KEY=VALUE lines for the go command, e.g. CGO_ENABLED=1 (everything else builds with
#    CGO_ENABLED=0, so the binaries need no C libraries).
#  - `buildflags`: extra `go build` flags, e.g. -tags=seccomp.
# A build is keyed by the hash of those files, the Go version, the build flags and, for a cgo build,
# the C compiler's version:
#  - $CACHE/upstream/<module>.key records what $CACHE/bin holds: a matching key is a no-op.
#  - $STORE/<key>/ keeps built binaries machine-wide, so another clone (CI runs in a fresh one on the
#    same machine) copies them instead of rebuilding. Go's own module and build caches are the
#    machine's defaults for the same reason. A fresh machine simply builds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CACHE=${CASTNET_CACHE:-$repo/.cache}
STORE=${CASTNET_UPSTREAM_STORE:-${XDG_CACHE_HOME:-$HOME/.cache}/castnet/upstream}
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
BUILD_FLAGS=(-trimpath)

log() { echo "upstream: $*" >&2; }

module_key() {
  local dir=$1
  {
    cat "$dir/go.mod" "$dir/go.sum" "$dir/commands"
    module_env "$dir"
    module_buildflags "$dir"
    module_ldflags "$dir"
    "$GO" version
    module_go "$dir" env GOOS GOARCH CGO_ENABLED
    # cgo links C libraries dynamically, so only the compiler (not the library versions) is part of it.
    if [ "$(module_go "$dir" env CGO_ENABLED)" = 1 ]; then
      "$(module_go "$dir" env CC)" --version | head -1
    fi
    echo "${BUILD_FLAGS[@]}"
  } | sha256sum | cut -c1-16
}

# The module's `env` settings, one KEY=VALUE per line (nothing when it has no `env` file).
module_env() {
  [ -f "$1/env" ] || return 0
  local line
  while IFS= read -r line; do
    [[ $line =~ ^[A-Z][A-Z0-9_]*=[^[:space:]]*$ ]] ||
      { log "$1/env: expected KEY=VALUE without spaces, got '$line'"; return 2; }
    echo "$line"
  done < <(grep -Ev '^[[:space:]]*(#|$)' "$1/env")
}

# The module's extra `go build` flags on one line (nothing when it has no `buildflags` file).
module_buildflags() {
  [ -f "$1/buildflags" ] || return 0
  grep -Ev '^[[:space:]]*(#|$)' "$1/buildflags" | tr '\n' ' '
  echo
}

# Runs the go command in the module dir with the module's `env` settings.
module_go() {
  local dir=$1 vars
  shift
  vars=$(module_env "$dir")
  # shellcheck disable=SC2086 # one KEY=VALUE word per line, validated by module_env
  (cd "$dir" && env $vars "$GO" "$@")
}

# The pinned version of the module's first `require`, e.g. v1.37.2.
module_version() { grep -m1 '^require [^(]' "$1/go.mod" | awk '{print $3}'; }

# Strips symbols (-s -w) and adds the module's version stamps.
module_ldflags() {
  local v major minor
  v=$(module_version "$1")
  IFS=. read -r major minor _ <<<"${v#v}"
  echo -n "-s -w "
  [ -f "$1/ldflags" ] || { echo; return 0; }
  grep -Ev '^[[:space:]]*(#|$)' "$1/ldflags" |
    sed -e "s/@VERSION@/$v/g" -e "s/@MAJOR@/$major/g" -e "s/@MINOR@/$minor/g" | tr '\n' ' '
  echo
}

# Prints "name package" pairs, skipping comments and blank lines.
module_commands() { grep -Ev '^[[:space:]]*(#|$)' "$1/commands"; }

# Builds the module's commands into $STORE/<key>, once per machine (flock serialises concurrent runs).
ensure_stored() {
  local dir=$1 key=$2 name=$3
  local out=$STORE/$name-$key
  mkdir -p "$STORE"
  exec {lock}>"$out.lock"
  flock "$lock"
  if [ ! -e "$out/.complete" ]; then
    local tmp start
    tmp=$(mktemp -d "$out.tmp.XXXXXX")
    start=$(date +%s)
    local ldflags extra
    ldflags=$(module_ldflags "$dir")
    read -ra extra <<<"$(module_buildflags "$dir")"
    local settings
    settings="$(module_env "$dir" | tr '\n' ' ')${extra[*]}"
    settings=${settings% }
    log "building $name ($(grep -m1 '^require [^(]' "$dir/go.mod" | cut -d' ' -f2,3)) with $("$GO" env GOVERSION)${settings:+ ($settings)}"
    local cmd pkg kind
    local -a gocmd
    while read -r cmd pkg kind; do
      case $kind in
        '') gocmd=(build) ;;
        test) gocmd=(test -c) ;;
        *) log "$dir/commands: '$cmd $pkg $kind': the third word may only be 'test'"; rm -rf "$tmp"; return 2 ;;
      esac
      log "  go ${gocmd[*]} $pkg -> $cmd"
      module_go "$dir" "${gocmd[@]}" "${BUILD_FLAGS[@]}" "${extra[@]}" -ldflags="$ldflags" -o "$tmp/$cmd" "$pkg" ||
        { rm -rf "$tmp"; log "failed to build $pkg (module $dir)"; return 1; }
    done < <(module_commands "$dir")
    touch "$tmp/.complete"
    rm -rf "$out"
    mv "$tmp" "$out"
    log "built $name in $(($(date +%s) - start))s"
  fi
  touch "$out"
  # Builds of other pins that no clone on this machine used for two weeks.
  find "$STORE" -mindepth 1 -maxdepth 1 -name "$name-*" ! -name "$name-$key*" -mtime +14 \
    -exec rm -rf {} + 2>/dev/null || true
  flock -u "$lock"
  exec {lock}>&-
}

install_module() {
  local dir=$1 name key
  name=$(basename "$dir")
  module_env "$dir" >/dev/null
  key=$(module_key "$dir")
  local stamp=$CACHE/upstream/$name.key
  if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && module_commands "$dir" | while read -r cmd _; do
    [ -x "$CACHE/bin/$cmd" ] || exit 1
  done; then
    return 0
  fi
  ensure_stored "$dir" "$key" "$name"
  mkdir -p "$CACHE/bin" "$CACHE/upstream"
  while read -r cmd _; do
    # Copy to a temp name and rename, so a running binary is never overwritten in place; the
    # temp name is per process, as two clones may share one .cache (a worktree's symlink).
    cp "$STORE/$name-$key/$cmd" "$CACHE/bin/.$cmd.new.$$"
    mv -f "$CACHE/bin/.$cmd.new.$$" "$CACHE/bin/$cmd"
  done < <(module_commands "$dir")
  echo "$key" >"$stamp"
  log "$name ready in $CACHE/bin"
}

modules=("$@")
if [ ${#modules[@]} -eq 0 ]; then
  for f in "$here"/*/commands; do [ -e "$(dirname "$f")/on-demand" ] || modules+=("$(dirname "$f")"); done
fi
for m in "${modules[@]}"; do
  case $m in /*) ;; *) [ -d "$m" ] || m=$here/$m ;; esac
  [ -f "$m/commands" ] || { log "no module at $m (expected go.mod, go.sum, commands)"; exit 2; }
  install_module "$(cd "$m" && pwd)"
done
