#!/usr/bin/env bash
# Builds container images as tarballs without docker (hack/image) and, with
# "import", loads them into the e2e cluster's containerd.
#   hack/e2e/images.sh <pause|echo|tenantauth|all> [import]
# Tarballs land in bin/images/. TENANTAUTH_IMAGE names the operator image.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

what=${1:-all}
action=${2:-build}
out=$root/bin/images
mkdir -p "$out"

tool=$root/bin/image-tool
build_tool() {
  (cd "$root/hack/image" && CGO_ENABLED=0 go build -trimpath -o "$tool" .)
}

# helper NAME builds a static helper binary of the hack/image module.
helper() {
  (cd "$root/hack/image" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$root/bin/$1" "./$1")
}

image() {
  case $1 in
    pause)
      helper pause
      "$tool" -binary "$root/bin/pause" -ref localhost/pause:latest -user 65535:65535 -ca-file "" -out "$out/pause.tar" >/dev/null ;;
    echo)
      helper echo
      "$tool" -binary "$root/bin/echo" -ref localhost/echo:e2e -ca-file "" -out "$out/echo.tar" >/dev/null ;;
    tenantauth)
      (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$root/bin/tenantauth" .)
      "$tool" -binary "$root/bin/tenantauth" -ref "$TENANTAUTH_IMAGE" -out "$out/tenantauth.tar" \
        -labels "org.opencontainers.image.source=https://github.com/tenantauth/tenantauth" >/dev/null ;;
    *) die "unknown image $1" ;;
  esac
  if [ "$action" = import ]; then
    ctr_ -n k8s.io images import "$out/$1.tar" >/dev/null
  fi
}

build_tool
if [ "$what" = all ]; then
  for i in pause echo tenantauth; do image "$i"; done
else
  image "$what"
fi
