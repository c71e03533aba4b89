#!/usr/bin/env bash
# A real multi-node Kubernetes cluster on this machine, built from the pinned upstream sources
# (`make upstream`): etcd, kube-apiserver, kube-controller-manager and kube-scheduler on the host,
# and N worker nodes, each with its own network namespace on an underlay bridge, its own mount
# namespace (private /run, /var/lib/kubelet, CNI dirs, ...), its own containerd + runc, kubelet
# and kube-proxy (iptables mode). The default pod network is the reference bridge + host-local
# plugins with routes between nodes, as kubenet did; castnet and Multus are installed on top of it
# the way users install them (Helm, DaemonSets, images imported into each node's containerd).
# With CASTNET_CLUSTER_CNI=castnet, castnet is the only pod network instead: `up` installs it with
# `helm install castnet charts/castnet --set mode=primary` before the nodes can become Ready.
#
# Usage: scripts/cluster/cluster.sh up|down|status|env|nodes|images|node-exec NODE CMD...
#
#   up         start everything that is not running yet, import the images (`images`), and wait
#              until every node is Ready
#   down       stop everything and remove every namespace, mount, link, route and file it made
#   status     exit 0 when the apiserver answers and every node is Ready
#   env        print KUBECONFIG=... for the running cluster
#   nodes      print the node names, one per line
#   images     build the images (scripts/cluster/images.sh, cached) and import into every node's
#              containerd those it does not have yet; prints "<reference> <tarball>" per image
#   node-exec  run a command inside a node's network and mount namespaces
#
# Environment: CASTNET_CACHE (default <repo>/.cache), CASTNET_CLUSTER_NODES (default 3),
# CASTNET_CLUSTER_CNI (bridge, the default, or castnet: the pod network a new cluster gets; a running
# cluster keeps the one it was started with).
# State: $CASTNET_CACHE/cluster/ (pki made with openssl, never committed; logs; per-node roots).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CACHE=${CASTNET_CACHE:-$repo/.cache}
BIN=$CACHE/bin
DIR=$CACHE/cluster
PKI=$DIR/pki
# shellcheck source=../lib/procs.sh
. "$here/../lib/procs.sh"
NODES=${CASTNET_CLUSTER_NODES:-3}
READY_TIMEOUT=${CASTNET_CLUSTER_READY_TIMEOUT:-300}

# Underlay: a bridge in the host namespace; the control plane listens on its address. 198.19/16 is
# reserved for benchmarking (RFC 2544) and is never routed anywhere else.
BRIDGE=cncl0
UNDERLAY_PREFIX=198.19.240
APISERVER_IP=$UNDERLAY_PREFIX.1
APISERVER_PORT=6443
SERVER=https://$APISERVER_IP:$APISERVER_PORT
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
CLUSTER_DNS=10.96.0.10
# One cluster per machine (the bridge, namespaces and ports are fixed): which checkout's it is.
OWNER_FILE=/run/castnet-cluster.owner
# The pod network: bridge (reference plugins) or castnet (primary mode), kept in $DIR/cni while up.
CNI=${CASTNET_CLUSTER_CNI:-bridge}
case $CNI in bridge | castnet) ;; *)
  echo "cluster: CASTNET_CLUSTER_CNI: '$CNI' must be bridge or castnet" >&2
  exit 2
  ;;
esac
CASTNET_NAMESPACE=castnet-system

# The sandbox image every node's containerd pins (scripts/cluster/images.sh builds it).
PAUSE_IMAGE=localhost/castnet/pause:3.10

log() { echo "cluster: $*" >&2; }
die() {
  log "$*"
  exit 1
}

node_name() { echo "node-$1"; }
node_ns() { echo "cncl-node-$1"; }
node_ip() { echo "$UNDERLAY_PREFIX.$((10 + $1))"; }
node_dir() { echo "$DIR/nodes/node-$1"; }

