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
        listen 127.0.0.1:{port};
        root {root}/data;
        location / {{
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

    def start(self) -> NginxWebDAVServer:
        binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
        if binary is None or not os.path.exists(os.path.join(MODULES, "ngx_http_dav_ext_module.so")):
            raise FileNotFoundError("nginx with the dav_ext module is not installed (Debian nginx-extras): "
                                    "run tests/services/install_remote.sh VENV")
        for sub in ("data/pylaw", "logs", "tmp"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        config = os.path.join(self.root, "nginx.conf")
        user = "user root root;" if os.geteuid() == 0 else ""
        with open(config, "w") as f:
            f.write(CONFIG.format(modules=MODULES, user=user, root=self.root, port=self.port))
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
