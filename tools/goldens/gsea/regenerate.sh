#!/usr/bin/env bash
# Regenerates the GSEA preranked goldens in Tests/StatsTests/Goldens/gsea (inputs.json and one
# <case>.json per case) from the REAL gseapy: 1.3.1 (rand 0.9 draws) pinned in requirements.txt and
# 1.1.4 (rand 0.8.5 draws) pinned in requirements-1.1.4.txt, each in a private venv under
# tools/goldens/.venvs/. Re-runnable from scratch:
#   rm -rf tools/goldens/.venvs/gsea tools/goldens/.venvs/gsea-1.1.4 && tools/goldens/gsea/regenerate.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-python3}"
out="$root/Tests/StatsTests/Goldens/gsea"
export PYTHONHASHSEED=0 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
for pair in "gsea:requirements.txt:" "gsea-1.1.4:requirements-1.1.4.txt:--only-rand08"; do
    IFS=: read -r name requirements flag <<<"$pair"
    venv="$root/tools/goldens/.venvs/$name"
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet -r "$here/$requirements"
    # The rand 0.8.5 run reads the inputs.json the first run wrote.
    "$venv/bin/python" "$here/make_goldens.py" "$out" $flag
done