need_binaries() {
  local b
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl \
    containerd containerd-shim-runc-v2 ctr runc; do
    [ -x "$BIN/$b" ] || die "missing $BIN/$b: run \`make upstream\` first"
  done
  for b in openssl iptables nsenter unshare curl; do
    command -v "$b" >/dev/null || die "missing $b: run \`make debian-deps\`"
  done
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] ||
    die "missing the reference CNI plugins in /usr/lib/cni: run \`make debian-deps\`"
}




# ---- certificates -----------------------------------------------------------------------------

# issue NAME SUBJECT [EXTENSIONS...]: a key and a certificate signed by the cluster CA.
issue() {
  local name=$1 subj=$2
  shift 2
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -out "$name.crt" -extfile <(printf '%s\n' "$@") 2>/dev/null
  rm -f "$name.csr"
}

ensure_pki() {
  [ -f "$PKI/.complete" ] && return 0
  rm -rf "$PKI" && mkdir -p "$PKI" && chmod 700 "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=castnet-cluster-ca" 2>/dev/null
    issue apiserver /CN=kube-apiserver 'extendedKeyUsage=serverAuth' \
      "subjectAltName=IP:$APISERVER_IP,IP:10.96.0.1,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    issue admin "/O=system:masters/CN=castnet-admin" 'extendedKeyUsage=clientAuth'
    issue controller-manager /CN=system:kube-controller-manager 'extendedKeyUsage=clientAuth'
    issue scheduler /CN=system:kube-scheduler 'extendedKeyUsage=clientAuth'
    issue kube-proxy /CN=system:kube-proxy 'extendedKeyUsage=clientAuth'
    # The apiserver's client identity towards kubelets (logs, exec, port-forward).
    issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" 'extendedKeyUsage=clientAuth'
    local i
    for i in $(seq 1 "$NODES"); do
      issue "kubelet-$i" "/O=system:nodes/CN=system:node:$(node_name "$i")" 'extendedKeyUsage=clientAuth'
      issue "kubelet-$i-serving" "/CN=$(node_name "$i")" 'extendedKeyUsage=serverAuth' \
        "subjectAltName=IP:$(node_ip "$i"),DNS:$(node_name "$i")"
    done
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ca.srl
    touch .complete
  ) || die "failed to make certificates in $PKI"
}

# kubeconfig FILE CERT-NAME: a kubeconfig for the cluster with that client certificate.
kubeconfig() {
  local file=$1 cert=$2 b64="base64 -w0"
  cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: castnet-cluster
  cluster:
    server: $SERVER
    certificate-authority-data: $($b64 <"$PKI/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $($b64 <"$PKI/$cert.crt")
    client-key-data: $($b64 <"$PKI/$cert.key")
contexts:
- name: castnet-cluster
  context:
    cluster: castnet-cluster
    user: $cert
current-context: castnet-cluster
EOF
  chmod 600 "$file.tmp"
  mv "$file.tmp" "$file"
}

# ---- underlay and control plane ---------------------------------------------------------------

ensure_bridge() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    # The bridge only switches between nodes; snooping would drop castnet's own IGMP handling.
    ip link set "$BRIDGE" type bridge mcast_snooping 0 stp_state 0 forward_delay 0
  fi
  ip addr replace "$APISERVER_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
}

start_etcd() {
  pid_alive "$DIR/etcd.pid" && return 0
  mkdir -p "$DIR/etcd" "$DIR/logs"
  # Test data only: skipping fsync keeps etcd from being the bottleneck on a small VM.
  setsid "$BIN/etcd" --name castnet-cluster --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:2479" --advertise-client-urls "http://127.0.0.1:2479" \
    --listen-peer-urls "http://127.0.0.1:2480" --initial-advertise-peer-urls "http://127.0.0.1:2480" \
    --initial-cluster "castnet-cluster=http://127.0.0.1:2480" \
    --unsafe-no-fsync --log-level warn \
    </dev/null >>"$DIR/logs/etcd.log" 2>&1 9>&- &
  echo $! >"$DIR/etcd.pid"
}

