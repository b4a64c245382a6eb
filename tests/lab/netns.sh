#!/bin/bash
# smbtrail lab network: two namespaces joined by one veth pair. Only addresses inside them are used.
#   netns.sh up | down
set -u
SRV_NS=smbt_srv CLI_NS=smbt_cli
SRV_IF=smbt-s CLI_IF=smbt-c
SRV_IP=10.231.0.1 CLI_IP=10.231.0.2

up() {
    down 2>/dev/null
    set -e
    ip netns add "$SRV_NS"
    ip netns add "$CLI_NS"
    ip link add "$SRV_IF" type veth peer name "$CLI_IF"
    ip link set "$SRV_IF" netns "$SRV_NS"
    ip link set "$CLI_IF" netns "$CLI_NS"
    ip -n "$SRV_NS" addr add "$SRV_IP/24" dev "$SRV_IF"
    ip -n "$CLI_NS" addr add "$CLI_IP/24" dev "$CLI_IF"
    for ns in "$SRV_NS" "$CLI_NS"; do ip -n "$ns" link set lo up; done
    ip -n "$SRV_NS" link set "$SRV_IF" up
    ip -n "$CLI_NS" link set "$CLI_IF" up
    # names the Kerberos clients resolve inside the client namespace (ip netns exec bind-mounts it on /etc/hosts)
    mkdir -p "/etc/netns/$CLI_NS"
    printf '127.0.0.1 localhost\n%s DC01.smbtlab.test DC01 FILESRV01\n' "$SRV_IP" > "/etc/netns/$CLI_NS/hosts"
    mkdir -p "/etc/netns/$SRV_NS"
    printf '127.0.0.1 localhost\n%s DC01.smbtlab.test DC01 FILESRV01\n' "$SRV_IP" > "/etc/netns/$SRV_NS/hosts"
}

down() {
    local rc=0
    for ns in "$SRV_NS" "$CLI_NS"; do
        if ip netns list | grep -qw "$ns"; then ip netns del "$ns" || rc=1; fi
        rm -rf "/etc/netns/$ns"
    done
    return $rc
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
