#!/usr/bin/env bash
# Install the real components the end-to-end tests drive, from Debian's packages:
# a Docker engine, skopeo, registry:2 (docker-registry) as the peer, nginx,
# htpasswd, busybox for a base image built without any image registry, and debootstrap
# for a Debian base image with Python (cargobay's own image is built on it).
# Does nothing when they are all there; needs root (or sudo) otherwise.
set -euo pipefail

packages=(docker.io containerd runc skopeo docker-registry nginx apache2-utils busybox-static iptables iproute2 curl debootstrap)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
