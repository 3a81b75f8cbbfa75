#!/usr/bin/env bash
# Sets up a virtual environment (once) and runs the toy ttH analysis end to end.
# Outputs land in examples/ttbar/store (override with PYLAW_STORE); rerunning does nothing new.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${PYLAW_VENV:-$root/.venv}
if [ ! -x "$venv/bin/pyl" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -e "$root[plot]" numpy scipy
fi
cd "$root"
export LUIGI_CONFIG_PATH="$here/luigi.cfg"
export PYLAW_STORE=${PYLAW_STORE:-$here/store}
export PYLAW_INDEX=${PYLAW_INDEX:-$here/store/.pylaw_index.json}
"$venv/bin/pyl" Plot --version v1 --local --workers 2 "$@"
"$venv/bin/pyl" Plot --version v1 --print-status 1
echo "plot: $(find "$PYLAW_STORE/Plot" -name '*.png')"
echo "fit:  $(find "$PYLAW_STORE/Inference" -name '*.json')"
