#!/usr/bin/env bash
# Makes the base image the Containerfile builds on, `debian:bookworm-slim`, from Debian's packages where no
# container registry can be reached: a minimal Debian 12 root made with debootstrap and imported into Docker.
# It already holds what the runtime stage installs (CA certificates, iproute2), so building needs no network.
# Does nothing when the image exists (`--force` makes it again). Needs root, debootstrap and docker.
set -euo pipefail
image="${STRATUM_BASE_IMAGE:-debian:bookworm-slim}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if [ "${1:-}" != "--force" ] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image exists"
  exit 0
fi
command -v debootstrap >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
}
root=$(mktemp -d /var/tmp/stratum-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=ca-certificates,iproute2 bookworm "$root" "$mirror" >/dev/null
# What a container never needs: package caches and lists, documentation, locales.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$image" >/dev/null
echo "made $image ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
