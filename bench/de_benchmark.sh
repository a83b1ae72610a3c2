#!/usr/bin/env bash
# Wilcoxon DE benchmark: pdex 0.1.28, illico 0.6.0 and sctrial-plan (`plan de` + `run`) on the same
# synthetic sparse count file, each in its own process with 2 threads, in one run. Prints
# cells x genes x perturbations, seconds, ratio to ours, peak RSS and a row-by-row cross-check.
# Usage: bench/de_benchmark.sh [--quick | --k562] [extra bench/de_benchmark.py options]
#   default  60K cells x 2,000 genes x 200 perturbations
#   --quick  6K x 500 x 20 (about a minute)
#   --k562   300K x 8K x 2K (large: file generation alone takes minutes)
#   --repeat N  alternate N runs of ours and illico, report medians
# Data files are generated once (fixed seed) under bench/data/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if ! build_log="$(swift build -c release 2>&1)"; then
  printf '%s\n' "$build_log" | tail -20 >&2
  echo "error: swift build failed" >&2
  exit 1
fi
bin="$(swift build -c release --show-bin-path)/sctrial-plan"
venv=bench/.venv-de
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r bench/de_requirements.txt
fi
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2 NUMEXPR_NUM_THREADS=2 \
  NUMBA_NUM_THREADS=2 RAYON_NUM_THREADS=2 POLARS_MAX_THREADS=2
"$venv/bin/python" bench/de_benchmark.py --binary "$bin" "$@"
