#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kubectl (or the components named in
# KUBE_BINARIES) from the Go module proxy into bin/k8s/<version>/, the
# BinaryAssetsDirectory envtest and `make dev` use. A warm run finds the
# binaries and builds nothing. Nothing is downloaded except Go modules.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${ENVTEST_ASSETS:-$root/bin/k8s/$KUBE_VERSION}
src=$root/hack/controlplane

mkdir -p "$out"
# Stamped so that `kubectl version` and a chart's kubeVersion constraint work.
commit=$(printf '%s' "$KUBE_VERSION" | sha1sum | cut -c1-40)
minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=$commit -X $pkg.buildDate=2026-01-01T00:00:00Z"
done

for bin in ${KUBE_BINARIES:-etcd kube-apiserver kubectl}; do
  if [ -x "$out/$bin" ]; then continue; fi
  echo "building $bin $KUBE_VERSION into $out (first time only)" >&2
  (cd "$src" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w $stamp" -o "$out/$bin.tmp" "./cmd/$bin")
  mv "$out/$bin.tmp" "$out/$bin"
done
echo "$out"
