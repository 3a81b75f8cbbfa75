"""A real single-node Slurm (Debian ``slurm-wlm``) on 127.0.0.1 for tests and benchmarks.

Everything lives in a fresh temporary state directory: ``slurm.conf``, the controller's
state, slurmd's spool, logs, and a private ``munged`` socket, so nothing under ``/etc``
is rewritten and a munged or Slurm started by someone else is left alone. The cluster
is selected by exporting ``SLURM_CONF`` (every Slurm command, and every job, reads it).
Daemons run in the foreground as our children and are stopped by their PIDs.

With ``accounting=True`` a private MariaDB and ``slurmdbd`` are started first, so that
``sacct`` works (the packages ``slurmdbd mariadb-server`` are installed by the same
script).

Install the packages first: ``bash tests/services/install_slurm.sh`` (root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.services._process import free_port, stop_process, unavailable

# Facts behind the settings (see also docs/slurm.rst):
# - slurmd takes its node name from `hostname`: start it with -N localhost.
# - CPUs above the real core count drain the node ("Low socket*core count") unless
#   SlurmdParameters=config_overrides; 8 slots make 50-branch tests finish in seconds.
# - the default scheduler paces dispatch at a few jobs per 3 s; batch_sched_delay=0 and
#   sched_min_interval=0 dispatch immediately.
# - squeue forgets finished jobs after MinJobAge seconds; a long MinJobAge keeps their
#   final state visible to `squeue --states=all` and `scontrol show job`.
# - without slurmdbd, `sacct` fails with "accounting storage is disabled".
# - with a private munged socket, AuthInfo=socket= covers slurmctld/slurmd only; the
#   connection to slurmdbd takes its socket from AccountingStoragePass.
CONFIG = """\
ClusterName=pylawtest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={state}/munge/munge.socket
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool
SlurmctldLogFile={state}/log/slurmctld.log
SlurmdLogFile={state}/log/slurmd.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=1000
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
{accounting}
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MinJobAge={min_job_age}
MaxJobCount=20000
MaxArraySize=10001
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
NO_ACCOUNTING = "AccountingStorageType=accounting_storage/none"
ACCOUNTING = """\
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={dbd_port}
AccountingStoragePass={state}/munge/munge.socket
AccountingStorageEnforce=associations,limits"""
DBD_CONFIG = """\
AuthType=auth/munge
AuthInfo=socket={state}/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={dbd_port}
SlurmUser=root
LogFile={state}/log/slurmdbd.log
PidFile={state}/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={db_port}
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=pylaw-test-only
"""


