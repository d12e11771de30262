#!/usr/bin/env bash
# Prepare this machine for the eBPF agent and its tests (run as root).
# Idempotent: installs BCC, the kernel headers, dnsmasq (the binary only, no
# system service that would take port 53), dig, wrk, curl, ip and PostgreSQL
# (server binaries for the agent's live PostgreSQL test) when missing, and
# links the Debian headers where BCC looks for the running kernel's (the
# running kernel is not a Debian one, its headers are not shipped).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "setup-ebpf.sh: needs root (apt-get, /lib/modules)" >&2
    exit 1
fi

packages=(python3-bpfcc linux-headers-amd64 dnsmasq-base dnsutils wrk curl iproute2 postgresql)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The newest Debian amd64 headers installed (linux-headers-amd64 depends on them).
build=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
if [ -z "$build" ]; then
    echo "setup-ebpf.sh: no /usr/src/linux-headers-*-amd64 after install" >&2
    exit 1
fi
common="${build%-amd64}-common"
modules="/lib/modules/$(uname -r)"
mkdir -p "$modules"
ln -sfn "$build" "$modules/build"
ln -sfn "$common" "$modules/source"
# BCC reads tracepoint formats from tracefs (under debugfs on older layouts).
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
echo "setup-ebpf.sh: BCC ready, headers $build linked for kernel $(uname -r)"
