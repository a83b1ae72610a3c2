#!/usr/bin/env bash
# Installs the system packages, builds sctrial-plan in release mode and runs the main job end to
# end on the bundled example: a DiD of every gene between visits pre and post, treated vs control.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release
bin=$(swift build -c release --show-bin-path)
run=${RUN_DIR:-example-run}
"$bin/sctrial-plan" inspect examples/trial_example.h5ad
"$bin/sctrial-plan" plan did examples/trial_example.h5ad --out "$run" --visits pre,post --shards 4
"$bin/sctrial-plan" run "$run"
echo "top of $run/results.csv:"
head -n 6 "$run/results.csv" | cut -d, -f1-3,6,9,10