start_apiserver() {
  pid_alive "$DIR/apiserver.pid" && return 0
  setsid "$BIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2479 \
    --bind-address "$APISERVER_IP" --advertise-address "$APISERVER_IP" --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --cert-dir "$PKI" --profiling=false --v=0 \
    </dev/null >>"$DIR/logs/apiserver.log" 2>&1 9>&- &
  echo $! >"$DIR/apiserver.pid"
}

start_controller_manager() {
  pid_alive "$DIR/controller-manager.pid" && return 0
  kubeconfig "$DIR/controller-manager.kubeconfig" controller-manager
  setsid "$BIN/kube-controller-manager" \
    --kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10957 \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials \
    --allocate-node-cidrs --cluster-cidr "$CLUSTER_CIDR" --node-cidr-mask-size 24 \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --leader-elect=false --profiling=false --v=0 \
    </dev/null >>"$DIR/logs/controller-manager.log" 2>&1 9>&- &
  echo $! >"$DIR/controller-manager.pid"
}

start_scheduler() {
  pid_alive "$DIR/scheduler.pid" && return 0
  kubeconfig "$DIR/scheduler.kubeconfig" scheduler
  setsid "$BIN/kube-scheduler" \
    --kubeconfig "$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10959 \
    --leader-elect=false --profiling=false --v=0 \
    </dev/null >>"$DIR/logs/scheduler.log" 2>&1 9>&- &
  echo $! >"$DIR/scheduler.pid"
}

readyz() {
  curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "$SERVER/readyz" >/dev/null 2>&1
}

wait_apiserver() {
  local deadline=$((SECONDS + 120))
  until readyz; do
    pid_alive "$DIR/etcd.pid" || die "etcd exited ($DIR/logs/etcd.log):"$'\n'"$(log_tail "$DIR/logs/etcd.log")"
    pid_alive "$DIR/apiserver.pid" ||
      die "kube-apiserver exited ($DIR/logs/apiserver.log):"$'\n'"$(log_tail "$DIR/logs/apiserver.log")"
    [ $SECONDS -lt $deadline ] || die "kube-apiserver at $SERVER not ready after 120s"
    sleep 0.5
  done
}

kctl() { "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" "$@"; }

# ---- nodes ------------------------------------------------------------------------------------

# The node's directories, bind-mounted over the host paths inside its mount namespace, so that
# host-path volumes (Multus, castnet) see this node's files and no other node's. Whole /run and
# /var/lib rather than their castnet, kubelet, containerd and cni subdirectories: on a real node
# those are plain directories that uninstall may remove, never mount points.
NODE_PATHS=(/run /var/lib /var/log/pods /var/log/containers /etc/cni/net.d /opt/cni/bin /etc/cni/multus)

# The node's commands: the pinned upstream binaries first.
NODE_PATH_ENV="PATH=$BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Runs a command in node $1's network and mount namespaces.
node_exec() {
  local i=$1
  shift
  nsenter --net="/run/netns/$(node_ns "$i")" --mount="$(node_dir "$i")/mnt" -- env "$NODE_PATH_ENV" "$@"
}

