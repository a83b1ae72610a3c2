#!/usr/bin/env bash
# Rebuilds Tests/StatsTests/Goldens/did_goldens.json from the pinned reference stack
# (venv under tools/goldens/.venvs/stats_did, git-ignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/../.venvs/stats_did"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q -r "$here/requirements.txt"
"$venv/bin/python" "$here/make_goldens.py"
