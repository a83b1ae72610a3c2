#!/usr/bin/env bash
# Runs the whole test suite (installs the system packages first if they are missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests
# The image's copy list and runtime packages match what the build produces (the image itself is
# built and checked by docker/build-local.sh, ~5 minutes, outside the test suite).
bash docker/check-context.sh
# The Slurm tests run against a real single-node cluster on localhost (stopped on exit). A small
# MaxArraySize makes them exercise splitting a run over several arrays.
export SCTRIAL_SLURM_MAX_ARRAY_SIZE="${SCTRIAL_SLURM_MAX_ARRAY_SIZE:-8}"
trap 'bash slurm/local-cluster.sh stop' EXIT
cluster="$(bash slurm/local-cluster.sh start)"   # a failed start stops the script here
eval "$cluster"
swift test --skip-build "$@"