ensure_node_namespaces() {
  local i=$1 ns dir ip
  ns=$(node_ns "$i") dir=$(node_dir "$i") ip=$(node_ip "$i")
  mkdir -p "$dir/root"
  if [ ! -e "/run/netns/$ns" ]; then
    ip netns add "$ns"
    ip link add "cncl$i" type veth peer name eth0 netns "$ns"
    ip link set "cncl$i" master "$BRIDGE" up
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$APISERVER_IP"
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
  fi
  # A persistent mount namespace needs its anchor on a private mount.
  if ! mountpoint -q "$dir/mnt"; then
    if ! findmnt -n "$DIR/nodes" >/dev/null; then
      mount --bind "$DIR/nodes" "$DIR/nodes"
      mount --make-private "$DIR/nodes"
    fi
    touch "$dir/mnt"
    local p args=()
    for p in "${NODE_PATHS[@]}"; do
      mkdir -p "$dir/root$p" "$p"
      args+=("$dir/root$p" "$p")
    done
    # In the new namespace: bind the node's directories, then share everything so the kubelet's
    # mount propagation (Bidirectional, HostToContainer) works.
    unshare --mount="$dir/mnt" --propagation private -- bash -c '
      set -e
      while [ $# -gt 0 ]; do mount --bind "$1" "$2" && shift 2; done
      mount --make-rshared /
    ' _ "${args[@]}"
  fi
}

write_node_configs() {
  local i=$1 dir name ip
  dir=$(node_dir "$i") name=$(node_name "$i") ip=$(node_ip "$i")
  cp /usr/lib/cni/{bridge,host-local,loopback,portmap} "$dir/root/opt/cni/bin/"
  cat >"$dir/containerd.toml" <<EOF
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "$PAUSE_IMAGE"
[plugins.'io.containerd.cri.v1.runtime']
  # This machine's root lacks CAP_SYS_RESOURCE: it cannot lower oom_score_adj (pause wants -998).
  restrict_oom_score_adj = true
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["/opt/cni/bin"]
  conf_dir = "/etc/cni/net.d"
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = "$BIN/runc"
EOF
  kubeconfig "$dir/kubelet.kubeconfig" "kubelet-$i"
  cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 and no systemd on this machine.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
podLogsDir: /var/log/pods
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $PKI/ca.crt }
authorization: { mode: Webhook }
tlsCertFile: $PKI/kubelet-$i-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-$i-serving.key
clusterDNS: [$CLUSTER_DNS]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
# No registry: images are imported, so never garbage-collect them and never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: { memory.available: "100Mi", nodefs.available: "0%", imagefs.available: "0%", nodefs.inodesFree: "0%" }
serializeImagePulls: false
healthzBindAddress: 127.0.0.1
maxPods: 60
EOF
  kubeconfig "$dir/kube-proxy.kubeconfig" kube-proxy
  cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: { kubeconfig: $dir/kube-proxy.kubeconfig }
hostnameOverride: $name
bindAddress: $ip
clusterCIDR: $CLUSTER_CIDR
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# The node's sysctls are the host kernel's: leave conntrack sizing and localhost NodePorts alone.
conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
iptables: { localhostNodePorts: false }
EOF
}

# start_in_node I NAME CMD...: a long-running component inside node I, logged and pid-tracked.
start_in_node() {
  local i=$1 name=$2 dir
  shift 2
  dir=$(node_dir "$i")
  pid_alive "$dir/$name.pid" && return 0
  setsid nsenter --net="/run/netns/$(node_ns "$i")" --mount="$dir/mnt" -- env "$NODE_PATH_ENV" "$@" \
    </dev/null >>"$dir/$name.log" 2>&1 9>&- &
  echo $! >"$dir/$name.pid"
}

wait_containerd() {
  local i=$1 deadline=$((SECONDS + 60))
  until node_exec "$i" "$BIN/ctr" --address /run/containerd/containerd.sock version >/dev/null 2>&1; do
    pid_alive "$(node_dir "$i")/containerd.pid" ||
      die "containerd of $(node_name "$i") exited:"$'\n'"$(log_tail "$(node_dir "$i")/containerd.log")"
    [ $SECONDS -lt $deadline ] || die "containerd of $(node_name "$i") not ready after 60s"
    sleep 0.3
  done
}

# The node's namespaces, configuration and containerd; its kubelet and kube-proxy come after the
# images are in (the kubelet would otherwise try to pull the pinned sandbox image).
start_runtime() {
  local i=$1
  ensure_node_namespaces "$i"
  write_node_configs "$i"
  start_in_node "$i" containerd containerd --config "$(node_dir "$i")/containerd.toml"
  wait_containerd "$i"
}

