#!/usr/bin/env bash
# Creates the kind cluster with the default CNI disabled, builds and loads gingham's images,
# installs gingham with `kubectl apply -k config/` and waits until every node is Ready.
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

log "installing gingham"
k apply -k "$REPO_ROOT/config/"
k wait --for=condition=Established crd --all --timeout=60s
k apply -k "$REPO_ROOT/config/samples/"
k -n gingham-system rollout status deployment --timeout=300s
k -n gingham-system rollout status daemonset --timeout=300s
k wait --for=condition=Ready node --all --timeout=300s
k get nodenetworks -o wide
log "gingham is up on kind cluster $KIND_CLUSTER"
