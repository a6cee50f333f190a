#!/usr/bin/env bash
# Creates the kind cluster with the default CNI disabled, builds and loads gingham's images,
# installs gingham with `kubectl apply -k config/` and waits until every node is Ready and every
# agent is connecting or streaming from the operator's stream (TLS, TokenReview).
# Usage: e2e/kind/up.sh        (needs docker, kind, kubectl and internet)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need docker kind kubectl

if ! kind get clusters | grep -qx "$KIND_CLUSTER"; then
    log "creating kind cluster $KIND_CLUSTER"
    kind create cluster --name "$KIND_CLUSTER" --config "$REPO_ROOT/e2e/kind/kind-config.yaml" --wait 0s
fi

log "building images"
docker build -f "$REPO_ROOT/config/images/node-agent.Dockerfile" -t "$AGENT_IMAGE" "$REPO_ROOT"
docker build -f "$REPO_ROOT/config/images/operator.Dockerfile" -t "$OPERATOR_IMAGE" "$REPO_ROOT"
log "loading images into kind"
kind load docker-image --name "$KIND_CLUSTER" "$AGENT_IMAGE" "$OPERATOR_IMAGE"

# The network-policy-api CRDs are not gingham's: kubernetes-sigs/network-policy-api publishes them
# (docs/cluster-network-policy.md). Installed first, so that the operator finds them at start.
NETPOL_API=https://raw.githubusercontent.com/kubernetes-sigs/network-policy-api
log "installing the network-policy-api CRDs (ClusterNetworkPolicy v0.2.0, ANP/BANP v0.1.7)"
k apply -f "$NETPOL_API/v0.2.0/config/crd/experimental/policy.networking.k8s.io_clusternetworkpolicies.yaml"
k apply -f "$NETPOL_API/v0.1.7/config/crd/experimental/policy.networking.k8s.io_adminnetworkpolicies.yaml"
k apply -f "$NETPOL_API/v0.1.7/config/crd/experimental/policy.networking.k8s.io_baselineadminnetworkpolicies.yaml"

log "installing gingham"
k apply -k "$REPO_ROOT/config/"
k wait --for=condition=Established crd --all --timeout=60s
k apply -k "$REPO_ROOT/config/samples/"
k -n gingham-system rollout status deployment --timeout=300s
k -n gingham-system rollout status daemonset --timeout=300s
k wait --for=condition=Ready node --all --timeout=300s

# The agents' stream over TLS with TokenReview (docs/stream.md). An agent the stream refuses (its
# token, its ServiceAccount, the certificate) reports Disconnected with the reason; so does one whose
# CA the kubelet has not mounted yet, which on a first install takes up to a couple of minutes.
stream_states() {
    k get nodenetworks -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.status.stream.state}{"\t"}{.status.stream.reason}{"\n"}{end}'
}
log "waiting for every agent to be connecting or streaming"
deadline=$((SECONDS + 240))
until states="$(stream_states)" && [ -n "$states" ] && ! grep -Evq $'\t(Connecting|Streaming)\t' <<<"$states"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        printf '%s\n' "$states" >&2
        fail "an agent is not on the stream after 240 s (its state and reason are above)"
    fi
    sleep 5
done
printf '%s\n' "$states" >&2
k get nodenetworks -o wide
log "gingham is up on kind cluster $KIND_CLUSTER"
