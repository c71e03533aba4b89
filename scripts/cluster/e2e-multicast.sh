#!/usr/bin/env bash
# castnet's own check beside Kubernetes' e2e tests (make e2e-primary): multicast across nodes on the
# primary network. A receiver pod on every node joins 239.10.0.1 by IGMP (socat's
# ip-add-membership on eth0, the cluster network), a sender pod on node 1 sends 20 numbered
# datagrams, and every receiver must read each exactly once. Prints one JSON test record
# {name, result, reason} on stdout; exits non-zero when it failed.
# Usage: scripts/cluster/e2e-multicast.sh   (the cluster up with CASTNET_CLUSTER_CNI=castnet)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CACHE=${CASTNET_CACHE:-$repo/.cache}
NAME="castnet: multicast across nodes on the primary network: IGMP members on every node receive each datagram exactly once"
GROUP=239.10.0.1
PORT=5001
COUNT=20
NS=castnet-e2e-mc-$$
kctl() { "$CACHE/bin/kubectl" --kubeconfig "$CACHE/cluster/kubeconfig" "$@"; }
result() { jq -cn --arg name "$NAME" --arg result "$1" --arg reason "$2" '{name: $name, result: $result, reason: $reason}'; }
trap 'kctl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true' EXIT

image=$(awk '$1 ~ /\/workload:/ { print $1 }' <<<"$("$here/cluster.sh" images 2>/dev/null)")
mapfile -t nodes < <("$here/cluster.sh" nodes)
kctl create namespace "$NS" >/dev/null
pod() {
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: { name: $1, namespace: $NS }
spec:
  nodeName: $2
  terminationGracePeriodSeconds: 0
  containers:
    - name: w
      image: $image
      command: [sh, -c, "$3"]
---
YAML
}
{
  cat <<YAML
apiVersion: castnet.io/v1alpha1
kind: MulticastGroup
metadata: { name: mc, namespace: $NS }
spec: { network: default, address: $GROUP }
---
YAML
  for n in "${nodes[@]}"; do
    pod "rx-$n" "$n" "ip=\$(ip -4 -o addr show eth0 | awk '{print \$4}' | cut -d/ -f1); exec socat -u UDP4-RECV:$PORT,reuseaddr,ip-add-membership=$GROUP:\$ip OPEN:/tmp/rx,creat,append"
  done
  pod tx "${nodes[0]}" "sleep infinity"
} | kctl apply -f - >/dev/null
kctl wait -n "$NS" --for=condition=Ready pod --all --timeout=120s >/dev/null

send() {
  kctl exec -n "$NS" tx -- sh -c "ip=\$(ip -4 -o addr show eth0 | awk '{print \$4}' | cut -d/ -f1); \
    for m in $*; do echo \$m | socat -u - UDP4-DATAGRAM:$GROUP:$PORT,bind=\$ip,ip-multicast-if=\$ip,ip-multicast-loop=0,ip-multicast-ttl=4; done"
}
rx() { kctl exec -n "$NS" "rx-$1" -- sh -c 'cat /tmp/rx 2>/dev/null || true'; }

# Warm-up until every receiver got one (the joins reach every node's directory), then the count.
deadline=$((SECONDS + 120)) k=0
all_warm() {
  local n
  for n in "${nodes[@]}"; do rx "$n" | grep -q '^warmup' || return 1; done
}
until all_warm; do
  [ $SECONDS -lt $deadline ] || { result failed "not every receiver got a warm-up datagram within 120 s"; exit 1; }
  send "warmup-$((k++))"
  sleep 1
done
send $(seq -f "msg-%g" 1 "$COUNT")
sleep 2
bad=""
for n in "${nodes[@]}"; do
  got=$(rx "$n" | grep '^msg-' | sort | uniq -c | awk '$1 != 1 { d++ } END { print NR - 0, d + 0 }')
  read -r distinct dup <<<"$got"
  [ "$distinct" = "$COUNT" ] && [ "$dup" = 0 ] || bad+="$n: $distinct of $COUNT distinct, $dup duplicated; "
done
if [ -n "$bad" ]; then result failed "${bad%; }"; exit 1; fi
result passed ""
