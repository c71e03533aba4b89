#!/usr/bin/env bash
# A loopback-only Kubernetes control plane for tests: etcd + kube-apiserver, nothing else (no kubelet,
# scheduler or controller-manager: tests create Node and Pod objects directly).
#
# Usage: scripts/k8s/cluster.sh up|down|status|env|start-apiserver|stop-apiserver|restart-apiserver
#
#   up                 start etcd and kube-apiserver unless they are already serving; wait for /readyz
#   down               stop both and delete the cluster's data, certificates and kubeconfig
#   status             exit 0 when the apiserver answers /readyz
#   env                print KUBECONFIG=..., SERVER=... for the running cluster
#   stop-apiserver     stop only the apiserver (outage tests); start-apiserver brings it back on the
#                      same port with the same data; restart-apiserver does both
#
# Environment:
#   CASTNET_K8S_NAME   cluster name (default "default"); each name is an independent cluster with its
#                      own ports and state dir, so a test that takes its apiserver down uses its own
#   CASTNET_CACHE      cache dir (default <repo>/.cache); binaries come from $CASTNET_CACHE/bin
#   CASTNET_K8S_OWNER  pid of the process a private cluster belongs to (the test harness sets it):
#                      the next `up` of any cluster removes private clusters whose owner has exited
#
# State lives in $CASTNET_CACHE/k8s/<name>/: pki/ (made with openssl, never committed), etcd data,
# logs, ports and kubeconfig (admin: client certificate in group system:masters, may impersonate).
# The default cluster's kubeconfig is also linked at $CASTNET_CACHE/k8s/kubeconfig.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CACHE=${CASTNET_CACHE:-$repo/.cache}
NAME=${CASTNET_K8S_NAME:-default}
case $NAME in *[!a-z0-9-]* | "") echo "k8s: bad CASTNET_K8S_NAME \"$NAME\": use [a-z0-9-]" >&2 && exit 2 ;; esac
BIN=$CACHE/bin
DIR=$CACHE/k8s/$NAME
PKI=$DIR/pki
# shellcheck source=../lib/procs.sh
. "$here/../lib/procs.sh"
READY_TIMEOUT=${CASTNET_K8S_READY_TIMEOUT:-120}

log() { echo "k8s[$NAME]: $*" >&2; }
die() { log "$*"; exit 1; }

need_binaries() {
  local b
  for b in etcd kube-apiserver kubectl; do
    [ -x "$BIN/$b" ] || die "missing $BIN/$b: run \`make upstream\` first"
  done
  command -v openssl >/dev/null || die "missing openssl: run \`make debian-deps\`"
}

# A free loopback TCP port, as the kernel picks it for a bind to port 0.
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}


ensure_ports() {
  if [ ! -f "$DIR/ports" ]; then
    printf 'ETCD_CLIENT_PORT=%s\nETCD_PEER_PORT=%s\nAPISERVER_PORT=%s\n' \
      "$(free_port)" "$(free_port)" "$(free_port)" >"$DIR/ports.tmp"
    mv "$DIR/ports.tmp" "$DIR/ports"
  fi
  # shellcheck disable=SC1091
  . "$DIR/ports"
  SERVER=https://127.0.0.1:$APISERVER_PORT
}

# Self-signed CA, serving certificate for 127.0.0.1/localhost, admin client certificate and the
# service-account signing key. Made once per cluster; `down` deletes them.
ensure_pki() {
  [ -f "$PKI/.complete" ] && return 0
  rm -rf "$PKI" && mkdir -p "$PKI" && chmod 700 "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=castnet-test-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -out apiserver.crt -extfile <(printf '%s\n' \
        'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc' \
        'extendedKeyUsage=serverAuth') 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
      -subj "/O=system:masters/CN=castnet-admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -out admin.crt -extfile <(echo 'extendedKeyUsage=clientAuth') 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ca.srl
    touch .complete
  ) || die "failed to make certificates in $PKI"
}

write_kubeconfig() {
  local b64="base64 -w0"
  cat >"$DIR/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: castnet-$NAME
  cluster:
    server: $SERVER
    certificate-authority-data: $($b64 <"$PKI/ca.crt")
users:
- name: castnet-admin
  user:
    client-certificate-data: $($b64 <"$PKI/admin.crt")
    client-key-data: $($b64 <"$PKI/admin.key")
contexts:
- name: castnet-$NAME
  context:
    cluster: castnet-$NAME
    user: castnet-admin
current-context: castnet-$NAME
EOF
  chmod 600 "$DIR/kubeconfig.tmp"
  mv "$DIR/kubeconfig.tmp" "$DIR/kubeconfig"
}

# The shared cluster's kubeconfig is also at the documented .cache/k8s/kubeconfig.
link_kubeconfig() {
  [ "$NAME" != default ] || ln -sfn default/kubeconfig "$CACHE/k8s/kubeconfig"
}

readyz() {
  curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "$SERVER/readyz" >/dev/null 2>&1
}

