#!/usr/bin/env bash
# Deletes the kind cluster the e2e scripts created.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need kind
kind delete cluster --name "$KIND_CLUSTER"