class SlurmCluster:
    """munged + slurmctld + slurmd with their own config; ``env`` selects this cluster."""

    def __init__(self, cpus: int = 8, extra_config: str = "", accounting: bool = False,
                 min_job_age: int = 3600) -> None:
        self.cpus = cpus
        self.extra_config = extra_config
        self.accounting = accounting
        self.min_job_age = min_job_age
        self.state = tempfile.mkdtemp(prefix="pylaw-slurm-")
        self.conf = os.path.join(self.state, "slurm.conf")
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": self.conf}

    def start(self, timeout: float = 30.0) -> SlurmCluster:
        for binary in ("munged", "slurmctld", "slurmd", "sbatch"):
            if shutil.which(binary) is None:
                raise FileNotFoundError(f"{binary} is not installed: run tests/services/install_slurm.sh")
        if os.geteuid() != 0:
            raise PermissionError("the test Slurm runs its daemons as root (SlurmUser=root): run as root")
        for sub in ("ctld", "spool", "log"):
            os.makedirs(os.path.join(self.state, sub))
        dbd_port = free_port()
        accounting = NO_ACCOUNTING
        if self.accounting:
            accounting = ACCOUNTING.format(state=self.state, dbd_port=dbd_port)
        with open(self.conf, "w") as f:
            ports = {"ctld_port": free_port(), "d_port": free_port()}
            f.write(CONFIG.format(state=self.state, cpus=self.cpus, accounting=accounting,
                                  min_job_age=self.min_job_age, **ports))
            f.write(self.extra_config)
        self._start_munged()
        env = {**os.environ, **self.env}
        if self.accounting:
            self._start_accounting(env, dbd_port, timeout)
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", self.conf], env)
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", self.conf], env)
        self._wait_idle(timeout)
        return self

    def _start_munged(self) -> None:
        """A private munged: its socket directory must belong to the munge user, mode 0755."""
        munge = pwd.getpwnam("munge")
        directory = os.path.join(self.state, "munge")
        os.makedirs(directory, mode=0o755)
        os.chmod(self.state, 0o755)
        os.chown(directory, munge.pw_uid, munge.pw_gid)
        command = ["munged", "-F", "--socket", f"{directory}/munge.socket",
                   "--pid-file", f"{directory}/munged.pid", "--seed-file", f"{directory}/munged.seed",
                   "--log-file", f"{directory}/munged.log"]
        self._spawn("munged", command, dict(os.environ), user=munge.pw_uid, group=munge.pw_gid)
        deadline = time.monotonic() + 10
        while not os.path.exists(f"{directory}/munge.socket"):
            if self.processes["munged"].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"munged did not come up; see {directory}/munged.log and "
                                   f"{self.state}/log/munged.out (is /etc/munge/munge.key present?)")
            time.sleep(0.05)

    def _start_accounting(self, env: dict[str, str], dbd_port: int, timeout: float) -> None:
        """A private MariaDB and slurmdbd; the cluster is registered before slurmctld starts."""
        for binary in ("mariadbd", "mariadb-install-db", "slurmdbd"):
            if shutil.which(binary) is None:
                raise FileNotFoundError(f"{binary} is not installed: run tests/services/install_slurm.sh")
        db, socket = os.path.join(self.state, "db"), os.path.join(self.state, "mysql.sock")
        subprocess.run(["mariadb-install-db", f"--datadir={db}", "--user=root",
                        "--auth-root-authentication-method=normal"],
                       check=True, capture_output=True, timeout=120)
        db_port = free_port()
        self._spawn("mariadbd", ["mariadbd", f"--datadir={db}", f"--socket={socket}", f"--port={db_port}",
                                 "--bind-address=127.0.0.1", "--user=root",
                                 f"--pid-file={self.state}/mariadb.pid"], env)
        sql = ("CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'pylaw-test-only'; "
               "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;")
        self._retry(["mariadb", f"--socket={socket}", "-e", sql], env, timeout, "MariaDB")
        # slurmdbd reads slurmdbd.conf next to slurm.conf, and refuses it unless it is private
        dbd_conf = os.path.join(self.state, "slurmdbd.conf")
        with open(os.open(dbd_conf, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(DBD_CONFIG.format(state=self.state, dbd_port=dbd_port, db_port=db_port))
        self._spawn("slurmdbd", ["slurmdbd", "-D"], env)
        self._retry(["sacctmgr", "--noheader", "show", "cluster"], env, timeout, "slurmdbd")
        subprocess.run(["sacctmgr", "-i", "add", "cluster", "pylawtest"], env=env, check=True,
                       capture_output=True)

    def _retry(self, command: list[str], env: dict[str, str], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while subprocess.run(command, env=env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up within {timeout} s; see {self.state}/log/")
            time.sleep(0.2)

    def _spawn(self, name: str, command: list[str], env: dict[str, str], **kwargs: int) -> None:
        # started directly (not through runuser/su) so that the PID we keep is the daemon's
        with open(os.path.join(self.state, "log", f"{name}.out"), "wb") as out:
            self.processes[name] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                                    **kwargs)  # type: ignore[call-overload]

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        env = {**os.environ, **self.env}
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {process.returncode}; see {self.state}/log/")
            result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
            if result.returncode == 0 and result.stdout.strip() == "idle":
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Slurm node did not become idle within {timeout} s; see {self.state}/log/")

    def jobs(self) -> list[tuple[str, str, str]]:
        """Slurm's own job list: ``(job id, name, state)`` of every job it still remembers."""
        result = subprocess.run(["squeue", "-h", "-r", "--states=all", "-o", "%i|%j|%T"], capture_output=True,
                                text=True, env={**os.environ, **self.env}, check=True)
        return [tuple(line.split("|", 2)) for line in result.stdout.splitlines() if line]  # type: ignore[misc]

    def stop(self) -> None:
        if "slurmctld" in self.processes:
            # jobs still running would outlive slurmd (slurmstepd is their own process)
            subprocess.run(["scancel", "--user=root"], env={**os.environ, **self.env}, capture_output=True,
                           timeout=30)
            time.sleep(0.5)
        # slurmd first: the controller would otherwise log the node as not responding
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            stop_process(self.processes.pop(name, None))
        shutil.rmtree(self.state, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running single-node Slurm; ``SLURM_CONF`` points at it for the whole session.

    Without the packages (or not as root) the tests skip, unless PYLAW_REQUIRE_SERVICES
    is set: then a Slurm that does not come up fails them.
    """
    cluster = SlurmCluster()
    try:
        cluster.start()
    except (OSError, RuntimeError) as exc:
        cluster.stop()
        unavailable(f"could not start a local Slurm: {exc}")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = cluster.conf
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        cluster.stop()


@pytest.fixture(scope="session")
def slurm_accounting_cluster() -> Iterator[SlurmCluster]:
    """A second cluster, with slurmdbd (real ``sacct``) and a short MinJobAge.

    ``squeue`` forgets its finished jobs after a few seconds (slurmctld purges old jobs
    in a periodic pass, so "a few" can be up to about a minute); only ``sacct`` still
    knows them then. Use ``cluster.env`` to address it.
    """
    cluster = SlurmCluster(cpus=2, accounting=True, min_job_age=2)
    try:
        cluster.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        cluster.stop()
        unavailable(f"could not start a local Slurm with accounting: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
