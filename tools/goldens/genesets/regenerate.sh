#!/usr/bin/env bash
# Regenerates the gene-set score and log1p-CPM goldens in Tests/Fixtures/genesets from the REAL
# sctrial 1.0.0, pinned with all its dependencies in requirements.txt (the same pins as
# tools/goldens/did, so the DiD venv tools/goldens/.venvs/did is shared). Reads the DiD inputs in
# Tests/Fixtures/did (run tools/goldens/did/regenerate.sh first if they are missing). Re-runnable:
#   rm -rf tools/goldens/.venvs/did && tools/goldens/genesets/regenerate.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="$root/tools/goldens/.venvs/did"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
export PYTHONHASHSEED=0 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
"$venv/bin/python" "$here/make_goldens.py" "$root/Tests/Fixtures/genesets"
