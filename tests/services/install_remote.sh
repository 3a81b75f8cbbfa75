#!/usr/bin/env bash
# Install what the remote-target tests need, on Debian 12 as root. Idempotent.
#
#   bash tests/services/install_remote.sh /path/to/venv
#
# - Debian packages: the gfal2 Python bindings (python3-gfal2 is built for CPython 3.11),
#   gfal2's file/http/xrootd plugins, the xrootd server + client, XRootD's own Python
#   bindings (python3-xrootd, for `interface = xrootd`), openssl (the test CA of davs://)
#   and nginx-extras (nginx with the WebDAV modules: the fast WebDAV server of the tests and
#   the benchmark, plain and over TLS; its service is not used, the tests start their own
#   nginx on a free port).
# - pip packages into the venv: wsgidav + cheroot (the WebDAV server of the tests).
# - symlinks of the gfal2 .so and of the XRootD/ and pyxrootd/ packages into the venv. We do
#   not add Debian's dist-packages to the venv's path: that would leak Debian's
#   cryptography/PyYAML/pip into it.
set -euo pipefail

VENV="${1:?usage: install_remote.sh VENV (path of the virtualenv to link gfal2 into)}"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "install_remote.sh: no python at $PY: create the venv first" >&2; exit 2; }

DEB_PACKAGES=(python3-gfal2 gfal2-plugin-file gfal2-plugin-http gfal2-plugin-xrootd xrootd-server xrootd-client
              python3-xrootd nginx-extras openssl)
# shellcheck source=tests/services/apt.sh
source "$(dirname "$0")/apt.sh"
apt_install_missing "${DEB_PACKAGES[@]}"

"$PY" -m pip install -q "wsgidav>=4.3" "cheroot>=10"

# Link the gfal2 extension module; its ABI tag must match the venv's interpreter.
SO=$(ls /usr/lib/python3/dist-packages/gfal2.cpython-*.so 2>/dev/null | head -n1 || true)
[ -n "$SO" ] || { echo "install_remote.sh: python3-gfal2 installed no gfal2 .so" >&2; exit 1; }
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ln -sf "$SO" "$SITE/$(basename "$SO")"
if ! "$PY" -c 'import gfal2' 2>/dev/null; then
    echo "install_remote.sh: $SO does not import in $("$PY" -V): python3-gfal2 is built for" \
         "CPython $(basename "$SO" | sed 's/gfal2.cpython-\([0-9]*\).*/\1/'); use a matching venv" >&2
    exit 1
fi
# XRootD's bindings: a pure-Python package over one extension module, both from Debian.
for PKG in XRootD pyxrootd; do
    [ -d "/usr/lib/python3/dist-packages/$PKG" ] || { echo "install_remote.sh: python3-xrootd installed no $PKG/" >&2; exit 1; }
    ln -sfn "/usr/lib/python3/dist-packages/$PKG" "$SITE/$PKG"
done
"$PY" -c 'from XRootD import client' || { echo "install_remote.sh: XRootD bindings do not import in $("$PY" -V)" >&2; exit 1; }
echo "install_remote.sh: gfal2 $("$PY" -c 'import gfal2; print(gfal2.get_version())') ready in $VENV"
