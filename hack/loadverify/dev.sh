#!/usr/bin/env bash
# Loads /verify of the real server of `make dev` (embedded kube-apiserver
# and etcd, operator, auth server on the kubernetes store, the samples)
# with hack/loadverify, beside a bare net/http handler in the same run:
#
#   hack/loadverify/dev.sh [-duration 10s -connections 64]
#
# It starts its own dev server on ADDR (default 127.0.0.1:18080) in a
# temporary state directory, signs alice in to acme through the reset flow
# for a JWT, reads the acme-ci API key with kubectl, and stops the server
# when done. Needs wrk (Debian) and the control-plane binaries in bin/k8s.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
addr=${ADDR:-127.0.0.1:18080}
base=http://$addr
state=$(mktemp -d)
kubectl=$root/bin/k8s/${KUBE_VERSION:-v1.37.2}/kubectl
# TENANTAUTH_BIN runs another build (say, the previous release) for a
# side-by-side figure.
bin=${TENANTAUTH_BIN:-$state/tenantauth}
[ -n "${TENANTAUTH_BIN:-}" ] || go build -o "$bin" .
# DEV_FLAGS adds flags to the dev server, say --pprof-addr=127.0.0.1:6060
# to profile it under the load.
# shellcheck disable=SC2086
"$bin" dev --addr "$addr" --state-dir "$state" ${DEV_FLAGS:-} >"$state/dev.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 240); do
  grep -q 'ready at' "$state/dev.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$state/dev.log" >&2; exit 1; }
  sleep 0.5
done
grep -q 'ready at' "$state/dev.log" || { echo "dev server not ready" >&2; tail -20 "$state/dev.log" >&2; exit 1; }

key=$(KUBECONFIG=$state/kubeconfig "$kubectl" -n demo get secret acme-ci -o jsonpath='{.data.api-key}' | base64 -d)
json() { curl -sf -XPOST -H 'Content-Type: application/json' -d "$2" "$base$1"; }
json /auth/forgot-password '{"email":"alice@acme.com"}' >/dev/null
token=""
for _ in $(seq 40); do
  token=$(grep -ho 'token=pr_[A-Za-z0-9._-]*' "$state"/outbox/*.eml 2>/dev/null | tail -1 | cut -d= -f2 || true)
  [ -n "$token" ] && break
  sleep 0.25
done
[ -n "$token" ] || { echo "no reset mail" >&2; exit 1; }
json /auth/reset-password "{\"token\":\"$token\",\"password\":\"loadverify passphrase\"}" >/dev/null
jwt=$(json /auth/login '{"email":"alice@acme.com","password":"loadverify passphrase","organization":"acme"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
go run ./hack/loadverify -url "$base" -jwt "$jwt" -api-key "$key" -org acme "$@"
