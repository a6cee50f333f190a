#!/usr/bin/env bash
# Pod-to-pod connectivity across nodes in each encapsulation mode, switched with
# `kubectl patch ippool`, then a NetworkPolicy case. Run after up.sh.
# Usage: e2e/kind/connectivity.sh [MODE...]   (default: Never VXLAN-Always VXLAN-CrossSubnet IPIP-Always IPIP-CrossSubnet)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need kubectl

POOL="${GINGHAM_POOL:-default-ipv4-ippool}"
MODES=("$@")
if [ ${#MODES[@]} -eq 0 ]; then
    MODES=(Never VXLAN-Always VXLAN-CrossSubnet IPIP-Always IPIP-CrossSubnet)
fi

deploy_pods() {
    k create namespace "$TEST_NS" --dry-run=client -o yaml | k apply -f -
    local node i=0
    for node in $(k get nodes -o jsonpath='{.items[*].metadata.name}'); do
        i=$((i + 1))
        k -n "$TEST_NS" apply -f - <<POD
apiVersion: v1
kind: Pod
metadata: {name: p$i, labels: {app: p, idx: "p$i"}}
spec:
  nodeName: $node
  tolerations: [{operator: Exists}]
  containers:
    - name: main
      image: busybox:1.36
      command: [sh, -c, "httpd -f -p 80 -h /tmp"]
      ports: [{name: http, containerPort: 80}]
POD
    done
    k -n "$TEST_NS" wait --for=condition=Ready pod --all --timeout=180s
}

pods() { k -n "$TEST_NS" get pods -o jsonpath='{range .items[*]}{.metadata.name} {.status.podIP}{"\n"}{end}'; }

# expect_matrix ok|blocked: every pod pings (and wgets) every other pod.
expect_matrix() {
    local want="$1" failures=0 from to ip
    while read -r from _; do
        while read -r to ip; do
            [ "$from" = "$to" ] && continue
            if k -n "$TEST_NS" exec "$from" -- wget -q -T 2 -O /dev/null "http://$ip/" 2>/dev/null; then
                got=ok
            else
                got=blocked
            fi
            if [ "$got" != "$want" ]; then
                echo "  $from -> $to ($ip): expected $want, got $got" >&2
                failures=$((failures + 1))
            fi
        done < <(pods)
    done < <(pods)
    [ "$failures" -eq 0 ]
}

set_mode() { # set_mode Never | VXLAN-Always | IPIP-CrossSubnet ...
    local ipip=Never vxlan=Never
    case "$1" in
        Never) ;;
        VXLAN-*) vxlan="${1#VXLAN-}" ;;
        IPIP-*) ipip="${1#IPIP-}" ;;
        *) fail "unknown mode $1" ;;
    esac
    log "ippool $POOL: ipipMode=$ipip vxlanMode=$vxlan"
    k patch ippool "$POOL" --type merge -p "{\"spec\":{\"ipipMode\":\"$ipip\",\"vxlanMode\":\"$vxlan\"}}"
    # Every node applies the new spec: Ready with the latest generation.
    k wait --for=condition=Ready nodenetwork --all --timeout=120s
    sleep 3
}

deploy_pods
for mode in "${MODES[@]}"; do
    set_mode "$mode"
    expect_matrix ok || fail "pod-to-pod connectivity in mode $mode"
    log "mode $mode: every pod reaches every pod"
done

log "NetworkPolicy: default deny ingress in $TEST_NS"
k -n "$TEST_NS" apply -f - <<'POLICY'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress}
spec:
  podSelector: {}
  policyTypes: [Ingress]
POLICY
sleep 5
expect_matrix blocked || fail "default deny ingress must block pod-to-pod traffic"
log "NetworkPolicy: allow http from app=p"
k -n "$TEST_NS" apply -f - <<'POLICY'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-http}
spec:
  podSelector: {matchLabels: {app: p}}
  ingress: [{from: [{podSelector: {matchLabels: {app: p}}}], ports: [{port: http}]}]
POLICY
sleep 5
expect_matrix ok || fail "allow by pod selector and named port"
k -n "$TEST_NS" delete networkpolicy deny-ingress allow-http
set_mode VXLAN-CrossSubnet
k delete namespace "$TEST_NS" --wait=false
log "PASS: kind connectivity in ${MODES[*]} and the NetworkPolicy case"
