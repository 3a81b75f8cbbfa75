#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian 12 machine (as root), then runs
# it all: ruff, mypy, the Sphinx docs with -n -W (nitpicky: every cross-reference must
# resolve; warnings are errors), and pytest against real services (Slurm, an HTCondor pool,
# XRootD, WebDAV via gfal2, luigid). Used by CI (.ci/run) and by developers.
#   ./tests/run.sh            everything
#   ./tests/run.sh -k slurm   extra arguments go to pytest
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${PYLAW_TEST_VENV:-$root/.venv-test}
cd "$root"

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

step "system packages and services"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
fi
python=${PYTHON:-python3}
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), "gfal2 bindings need CPython 3.11"'

step "virtual environment $venv"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip >/dev/null
"$venv/bin/pip" install -q -e ".[test,docs,plot]"
bash tests/services/install_remote.sh "$venv"
bash tests/services/install_slurm.sh
bash tests/services/install_htcondor.sh
bash tests/services/install_arc.sh

step "Luigi's own test suite (sdist of the installed luigi, cached in .luigi-compat/)"
"$venv/bin/python" -m tests.luigi_compat.fetch

step "ruff"
"$venv/bin/ruff" check pylaw tests examples benchmarks
step "mypy"
"$venv/bin/mypy" pylaw
step "docs (sphinx -n -W: nitpicky, every reference must resolve)"
"$venv/bin/sphinx-build" -q -n -W -b html docs docs/_build/html
step "pytest"
export PYLAW_REQUIRE_SERVICES=1   # a service that does not come up fails the run instead of skipping
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
