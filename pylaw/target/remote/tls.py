"""davs:// without parsing the CA bundle per request, and without trusting anything else.

davix (GFAL2's http plugin) sets up OpenSSL anew for every request it sends, and OpenSSL
then loads its default CA *file* (``SSL_CERT_FILE``, else ``/usr/lib/ssl/cert.pem``: on
Debian the 144-certificate bundle) besides ``X509_CERT_DIR``: about 40 ms of client CPU per
request, so a 10,000-file collection check over davs:// took 4.5 s instead of 0.2 s.
OpenSSL's default *directory* (``SSL_CERT_DIR``) costs nothing until a certificate is
looked up in it by its subject hash.

When every certificate of the default file is also in the default directory under a hash
name (Debian's ``update-ca-certificates`` keeps both), a process whose ``SSL_CERT_FILE`` is
empty trusts exactly the same authorities and parses nothing per request. pylaw runs its
davs:// calls in such a process (a storage agent, :mod:`pylaw.target.remote.agent`),
so the trust of the user's own process, its ``ssl`` module and its subprocesses is never
changed. Where the equivalence cannot be shown, calls stay in the process, as before.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import ssl

_PEM = re.compile(rb"-----BEGIN (?:TRUSTED )?CERTIFICATE-----(.+?)-----END (?:TRUSTED )?CERTIFICATE-----", re.S)
_HASH_NAME = re.compile(r"^[0-9a-f]{8}\.\d+$")  # what OpenSSL's directory lookup opens

#: opt out (``PYLAW_LEAN_TLS=0``): davs:// calls stay in the process
OPT_OUT_ENV = "PYLAW_LEAN_TLS"


def _certificates(path: str) -> set[bytes]:
    """The DER bytes of every certificate in a PEM file (text only: nothing is parsed as X.509)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return set()
    found = set()
    for block in _PEM.findall(data):
        try:
            found.add(base64.b64decode(b"".join(block.split())))
        except ValueError:
            continue
    return found


def default_paths() -> tuple[str, str]:
    """OpenSSL's default CA file and directory for this process (the environment wins, as in OpenSSL)."""
    paths = ssl.get_default_verify_paths()
    return (os.environ.get(paths.openssl_cafile_env) or paths.openssl_cafile,
            os.environ.get(paths.openssl_capath_env) or paths.openssl_capath)


@functools.lru_cache(maxsize=4)
def _lean_environment(bundle: str, directory: str) -> tuple[tuple[str, str], ...] | None:
    in_bundle = _certificates(bundle)
    if not in_bundle:
        return None  # nothing to parse per request, or nothing we can read: no reason to move
    try:
        names = [n for n in os.listdir(directory) if _HASH_NAME.match(n)]
    except OSError:
        return None
    in_directory: set[bytes] = set()
    for name in names:
        in_directory |= _certificates(os.path.join(directory, name))
    if not in_bundle <= in_directory:
        return None  # the bundle trusts something the directory does not: emptying it would drop it
    return (("SSL_CERT_FILE", os.devnull), ("SSL_CERT_DIR", directory))


def lean_ca_environment() -> dict[str, str] | None:
    """Environment overrides that keep OpenSSL's trust and drop its per-request bundle parsing.

    None when the default CA file's certificates are not all in the default directory
    (a custom bundle), when there is no bundle, or when ``PYLAW_LEAN_TLS=0``.
    """
    if os.environ.get(OPT_OUT_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    lean = _lean_environment(*default_paths())
    return dict(lean) if lean is not None else None
