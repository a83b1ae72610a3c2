#!/usr/bin/env bash
# Regenerates Tests/StatsTests/Goldens/de_goldens.json from the real scipy/statsmodels
# (versions pinned in requirements.txt), in a private venv under tools/goldens/.venvs/stats_de.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="$root/tools/goldens/.venvs/stats_de"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
mkdir -p "$root/Tests/StatsTests/Goldens"
"$venv/bin/python" "$here/make_goldens.py" "$root/Tests/StatsTests/Goldens/de_goldens.json"
