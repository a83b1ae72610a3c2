#!/usr/bin/env bash
# Regenerates the end-to-end GSEA goldens in Tests/Fixtures/gsea (inputs *.h5ad, sets.gmt, <case>.csv,
# cases.json) from the REAL sctrial 1.0.0 and gseapy 1.3.1, pinned with all its dependencies in requirements.txt,
# in a private venv under tools/goldens/.venvs/gsea_did. Re-runnable from scratch:
#   rm -rf tools/goldens/.venvs/gsea_did && tools/goldens/gsea_did/regenerate.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="$root/tools/goldens/.venvs/gsea_did"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
export PYTHONHASHSEED=0 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
"$venv/bin/python" "$here/make_goldens.py" "$root/Tests/Fixtures/gsea"
