#!/usr/bin/env bash
# Shared helpers for the kind e2e scripts (sourced, not run).
# shellcheck disable=SC2034  # variables are used by the scripts that source this file
set -euo pipefail

KIND_CLUSTER="${KIND_CLUSTER:-gingham}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TAG="${GINGHAM_TAG:-0.1.0}"
AGENT_IMAGE="ghcr.io/gingham/node-agent:${TAG}"
OPERATOR_IMAGE="ghcr.io/gingham/operator:${TAG}"
TEST_NS="gingham-e2e"
CTX="kind-${KIND_CLUSTER}"

log() { printf '== %s\n' "$*" >&2; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || fail "$tool is not installed (kind e2e needs docker, kind and kubectl)"
    done
}
k() { kubectl --context "$CTX" "$@"; }
