#!/usr/bin/env bash
# Install what the ARC tests need, on Debian 12 as root. Idempotent, fast when installed.
#
#   bash tests/services/install_arc.sh
#
# NorduGrid ARC 6 from Debian: A-REX (the job-management service, fork LRMS), its REST
# front-end plugin, arcctl (the test CA issuing the host and user certificates), and the
# client (arcproxy, arcsub, arcstat, arcget, arckill, arcclean). voms-clients brings
# voms-proxy-fake, with which the credential tests mint a proxy carrying a real VOMS
# attribute certificate (no VOMS server runs here).
# Nothing is configured or started here: tests/services/arc.py writes its own arc.conf
# into a temporary state directory, on a free port, and starts A-REX itself.
# The arex postinst may write /etc/arc.conf and a test CA under /etc/grid-security; the
# fixture uses neither /etc/arc.conf nor the postinst's host certificate.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "install_arc.sh: run as root (apt-get and A-REX need it)" >&2; exit 2; }

DEB_PACKAGES=(nordugrid-arc-arex nordugrid-arc-client nordugrid-arc-arcctl nordugrid-arc-plugins-needed
              nordugrid-arc-plugins-arcrest voms-clients)
# shellcheck source=tests/services/apt.sh
source "$(dirname "$0")/apt.sh"
apt_install_missing "${DEB_PACKAGES[@]}"
echo "install_arc.sh: ARC $(dpkg-query -W -f='${Version}' nordugrid-arc-arex) ready"
