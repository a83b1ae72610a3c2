#!/usr/bin/env bash
# Regenerates Tests/Fixtures/de/ (inputs *.h5ad, pdex goldens *.csv, cases.json) from the REAL
# pdex 0.1.28 (every package pinned in requirements.txt), in a private venv tools/goldens/.venvs/de.
# Re-runnable from scratch: FRESH=1 rebuilds the venv; old generated fixtures are always removed
# first (README.md is kept). Output is deterministic (byte-identical across runs).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="$root/tools/goldens/.venvs/de"
out="$root/Tests/Fixtures/de"
python="${PYTHON:-python3}"

if [ "${FRESH:-0}" = "1" ]; then
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# keep the venv out of git even if the top-level .gitignore loses its entry
printf '*\n' > "$venv/.gitignore"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    -r "$here/requirements.txt"

# single-threaded, quiet, deterministic
export TQDM_DISABLE=1 NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 PYTHONHASHSEED=0 PYTHONWARNINGS=ignore

mkdir -p "$out"
rm -f "$out"/*.h5ad "$out"/*.csv "$out"/cases.json
"$venv/bin/python" "$here/make_goldens.py" "$out"
echo "wrote $(ls "$out" | wc -l) files to $out ($(du -sh "$out" | cut -f1))"