start_etcd() {
  pid_alive "$DIR/etcd.pid" && return 0
  mkdir -p "$DIR/etcd"
  # Test data only: skipping fsync keeps etcd from being the bottleneck on a small VM.
  setsid "$BIN/etcd" --name castnet-test --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "castnet-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --log-level warn \
    </dev/null >>"$DIR/etcd.log" 2>&1 9>&- &
  echo $! >"$DIR/etcd.pid"
}

start_apiserver() {
  pid_alive "$DIR/apiserver.pid" && return 0
  # The endpoint reconciler refuses a loopback advertise address; nothing here needs the
  # "kubernetes" Service endpoints. ServiceAccount admission is off: it rejects pods whose namespace has no "default" service
  # account, and only kube-controller-manager (absent here) creates those.
  setsid "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --authorization-mode RBAC \
    --disable-admission-plugins ServiceAccount \
    --service-cluster-ip-range 10.96.0.0/16 \
    --endpoint-reconciler-type none \
    --cert-dir "$PKI" --profiling=false --v=0 \
    </dev/null >>"$DIR/apiserver.log" 2>&1 9>&- &
  echo $! >"$DIR/apiserver.pid"
}


wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  until readyz; do
    pid_alive "$DIR/etcd.pid" || die "etcd exited ($DIR/etcd.log):"$'\n'"$(log_tail "$DIR/etcd.log")"
    pid_alive "$DIR/apiserver.pid" ||
      die "kube-apiserver exited ($DIR/apiserver.log):"$'\n'"$(log_tail "$DIR/apiserver.log")"
    [ $SECONDS -lt $deadline ] || die "kube-apiserver at $SERVER not ready after ${READY_TIMEOUT}s (see $DIR/apiserver.log)"
    sleep 0.5
  done
}


# Removes private clusters left behind by test runs that died before their afterAll.
prune_orphans() {
  local owner other
  for owner in "$CACHE"/k8s/*/owner; do
    [ -f "$owner" ] || continue
    other=$(basename "$(dirname "$owner")")
    [ "$other" != "$NAME" ] && ! kill -0 "$(cat "$owner")" 2>/dev/null || continue
    log "removing cluster $other: its owner $(cat "$owner") has exited"
    CASTNET_K8S_NAME=$other CASTNET_K8S_NOWAIT=1 "$0" down || true
  done
}

cmd_up() {
  need_binaries
  prune_orphans
  mkdir -p "$DIR"
  if [ "$NAME" != default ] && [ -n "${CASTNET_K8S_OWNER:-}" ]; then echo "$CASTNET_K8S_OWNER" >"$DIR/owner"; fi
  # Nothing running: pick ports afresh, the recorded ones may have been taken since.
  pid_alive "$DIR/etcd.pid" || pid_alive "$DIR/apiserver.pid" || rm -f "$DIR/ports"
  ensure_ports
  ensure_pki
  if pid_alive "$DIR/apiserver.pid" && readyz; then
    link_kubeconfig
    return 0
  fi
  local start=$SECONDS
  start_etcd
  start_apiserver
  write_kubeconfig
  link_kubeconfig
  wait_ready
  log "ready at $SERVER in $((SECONDS - start))s; KUBECONFIG=$DIR/kubeconfig"
}

cmd_down() {
  if [ -d "$DIR" ]; then
    stop_pidfile "$DIR/apiserver.pid"
    stop_pidfile "$DIR/etcd.pid"
    rm -rf "$DIR"
    log "stopped and removed $DIR"
  fi
  # A private cluster's lock goes too; the shared one's stays for callers already waiting on it.
  if [ "$NAME" = default ]; then rm -f "$CACHE/k8s/kubeconfig"; else rm -f "$CACHE/k8s/$NAME.lock"; fi
}

cmd_status() {
  [ -f "$DIR/ports" ] && [ -f "$PKI/.complete" ] || return 1
  ensure_ports
  readyz
}

cmd_env() {
  cmd_status || die "not running: run \`make k8s-up\`"
  printf 'KUBECONFIG=%s\nSERVER=%s\n' "$DIR/kubeconfig" "$SERVER"
}

cmd_start_apiserver() {
  [ -f "$DIR/ports" ] || die "no cluster in $DIR: run up first"
  ensure_ports
  pid_alive "$DIR/etcd.pid" || start_etcd
  start_apiserver
  wait_ready
}

# Serialises concurrent callers (two jest workers may both call `up`) on one lock per cluster;
# the lock file sits beside the state dir so that `down` can delete the dir while holding it.
mkdir -p "$CACHE/k8s"
exec 9>"$CACHE/k8s/$NAME.lock"
if [ -n "${CASTNET_K8S_NOWAIT:-}" ]; then
  flock -n 9 || exit 0 # busy: whoever holds it owns the cluster
else
  flock 9
fi

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
start-apiserver) cmd_start_apiserver ;;
stop-apiserver) stop_pidfile "$DIR/apiserver.pid" ;;
restart-apiserver)
  stop_pidfile "$DIR/apiserver.pid"
  cmd_start_apiserver
  ;;
*)
  echo "usage: $0 up|down|status|env|start-apiserver|stop-apiserver|restart-apiserver" >&2
  exit 2
  ;;
esac
