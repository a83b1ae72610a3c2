#!/usr/bin/env bash
# Times `sctrial-plan report` on a K562-scale DE table: 2,000 targets x 8,000 genes = 16M rows,
# ~2.5 GB (bench/report_table.py writes it; TARGETS=20 makes a quick 160K-row one). The run
# directory is a real plan and run on a small fixture, whose results.csv is then replaced, so the
# page has a plan and done markers too. Prints wall seconds, peak RSS and the page's size.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${RUN_DIR:-bench/data/report-k562}
swift build -c release
bin=$(swift build -c release --show-bin-path)
rm -rf "$run"
"$bin/sctrial-plan" plan de Tests/Fixtures/de/guide_dense_f32.h5ad --out "$run" --groupby-key guide --reference control --shards 2 >/dev/null
"$bin/sctrial-plan" run "$run" 2>/dev/null
python3 bench/report_table.py "$run/results.csv" --targets "${TARGETS:-2000}"
/usr/bin/time -v "$bin/sctrial-plan" report "$run" 2>&1 | grep -E "report.html|Elapsed|Maximum resident"
ls -l "$run/report.html"
