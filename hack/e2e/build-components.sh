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
src=$root/hack/controlplane

# etcd, kube-apiserver and kubectl come from the shared script.
KUBE_VERSION=$KUBE_VERSION ENVTEST_ASSETS=$out "$root/hack/controlplane.sh" >/dev/null

# The same stamps as hack/controlplane.sh: without them the version reads
# v0.0.0-master and `kubectl version` and chart kubeVersion checks fail.
commit=$(printf '%s' "$KUBE_VERSION" | sha1sum | cut -c1-40)
minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=$commit -X $pkg.buildDate=2026-01-01T00:00:00Z"
done

for bin in kube-controller-manager kube-scheduler kubelet kube-proxy; do
  if [ -x "$out/$bin" ]; then continue; fi
  echo "building $bin $KUBE_VERSION into $out (first time only, minutes)" >&2
  (cd "$src" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w $stamp" -o "$out/$bin.tmp" "./cmd/$bin")
  mv "$out/$bin.tmp" "$out/$bin"
done
echo "$out"
