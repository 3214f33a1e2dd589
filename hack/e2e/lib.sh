# Shared settings of the e2e single-node cluster. Sourced, not run.
# Everything the cluster makes lives under $E2E_STATE; every process it
# starts has its PID in $E2E_STATE/pids/<name>.pid and is stopped by that PID.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
K8S_BIN=${K8S_BIN:-$root/bin/k8s/$KUBE_VERSION}
E2E_STATE=${E2E_STATE:-$root/bin/e2e}
NODE_NAME=${NODE_NAME:-tenantauth-e2e}
# The operator image the e2e builds, imports and installs.
TENANTAUTH_IMAGE=${TENANTAUTH_IMAGE:-localhost/tenantauth:e2e}

# Cluster networks. Neither may ever be routed off the machine: the pod CIDR
# gets a blackhole route (the bridge's /24 is more specific) and the service
# CIDR is routed onto the pod bridge, made before any pod exists. A
# blackhole would do for pods' traffic, which kube-proxy DNATs before
# routing, but the host's own connections (the apiserver calling a webhook
# Service) are routed before the OUTPUT DNAT, and connect() to a blackholed
# address fails at once. (This kernel has no dummy interfaces.) The guard
# chain rejects whatever is still addressed to a service IP after DNAT.
SERVICE_CIDR=${SERVICE_CIDR:-10.97.0.0/16}
KUBERNETES_SVC_IP=${KUBERNETES_SVC_IP:-10.97.0.1}
POD_CIDR=${POD_CIDR:-10.245.0.0/16}
POD_SUBNET=${POD_SUBNET:-10.245.0.0/24}
BRIDGE=${BRIDGE:-cni0}
GUARD_CHAIN=TENANTAUTH-E2E-GUARD

# Ports away from the defaults, so a developer's own cluster or `make dev`
# is not disturbed. Everything but the kubelet API listens on loopback.
ETCD_PORT=12379
ETCD_PEER_PORT=12380
APISERVER_PORT=16443
KUBELET_PORT=11250
KUBELET_HEALTHZ_PORT=11248
KCM_PORT=11257
SCHEDULER_PORT=11259
PROXY_METRICS_PORT=11249
PROXY_HEALTHZ_PORT=11256

PKI=$E2E_STATE/pki
PIDS=$E2E_STATE/pids
LOGS=$E2E_STATE/logs
RUN=$E2E_STATE/run
CONTAINERD_SOCK=$RUN/containerd.sock
KUBECONFIG_ADMIN=$E2E_STATE/kubeconfig
CGROUP_ROOT=/tenantauth-e2e

log() { printf '%s e2e: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# node_ip prints the machine's own primary IPv4 address. The kubelet and the
# apiserver's endpoint need one that is not loopback; traffic to it never
# leaves the machine.
node_ip() {
  ip -4 -o addr show scope global | awk '$2 != "'"$BRIDGE"'" {split($4, a, "/"); print a[1]; exit}'
}

# iptables_state CMD prints the chains and rules of every table, sorted,
# without packet counters and without the built-in chains (which appear
# once a table is first used): the baseline teardown is compared against.
iptables_state() {
  { "$1-save" 2>/dev/null || true; } | { grep -E '^(:|-A)' || true; } | sed 's/ \[[0-9:]*\]$//' |
    { grep -vE '^:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ' || true; } | sort
}

# nft_tables prints "family name" of every nftables table (iptables-nft
# makes the tables on first use; teardown drops the ones it made, if empty).
nft_tables() {
  command -v nft >/dev/null || return 0
  { nft list tables 2>/dev/null || true; } | awk '{print $2, $3}' | sort
}

kc() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
ctr_() { ctr --address "$CONTAINERD_SOCK" "$@"; }

# start NAME CMD... runs CMD in the background with its output in
# $LOGS/NAME.log and records its PID.
start() {
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
}

# alive PID is true while PID runs. A zombie counts as gone: the machine's
# init reaps orphans only every second or so.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# stop NAME sends SIGTERM to the recorded PID, waits up to 15 s, then
# SIGKILL. Only that PID is ever signalled.
stop() {
  local name=$1 f=$PIDS/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      log "$name (pid $pid) ignored SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$f"
}

running() { local f=$PIDS/$1.pid; [ -f "$f" ] && alive "$(cat "$f")"; }

# wait_for DESCRIPTION SECONDS CMD... retries CMD every half second.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${secs}s waiting for $what"
    sleep 0.5
  done
}
