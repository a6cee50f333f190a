#!/bin/sh
# Runs inside the VM: the real gingham lab (operator, agents, BIRD, CNI) with an IPIP pool.
# Always: pod traffic from n1 to n2 and to n3 goes through n1's tunl0. CrossSubnet: to n2 (same
# subnet) goes direct, to n3 (across the router) through tunl0. Judged by tunl0's counters.
set -e
say() { echo "ipip-lab: $*"; }
ip() { /usr/sbin/ip "$@"; }
LAB=/tests/gingham-lab
pod_ip() { ip -n "ipl-p-default-p-$1" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1; }
tunl_tx() { ip netns exec ipl-n-n1 cat /sys/class/net/tunl0/statistics/tx_packets; }
# sent_through_tunl0 TARGET: pings p-TARGET from p-n1 10 times; prints how many left by tunl0.
sent_through_tunl0() {
    before=$(tunl_tx)
    ip netns exec ipl-p-default-p-n1 ping -c 10 -W 2 -q "$(pod_ip "$1")" >/dev/null || { echo ping-failed; return; }
    echo $(( $(tunl_tx) - before ))
}
fail() {
    say "FAIL: $*"
    for f in /run/gingham-lab/ipl/logs/agent-*.log; do
        echo "--- $f"
        grep -v "CNI ADD: allocating\|released container" "$f" | grep -v "DEBUG.*\(bird\|status\)" | head -60
    done
    cat /run/gingham-lab/ipl/datastore/status/nodenetworks/n1.yaml
    $LAB status --prefix ipl || true
    exit 1
}
# expect TARGET tunl0|direct, retried while the agents converge.
expect() {
    i=0
    while [ $i -lt 20 ]; do
        n=$(sent_through_tunl0 "$1")
        case "$2:$n" in
            *:ping-failed) ;;
            tunl0:*) [ "$n" -ge 10 ] && { say "$MODE: p-n1 -> p-$1 through tunl0 ($n packets)"; return; } ;;
            direct:*) [ "$n" -le 1 ] && { say "$MODE: p-n1 -> p-$1 direct (tunl0 +$n)"; return; } ;;
        esac
        i=$((i + 1))
        sleep 3
    done
    fail "$MODE: p-n1 -> p-$1 should be $2, last result: $n"
}
$LAB up -f /tests/ipip-lab.yaml --bin-dir /tests --timeout 300 || fail "the lab did not come up"
MODE=Always
expect n2 tunl0
expect n3 tunl0
cat >/tmp/pool.yaml <<'POOL'
apiVersion: gingham.dev/v1
kind: IPPool
metadata: {name: pool}
spec: {cidr: 10.232.0.0/16, blockSize: 26, ipipMode: CrossSubnet, vxlanMode: Never}
POOL
$LAB apply -f /tmp/pool.yaml --prefix ipl
MODE=CrossSubnet
expect n2 direct
expect n3 tunl0
$LAB down --prefix ipl
say "PASS: IPIP Always and CrossSubnet between pods over tunl0"
# run-ipip.sh --live: the live-switch test of e2e/tests/vm_ipip_lab.rs, every IPIP and IPIP <-> VXLAN
# switch on the full pod matrix, run by its own test binary; its output is shown prefixed.
if [ -x /tests/live-test ]; then
    started=$(date +%s)
    {
        GINGHAM_LAB_BIN_DIR=/tests /tests/live-test --ignored --exact --nocapture --test-threads 1 \
            every_ipip_and_vxlan_switch_each_way_keeps_every_pod_pair_in_the_vm 2>&1
        echo $? >/tmp/live.rc
    } | sed 's/^/ipip-live: /'
    live=FAIL
    [ "$(cat /tmp/live.rc)" = 0 ] && live=PASS
    say "live switches: $live in $(( $(date +%s) - started )) s"
    [ "$live" = PASS ] || exit 1
fi