start_kubelet() {
  local i=$1 dir
  dir=$(node_dir "$i")
  start_in_node "$i" kubelet kubelet --config "$dir/kubelet.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
    --hostname-override "$(node_name "$i")" --node-ip "$(node_ip "$i")" --v=0
  start_in_node "$i" kube-proxy kube-proxy --config "$dir/kube-proxy.yaml" --v=0
}

import_into_node() {
  local i=$1 tar=$2
  [ -f "$tar" ] || die "missing image $tar: run \`make image\` first"
  # ctr warns about cgroup v1 at every call; keep its real errors.
  node_exec "$i" "$BIN/ctr" --address /run/containerd/containerd.sock -n k8s.io images import "$tar" \
    2> >(grep -v 'DEPRECATION: The support for cgroup v1' >&2) >/dev/null
}

# Every image, built if its inputs changed, imported into each node once per build (the tarball's
# name and the hash of its inputs, which images.sh keeps beside it).
cmd_images() {
  local list ref tar i mark
  list=$("$here/images.sh" all) || die "building the images failed (scripts/cluster/images.sh)"
  while read -r ref tar; do
    for i in $(seq 1 "$NODES"); do
      mark=$(node_dir "$i")/imported/$(basename "$tar")-$(cat "$tar.key" 2>/dev/null)
      [ -e "$mark" ] && continue
      import_into_node "$i" "$tar"
      mkdir -p "$(dirname "$mark")" && touch "$mark"
    done
  done <<<"$list"
  echo "$list"
}

# Once the controller-manager has given every node its pod CIDR: the bridge conflist on each node
# and a route per other node's pod CIDR (and on the host, so pods reach the apiserver).
ensure_pod_network() {
  local i j cidr deadline=$((SECONDS + 120))
  declare -A cidrs
  for i in $(seq 1 "$NODES"); do
    until cidr=$(kctl get node "$(node_name "$i")" -o 'jsonpath={.spec.podCIDR}' 2>/dev/null) && [ -n "$cidr" ]; do
      [ $SECONDS -lt $deadline ] || die "$(node_name "$i") got no podCIDR (see $DIR/logs/controller-manager.log)"
      sleep 0.5
    done
    cidrs[$i]=$cidr
  done
  for i in $(seq 1 "$NODES"); do
    local conf
    conf=$(node_dir "$i")/root/etc/cni/net.d/10-bridge.conflist
    cat >"$conf.tmp" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "cluster",
  "plugins": [
    { "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "${cidrs[$i]}" }]],
                "routes": [{ "dst": "0.0.0.0/0" }] } },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
    mv "$conf.tmp" "$conf"
    for j in $(seq 1 "$NODES"); do
      [ "$i" = "$j" ] || ip -n "$(node_ns "$i")" route replace "${cidrs[$j]}" via "$(node_ip "$j")"
    done
    ip route replace "${cidrs[$i]}" via "$(node_ip "$i")" dev "$BRIDGE"
  done
}

# castnet as the only pod network (docs/install.md, mode primary): its CRDs, then the chart with the
# image imported into every node. Its agents run on the host network and tolerate the not-ready
# nodes; each writes castnet's conflist, and the node becomes Ready.
install_castnet_primary() {
  local images=$1 ref
  ref=$(awk '$1 ~ /\/castnet:/ { print $1 }' <<<"$images")
  [ -n "$ref" ] || die "no castnet image among: $images"
  [ -x "$BIN/helm" ] || die "missing $BIN/helm: run \`make upstream\` first"
  kctl apply --server-side --force-conflicts -f "$repo/charts/castnet/crds" >/dev/null
  "$BIN/helm" upgrade --install castnet "$repo/charts/castnet" --kubeconfig "$DIR/kubeconfig" \
    --namespace "$CASTNET_NAMESPACE" --create-namespace --set mode=primary \
    --set "cni.subnets={$CLUSTER_CIDR}" --set "image.repository=${ref%:*}" --set "image.tag=${ref##*:}" \
    >"$DIR/logs/helm.log" 2>&1 || die "helm install castnet failed:"$'\n'"$(log_tail "$DIR/logs/helm.log")"
  route_castnet_blocks
}

