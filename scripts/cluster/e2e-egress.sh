#!/usr/bin/env bash
# castnet's own check beside Kubernetes' e2e tests (make e2e-primary): pods reach beyond the cluster
# network. A host on the underlay that is no node (a network namespace of this script's on the
# cluster's underlay bridge) has no route to the pod subnets, as the Internet has none. A pod on
# every node connects to a TCP service there, which answers with the address it saw the connection
# come from: it must answer every pod, and see the pod's node's address (masquerade), never the
# pod's own. Prints one JSON test record {name, result, reason} on stdout; exits non-zero when it failed.
# Usage: scripts/cluster/e2e-egress.sh   (the cluster up with CASTNET_CLUSTER_CNI=castnet)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CACHE=${CASTNET_CACHE:-$repo/.cache}
NAME="castnet: pods reach a host beyond the cluster network, masqueraded to their node's address"
BRIDGE=cncl0
EXTERNAL=198.19.240.250
PORT=7070
NS=castnet-e2e-egress-$$
HOST=cn-e2e-ext-$$
kctl() { "$CACHE/bin/kubectl" --kubeconfig "$CACHE/cluster/kubeconfig" "$@"; }
result() { jq -cn --arg name "$NAME" --arg result "$1" --arg reason "$2" '{name: $name, result: $result, reason: $reason}'; }
cleanup() {
  kctl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  [ -z "${server:-}" ] || kill "$server" 2>/dev/null || true
  ip netns del "$HOST" 2>/dev/null || true
  ip link del "${HOST:0:12}h" 2>/dev/null || true
}
trap cleanup EXIT

# The external host: its own namespace on the underlay bridge, with no route to any pod subnet.
ip netns add "$HOST"
ip link add "${HOST:0:12}h" type veth peer name eth0 netns "$HOST"
ip link set "${HOST:0:12}h" master "$BRIDGE" up
ip -n "$HOST" link set lo up
ip -n "$HOST" link set eth0 up
ip -n "$HOST" addr add "$EXTERNAL/24" dev eth0
ip netns exec "$HOST" socat "TCP-LISTEN:$PORT,fork,reuseaddr" 'SYSTEM:echo $SOCAT_PEERADDR' &
server=$!

image=$(awk '$1 ~ /\/workload:/ { print $1 }' <<<"$("$here/cluster.sh" images 2>/dev/null)")
mapfile -t nodes < <("$here/cluster.sh" nodes)
kctl create namespace "$NS" >/dev/null
for n in "${nodes[@]}"; do
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: { name: c-$n, namespace: $NS }
spec:
  nodeName: $n
  terminationGracePeriodSeconds: 0
  containers: [{ name: w, image: $image, command: [sleep, infinity] }]
---
YAML
done | kctl apply -f - >/dev/null
kctl wait -n "$NS" --for=condition=Ready pod --all --timeout=120s >/dev/null

bad=""
for n in "${nodes[@]}"; do
  node_ip=$(kctl get node "$n" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
  pod_ip=$(kctl get pod -n "$NS" "c-$n" -o jsonpath='{.status.podIP}')
  seen=$(kctl exec -n "$NS" "c-$n" -- socat -T 5 - "TCP:$EXTERNAL:$PORT,connect-timeout=5" </dev/null 2>&1 || true)
  [ "$seen" = "$node_ip" ] || bad+="pod $pod_ip on $n: the host saw '${seen}', want its node's $node_ip; "
done
if [ -n "$bad" ]; then result failed "${bad%; }"; exit 1; fi
result passed ""
