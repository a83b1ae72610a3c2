#!/usr/bin/env bash
# GSEA benchmark: sctrial 1.0.0 run_gsea_did and gseapy 1.3.1 prerank against sctrial-plan `plan gsea`
# on the same data, each tool in its own process, in one run. Prints seconds, ratios, peak RSS and
# cross-checks (prerank alone must agree exactly). Usage: bench/gsea_benchmark.sh [options of
# bench/gsea_benchmark.py], e.g. --skip sctrial (its did_table takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release >/dev/null
bin="$(swift build -c release --show-bin-path)/sctrial-plan"
venv=bench/.venv-gsea
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r bench/gsea_requirements.txt
fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMEXPR_NUM_THREADS=1 PYTHONHASHSEED=0
"$venv/bin/python" bench/gsea_benchmark.py --binary "$bin" --python "$venv/bin/python" "$@"
