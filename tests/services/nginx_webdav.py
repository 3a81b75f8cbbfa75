"""A fast real WebDAV server: nginx (Debian ``nginx-extras``) on 127.0.0.1, reached by gfal2's http plugin.

nginx's own ``dav`` module plus the ``dav_ext`` module (PROPFIND, OPTIONS) serve a
temporary directory on a free port; URLs are ``dav://127.0.0.1:PORT/pylaw/...``. It
answers a PROPFIND of 100 entries in well under a millisecond, like dCache's WebDAV door,
where wsgidav (pure Python) needs about 10 ms.

Three workarounds make davix and nginx agree (see section 4 of the services notes):

- davix sends ``MKCOL`` without a trailing slash, which nginx refuses (409): rewrite it;
- ``DELETE`` and ``MOVE`` of a directory need the trailing slash too, on the request URI
  and (for ``MOVE``) on the ``Destination`` header (``headers-more`` module);
- the modules are loaded by absolute path (a relative one resolves against ``-p``).

``NginxWebDAVServer(token="...")`` refuses requests without that bearer token, as a
token-protected dCache door does.

``NginxWebDAVServer(tls=True)`` serves ``davs://`` (HTTPS, as dCache's doors do) with a
server certificate signed by a throw-away CA made with the ``openssl`` command; ``ca_dir``
holds that CA in the hashed layout of ``X509_CERT_DIR`` (/etc/grid-security/certificates),
where davix looks for the authorities it trusts.

When started as root the workers run as root too, so that files the tests create on the
server's disk directly stay writable through the server (the data is a temporary
directory served on loopback only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.services._process import TempDirServer, running, wait_for_port

MODULES = "/usr/lib/nginx/modules"

CONFIG = """\
load_module {modules}/ngx_http_dav_ext_module.so;
load_module {modules}/ngx_http_headers_more_filter_module.so;
{user}
worker_processes 2;
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    client_max_body_size 0;
    keepalive_requests 100000;
    map $http_destination $dest_slash {{ "~/$" $http_destination; default "$http_destination/"; }}
    server {{
        listen 127.0.0.1:{port}{ssl};
        {certificates}
        root {root}/data;
        location / {{
            {authorization}
            if ($request_method = MKCOL) {{ rewrite ^(.*[^/])$ $1/ break; }}
            if (-d $request_filename) {{
                rewrite ^(.*[^/])$ $1/ break;
                more_set_input_headers "Destination: $dest_slash";
            }}
            dav_methods PUT DELETE MKCOL COPY MOVE;
            dav_ext_methods PROPFIND OPTIONS;
            create_full_put_path on;
            dav_access user:rw group:rw all:r;
        }}
    }}
}}
"""


class NginxWebDAVServer(TempDirServer):
    """One nginx master (and its workers) serving a temporary directory; ``url`` is the writable base URL."""

    prefix = "pylaw-nginx-"
    url_format = "dav://127.0.0.1:{port}/pylaw"

    def __init__(self, tls: bool = False, token: str | None = None) -> None:
        super().__init__()
        self.tls = tls
        self.token = token
        self.ca_dir = os.path.join(self.root, "ca")
        if tls:
            self.url_format = self.url_format.replace("dav://", "davs://", 1)

    def _authorization(self) -> str:
        """nginx directive refusing (401) every request without ``Authorization: Bearer <token>``."""
        if self.token is None:
            return ""
        if not self.token.isalnum():
            raise ValueError("the test token must be alphanumeric: it is written into nginx's config")
        return f'if ($http_authorization != "Bearer {self.token}") {{ return 401; }}'

    def _make_certificates(self) -> str:
        """A CA (hashed into ``ca_dir``) and a certificate for 127.0.0.1 signed by it; nginx's directives."""
        tls = os.path.join(self.root, "tls")
        os.makedirs(tls, exist_ok=True)
        os.makedirs(self.ca_dir, exist_ok=True)

        def openssl(*args: str) -> str:
            return subprocess.run(["openssl", *args], cwd=tls, check=True, capture_output=True, text=True).stdout

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=pylaw test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
                "-subj", "/CN=127.0.0.1")
        with open(os.path.join(tls, "server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
        digest = openssl("x509", "-hash", "-noout", "-in", "ca.pem").strip()
        shutil.copy(os.path.join(tls, "ca.pem"), os.path.join(self.ca_dir, f"{digest}.0"))
        return f"ssl_certificate {tls}/server.pem; ssl_certificate_key {tls}/server.key;"

    def start(self) -> NginxWebDAVServer:
        binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
        if binary is None or not os.path.exists(os.path.join(MODULES, "ngx_http_dav_ext_module.so")):
            raise FileNotFoundError("nginx with the dav_ext module is not installed (Debian nginx-extras): "
                                    "run tests/services/install_remote.sh VENV")
        for sub in ("data/pylaw", "logs", "tmp"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        config = os.path.join(self.root, "nginx.conf")
        user = "user root root;" if os.geteuid() == 0 else ""
        certificates = self._make_certificates() if self.tls else ""
        with open(config, "w") as f:
            f.write(CONFIG.format(modules=MODULES, user=user, root=self.root, port=self.port,
                                  ssl=" ssl" if self.tls else "", certificates=certificates,
                                  authorization=self._authorization()))
        out = open(os.path.join(self.root, "logs", "nginx.out"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen([binary, "-c", config, "-p", self.root, "-g", "daemon off;"],
                                        stdout=out, stderr=subprocess.STDOUT, cwd=self.root)
        out.close()
        wait_for_port(self.port, self.process, "nginx")
        return self


@pytest.fixture(scope="session")
def nginx_webdav_server() -> Iterator[NginxWebDAVServer]:
    """A running nginx WebDAV server for the whole session; skipped (or failed in CI) when unavailable."""
    yield from running(NginxWebDAVServer(), "nginx (WebDAV)")


@pytest.fixture(scope="session")
def nginx_webdavs_server() -> Iterator[NginxWebDAVServer]:
    """The same over HTTPS (davs://) with a certificate of a test CA; skipped (or failed in CI) when unavailable."""
    yield from running(NginxWebDAVServer(tls=True), "nginx (WebDAV over TLS)",
                       errors=(OSError, RuntimeError, subprocess.CalledProcessError))
