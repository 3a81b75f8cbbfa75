#!/usr/bin/env bash
# Install Graphviz (`dot`), which `pylaw graph --output FILE.svg|png` renders with and its
# tests check. Debian 12, as root. Idempotent; quick when already installed.
#
#   bash tests/services/install_graphviz.sh
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "install_graphviz.sh: run as root (apt-get needs it)" >&2; exit 2; }
# shellcheck source=tests/services/apt.sh
source "$(dirname "$0")/apt.sh"
apt_install_missing graphviz
echo "install_graphviz.sh: $(dot -V 2>&1)"
