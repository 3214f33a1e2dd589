#!/usr/bin/env bash
# Builds the node and controller components the e2e cluster needs
# (kube-controller-manager, kube-scheduler, kubelet, kube-proxy) from the Go
# module proxy into bin/k8s/<version>/, next to the etcd, kube-apiserver and
# kubectl that hack/controlplane.sh builds. Kept apart from that script so
# `make test` never pays for them. One build at a time: the machine is shared.
# A warm run builds nothing. Prints the output folder.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${ENVTEST_ASSETS:-$root/bin/k8s/$KUBE_VERSION}

# The shared script builds them all, with the version stamps kubectl and
# a chart's kubeVersion check need.
KUBE_VERSION=$KUBE_VERSION ENVTEST_ASSETS=$out "$root/hack/controlplane.sh" >/dev/null
KUBE_VERSION=$KUBE_VERSION ENVTEST_ASSETS=$out \
  KUBE_BINARIES="kube-controller-manager kube-scheduler kubelet kube-proxy" "$root/hack/controlplane.sh"
