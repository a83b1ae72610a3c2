#!/usr/bin/env bash
# Tests the Python front (python/) against the real sctrial 1.0.0, pdex 0.1.28 and pdex 0.3.0.
#
# Creates (or updates) two venvs from PyPI wheels: python/.venv (python/requirements-test.txt, the
# golden environments' pins, plus the front installed editable) and python/.venv-pdex030
# (python/requirements-pdex030.txt: pdex 0.3.0 cannot live beside 0.1.28). Then runs pytest with
# the executables scripts/test.sh built: SCTRIAL_PLAN_BIN if set, else the newer of .build/debug
# and .build/release holding both executables; if neither does, builds debug.
# Extra arguments go to pytest. Exit status: pytest's, and "no tests collected" (5) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
python="${PYTHON:-python3}"

# Debian's python3 lacks venv/ensurepip until python3-venv is installed.
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: python3-venv" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
fi

make_venv() {  # make_venv DIR REQUIREMENTS
  if [ ! -x "$1/bin/python" ]; then
    "$python" -m venv "$1"
  fi
  "$1/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: -r "$2"
}
make_venv python/.venv python/requirements-test.txt
python/.venv/bin/python -m pip install --quiet --disable-pip-version-check -e python/
make_venv python/.venv-pdex030 python/requirements-pdex030.txt

if [ -z "${SCTRIAL_PLAN_BIN:-}" ]; then
  # The newer of the two builds: scripts/test.sh builds debug, scripts/example.sh release.
  for candidate in .build/debug .build/release; do
    if [ -x "$candidate/sctrial-plan" ] && [ -x "$candidate/sctrial-worker" ] &&
       { [ -z "${SCTRIAL_PLAN_BIN:-}" ] || [ "$candidate/sctrial-plan" -nt "$SCTRIAL_PLAN_BIN/sctrial-plan" ]; }; then
      SCTRIAL_PLAN_BIN="$root/$candidate"
    fi
  done
  if [ -z "${SCTRIAL_PLAN_BIN:-}" ]; then
    bash scripts/install-deps.sh
    swift build --product sctrial-plan
    swift build --product sctrial-worker
    SCTRIAL_PLAN_BIN="$(swift build --show-bin-path)"
  fi
fi
export SCTRIAL_PLAN_BIN
export SCTRIAL_PDEX030_PYTHON="$root/python/.venv-pdex030/bin/python"
# The references' goldens were made single-threaded; OpenBLAS threads change their last bits.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONHASHSEED=0
echo "testing the Python front with $SCTRIAL_PLAN_BIN" >&2
set +e
(cd python && .venv/bin/python -m pytest -q -p no:cacheprovider "$@")
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
