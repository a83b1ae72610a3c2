#!/usr/bin/env bash
# Read benchmark: one full pass over the CSR X of a >= 1 GB .h5ad file, sctrial-plan (libhdf5
# from Swift) against h5py reading the same arrays, in one run. Prints seconds, MB/s, ratio and
# peak RSS. Usage: bench/read_throughput.sh [GB]   (default 1.2; the file is cached in bench/data)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release >/dev/null   # sctrial-plan and the sctrial-worker its runs start
bin="$(swift build -c release --show-bin-path)/sctrial-plan"
venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r bench/requirements.txt
fi
"$venv/bin/python" bench/read_throughput.py --binary "$bin" --gigabytes "${1:-1.2}"
