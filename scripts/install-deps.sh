#!/usr/bin/env bash
# Installs the Debian 12 packages sctrial-plan builds against (skips what is already there).
set -euo pipefail
# liblzf-dev: the lzf decoder (HDF5 filter 32000, registered by the AnnData module);
# hdf5-filter-plugin-blosc-serial: blosc (32001), which libhdf5 loads from its plugin directory.
packages=(libhdf5-dev liblzf-dev hdf5-filter-plugin-blosc-serial libopenblas-dev libcurl4-openssl-dev libssl-dev pkg-config python3 python3-yaml)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null; then
  echo "error: swift (6.0 or newer) is not on PATH; install the Swift toolchain from swift.org first" >&2
  exit 1
fi
