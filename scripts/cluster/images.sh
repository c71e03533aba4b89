#!/usr/bin/env bash
# Builds the container images the multi-node test cluster runs, on a machine with no registry and no
# container engine, as docker-archive tarballs that `ctr images import`, `podman load`, `docker load`
# and `kind load image-archive` accept:
#   castnet   localhost/castnet/castnet:<appVersion>-<hash>  the Dockerfile's layout and entrypoint
#   pause     localhost/castnet/pause:3.10                   the sandbox image the cluster pins
#   workload  localhost/castnet/workload:<hash>              test pods: sh, ip, socat, iperf2, sockperf, ssmping
#   multus    localhost/castnet/multus:v4.2.2                multus thick, from `make upstream`'s binaries
#   agnhost   registry.k8s.io/e2e-test-images/agnhost:<ver>  Kubernetes' e2e test image, from `make e2e-tools`
#   busybox   registry.k8s.io/e2e-test-images/busybox:<ver>  the e2e suite's busybox (Debian's busybox-static)
#   glibc-dns-testing  .../glibc-dns-testing:<ver>           the DNS tests' glibc prober (dig, getent)
#   e2e-pause registry.k8s.io/pause:<ver>                    the e2e suite's pause (the same pause.c)
#   coredns   localhost/castnet/coredns:v1.15.0              the cluster DNS, from `make e2e-tools`
#   guest     localhost/castnet/guest:<hash>                 a VM pod: qemu (TCG), ip, socat and the lab's
#                                                             guest kernel and initramfs, from `make guest-image`
# The last three carry the names Kubernetes' e2e suite (test/utils/image/manifest.go of the pinned
# release) asks for, so no KUBE_TEST_REPO_LIST is needed; "all" includes them once agnhost is built,
# and the guest image once `make guest-image` has built .cache/guest.
#
# Usage: scripts/cluster/images.sh [castnet|pause|workload|multus|agnhost|busybox|e2e-pause|coredns|guest|all]...
# (default: all)
# Prints "<reference> <tarball>" per image on stdout; progress goes to stderr.
# CASTNET_IMAGE_TAG=<tag> overrides the castnet image's tag (two tags of one build for upgrade tests).
#
# The images are assembled, not built by an engine: each is one layer holding a root filesystem made of
# the repository's build outputs and the machine's Debian binaries with their shared-library closure
# (found with ldd), written as a docker archive by hand (sorted entries, fixed mtimes and owners, so the
# same inputs give the same bytes). A tarball is keyed by the hash of everything it is made of: a rerun
# with nothing changed only prints the references.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CACHE=${CASTNET_CACHE:-$repo/.cache}
OUT=$CACHE/images
REGISTRY=localhost/castnet
MULTUS_VERSION=v4.2.2
PAUSE_VERSION=3.10
# Kubernetes' e2e images (test/utils/image/manifest.go of the release scripts/upstream/e2e pins).
E2E_REGISTRY=registry.k8s.io/e2e-test-images
E2E_BUSYBOX_VERSION=1.37.0-2
E2E_GLIBC_DNS_VERSION=2.1.1
E2E_PAUSE_REF=registry.k8s.io/pause:3.10.2
COREDNS_VERSION=v1.15.0
# Tarballs of hash-tagged builds nobody printed for this many days are removed.
PRUNE_DAYS=7
PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log() { echo "images: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# --- host files and their shared-library closure ---------------------------------------------------

# The shared libraries (and the ELF interpreter) an executable or library loads, one path per line.
# Statically linked files, non-ELF files and musl builds have none.
elf_deps() {
  local out
  out=$(ldd "$1" 2>&1) || return 0
  # A build for musl systems (koffi ships one beside the glibc one) is never loaded here.
  if grep -q 'libc\.musl-' <<<"$out"; then return 0; fi
  if grep -q 'not found' <<<"$out"; then die "$1 needs a library this machine lacks: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"; fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

# The libraries the given files load, sorted and unique (fails on a library the machine lacks).
libs_of() {
  local f
  for f in "$@"; do elf_deps "$f" || return 1; done | LC_ALL=C sort -u
}

# The given files plus every library they load, sorted and unique.
closure() {
  local f
  for f in "$@"; do
    [ -e "$f" ] || die "$f is missing on this machine (scripts/debian-packages.txt lists the Debian packages)"
    echo "$f"
    elf_deps "$f"
  done | LC_ALL=C sort -u
}

# Where a host path lands in a root filesystem with merged /usr (bin, sbin, lib, lib64 link into usr/).
rootfs_path() {
  local dir
  dir=$(readlink -f "$(dirname "$1")")
  echo "$dir/$(basename "$1")"
}

# Copies host files (contents, symlinks resolved) into the root filesystem at their merged-/usr paths.
install_host_files() {
  local rootfs=$1 f dest
  shift
  for f in "$@"; do
    dest=$rootfs$(rootfs_path "$f")
    mkdir -p "$(dirname "$dest")"
    cp -L --preserve=mode "$f" "$dest"
  done
}

# An empty root filesystem: merged /usr, /tmp, /etc with users root, nonroot (65532, the Dockerfile's
# USER) and any extra "name:uid" given (programs that drop privileges look their user up).
base_rootfs() {
  local rootfs=$1 user name uid
  shift
  mkdir -p "$rootfs"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc,tmp,proc,sys,dev,run,var}
  # As on every Linux distribution: runtimes and Multus pass netns paths under /var/run/netns.
  ln -s /run "$rootfs/var/run"
  ln -s usr/bin "$rootfs/bin"
  ln -s usr/sbin "$rootfs/sbin"
  ln -s usr/lib "$rootfs/lib"
  ln -s usr/lib64 "$rootfs/lib64"
  chmod 1777 "$rootfs/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  for user in "$@"; do
    IFS=: read -r name uid <<<"$user"
    echo "$name:x:$uid:$uid:$name:/nonexistent:/sbin/nologin" >>"$rootfs/etc/passwd"
    echo "$name:x:$uid:" >>"$rootfs/etc/group"
  done
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
}

# /bin/sh is dash, and busybox-static's applets are links in /usr/bin except names another program in
# the image provides. Debian's busybox sh runs its own applets before searching PATH, so `sh -c "ip ..."`
# would get busybox's weak ip instead of iproute2's: dash searches PATH like any shell.
install_shell() {
  local rootfs=$1 applet files
  files=$(closure /bin/busybox /bin/dash)
  # shellcheck disable=SC2086 # one path per word
  install_host_files "$rootfs" $files
  ln -s dash "$rootfs/usr/bin/sh"
  for applet in $(/bin/busybox --list); do
    [ -e "$rootfs/usr/bin/$applet" ] || [ -e "$rootfs/usr/sbin/$applet" ] || ln -s busybox "$rootfs/usr/bin/$applet"
  done
}

# --- docker archive ---------------------------------------------------------------------------------

# Deterministic tar of a directory's contents: sorted names, mtime 0, root-owned, readable by all.
det_tar() {
  local dir=$1 out=$2
  local -a entries
  mapfile -t entries < <(cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort)
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode='u+rwX,go+rX,go-w' \
    --format=posix --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
    -C "$dir" -cf "$out" "${entries[@]}"
}

# write_archive ROOTFS REF OUT CONFIG_JSON: a one-layer docker archive (manifest.json, the config,
# the layer) named REF. CONFIG_JSON is the image config's "config" object (Entrypoint, User, ...).
write_archive() {
  local rootfs=$1 ref=$2 out=$3 config=$4
  local work=$STAGE/archive layer_id config_id
  mkdir -p "$work/archive"
  det_tar "$rootfs" "$work/layer.tar"
  layer_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  mkdir "$work/archive/$layer_id"
  mv "$work/layer.tar" "$work/archive/$layer_id/layer.tar"
  jq -cn --argjson config "$config" --arg diff "sha256:$layer_id" --arg by "scripts/cluster/images.sh" '{
    architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z", config: $config,
    rootfs: { type: "layers", diff_ids: [$diff] },
    history: [{ created: "1970-01-01T00:00:00Z", created_by: $by }]
  }' >"$work/config.json"
  config_id=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  mv "$work/config.json" "$work/archive/$config_id.json"
  jq -cn --arg config "$config_id.json" --arg ref "$ref" --arg layer "$layer_id/layer.tar" \
    '[{ Config: $config, RepoTags: [$ref], Layers: [$layer] }]' >"$work/archive/manifest.json"
  jq -cn --arg repo "${ref%:*}" --arg tag "${ref##*:}" --arg id "$layer_id" '{ ($repo): { ($tag): $id } }' \
    >"$work/archive/repositories"
  det_tar "$work/archive" "$work/image.tar"
  mv "$work/image.tar" "$out"
  rm -rf "$work"
}

