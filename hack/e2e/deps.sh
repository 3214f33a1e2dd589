#!/usr/bin/env bash
# Installs the e2e cluster's host parts from Debian: containerd 1.6, runc,
# the CNI plugins, iptables, conntrack and socat (for port-forward).
set -euo pipefail
need=()
for b in containerd runc ctr iptables conntrack socat; do command -v "$b" >/dev/null || need+=("$b"); done
[ -x /usr/lib/cni/bridge ] || need+=(cni)
[ ${#need[@]} = 0 ] && exit 0
echo "installing from Debian: containerd runc containernetworking-plugins iptables conntrack socat" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc containernetworking-plugins iptables conntrack socat >/dev/null
