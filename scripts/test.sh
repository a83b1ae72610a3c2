#!/usr/bin/env bash
# Runs the whole test suite (installs the system packages first if they are missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The report test renders pages in headless Chromium (Debian's package; about 2 minutes to fetch
# and install on a fresh machine, so only here and not in install-deps.sh). Under CI=true the test
# fails without it.
if ! command -v chromium >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: chromium (for the report rendering test)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
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
# Then a cluster of three hosts (slurmctld and three slurmd, each in network and UTS namespaces of
# its own; needs root) in a directory of its own, for the multi-node suite only: shards spread over
# the nodes, and a node killed mid-array has its task requeued elsewhere (4–5 minutes on 2 cores).
# SCTRIAL_MULTINODE=0 skips it.
if [ "${SCTRIAL_MULTINODE:-1}" != 0 ]; then
  multinode_dir="${SCTRIAL_MULTINODE_DIR:-/tmp/sctrial-slurm-multinode}"
  trap 'SCTRIAL_SLURM_DIR="$multinode_dir" bash slurm/local-cluster.sh stop; bash slurm/local-cluster.sh stop' EXIT
  multinode="$(SCTRIAL_SLURM_DIR="$multinode_dir" SCTRIAL_SLURM_NODES=3 bash slurm/local-cluster.sh start)"
  (eval "$multinode"; swift test --skip-build --filter MultiNodeTests)
  SCTRIAL_SLURM_DIR="$multinode_dir" bash slurm/local-cluster.sh stop
fi
# The single-node live suites again (faults included), against Slurm 24.11 (Debian 13's, in a chroot
# built once and cached under /var/tmp/sctrial-slurm-roots: 35-50 s on a fresh machine; the suites
# about 4 minutes on 2 cores), in a directory of its own and a subshell, so what follows keeps
# 22.05's environment. SCTRIAL_SLURM24=0 skips it.
if [ "${SCTRIAL_SLURM24:-1}" != 0 ]; then
  slurm24_dir="${SCTRIAL_SLURM_DIR:-/tmp/sctrial-slurm}-24.11"
  trap 'SCTRIAL_SLURM_DIR="$slurm24_dir" bash slurm/local-cluster.sh stop; bash slurm/local-cluster.sh stop' EXIT
  (
    export SCTRIAL_SLURM_DIR="$slurm24_dir" SCTRIAL_SLURM_VERSION=24.11
    started=$SECONDS
    cluster="$(bash slurm/local-cluster.sh start)"
    eval "$cluster"   # SLURM_CONF, SLURM_JWT, SLURMRESTD_URL, and PATH with 24.11's client commands
    echo "Slurm 24.11 cluster ready in $((SECONDS - started)) s; the live Slurm suites again:" >&2
    started=$SECONDS
    swift test --skip-build --filter 'SlurmLiveTests|SubmitTests'
    echo "live Slurm suites on Slurm 24.11: $((SECONDS - started)) s" >&2
  )
  SCTRIAL_SLURM_DIR="$slurm24_dir" bash slurm/local-cluster.sh stop
fi
# The Python front (python/) against the real sctrial 1.0.0, pdex 0.1.28 and 0.3.0 (pytest, in venvs
# built from PyPI), driving the executables built above.
bash scripts/test-python.sh
