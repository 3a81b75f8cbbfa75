#!/usr/bin/env bash
# Build the Debian 13 (trixie) chroot the test HTCondor pool runs in, on Debian 12 as root.
# Idempotent: a complete chroot (marker file present, same package list) is left as it is.
#
#   bash tests/services/install_htcondor.sh
#
# Debian 12 has no HTCondor package; trixie has `condor` 23.9, and it runs in a trixie
# chroot (see tests/services/htcondor.py, which writes the pool's config and starts it).
# Inside: condor, python3, python3-venv and the XRootD Python client (jobs write outputs
# to the test suite's XRootD server, as grid jobs do), the pool user condoruser
# (uid/gid 4242: root can never own a job), the directories systemd-tmpfiles would create.
# A chroot without the marker is half-built (an interrupted run): it is rebuilt, never used.
# Mounts needed here (proc, dev, dev/pts) are private, non-recursive, and unmounted on exit.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "install_htcondor.sh: run as root (debootstrap and chroot need it)" >&2; exit 2; }

ROOT=${PYLAW_HTCONDOR_ROOT:-/var/lib/pylaw-test/htcondor-trixie}
MIRROR=${PYLAW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
MARKER=$ROOT/.pylaw-htcondor-complete
PACKAGES="condor python3 python3-venv python3-numpy"   # the XRootD client is chosen below (python3-xrootd if trixie has it)
# python3-numpy: the site software the example analysis's jobs import (a grid node's stack, e.g. from CVMFS)
POOL_UID=4242
say() { echo "install_htcondor.sh: $*"; }
inside() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
elapsed() { echo "$(( $(date +%s) - $1 )) s"; }

# Everything mounted under ROOT right now (mount points, deepest first), from the kernel's own table.
mounted_under() {
    awk -v root="$ROOT" '{ p = $5; gsub(/\\040/, " ", p); if (p == root || index(p, root "/") == 1) print p }' \
        /proc/self/mountinfo | sort -r
}
MOUNTED=()
OWN_ROOT=0   # set once we hold the pool's lock: only then is whatever is mounted under ROOT ours
unmount_all() {
    local i point
    for (( i=${#MOUNTED[@]}-1; i>=0; i-- )); do umount "${MOUNTED[i]}" || umount -l "${MOUNTED[i]}"; done
    MOUNTED=()
    if [ "$OWN_ROOT" = 1 ]; then   # e.g. proc and sys of an interrupted debootstrap
        for point in $(mounted_under); do umount "$point" || umount -l "$point"; done
    fi
    if [ -n "$(mounted_under)" ]; then
        say "still mounted under $ROOT after unmounting:" >&2; mounted_under >&2; return 1
    fi
}
trap unmount_all EXIT
trap 'exit 130' INT TERM HUP   # run the EXIT trap on these too
mount_private() {  # mount_private TARGET MOUNT-ARGS...
    local target=$1; shift
    mount "$@" "$target"
    MOUNTED+=("$target")
    mount --make-private "$target"
}

wanted="$PACKAGES xrootd uid=$POOL_UID"
complete_exit() {
    if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$wanted" ]; then
        say "chroot $ROOT is complete ($(inside dpkg-query -W -f='condor ${Version}' condor)); nothing to do"
        exit 0
    fi
}
complete_exit   # without waiting for the lock: a running pool does not delay this
# The pool's own lock (tests/services/htcondor.py): no pool runs while the chroot changes.
mkdir -p "$(dirname "$ROOT")"
exec 9<>"$ROOT.lock"
flock -w "${PYLAW_HTCONDOR_LOCK_TIMEOUT:-300}" 9 || { say "the pool in $ROOT is in use (lock $ROOT.lock held)" >&2; exit 1; }
echo "$$" > "$ROOT.lock"
complete_exit
if [ -n "$(mounted_under)" ]; then
    # a running test pool (or a crashed one) still uses it: never delete or change it then
    say "refusing to touch $ROOT: something is mounted under it (a running test pool?):" >&2
    mounted_under >&2
    exit 1
fi
OWN_ROOT=1

start=$(date +%s)
# shellcheck source=tests/services/apt.sh
source "$(dirname "$0")/apt.sh"
apt_install_missing debootstrap
say "host debootstrap $(dpkg-query -W -f='${Version}' debootstrap) ready ($(elapsed "$start"))"

if [ ! -f "$MARKER" ]; then
    if [ -e "$ROOT" ]; then
        say "removing the incomplete chroot $ROOT (no marker: an interrupted build)"
        rm -rf --one-file-system "$ROOT"
    fi
    step=$(date +%s)
    debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >/dev/null
    say "debootstrap trixie ($(elapsed "$step"), $(du -sh --one-file-system "$ROOT" | cut -f1))"
fi
rm -f "$MARKER"   # from here on the chroot is being changed: incomplete until the end

step=$(date +%s)
mount_private "$ROOT/proc" -t proc proc
mount_private "$ROOT/dev" --bind /dev
mount_private "$ROOT/dev/pts" --bind /dev/pts
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# no daemon may start while packages are installed
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
inside apt-get -q update >/dev/null
# shellcheck disable=SC2086  # the package list is word-split on purpose
inside apt-get install -y -q --no-install-recommends $PACKAGES >/dev/null
# (captured first: `grep -q` closing the pipe early would fail the pipeline under pipefail)
policy=$(inside apt-cache policy python3-xrootd)
if grep -q 'Candidate: [0-9]' <<<"$policy"; then
    xrootd="python3-xrootd xrootd-client"   # jobs `import XRootD.client`; xrdcp for people
else
    xrootd=xrootd-client
fi
# shellcheck disable=SC2086
inside apt-get install -y -q --no-install-recommends $xrootd >/dev/null
inside apt-get clean
say "packages: $PACKAGES $xrootd ($(elapsed "$step"))"

# what systemd-tmpfiles would create on a booted system
for dir in /run/condor /run/lock/condor /var/spool/condor /var/lib/condor/execute /var/log/condor; do
    mkdir -p "$ROOT$dir"
    inside chown condor:condor "$dir"
done
grep -q "^127.0.0.1 $(uname -n)\$" "$ROOT/etc/hosts" || echo "127.0.0.1 $(uname -n)" >> "$ROOT/etc/hosts"
inside getent group condoruser >/dev/null || inside groupadd -g "$POOL_UID" condoruser
inside getent passwd condoruser >/dev/null || inside useradd -u "$POOL_UID" -g "$POOL_UID" -m -s /bin/sh condoruser

unmount_all
echo "$wanted" > "$MARKER"
say "chroot $ROOT ready: $(inside dpkg-query -W -f='condor ${Version}' condor), $xrootd," \
    "$(du -sh --one-file-system "$ROOT" | cut -f1), $(elapsed "$start") in all"
