#!/usr/bin/env bash
# Installs the system packages, builds sctrial-plan in release mode and runs it end to end on the
# bundled example file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release
bin=$(swift build -c release --show-bin-path)
"$bin/sctrial-plan" inspect examples/trial_example.h5ad