# The machine (the apiserver answers pods that use the kubernetes Service) reaches each node's pods
# through that node: castnet's per-node /24 block of $CLUSTER_CIDR, numbered by the pool-index Lease
# castnet-pool-<n> the node holds. Through any other node the replies would be asymmetric, and that
# node's conntrack drops a forwarded SYN-ACK it never saw the SYN of (kube-proxy's INVALID rule).
route_castnet_blocks() {
  local deadline=$((SECONDS + 120)) leases name holder n i base
  until leases=$(kctl get leases -n "$CASTNET_NAMESPACE" \
    -o 'jsonpath={range .items[*]}{.metadata.name} {.spec.holderIdentity}{"\n"}{end}' 2>/dev/null |
    grep '^castnet-pool-') && [ "$(wc -l <<<"$leases")" -ge "$NODES" ]; do
    [ $SECONDS -lt $deadline ] || die "castnet's agents claimed no pool index on some node after 120s"
    sleep 1
  done
  base=${CLUSTER_CIDR%.0.0/16}
  while read -r name holder; do
    n=${name#castnet-pool-} i=${holder#node-}
    ip route replace "$base.$n.0/24" via "$(node_ip "$i")" dev "$BRIDGE"
  done <<<"$leases"
}

# The cluster DNS (test/e2e/coredns.yaml), when its image was built (`make e2e-tools` builds CoreDNS).
install_coredns() {
  grep -q '/coredns:' <<<"$1" || return 0
  kctl apply -f "$repo/test/e2e/coredns.yaml" >/dev/null
}

wait_nodes_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT)) i
  for i in $(seq 1 "$NODES"); do
    until [ "$(kctl get node "$(node_name "$i")" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; do
      pid_alive "$(node_dir "$i")/kubelet.pid" ||
        die "kubelet of $(node_name "$i") exited:"$'\n'"$(log_tail "$(node_dir "$i")/kubelet.log")"
      [ $SECONDS -lt $deadline ] || die "$(node_name "$i") not Ready after ${READY_TIMEOUT}s (see $(node_dir "$i")/kubelet.log)"
      sleep 1
    done
  done
}

# ---- teardown ---------------------------------------------------------------------------------

