#!/usr/bin/env bash
# Debian packages the synthetic-corpus generator needs (festival and espeak-ng voices, sox).
# Installs only what is missing; needs root (or sudo) and Debian's package registry.
set -euo pipefail
packages=(festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng sox)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}" >&2
