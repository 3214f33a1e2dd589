#!/usr/bin/env bash
# Brings up a real single-node Kubernetes cluster on this machine from parts
# built here (etcd and the Kubernetes components from the Go module proxy)
# and Debian's containerd, runc and CNI plugins. Prints the admin kubeconfig.
# hack/e2e/cluster-down.sh removes every trace of it again.
#
# Network safety: the pod CIDR gets a blackhole route and the service CIDR
# is routed onto the pod bridge, so neither can leave; pods get a
# resolv.conf that points at their own loopback, and a guard chain drops any
# pod packet that would leave through an interface other than the bridge and
# rejects any packet still addressed to a service IP after kube-proxy's DNAT.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pki.sh"

[ "$(id -u)" = 0 ] || die "must run as root"
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  [ -x "$K8S_BIN/$b" ] || die "$K8S_BIN/$b missing: run hack/e2e/build-components.sh"
done
for b in containerd containerd-shim-runc-v2 runc ctr iptables ip6tables conntrack socat; do
  command -v "$b" >/dev/null || die "$b missing: run hack/e2e/deps.sh"
done
[ -x /usr/lib/cni/bridge ] || die "CNI plugins missing: run hack/e2e/deps.sh"
for n in etcd kube-apiserver containerd kubelet; do
  running "$n" && die "$n is already running (pid $(cat "$PIDS/$n.pid")): run hack/e2e/cluster-down.sh first"
done

NODE_IP=$(node_ip)
[ -n "$NODE_IP" ] || die "no global IPv4 address for the node"
t0=$SECONDS
rm -rf "$PKI" "$PIDS" "$LOGS" "$RUN" "$E2E_STATE/cni" "$E2E_STATE/etcd" "$E2E_STATE/kubelet" "$E2E_STATE/config"
mkdir -p "$PIDS" "$LOGS" "$RUN" "$E2E_STATE/config" "$E2E_STATE/baseline" "$E2E_STATE/cni/net.d" "$E2E_STATE/cni/ipam"
echo "$NODE_IP" >"$E2E_STATE/node-ip"

# What was there before, so cluster-down.sh can prove it left nothing.
cat /proc/sys/net/ipv4/ip_forward >"$E2E_STATE/baseline/ip_forward"
ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort >"$E2E_STATE/baseline/links"
{ ls /run/netns 2>/dev/null || true; } | sort >"$E2E_STATE/baseline/netns"
for t in iptables ip6tables; do iptables_state "$t" >"$E2E_STATE/baseline/$t"; done
nft_tables >"$E2E_STATE/baseline/nft"

log "certificates for node $NODE_NAME ($NODE_IP)"
make_pki "$NODE_IP"
kubeconfig "$KUBECONFIG_ADMIN" admin
for c in controller-manager scheduler kube-proxy kubelet; do kubeconfig "$E2E_STATE/config/$c.kubeconfig" "$c"; done

log "network guards"
sysctl -qw net.ipv4.ip_forward=1
ip route replace blackhole "$POD_CIDR"
ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
ip link set "$BRIDGE" up
ip route replace "$SERVICE_CIDR" dev "$BRIDGE"
iptables -N "$GUARD_CHAIN" 2>/dev/null || iptables -F "$GUARD_CHAIN"
iptables -A "$GUARD_CHAIN" -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP
iptables -A "$GUARD_CHAIN" -d "$SERVICE_CIDR" -j REJECT
for chain in FORWARD OUTPUT; do
  iptables -C "$chain" -j "$GUARD_CHAIN" 2>/dev/null || iptables -I "$chain" 1 -j "$GUARD_CHAIN"
done
echo "nameserver 127.0.0.1" >"$E2E_STATE/config/resolv.conf"

cat >"$E2E_STATE/cni/net.d/10-tenantauth-e2e.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "tenantauth-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$E2E_STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI

log "containerd"
cat >"$E2E_STATE/config/containerd.toml" <<TOML
version = 2
root = "$E2E_STATE/containerd/root"
state = "$E2E_STATE/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$RUN/containerd-ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$E2E_STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:latest"
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$E2E_STATE/cni/net.d"
TOML
start containerd containerd --config "$E2E_STATE/config/containerd.toml"
wait_for containerd 30 ctr_ version

"$(dirname "$0")/images.sh" pause import

log "etcd and kube-apiserver"
start etcd "$K8S_BIN/etcd" --name e2e --data-dir "$E2E_STATE/etcd" --unsafe-no-fsync \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn
start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 0.0.0.0 --secure-port "$APISERVER_PORT" --advertise-address "$NODE_IP" \
  --client-ca-file "$PKI/ca.crt" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --authorization-mode Node,RBAC --allow-privileged=true \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
  --profiling=false --v 1
wait_for "kube-apiserver /readyz" 90 kc get --raw /readyz

log "controller-manager, scheduler, kube-proxy, kubelet"
start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig "$E2E_STATE/config/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$E2E_STATE/config/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$E2E_STATE/config/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
  --use-service-account-credentials=true --root-ca-file "$PKI/ca.crt" \
  --service-account-private-key-file "$PKI/sa.key" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false --v 1
start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig "$E2E_STATE/config/scheduler.kubeconfig" \
  --authentication-kubeconfig "$E2E_STATE/config/scheduler.kubeconfig" \
  --authorization-kubeconfig "$E2E_STATE/config/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --profiling=false --v 1

cat >"$E2E_STATE/config/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
clientConnection:
  kubeconfig: $E2E_STATE/config/kube-proxy.kubeconfig
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
nodePortAddresses: ["$NODE_IP/32"]
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
start kube-proxy "$K8S_BIN/kube-proxy" --config "$E2E_STATE/config/kube-proxy.yaml" --v 1

# The kubelet's pods go into their own cgroup tree, removed at teardown.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p "/sys/fs/cgroup$CGROUP_ROOT" # cgroups v2 (untested here)
else
  for h in /sys/fs/cgroup/*/; do
    [ -f "$h/cgroup.procs" ] && mkdir -p "$h${CGROUP_ROOT#/}"
  done
fi
cat >"$E2E_STATE/config/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
resolvConf: $E2E_STATE/config/resolv.conf
# No CoreDNS: pods resolve against their own loopback, so no lookup leaves.
clusterDNS: ["127.0.0.1"]
clusterDomain: cluster.local
podLogsDir: $E2E_STATE/pod-logs
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
maxPods: 40
serializeImagePulls: false
YAML
start kubelet "$K8S_BIN/kubelet" --config "$E2E_STATE/config/kubelet.yaml" \
  --kubeconfig "$E2E_STATE/config/kubelet.kubeconfig" --root-dir "$E2E_STATE/kubelet" \
  --node-ip "$NODE_IP" --hostname-override "$NODE_NAME" --v 1

wait_for "node $NODE_NAME Ready" 120 kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
wait_for "default service account" 60 kc -n default get serviceaccount default
log "cluster up in $((SECONDS - t0))s; KUBECONFIG=$KUBECONFIG_ADMIN"
echo "$KUBECONFIG_ADMIN"
