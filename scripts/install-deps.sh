#!/usr/bin/env bash
# Installs the Debian packages gingham's lab and tests use, skipping what is already there.
# Run as root on Debian (12 or later).
set -euo pipefail

packages=(
  bird2             # BIRD 2: the BGP daemon each node agent supervises
  nftables          # nft: the agent's policy and NAT dataplane
  iproute2          # ip: namespaces, links, routes in tests and the lab
  iputils-ping      # ping for connectivity matrices
  iperf3            # throughput benchmarks
  netcat-openbsd    # TCP probes
  tcpdump           # proving encapsulation on the underlay
  gobgpd            # an external BGP peer ("top of rack") in the lab
  containernetworking-plugins  # portmap, chained after gingham in the lab; ptp + host-local, the CNI benchmark baseline
  busybox-static    # the IPIP test VM's userland
  procps            # ps, pgrep -P for process checks
  kmod              # modinfo, to tell which kernel features exist
  ca-certificates
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: every package is installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root (sudo make ...) to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
