#!/usr/bin/env bash
# Makes `stratum-test/host:1`, a stand-in for a real machine that Ansible configures over SSH: Debian 12 booting
# systemd, with sshd, Python (for Ansible's modules) and sudo, from Debian's packages (debootstrap). Does nothing
# when the image exists.
set -euo pipefail
image=stratum-test/host:1
if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
root=$(mktemp -d /var/tmp/stratum-host.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,openssh-server,python3,sudo,iproute2,ca-certificates \
  bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import --change 'CMD ["/sbin/init"]' - "$image" >/dev/null
