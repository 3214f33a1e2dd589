#!/usr/bin/env bash
# Tears the e2e cluster down and proves nothing is left: no process, mount,
# network namespace, interface, route or iptables rule of it. Safe to run on
# a half-started cluster and to run twice. Every process is stopped by the
# PID recorded when it was started (containerd's shims by the PID files
# containerd keeps for them); nothing is killed by name.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "must run as root"
t0=$SECONDS

# 1. No controller may replace the pods that are about to go.
stop kube-controller-manager
stop kube-scheduler

# 2. Delete every pod while the kubelet still runs, so it calls CNI DEL.
if running kube-apiserver && running kubelet; then
  kc --request-timeout=10s delete pods --all --all-namespaces --grace-period=2 --wait=false >/dev/null 2>&1 || true
  deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ]; do
    n=$(kc --request-timeout=5s get pods -A --no-headers 2>/dev/null | wc -l)
    t=$(ctr_ -n k8s.io tasks ls -q 2>/dev/null | wc -l)
    [ "$n" = 0 ] && [ "$t" = 0 ] && break
    sleep 0.5
  done
fi

# 3.
stop kube-proxy
stop kubelet

# 4. Whatever containers are still there.
if running containerd; then
  for id in $(ctr_ -n k8s.io tasks ls -q 2>/dev/null); do
    ctr_ -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
  sleep 0.5
  for id in $(ctr_ -n k8s.io tasks ls -q 2>/dev/null); do
    ctr_ -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true
  done
  for id in $(ctr_ -n k8s.io containers ls -q 2>/dev/null); do
    ctr_ -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
  done
fi

# 5.
stop kube-apiserver
stop etcd
stop containerd
# A shim outlives containerd only when its task survived step 4.
for f in "$E2E_STATE"/containerd/state/io.containerd.runtime.v2.task/*/*/shim.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if alive "$pid"; then
    log "shim pid $pid ($f) still running; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
done

# 6. Mounts under the state folder, deepest first, and pod network namespaces.
umount_state() {
  awk -v s="$E2E_STATE/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done
}
umount_state
umount_state
if [ -f "$E2E_STATE/baseline/netns" ]; then
  for ns in $(ls /run/netns 2>/dev/null | grep '^cni-' || true); do
    grep -qx "$ns" "$E2E_STATE/baseline/netns" && continue
    umount "/run/netns/$ns" 2>/dev/null || umount -l "/run/netns/$ns" 2>/dev/null || true
    rm -f "/run/netns/$ns"
  done
fi

# 7. iptables: what kube-proxy, the kubelet, the CNI plugins and this script added.
if [ -x "$K8S_BIN/kube-proxy" ]; then
  "$K8S_BIN/kube-proxy" --cleanup >"$LOGS/kube-proxy-cleanup.log" 2>&1 || true
fi
clean_iptables() {
  local cmd=$1 table rule chain
  for table in filter nat mangle raw; do
    "$cmd-save" -t "$table" >/dev/null 2>&1 || continue
    # Jumps from any chain into ours, then our chains themselves.
    "$cmd-save" -t "$table" | grep -E '^-A ' | grep -E -- "-j (KUBE-|CNI-|$GUARD_CHAIN)" | while read -r rule; do
      eval "$cmd -t $table ${rule/-A /-D }" 2>/dev/null || true
    done
    for chain in $("$cmd-save" -t "$table" | grep -E "^:(KUBE-|CNI-|$GUARD_CHAIN)" | cut -d' ' -f1 | tr -d :); do
      "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$cmd-save" -t "$table" | grep -E "^:(KUBE-|CNI-|$GUARD_CHAIN)" | cut -d' ' -f1 | tr -d :); do
      "$cmd" -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}
clean_iptables iptables
clean_iptables ip6tables
if [ -f "$E2E_STATE/baseline/nft" ]; then
  comm -13 "$E2E_STATE/baseline/nft" <(nft_tables) | while read -r family table; do
    # Only tables this run made and that hold no rule any more.
    if ! nft list table "$family" "$table" | grep -qvE '^[[:space:]]*(table |chain |type |policy |\}|$)'; then
      nft delete table "$family" "$table"
    fi
  done
fi

# 8. Links, routes, sysctls, CNI leftovers, cgroups.
ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
ip route del blackhole "$POD_CIDR" 2>/dev/null || true
ip route del "$SERVICE_CIDR" 2>/dev/null || true
if [ -f "$E2E_STATE/baseline/ip_forward" ]; then
  sysctl -qw net.ipv4.ip_forward="$(cat "$E2E_STATE/baseline/ip_forward")"
fi
rm -rf "$E2E_STATE/cni/ipam" /var/lib/cni/results/tenantauth-e2e-* 2>/dev/null
for h in /sys/fs/cgroup/ /sys/fs/cgroup/*/; do
  d=$h${CGROUP_ROOT#/}
  [ -d "$d" ] || continue
  find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || log "cgroup $d still has processes"
done

# 9. Prove it.
left=0
for f in "$PIDS"/*.pid; do
  [ -f "$f" ] || continue
  log "left: process $(basename "$f" .pid) pid $(cat "$f")"; left=1
done
if awk -v s="$E2E_STATE/" 'index($5, s) == 1' /proc/self/mountinfo | grep -q .; then
  log "left: mounts under $E2E_STATE"; left=1
fi
if [ -f "$E2E_STATE/baseline/links" ]; then
  extra=$(comm -13 "$E2E_STATE/baseline/links" <(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort))
  [ -z "$extra" ] || { log "left: links $extra"; left=1; }
  extra=$(comm -13 "$E2E_STATE/baseline/netns" <({ ls /run/netns 2>/dev/null || true; } | sort))
  [ -z "$extra" ] || { log "left: netns $extra"; left=1; }
  for t in iptables ip6tables; do
    extra=$(comm -13 "$E2E_STATE/baseline/$t" <(iptables_state "$t"))
    [ -z "$extra" ] || { log "left: $t rules:"; echo "$extra" >&2; left=1; }
  done
fi
if ip route show | grep -qE "($SERVICE_CIDR|$POD_CIDR)"; then log "left: routes to the cluster networks"; left=1; fi
for d in "$E2E_STATE/kubelet" "$E2E_STATE/etcd"; do
  [ -d "$d" ] && rm -rf "$d"
done
[ $left = 0 ] || die "teardown left the traces above"
log "cluster down and clean in $((SECONDS - t0))s"