# Every process whose mount namespace is node I's, and all their descendants (containers).
node_processes() {
  local i=$1 want pid roots=()
  want=$(stat -L -c %i "$(node_dir "$i")/mnt" 2>/dev/null) || return 0
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    [ "$(stat -L -c %i "/proc/$pid/ns/mnt" 2>/dev/null)" = "$want" ] && roots+=("$pid")
  done
  [ ${#roots[@]} -gt 0 ] || return 0
  ps -eo pid=,ppid= | awk -v roots="${roots[*]}" '
    BEGIN { n = split(roots, r, " "); for (k = 1; k <= n; k++) mark[r[k]] = 1 }
    { parent[$1] = $2 }
    END {
      changed = 1
      while (changed) { changed = 0; for (p in parent) if (!(p in mark) && (parent[p] in mark)) { mark[p] = 1; changed = 1 } }
      for (p in mark) print p
    }'
}

stop_node() {
  local i=$1 dir ns pids
  dir=$(node_dir "$i") ns=$(node_ns "$i")
  stop_pidfile "$dir/kubelet.pid"
  stop_pidfile "$dir/kube-proxy.pid"
  stop_pidfile "$dir/containerd.pid"
  pids=$(node_processes "$i" | tr '\n' ' ')
  # shellcheck disable=SC2086
  [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  if mountpoint -q "$dir/mnt"; then umount "$dir/mnt"; fi
  if [ -e "/run/netns/$ns" ]; then ip netns del "$ns"; fi
  ip link del "cncl$i" 2>/dev/null || true
}

# Cgroups that runc left behind for containers killed above (cgroupsPerQOS is off, so they sit at
# each hierarchy's root as <container id> directories that belonged to these nodes).
remove_leftover_cgroups() {
  local ids=$1 id d
  for id in $ids; do
    for d in /sys/fs/cgroup/*/"$id" /sys/fs/cgroup/*/*/"$id"; do
      if [ -d "$d" ]; then rmdir "$d" 2>/dev/null || true; fi
    done
  done
}

cmd_down() {
  local i ids=""
  for i in $(seq 1 "$NODES"); do
    ids+=" $(ls "$(node_dir "$i")/root/run/containerd/io.containerd.runtime.v2.task/k8s.io" 2>/dev/null | tr '\n' ' ' || true)"
  done
  for i in $(seq 1 "$NODES"); do stop_node "$i"; done
  for f in scheduler controller-manager apiserver etcd; do stop_pidfile "$DIR/$f.pid"; done
  remove_leftover_cgroups "$ids"
  ip link del "$BRIDGE" 2>/dev/null || true
  if findmnt -n "$DIR/nodes" >/dev/null 2>&1; then umount "$DIR/nodes"; fi
  rm -rf "$DIR"
  if [ "$(cat "$OWNER_FILE" 2>/dev/null)" = "$CACHE" ]; then rm -f "$OWNER_FILE"; fi
  log "down"
}

# A cluster another checkout left running (an earlier clone, CI's) holds the bridge, the node
# namespaces and the ports: stop it with its own state directory first.
stop_foreign_cluster() {
  local other
  other=$(cat "$OWNER_FILE" 2>/dev/null) || return 0
  [ "$other" != "$CACHE" ] || return 0
  if [ -d "$other/cluster" ]; then
    log "stopping the cluster another checkout started ($other)"
    CASTNET_CACHE=$other "$0" down
  else
    # Its checkout is gone: remove what is left of it by the fixed names.
    local ns pids
    for ns in $(ip netns list | awk '/^cncl-node-/ {print $1}'); do
      pids=$(ip netns pids "$ns" | tr '\n' ' ')
      # shellcheck disable=SC2086
      [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
  fi
  rm -f "$OWNER_FILE"
}

cmd_up() {
  need_binaries
  stop_foreign_cluster
  echo "$CACHE" >"$OWNER_FILE"
  mkdir -p "$DIR/logs" "$DIR/nodes"
  ensure_pki
  kubeconfig "$DIR/kubeconfig" admin
  ensure_bridge
  start_etcd
  start_apiserver
  wait_apiserver
  start_controller_manager
  start_scheduler
  local i images
  [ ! -f "$DIR/cni" ] || CNI=$(cat "$DIR/cni")
  echo "$CNI" >"$DIR/cni"
  for i in $(seq 1 "$NODES"); do start_runtime "$i"; done
  images=$(cmd_images)
  for i in $(seq 1 "$NODES"); do start_kubelet "$i"; done
  if [ "$CNI" = castnet ]; then install_castnet_primary "$images"; else ensure_pod_network; fi
  install_coredns "$images"
  wait_nodes_ready
  log "up: $NODES nodes Ready, pod network $CNI; KUBECONFIG=$DIR/kubeconfig"
}

cmd_status() {
  readyz || return 1
  local i
  for i in $(seq 1 "$NODES"); do
    [ "$(kctl get node "$(node_name "$i")" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] || return 1
  done
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) echo "KUBECONFIG=$DIR/kubeconfig" ;;
  nodes) for i in $(seq 1 "$NODES"); do node_name "$i"; done ;;
  node-exec)
    shift
    i=${1#node-}
    shift
    node_exec "$i" "$@"
    ;;
  images) cmd_images ;;
  *)
    echo "usage: $0 up|down|status|env|nodes|images|node-exec NODE CMD..." >&2
    exit 2
    ;;
esac
