#!/usr/bin/env bash
# Builds Stratum's image, `stratum:VERSION`, from a release binary built on this machine: the Containerfile's
# `prebuilt` target, so no Rust image is needed. The base image is pulled, or made from Debian's packages where no
# registry can be reached (deploy/base-image.sh). Linux with the same C library as Debian 12 or older.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
base=debian:bookworm-slim
docker image inspect "$base" >/dev/null 2>&1 || docker pull -q "$base" >/dev/null 2>&1 || bash deploy/base-image.sh
cargo build --release -p stratum
binary="${CARGO_TARGET_DIR:-target}/release/stratum"
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp Containerfile "$context/"
cp "$binary" "$context/stratum"
DOCKER_BUILDKIT=0 docker build -q -t "stratum:$version" -f Containerfile --target prebuilt "$context" >/dev/null
echo "built stratum:$version"
