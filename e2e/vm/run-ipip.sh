#!/usr/bin/env bash
# IP-in-IP for real, in a small VM with a stock Debian kernel (the host kernel has no ipip).
#
# Fetches qemu-system-x86 and the Debian cloud kernel with `apt-get download` (never installs
# them) into a cache, builds an initramfs (busybox-static, iproute2's ip, the ipip and veth
# modules, the test script, optional extra test binaries), boots it with TCG and judges the
# result by the PASS line on the console.
#
# Usage: e2e/vm/run-ipip.sh [--lab BIN_DIR [--live TEST_BINARY]] [--extra BINARY]...
#   --lab BIN_DIR  also run a three-node gingham lab (IPIP Always, then CrossSubnet) in the VM with
#                  the binaries of BIN_DIR (e.g. target/debug), BIRD, nft and nsenter from the host.
#   --live TEST    then run the live-switch test of this test binary (e2e/tests/vm_ipip_lab.rs,
#                  every IPIP and IPIP <-> VXLAN switch on the full pod matrix) in the VM.
#   env: GINGHAM_VM_CACHE, GINGHAM_VM_TIMEOUT, GINGHAM_VM_MEMORY (MiB; default 512, 1536 with --lab)
# Prints "GINGHAM-VM PASS" and exits 0 on success; exits 1 on a test failure, 2 when the VM
# cannot be prepared (packages not fetchable, tools missing), with the reason.
set -euo pipefail

CACHE="${GINGHAM_VM_CACHE:-${HOME:-/root}/.cache/gingham-vm}"
TIMEOUT="${GINGHAM_VM_TIMEOUT:-180}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EXTRA=()
LAB_BIN=""
LIVE_TEST=""
while [ $# -gt 0 ]; do
    case "$1" in
        --extra) EXTRA+=("$2"); shift 2 ;;
        --lab) LAB_BIN="$2"; shift 2 ;;
        --live) LIVE_TEST="$2"; shift 2 ;;
        *) echo "usage: $0 [--lab BIN_DIR [--live TEST_BINARY]] [--extra BINARY]..." >&2; exit 2 ;;
    esac
done
MEMORY="${GINGHAM_VM_MEMORY:-$([ -n "$LAB_BIN" ] && echo 1536 || echo 512)}"
CPUS="${GINGHAM_VM_CPUS:-$([ -n "$LAB_BIN" ] && echo 2 || echo 1)}"
# Modules loaded at boot, with their dependencies (what is built in is skipped).
BASE_MODULES=(veth ipip)
LAB_MODULES=(bridge vxlan nfnetlink nf_tables nft_ct nft_nat nft_masq nft_chain_nat nft_reject_inet
    nft_fib_inet nft_fib_ipv4 nft_limit nft_log)

die() { echo "run-ipip: cannot prepare the VM: $*" >&2; exit 2; }

# qemu's libraries on Debian bookworm (qemu-system-x86 is unpacked, not installed).
QEMU_PACKAGES=(qemu-system-x86 qemu-system-common qemu-system-data seabios libcapstone4 libfdt1 libpmem1 librdmacm1 libibverbs1
    libslirp0 libvdeplug2 libndctl6 libdaxctl1 libnl-3-200 libnl-route-3-200)

fetch() {
    local root="$CACHE/root" debs="$CACHE/debs"
    if [ -f "$CACHE/.complete" ]; then return; fi
    command -v apt-get >/dev/null || die "apt-get is missing (Debian or Ubuntu needed)"
    mkdir -p "$debs" "$root"
    local kernel
    kernel="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')"
    [ -n "$kernel" ] || die "apt-cache knows no linux-image-cloud-amd64; run apt-get update"
    (cd "$debs" && apt-get download "$kernel" "${QEMU_PACKAGES[@]}" >/dev/null 2>"$CACHE/download.err") ||
        die "apt-get download failed: $(tail -3 "$CACHE/download.err")"
    local deb
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
    touch "$CACHE/.complete"
}

qemu_env() {
    local root="$CACHE/root"
    QEMU="$root/usr/bin/qemu-system-x86_64"
    export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
    export QEMU_MODULE_DIR="$root/usr/lib/x86_64-linux-gnu/qemu"
    local missing
    missing="$(ldd "$QEMU" | awk '/not found/ {print $1}' | tr '\n' ' ')"
    [ -z "$missing" ] || die "qemu needs libraries not in the cache: $missing (add their packages to QEMU_PACKAGES)"
    KERNEL="$(find "$root/boot" -name 'vmlinuz-*' | head -1)"
    MODULES="$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -1)"
    if [ -z "$KERNEL" ] || [ -z "$MODULES" ]; then die "no kernel in $root/boot"; fi
}

