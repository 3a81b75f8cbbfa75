"""A real ARC CE (A-REX 6, fork LRMS, REST interface) on a free localhost port, for tests.

Everything lives in a fresh temporary directory: a test CA (tests/services/gridcerts.py)
with a host certificate for ``localhost`` and a user certificate, ``arc.conf``, the
control and session directories, logs, the user's proxy (``arcproxy``) and a client HOME
(the ARC client writes ``~/.arc/client.conf``: never the real one). Nothing under
/etc/grid-security or /etc/arc.conf is used.

A-REX is two arched processes in ARC 6: the job manager (started from our own XML, which
adds ``InfoproviderWakeupPeriod``: without it the info provider, whose GLUE2 records
``arcstat`` reads over REST, runs once a minute and job states lag by up to 60 s) and the
WS/REST front-end (``arc-arex-ws-start -f``, which execs arched). Pitfalls handled here
(shared/notes/services.md §5): the DH parameters are pre-created from the RFC 7919 group
(else the front-end generates 4096-bit ones for minutes), Debian has no group "nobody"
(jobs are mapped to ``nobody:nogroup``, so the session directory must be reachable by
them), and a stopped arched takes seconds to exit: ``stop()`` waits for both PIDs, so a
later A-REX never meets a half-stopped one.

Run ``python -m tests.services.arc`` to start one and print its client environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services._process import free_port, unavailable, wait_for_port
from tests.services.gridcerts import TestCA

ARCHED = "/usr/sbin/arched"
WS_START = "/usr/share/arc/arc-arex-ws-start"
PARSER = "/usr/lib/arc/arcconfig-parser"
CLIENT_TOOLS = ("arcsub", "arcstat", "arcget", "arckill", "arcclean", "arcproxy")
USER_CN = "pylaw arc user"

ARC_CONF = """\
[common]
hostname = localhost
x509_host_key = {root}/ca/host-key.pem
x509_host_cert = {root}/ca/host-cert.pem
x509_cert_dir = {root}/ca/certificates

[authgroup:zero]
file = {root}/allowed-subjects

[mapping]
map_to_user = zero nobody:nogroup

[lrms]
lrms = fork

[arex]
controldir = {root}/control
sessiondir = {root}/session
logfile = {root}/log/arex.log
pidfile = {root}/run/arex.pid
loglevel = INFO

[arex/data-staging]
logfile = {root}/log/datastaging.log

[arex/ws]
wsurl = https://localhost:{port}/arex
logfile = {root}/log/ws.log
pidfile = {root}/run/arex-ws.pid

[arex/ws/jobs]
allowaccess = zero

[infosys]
logfile = {root}/log/infoprovider.log

[infosys/glue2]

[infosys/cluster]

[queue:fork]
"""

AREX_XML = """\
<?xml version="1.0"?>
<ArcConfig xmlns="http://www.nordugrid.org/schemas/ArcConfig/2007"
           xmlns:arex="http://www.nordugrid.org/schemas/a-rex/Config">
  <Server>
    <PidFile>{root}/run/arex.pid</PidFile>
    <Logger><File>{root}/log/arex.log</File><Level>INFO</Level></Logger>
    <Watchdog>false</Watchdog>
  </Server>
  <ModuleManager><Path>/usr/lib/arc/</Path></ModuleManager>
  <Plugins><Name>arex</Name></Plugins>
  <Chain>
    <Service name="a-rex" id="a-rex">
      <arex:endpoint>https://localhost:{port}/arex</arex:endpoint>
      <arex:gmconfig>{root}/run/arex.cfg</arex:gmconfig>
      <arex:InfoproviderWakeupPeriod>{wakeup}</arex:InfoproviderWakeupPeriod>
    </Service>
  </Chain>
