#!/bin/sh
# Runs inside the VM: two "nodes" (network namespaces) joined by a veth underlay, a pod-like
# address on each node's tunl0, routes `via <node> dev tunl0 onlink` as gingham's agent
# programs them. Passes when the ping works and tunl0's counters prove encapsulation.
set -e
say() { echo "ipip-test: $*"; }
# busybox sh prefers its own applets; iproute2's ip (for netns) is called by path.
ip() { /usr/sbin/ip "$@"; }
ip netns add a
ip netns add b
ip link add ua type veth peer name ub
ip link set ua netns a
ip link set ub netns b
for n in a b; do ip -n "$n" link set lo up; done
ip -n a addr add 10.231.9.1/24 dev ua
ip -n b addr add 10.231.9.2/24 dev ub
ip -n a link set ua up
ip -n b link set ub up
ip -n a addr add 10.232.1.1/32 dev tunl0
ip -n b addr add 10.232.2.1/32 dev tunl0
ip -n a link set tunl0 up
ip -n b link set tunl0 up
ip -n a route add 10.232.2.0/24 via 10.231.9.2 dev tunl0 onlink
ip -n b route add 10.232.1.0/24 via 10.231.9.1 dev tunl0 onlink
counter() { ip netns exec "$1" cat "/sys/class/net/tunl0/statistics/$2"; }
before_tx=$(counter a tx_packets)
before_rx=$(counter b rx_packets)
if ! ip netns exec a ping -c 5 -W 2 -I 10.232.1.1 10.232.2.1; then
    say "ping over tunl0 failed"
    ip -n a route; ip -n a -s link show tunl0
    exit 1
fi
tx=$(( $(counter a tx_packets) - before_tx ))
rx=$(( $(counter b rx_packets) - before_rx ))
say "tunl0 a tx_packets +$tx, b rx_packets +$rx"
if [ "$tx" -lt 5 ] || [ "$rx" -lt 5 ]; then
    say "the ping did not go through tunl0"
    exit 1
fi
say "ipip encapsulation proven by tunl0 counters"
