#!/usr/bin/env bash
# Install what the Slurm tests need, on Debian 12 as root. Idempotent.
#
#   bash tests/services/install_slurm.sh
#
# Debian's slurm-wlm brings slurmctld, slurmd and the client commands (sbatch, squeue,
# sacct, scontrol, scancel); munge authenticates them. Nothing is configured or started
# here: tests/services/slurm.py writes its own slurm.conf into a temporary state
# directory and starts the daemons itself. Where /usr/sbin/policy-rc.d allows it, the
# packages' init scripts start daemons on install; we stop nothing that we did not start,
# and the fixture uses its own ports and config, so they do not interfere.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "install_slurm.sh: run as root (apt-get and the Slurm daemons need it)" >&2; exit 2; }

DEB_PACKAGES=(slurm-wlm munge slurmdbd mariadb-server)  # the last two: accounting (sacct) tests
# shellcheck source=tests/services/apt.sh
source "$(dirname "$0")/apt.sh"
apt_install_missing "${DEB_PACKAGES[@]}"

# munge's postinst normally creates the key; images built without it need one.
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --force
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
echo "install_slurm.sh: slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm) and munge ready"