# --- caching ---------------------------------------------------------------------------------------

# This script's own hash: a change to how images are assembled rebuilds them.
script_hash() { sha256sum "$here/images.sh" | cut -d' ' -f1; }

# Hash of the named files' contents and paths, plus any text on stdin.
hash_inputs() {
  {
    cat
    local f
    for f in "$@"; do
      if [ -L "$f" ]; then echo "link $f -> $(readlink "$f")"; else echo "file $f $(sha256sum <"$f" | cut -d' ' -f1)"; fi
    done
  } | sha256sum | cut -c1-16
}

# Every regular file and link below the given directories, sorted.
files_under() { find "$@" \( -type f -o -type l \) | LC_ALL=C sort; }

# cached NAME REF KEY: true (and prints the result) when $OUT already holds this build.
cached() {
  local tarball=$OUT/$1-${2##*:}.tar
  if [ -f "$tarball" ] && [ "$(cat "$tarball.key" 2>/dev/null)" = "$3" ]; then
    touch "$tarball" "$tarball.key"
    log "$2 is up to date"
    echo "$2 $tarball"
    return 0
  fi
  return 1
}

# finish NAME REF KEY ROOTFS CONFIG_JSON START: writes the archive, records its key, prints the result.
finish() {
  local name=$1 ref=$2 key=$3 rootfs=$4 config=$5 start=$6
  local tarball=$OUT/$name-${ref##*:}.tar
  rm -f "$tarball.key"
  write_archive "$rootfs" "$ref" "$tarball" "$config"
  echo "$key" >"$tarball.key"
  log "built $ref in $(($(date +%s) - start))s: $(du -h "$tarball" | cut -f1) $tarball"
  echo "$ref $tarball"
}

# --- the images ------------------------------------------------------------------------------------

# The final stage's USER, ENTRYPOINT and WORKDIR in the Dockerfile: the image must run the same way.
dockerfile_config() {
  local final user entrypoint workdir
  final=$(awk '/^FROM[[:space:]]/ { stage = "" } { stage = stage $0 "\n" } END { printf "%s", stage }' "$repo/Dockerfile")
  user=$(grep -E '^USER[[:space:]]' <<<"$final" | tail -1 | awk '{print $2}')
  entrypoint=$(grep -E '^ENTRYPOINT[[:space:]]' <<<"$final" | tail -1 | sed -E 's/^ENTRYPOINT[[:space:]]+//')
  workdir=$(grep -E '^WORKDIR[[:space:]]' <<<"$final" | tail -1 | awk '{print $2}')
  [ -n "$user" ] && [ -n "$workdir" ] || die "Dockerfile: the final stage needs USER and WORKDIR"
  jq -e 'type == "array"' <<<"$entrypoint" >/dev/null 2>&1 ||
    die "Dockerfile: the final stage's ENTRYPOINT must be a JSON array, got: '$entrypoint'"
  jq -cn --arg user "$user" --argjson entrypoint "$entrypoint" --arg workdir "$workdir" --arg path "$PATH_ENV" \
    '{ User: $user, Entrypoint: $entrypoint, WorkingDir: $workdir, Env: [$path] }'
}

# Production node_modules for package-lock.json, kept per lockfile so a source change does not
# reinstall them (`npm ci --omit=dev`, from npm's cache when it holds the packages).
prod_node_modules() {
  local key dir tmp
  key=$(hash_inputs "$repo/package.json" "$repo/package-lock.json" <<<"$(npm --version) $(node --version)")
  dir=$OUT/node_modules-$key
  if [ ! -e "$dir/.complete" ]; then
    log "installing production node_modules (npm ci --omit=dev)"
    tmp=$(mktemp -d "$OUT/.node_modules.XXXXXX")
    cp "$repo/package.json" "$repo/package-lock.json" "$tmp/"
    (cd "$tmp" && npm ci --omit=dev --prefer-offline --no-audit --no-fund --loglevel=error >&2) ||
      { rm -rf "$tmp"; die "npm ci --omit=dev failed"; }
    rm -f "$tmp/package.json" "$tmp/package-lock.json" "$tmp/node_modules/.package-lock.json"
    touch "$tmp/.complete"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    find "$OUT" -maxdepth 1 -name 'node_modules-*' ! -name "node_modules-$key" -exec rm -rf {} +
  fi
  echo "$dir/node_modules"
}

# What `tsc -p tsconfig.build.json` emits into dist/ for the current sources (cmd/ and pkg/ without
# tests), relative to the repository: stale outputs of deleted sources and test builds stay out.
dist_files() {
  local src ext
  (cd "$repo" && find cmd pkg -name '*.ts' ! -name '*.test.ts' ! -name '*.d.ts' | LC_ALL=C sort) |
    while read -r src; do
      for ext in js js.map d.ts d.ts.map; do
        [ ! -e "$repo/dist/${src%.ts}.$ext" ] || echo "dist/${src%.ts}.$ext"
      done
    done
}

build_castnet() {
  local start t config modules addons host_files dist key version ref rootfs app
  start=$(date +%s)
  for t in node npm make go; do command -v $t >/dev/null || die "$t is needed to build the castnet image"; done
  config=$(dockerfile_config)
  # The same artifacts the Dockerfile's build stages make (dist/, bin/castnet-cni), built by make.
  make -C "$repo" --no-print-directory -s build >&2
  modules=$(prod_node_modules)
  # Native addons in node_modules (koffi) load host libraries too.
  addons=$(find "$modules" -name '*.node' -type f | LC_ALL=C sort)
  # shellcheck disable=SC2086 # one path per word
  # nft: the agent's filter of castnet's UDP ports (pkg/agent/underlay/filter.ts), as the Dockerfile installs it.
  host_files=$(closure "$(command -v node)" /bin/ip /sbin/bridge /usr/sbin/nft /bin/busybox /bin/dash &&
    libs_of $addons && files_under /etc/iproute2)
  dist=$(dist_files)
  key=$(
    cd "$repo"
    # shellcheck disable=SC2086 # one path per word
    hash_inputs $host_files package.json scripts/castnet.sh bin/castnet-cni $dist \
      <<<"$(script_hash) $config $modules"
  )
  version=$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' "$repo/charts/castnet/Chart.yaml")
  ref=$REGISTRY/castnet:${CASTNET_IMAGE_TAG:-$version-$key}
  [[ ${ref##*:} =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] ||
    die "CASTNET_IMAGE_TAG: '${ref##*:}' is not a valid image tag (letters, digits, _ . -, at most 128)"
  cached castnet "$ref" "$key" && return 0

  rootfs=$STAGE/castnet
  base_rootfs "$rootfs"
  # shellcheck disable=SC2086 # one path per word
  install_host_files "$rootfs" $host_files
  install_shell "$rootfs"
  app=$rootfs/opt/castnet
  mkdir -p "$app/bin"
  cp "$repo/package.json" "$app/package.json"
  # shellcheck disable=SC2086
  (cd "$repo" && cp --parents -p $dist "$app/")
  cp -a "$modules" "$app/node_modules"
  install -m 0755 "$repo/bin/castnet-cni" "$app/bin/castnet-cni"
  install -m 0755 "$repo/scripts/castnet.sh" "$app/bin/castnet"
  finish castnet "$ref" "$key" "$rootfs" "$config" "$start"
}

build_pause() {
  local start key ref rootfs config
  start=$(date +%s)
  command -v gcc >/dev/null || die "gcc is needed to build the pause image"
  ref=$REGISTRY/pause:$PAUSE_VERSION
  key=$(hash_inputs "$here/pause.c" <<<"$(script_hash) $(gcc --version | head -1) $(dpkg-query -W libc6-dev 2>/dev/null)")
  cached pause "$ref" "$key" && return 0
  rootfs=$STAGE/pause
  mkdir -p "$rootfs"
  gcc -static -Os -s -Wall -Wextra -Werror -o "$rootfs/pause" "$here/pause.c" >&2 || die "gcc failed on pause.c"
  # As upstream's pause image: no shell, no files but the program, an unprivileged user.
  config=$(jq -cn --arg path "$PATH_ENV" '{ Entrypoint: ["/pause"], User: "65535:65535", Env: [$path] }')
  finish pause "$ref" "$key" "$rootfs" "$config" "$start"
}

build_workload() {
  local start host_files key ref rootfs config
  start=$(date +%s)
  host_files=$(closure /bin/busybox /bin/dash /bin/ip /sbin/bridge /bin/ss /usr/bin/socat /usr/bin/iperf /usr/bin/sockperf \
    /usr/bin/mcfirst /usr/bin/ssmping /usr/bin/ssmpingd /usr/bin/asmping /usr/bin/tcpdump &&
    files_under /etc/iproute2 /etc/protocols /etc/services)
  # shellcheck disable=SC2086 # one path per word
  key=$(hash_inputs $host_files <<<"$(script_hash)")
  ref=$REGISTRY/workload:$key
  cached workload "$ref" "$key" && return 0
  rootfs=$STAGE/workload
  # tcpdump drops root privileges to the user "tcpdump" once its capture is open.
  base_rootfs "$rootfs" tcpdump:104
  # shellcheck disable=SC2086
  install_host_files "$rootfs" $host_files
  install_shell "$rootfs"
  config=$(jq -cn --arg path "$PATH_ENV" '{ Entrypoint: ["/bin/sh"], Cmd: ["-c", "sleep infinity"], Env: [$path] }')
  finish workload "$ref" "$key" "$rootfs" "$config" "$start"
}

# Upstream's thick plugin layout (images/Dockerfile.thick, deployments/multus-daemonset-thick.yml): the
# daemon and the init container's installer run from /usr/src/multus-cni/bin, and install_multus copies
# multus-shim and passthru from there onto the node (it fails without passthru).
MULTUS_BINS=(multus-daemon multus-shim install_multus passthru)

# The multus binaries $CACHE/bin lacks, one path per line.
multus_missing() {
  local b
  for b in "${MULTUS_BINS[@]}"; do [ -x "$CACHE/bin/$b" ] || echo "$CACHE/bin/$b"; done
}

build_multus() {
  local start missing b shell_files key ref rootfs config
  start=$(date +%s)
  ref=$REGISTRY/multus:$MULTUS_VERSION
  missing=$(multus_missing)
  [ -z "$missing" ] || die "cannot build $ref: missing $(echo $missing) (\`make upstream\` builds them)"
  shell_files=$(closure /bin/busybox /bin/dash)
  # shellcheck disable=SC2086 # one path per word
  key=$(hash_inputs "${MULTUS_BINS[@]/#/$CACHE/bin/}" $shell_files <<<"$(script_hash)")
  cached multus "$ref" "$key" && return 0
  rootfs=$STAGE/multus
  base_rootfs "$rootfs"
  install_shell "$rootfs"
  mkdir -p "$rootfs/usr/src/multus-cni/bin"
  for b in "${MULTUS_BINS[@]}"; do
    [ -z "$(libs_of "$CACHE/bin/$b")" ] || die "$CACHE/bin/$b is dynamically linked: build it with CGO_ENABLED=0"
    install -m 0755 "$CACHE/bin/$b" "$rootfs/usr/src/multus-cni/bin/$b"
  done
  config=$(jq -cn --arg path "$PATH_ENV" '{ Entrypoint: ["/usr/src/multus-cni/bin/multus-daemon"], WorkingDir: "/", Env: [$path] }')
  finish multus "$ref" "$key" "$rootfs" "$config" "$start"
}

# The source tree of the pinned k8s.io/kubernetes (Go's module cache): agnhost's version and files.
k8s_source() {
  local dir
  dir=$(cd "$repo/scripts/upstream/e2e" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' k8s.io/kubernetes) &&
    [ -d "$dir/test/images/agnhost" ] || die "cannot find k8s.io/kubernetes in Go's module cache (\`make e2e-tools\`)"
  echo "$dir"
}

# Upstream's agnhost image (test/images/agnhost/Dockerfile) with this machine's tools in place of
# Alpine's: the e2e suite runs curl, nc (UDP), dig, ip, ss, iperf and socat in it, and /coredns (the
# DNS tests' upstream server; upstream ships CoreDNS 1.6.2 there, this is `make e2e-tools`' 1.15.0).
build_agnhost() {
  local start src version host_files key ref rootfs config
  start=$(date +%s)
  for b in agnhost coredns; do
    [ -x "$CACHE/bin/$b" ] || die "cannot build agnhost: missing $CACHE/bin/$b (\`make e2e-tools\` builds it)"
  done
  src=$(k8s_source)/test/images/agnhost
  version=$(cat "$src/VERSION")
  ref=$E2E_REGISTRY/agnhost:$version
  # wget: Debian's static busybox wget crashes resolving an address (static glibc's NSS), and the
  # Service tests' host-exec pods fetch with `wget -q -T 1 -O -`.
  # getent: the DNS tests' hosts-file probe (musl's in upstream's Alpine image, glibc's here).
  host_files=$(closure /bin/busybox /bin/dash /bin/ip /bin/ss /usr/bin/curl /usr/bin/wget /usr/bin/nc \
    /usr/bin/dig /usr/bin/getent /usr/bin/iperf /usr/bin/socat && files_under /etc/iproute2 /etc/protocols /etc/services)
  # shellcheck disable=SC2086 # one path per word
  key=$(hash_inputs "$CACHE/bin/agnhost" "$CACHE/bin/coredns" "$src/porter/localhost.crt" "$src/porter/localhost.key" $host_files \
    <<<"$(script_hash)")
  cached agnhost "$ref" "$key" && return 0
  rootfs=$STAGE/agnhost
  # The user the SupplementalGroups e2e test expects in the image.
  base_rootfs "$rootfs" user-defined-in-image:1000
  # shellcheck disable=SC2086
  install_host_files "$rootfs" $host_files
  install_shell "$rootfs"
  install -m 0755 "$CACHE/bin/agnhost" "$rootfs/agnhost"
  install -m 0755 "$CACHE/bin/coredns" "$rootfs/coredns"
  ln -s agnhost "$rootfs/agnhost-2"
  install -m 0644 "$src/porter/localhost.crt" "$src/porter/localhost.key" "$rootfs/"
  mkdir -p "$rootfs/uploads"
  config=$(jq -cn --arg path "$PATH_ENV" '{ Entrypoint: ["/agnhost"], Cmd: ["pause"], Env: [$path] }')
  finish agnhost "$ref" "$key" "$rootfs" "$config" "$start"
}

build_busybox() {
  local start files key ref rootfs config
  start=$(date +%s)
  ref=$E2E_REGISTRY/busybox:$E2E_BUSYBOX_VERSION
  files=$(closure /bin/busybox /bin/dash)
  # shellcheck disable=SC2086 # one path per word
  key=$(hash_inputs $files <<<"$(script_hash)")
  cached busybox "$ref" "$key" && return 0
  rootfs=$STAGE/busybox
  base_rootfs "$rootfs"
  install_shell "$rootfs"
  config=$(jq -cn --arg path "$PATH_ENV" '{ Cmd: ["sh"], Env: [$path] }')
  finish busybox "$ref" "$key" "$rootfs" "$config" "$start"
}

# The DNS tests' glibc prober (test/images/glibc-dns-testing upstream, a Debian with dnsutils): their
# scripts run dig, getent (glibc's resolver, the point of the image), awk, hostname and sed.
build_glibc-dns-testing() {
  local start files key ref rootfs config
  start=$(date +%s)
  ref=$E2E_REGISTRY/glibc-dns-testing:$E2E_GLIBC_DNS_VERSION
  files=$(closure /bin/busybox /bin/dash /usr/bin/dig /usr/bin/getent && files_under /etc/protocols /etc/services)
  # shellcheck disable=SC2086 # one path per word
  key=$(hash_inputs $files <<<"$(script_hash)")
  cached glibc-dns-testing "$ref" "$key" && return 0
  rootfs=$STAGE/glibc-dns-testing
  base_rootfs "$rootfs"
  # shellcheck disable=SC2086
  install_host_files "$rootfs" $files
  install_shell "$rootfs"
  config=$(jq -cn --arg path "$PATH_ENV" '{ Cmd: ["sh"], Env: [$path] }')
  finish glibc-dns-testing "$ref" "$key" "$rootfs" "$config" "$start"
}

# The pause image under the name the e2e suite uses (test/utils/image/manifest.go's Pause).
build_e2e-pause() {
  local start key ref rootfs config
  start=$(date +%s)
  ref=$E2E_PAUSE_REF
  key=$(hash_inputs "$here/pause.c" <<<"$(script_hash) $(gcc --version | head -1) $(dpkg-query -W libc6-dev 2>/dev/null)")
  cached e2e-pause "$ref" "$key" && return 0
  rootfs=$STAGE/e2e-pause
  mkdir -p "$rootfs"
  gcc -static -Os -s -Wall -Wextra -Werror -o "$rootfs/pause" "$here/pause.c" >&2 || die "gcc failed on pause.c"
  config=$(jq -cn --arg path "$PATH_ENV" '{ Entrypoint: ["/pause"], User: "65535:65535", Env: [$path] }')
  finish e2e-pause "$ref" "$key" "$rootfs" "$config" "$start"
}

build_coredns() {
  local start key ref rootfs config
  start=$(date +%s)
  ref=$REGISTRY/coredns:$COREDNS_VERSION
  [ -x "$CACHE/bin/coredns" ] || die "cannot build $ref: missing $CACHE/bin/coredns (\`make e2e-tools\` builds it)"
  [ -z "$(libs_of "$CACHE/bin/coredns")" ] || die "$CACHE/bin/coredns is dynamically linked: build it with CGO_ENABLED=0"
  key=$(hash_inputs "$CACHE/bin/coredns" <<<"$(script_hash)")
  cached coredns "$ref" "$key" && return 0
  rootfs=$STAGE/coredns
  base_rootfs "$rootfs"
  install -m 0755 "$CACHE/bin/coredns" "$rootfs/coredns"
  config=$(jq -cn --arg path "$PATH_ENV" '{ Entrypoint: ["/coredns"], Env: [$path] }')
  finish coredns "$ref" "$key" "$rootfs" "$config" "$start"
}

# A VM pod's image, as KubeVirt's virt-launcher carries qemu (test/cluster/vm-guest.test.ts): Debian's
# qemu-system-x86_64 with the one module TCG needs (Debian builds accel-tcg as a module), the firmware
# it loads for a -kernel boot of a virtio-net guest (SeaBIOS, linuxboot_dma.bin, iPXE's efi-virtio.rom:
# the directories of its firmware path), iproute2 for the bridge binding's wiring, socat, and the lab's
# guest kernel and initramfs (scripts/guest/build.sh) in /guest.
GUEST_QEMU_MODULES=/usr/lib/x86_64-linux-gnu/qemu

build_guest() {
  local start host_files key ref rootfs config f
  start=$(date +%s)
  for f in vmlinuz initramfs.gz; do
    [ -s "$CACHE/guest/$f" ] || die "cannot build the guest image: missing $CACHE/guest/$f (\`make guest-image\` builds it)"
  done
  host_files=$(closure /bin/busybox /bin/dash /bin/ip /usr/bin/socat /usr/bin/qemu-system-x86_64 \
    "$GUEST_QEMU_MODULES/accel-tcg-x86_64.so" &&
    files_under /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu /etc/iproute2 /etc/protocols /etc/services)
  # shellcheck disable=SC2086 # one path per word
  key=$(hash_inputs $host_files "$CACHE/guest/vmlinuz" "$CACHE/guest/initramfs.gz" <<<"$(script_hash)")
  ref=$REGISTRY/guest:$key
  cached guest "$ref" "$key" && return 0
  rootfs=$STAGE/guest
  base_rootfs "$rootfs"
  # shellcheck disable=SC2086
  install_host_files "$rootfs" $host_files
  install_shell "$rootfs"
  mkdir -p "$rootfs/guest"
  install -m 0644 "$CACHE/guest/vmlinuz" "$CACHE/guest/initramfs.gz" "$rootfs/guest/"
  config=$(jq -cn --arg path "$PATH_ENV" '{ Entrypoint: ["/bin/sh"], Cmd: ["-c", "sleep infinity"], Env: [$path] }')
  finish guest "$ref" "$key" "$rootfs" "$config" "$start"
}

# Removes hash-tagged tarballs not built or printed for $PRUNE_DAYS days (fixed tags are overwritten).
prune() {
  find "$OUT" -maxdepth 1 \( -name 'castnet-*.tar' -o -name 'workload-*.tar' -o -name 'guest-*.tar' \) -mtime +"$PRUNE_DAYS" \
    -exec sh -c 'rm -f "$1" "$1.key"' _ {} \;
}

main() {
  local targets=("$@") t
  [ ${#targets[@]} -gt 0 ] || targets=(all)
  if [ "${targets[*]}" = all ]; then
    targets=(castnet pause workload multus)
    # Until `make upstream` builds multus, "all" builds the others and says what is missing.
    if [ -n "$(multus_missing)" ]; then
      log "skipping $REGISTRY/multus:$MULTUS_VERSION: missing $(multus_missing | tr '\n' ' ')(\`make upstream\` builds them)"
      targets=(castnet pause workload)
    fi
    # Kubernetes' e2e images, once `make e2e-tools` has built agnhost.
    if [ -x "$CACHE/bin/agnhost" ] && [ -x "$CACHE/bin/coredns" ]; then
      targets+=(agnhost busybox glibc-dns-testing e2e-pause coredns)
    fi
    # The VM pod's image, once `make guest-image` has built the guest's kernel and initramfs.
    if [ -s "$CACHE/guest/vmlinuz" ] && [ -s "$CACHE/guest/initramfs.gz" ]; then targets+=(guest); fi
  fi
  for t in "${targets[@]}"; do
    case $t in castnet | pause | workload | multus | agnhost | busybox | glibc-dns-testing | e2e-pause | coredns | guest) ;;
      *) die "unknown image '$t' (castnet, pause, workload, multus, agnhost, busybox, glibc-dns-testing, e2e-pause, coredns, guest or all)" ;;
    esac
  done
  for t in jq tar ldd sha256sum flock; do command -v $t >/dev/null || die "$t is needed (make deps)"; done
  mkdir -p "$OUT"
  # One build at a time per cache: concurrent runs (a test and `make image`) wait, then find it cached.
  exec {lock}>"$OUT/.lock"
  flock "$lock"
  STAGE=$(mktemp -d "$OUT/.stage.XXXXXX")
  trap 'rm -rf "$STAGE"' EXIT
  prune
  for t in "${targets[@]}"; do "build_$t"; done
}

main "$@"