copy_with_libs() { # copy_with_libs BINARY DEST_ROOT DIR_IN_ROOT
    local bin="$1" dest="$2" dir="$3" lib
    mkdir -p "$dest$dir"
    cp "$bin" "$dest$dir/"
    for lib in $(ldd "$bin" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
        [ -f "$lib" ] || continue
        mkdir -p "$dest$(dirname "$lib")"
        cp -L "$lib" "$dest$lib"
    done
}

add_module() { # add_module NAME TREE: the module and its dependencies, in load order
    local name="$1" tree="$2" file dep
    if grep -qx "$name" "$tree/mods/order" 2>/dev/null; then return; fi
    file="$(find "$MODULES" \( -name "$name.ko" -o -name "${name//_/-}.ko" \) | head -1)"
    if [ -z "$file" ]; then return; fi # built into the kernel
    for dep in $(modinfo -F depends "$file" | tr ',' ' '); do add_module "$dep" "$tree"; done
    cp "$file" "$tree/mods/$name.ko"
    echo "$name" >>"$tree/mods/order"
}

add_lab() { # add_lab TREE: the gingham binaries, BIRD, nft and the lab test
    local tree="$1" bin
    for bin in gingham-lab gingham-operator gingham-node-agent gingham-cni; do
        [ -x "$LAB_BIN/$bin" ] || die "$LAB_BIN/$bin is missing: cargo build --workspace"
        copy_with_libs "$LAB_BIN/$bin" "$tree" /tests
        strip "$tree/tests/$bin" 2>/dev/null || true
    done
    # util-linux's nsenter: busybox's would run busybox's own `ip` for the CNI plugin.
    for bin in bird birdc nft nsenter; do
        command -v "$bin" >/dev/null || die "$bin is missing: apt-get install bird2 nftables util-linux"
        copy_with_libs "$(command -v "$bin")" "$tree" /usr/sbin
    done
    mkdir -p "$tree/etc"
    echo "root:x:0:0:root:/root:/bin/sh" >"$tree/etc/passwd"
    echo "root:x:0:" >"$tree/etc/group"
    cp "$HERE/ipip-lab.sh" "$HERE/ipip-lab.yaml" "$tree/tests/"
    if [ -n "$LIVE_TEST" ]; then
        [ -x "$LIVE_TEST" ] || die "$LIVE_TEST is not an executable test binary"
        copy_with_libs "$LIVE_TEST" "$tree" /tests
        mv "$tree/tests/$(basename "$LIVE_TEST")" "$tree/tests/live-test"
        strip "$tree/tests/live-test" 2>/dev/null || true
    fi
}

build_initramfs() { # build_initramfs DIR -> DIR/initramfs.gz
    local work="$1" tree="$1/tree" m
    mkdir -p "$tree"/{bin,proc,sys,dev,run,tmp,mods,tests}
    : >"$tree/mods/order"
    cp "$(command -v busybox)" "$tree/bin/busybox"
    file "$tree/bin/busybox" | grep -q "statically linked" || die "busybox is not static: apt-get install busybox-static"
    copy_with_libs "$(command -v ip)" "$tree" /usr/sbin
    local wanted=("${BASE_MODULES[@]}")
    if [ -n "$LAB_BIN" ]; then wanted+=("${LAB_MODULES[@]}"); fi
    for m in "${wanted[@]}"; do add_module "$m" "$tree"; done
    cp "$HERE/ipip-test.sh" "$tree/tests/ipip-test.sh"
    local extra
    for extra in "${EXTRA[@]}"; do copy_with_libs "$extra" "$tree" /tests; done
    if [ -n "$LAB_BIN" ]; then add_lab "$tree"; fi
    cat >"$tree/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs run /run
mkdir -p /var/lib /var/run /tmp
for m in $(cat /mods/order); do insmod /mods/$m.ko || echo "insmod $m failed"; done
result=PASS
sh /tests/ipip-test.sh || result=FAIL
if [ -f /tests/ipip-lab.sh ]; then sh /tests/ipip-lab.sh || result=FAIL; fi
echo "GINGHAM-VM $result"
poweroff -f
INIT
    chmod +x "$tree/init" "$tree/tests/ipip-test.sh"
    (cd "$tree" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initramfs.gz"
}

main() {
    fetch
    qemu_env
    local work
    work="$(mktemp -d /tmp/gingham-vm.XXXXXX)"
    trap 'rm -rf "$work"' EXIT
    build_initramfs "$work"
    local log="$work/console.log" started=$SECONDS
    timeout "$TIMEOUT" "$QEMU" -accel tcg -cpu max -smp "$CPUS" -m "$MEMORY" -nographic -no-reboot -net none \
        -L "$CACHE/root/usr/share/qemu" -L "$CACHE/root/usr/share/seabios" -kernel "$KERNEL" -initrd "$work/initramfs.gz" \
        -append "console=ttyS0 panic=-1 quiet" </dev/null >"$log" 2>&1 || true
    tr -d '\r' <"$log" >"$CACHE/last-console.log"
    tr -d '\r' <"$log" | grep -E '^(GINGHAM|ipip-)' || true
    echo "VM ran for $((SECONDS - started)) s"
    if grep -q "GINGHAM-VM PASS" "$log"; then exit 0; fi
    echo "run-ipip: no PASS line; whole console log in $CACHE/last-console.log; its end:" >&2
    tail -40 "$log" >&2
    exit 1
}

main