</ArcConfig>
"""


class ARCCE:
    """One A-REX; ``url`` is its endpoint, ``client_env()`` what the ARC client needs to use it."""

    def __init__(self, wakeup: int = 5) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pylaw-arc-"))
        self.port = free_port()
        self.wakeup = wakeup
        self.processes: list[subprocess.Popen] = []
        self.proxy = self.root / "proxy.pem"

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/arex"

    @property
    def controldir(self) -> Path:
        return self.root / "control"

    def client_env(self) -> dict[str, str]:
        return {"X509_USER_PROXY": str(self.proxy), "X509_CERT_DIR": str(self.ca.certdir),
                "HOME": str(self.root / "client-home")}

    def start(self) -> ARCCE:
        missing = [tool for tool in (ARCHED, WS_START, PARSER, *CLIENT_TOOLS) if not shutil.which(tool)]
        if missing:
            raise FileNotFoundError(f"{', '.join(missing)} missing: run tests/services/install_arc.sh")
        self._prepare()
        env = {**os.environ, "ARC_CONFIG": str(self.root / "arc.conf"), "HOSTNAME": "localhost",
               "X509_USER_CERT": str(self.root / "ca/host-cert.pem"),
               "X509_USER_KEY": str(self.root / "ca/host-key.pem"), "X509_CERT_DIR": str(self.ca.certdir)}
        for name, argv in (("arex", [ARCHED, "-f", "-c", str(self.root / "run/arex.xml")]),
                           ("arex-ws", [WS_START, "-f"])):
            with open(self.root / f"log/{name}.out", "wb") as out:
                self.processes.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                                       cwd=self.root, stdin=subprocess.DEVNULL))
        wait_for_port(self.port, self.processes[1], "A-REX's REST front-end", timeout=30)
        self._wait_for_info()
        return self

    def _prepare(self) -> None:
        os.chmod(self.root, 0o755)  # jobs run as nobody: they must reach their session directory
        for sub in ("control", "session", "log", "run", "client-home"):
            (self.root / sub).mkdir()
        os.chmod(self.root / "session", 0o1777)
        self.ca = TestCA(self.root / "ca")
        self.ca.issue("host", "localhost", host=True)
        user = self.ca.issue("user", USER_CN)
        (self.root / "allowed-subjects").write_text(f'"/DC=org/DC=pylaw-test/CN={USER_CN}"\n')
        (self.root / "arc.conf").write_text(ARC_CONF.format(root=self.root, port=self.port))
        (self.root / "run/arex.xml").write_text(AREX_XML.format(root=self.root, port=self.port, wakeup=self.wakeup))
        # the RFC 7919 group: instant, and passes arc-arex-ws-start's `openssl dhparam -check`
        _run("openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048",
             "-out", self.controldir / "dhparam.pem")
        _run(PARSER, "--config", self.root / "arc.conf", "--runconfig", self.root / "run/arex.cfg", "--save")
        self.ca.proxy(user, self.proxy, seconds=12 * 3600)
        self.user = user

    def _wait_for_info(self, timeout: float = 40.0) -> None:
        """Until the info provider has published the CE (arcsub's broker needs it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(process.poll() is not None for process in self.processes):
                raise RuntimeError(f"A-REX exited during start-up; see {self.root}/log")
            info = subprocess.run(["arcinfo", "-c", self.url, "-l"], capture_output=True, text=True,
                                  env={**os.environ, **self.client_env()}, timeout=30, check=False)
            if info.returncode == 0 and "fork" in info.stdout:
                return
            time.sleep(0.5)
        raise RuntimeError(f"A-REX at {self.url} published no CE information within {timeout:g} s")

    def accepted_jobs(self) -> dict[str, str]:
        """Every job this A-REX ever accepted, id -> job name: its accounting database (which keeps
        cleaned jobs too) and the ``job.<id>.local`` files of the jobs it holds now."""
        found: dict[str, str] = {}
        database = self.controldir / "accounting" / "accounting.db"
        if database.exists():
            with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
                found.update(db.execute(
                    "SELECT a.JobID, COALESCE(e.InfoValue, '') FROM AAR a LEFT JOIN JobExtraInfo e "
                    "ON e.RecordID = a.RecordID AND e.InfoKey = 'jobname'").fetchall())
        for local in self.controldir.glob("job.*.local"):
            job_id = local.name[4:-6]
            names = [line[8:] for line in _read(local).splitlines() if line.startswith("jobname=")]
            found[job_id] = names[0] if names else found.get(job_id, "")
        return found

    def jobs(self) -> list[str]:
        """A-REX's own list of the jobs it holds: the ids in its control directory (``job.<id>.status``)."""
        found = []
        for sub in ("", "processing", "accepting", "finished", "restarting"):
            directory = self.controldir / sub
            if directory.is_dir():
                found += [name[4:-7] for name in os.listdir(directory) if name.startswith("job.")
                          and name.endswith(".status")]
        return sorted(set(found))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:  # arched needs seconds to end its threads
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.processes = []
        self._kill_leftover_jobs()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftover_jobs(self) -> None:
        """Job processes still running in our session directory (started by this A-REX's fork LRMS).

        The fork LRMS's cancel leaves a killed job's processes running (seen with ARC 6.17:
        A-REX drops the job, its ``sleep`` goes on), so they are found by their working
        directory and killed by PID here.
        """
        session = str(self.root / "session")
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if cwd.startswith(session + "/"):
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:  # cleaned meanwhile
        return ""


def _run(*argv: object) -> None:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")


@pytest.fixture(scope="session")
def arc_ce() -> Iterator[ARCCE]:
    """A running A-REX for the whole session; skipped (or failed under PYLAW_REQUIRE_SERVICES=1) without one."""
    ce = ARCCE()
    try:
        ce.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        ce.stop()
        unavailable(f"cannot start A-REX: {exc}")
    yield ce
    ce.stop()


if __name__ == "__main__":
    ce = ARCCE().start()
    print(f"A-REX at {ce.url}, state in {ce.root}; Ctrl-C stops it")
    for key, value in ce.client_env().items():
        print(f"export {key}={value}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        ce.stop()
