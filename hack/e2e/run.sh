#!/usr/bin/env bash
# make e2e: builds what the e2e needs, brings up the single-node cluster,
# imports the images, runs the Go e2e test (hack/e2e/*_test.go, build tag
# e2e) and always tears the cluster down, checking that nothing is left.
#
#   HELM=bin/helm-v3.22.0 hack/e2e/run.sh
#
# E2E_KEEP=1 leaves the cluster up afterwards (hack/e2e/cluster-down.sh
# removes it); E2E_CLUSTER_ONLY=1 checks only the cluster; E2E_RUN=<regexp>
# selects subtests. The figures the test measures are printed at the end
# and kept in bin/e2e/metrics.txt.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HELM=${HELM:?HELM must name the helm binary (make e2e sets it)}
[ "$(id -u)" = 0 ] || die "must run as root (it runs a kubelet and containerd)"
t0=$SECONDS

"$root/hack/e2e/deps.sh"
log "building the Kubernetes components (first time only)"
"$root/hack/e2e/build-components.sh" >/dev/null
log "building images"
if [ "${E2E_CLUSTER_ONLY:-0}" = 1 ]; then
  "$root/hack/e2e/images.sh" pause
  "$root/hack/e2e/images.sh" echo
else
  "$root/hack/e2e/images.sh" all
fi
build_done=$SECONDS

# Leftovers of an interrupted run go first.
if [ -d "$PIDS" ] && ls "$PIDS"/*.pid >/dev/null 2>&1; then
  log "removing the cluster of an earlier run"
  "$root/hack/e2e/cluster-down.sh"
fi

down() {
  rc=$?
  if [ "${E2E_KEEP:-0}" = 1 ]; then
    log "E2E_KEEP=1: cluster left up; KUBECONFIG=$KUBECONFIG_ADMIN; remove it with hack/e2e/cluster-down.sh"
  else
    "$root/hack/e2e/cluster-down.sh" || rc=1
  fi
  exit $rc
}
trap down EXIT
trap 'exit 130' INT TERM

up_start=$SECONDS
"$root/hack/e2e/cluster-up.sh" >/dev/null
for img in echo tenantauth; do
  [ -f "$root/bin/images/$img.tar" ] && ctr_ -n k8s.io images import "$root/bin/images/$img.tar" >/dev/null
done
up_done=$SECONDS

samples=""
[ -d "$root/config/samples" ] && samples=$root/config/samples
mkdir -p "$E2E_STATE"
set +e
(
  cd "$root"
  KUBECONFIG=$KUBECONFIG_ADMIN \
  E2E_KUBECTL=$K8S_BIN/kubectl \
  E2E_HELM=$HELM \
  E2E_CHART=${E2E_CHART:-$root/charts/tenantauth} \
  E2E_SAMPLES=$samples \
  E2E_IMAGE_REPOSITORY=${TENANTAUTH_IMAGE%:*} \
  E2E_IMAGE_TAG=${TENANTAUTH_IMAGE##*:} \
  E2E_CONTAINERD_ADDRESS=$CONTAINERD_SOCK \
  go test -tags e2e -count=1 -v -timeout 25m -run "TestE2E${E2E_RUN:+/$E2E_RUN}" ./hack/e2e/
) 2>&1 | tee "$E2E_STATE/test.log"
rc=${PIPESTATUS[0]}
set -e
test_done=$SECONDS

{
  grep '^E2E-METRIC ' "$E2E_STATE/test.log" | cut -d' ' -f2- || true
  echo "build_and_images $((build_done - t0)) s"
  echo "cluster_up_and_image_import $((up_done - up_start)) s"
  echo "tests $((test_done - up_done)) s"
} >"$E2E_STATE/metrics.txt"
log "figures:"
sed 's/^/  /' "$E2E_STATE/metrics.txt" >&2
[ "$rc" = 0 ] || die "e2e test failed (log: $E2E_STATE/test.log)"
log "e2e passed in $((SECONDS - t0))s (before teardown)"
