"""``pylaw verify``: a workflow's remote outputs against their checksum records, through the real CLI.

The storage element is configured in luigi.cfg (``record_checksums = true``), the outputs
are written by ``pyl``, then tampered with on the server's disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import cli_env

TASKS = '''
import luigi
import pylaw
from pylaw.target.remote.target import RemoteFileTarget


class Squares(pylaw.Task, pylaw.LocalWorkflow):
    def create_branch_map(self):
        return list(range(4))

    def output(self):
        return RemoteFileTarget(f"sq/{self.version}/sq_{self.branch}.json", fs="vt")

    def run(self):
        self.output().dump({"square": self.branch ** 2})
'''


def pylaw(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from pylaw.cli.main import main; raise SystemExit(main())", *args],
                          cwd=tmp_path, env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)


def lines(result: subprocess.CompletedProcess) -> dict[str, str]:
    """Output basename -> status."""
    return {line.split()[1].rsplit("/", 1)[-1]: line.split()[0] for line in result.stdout.splitlines()
            if ":/sq/" in line}


def project(tmp_path, base: str) -> None:
    (tmp_path / "verify_tasks.py").write_text(TASKS)
    (tmp_path / "luigi.cfg").write_text(textwrap.dedent(f"""\
        [storage:vt]
        base = {base}
        record_checksums = true
        retries = 1
        retry_delay = 0.01
        """))
    run = pylaw(tmp_path, "run", "Squares", "--module", "verify_tasks", "--version", "v1", "--workers", "2")
    assert run.returncode == 0, run.stderr


def on_disk(server, base: str, name: str) -> str:
    return server.local_path(f"{base.rsplit('/', 1)[-1]}/sq/v1/{name}")


def tamper(path: str, keep_mtime: bool) -> None:
    stat = os.stat(path)
    with open(path, "r+b") as f:
        data = f.read()
        f.seek(0)
        f.write(data.replace(b"square", b"SQUARE"))  # same size, other content
    mtime = stat.st_mtime_ns if keep_mtime else stat.st_mtime_ns + 5 * 10**9
    os.utime(path, ns=(stat.st_atime_ns, mtime))


def test_verify_on_xrootd(tmp_path, base_url_for, xrootd_server) -> None:
    base = base_url_for("root")
    project(tmp_path, base)
    clean = pylaw(tmp_path, "verify", "verify_tasks", "Squares", "--version", "v1")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert lines(clean) == dict.fromkeys([f"sq_{i}.json" for i in range(4)], "ok")
    assert "4 remote outputs: 4 ok" in clean.stdout

    tamper(on_disk(xrootd_server, base, "sq_1.json"), keep_mtime=False)
    tamper(on_disk(xrootd_server, base, "sq_2.json"), keep_mtime=True)
    os.remove(on_disk(xrootd_server, base, "sq_3.json"))
    reported = pylaw(tmp_path, "verify", "verify_tasks", "Squares", "--version", "v1")
    assert reported.returncode == 1
    # sq_2: xrootd answers the checksum it recorded for the unchanged mtime (see pylaw.target.remote.xrootd)
    assert lines(reported) == {"sq_0.json": "ok", "sq_1.json": "mismatch", "sq_2.json": "ok",
                               "sq_3.json": "missing"}
    downloaded = pylaw(tmp_path, "verify", "--download", "verify_tasks", "Squares", "--version", "v1")
    assert downloaded.returncode == 1
    assert lines(downloaded) == {"sq_0.json": "ok", "sq_1.json": "mismatch", "sq_2.json": "mismatch",
                                 "sq_3.json": "missing"}


def test_verify_on_webdav_needs_download(tmp_path, base_url_for, webdav_server) -> None:
    base = base_url_for("dav")
    project(tmp_path, base)
    reported = pylaw(tmp_path, "verify", "verify_tasks", "Squares", "--version", "v1")
    assert reported.returncode == 0, reported.stdout + reported.stderr
    assert set(lines(reported).values()) == {"unchecked"}  # sizes match; wsgidav reports no checksum
    tamper(on_disk(webdav_server, base, "sq_0.json"), keep_mtime=True)
    downloaded = pylaw(tmp_path, "verify", "--download", "verify_tasks", "Squares", "--version", "v1")
    assert downloaded.returncode == 1
    assert lines(downloaded) == {"sq_0.json": "mismatch", "sq_1.json": "ok", "sq_2.json": "ok", "sq_3.json": "ok"}


@pytest.mark.parametrize("value", ["sha1", "yes please"])
def test_bad_validation_keys_are_usage_errors(tmp_path, value) -> None:
    (tmp_path / "verify_tasks.py").write_text(TASKS)
    key = "checksum" if value == "sha1" else "record_checksums"
    (tmp_path / "luigi.cfg").write_text(f"[storage:vt]\nbase = file:///tmp\n{key} = {value}\n")
    result = pylaw(tmp_path, "verify", "verify_tasks", "Squares", "--version", "v1")
    assert result.returncode == 2
    assert key in result.stderr and value in result.stderr
