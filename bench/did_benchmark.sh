#!/usr/bin/env bash
# DiD benchmark: sctrial 1.0.0's did_table against sctrial-plan (`plan did` + `run`) on the same
# synthetic CSR .h5ad files, each tool in its own process with 2 threads, in one run. Prints
# cells x genes, seconds, ratio (sctrial / ours), peak RSS and a beta_DiD / p_DiD cross-check.
# Usage: bench/did_benchmark.sh [--big] [extra bench/did_benchmark.py options]
#   default  100K cells x 500 genes, 500K cells x 2,000 genes (10% dense)
#   --big    also 1M cells x 20,000 genes (3% dense, ~4.9 GB file; sctrial extrapolated from 100/400 genes)
#   --sctrial-threads 1   sctrial's child with 1 BLAS/OpenMP thread: its best and stable time. With 2
#            (the default here) and other work on the 2 cores, OpenBLAS spins and did_table can be
#            2-8x slower, which inflates the ratio.
#   --repeat N  alternate N runs of each tool on fully measured sizes and report medians.
# Data files are generated once (fixed seed) under bench/data/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release >/dev/null   # sctrial-plan and the sctrial-worker its runs start
bin="$(swift build -c release --show-bin-path)/sctrial-plan"
venv=bench/.venv-did
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r bench/did_requirements.txt
fi
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2 NUMEXPR_NUM_THREADS=2 PYTHONHASHSEED=0
"$venv/bin/python" bench/did_benchmark.py --binary "$bin" "$@"
