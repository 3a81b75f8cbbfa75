"""A real single-machine HTCondor pool (Debian 13's ``condor`` 23.9 in a chroot) for tests and benchmarks.

Debian 12 has no HTCondor; ``tests/services/install_htcondor.sh`` (root) builds a trixie
chroot with ``condor``, and this module runs collector, negotiator, schedd, startd and
shared_port in it on 127.0.0.1, driven from the host by the ``htcondor2`` bindings
(CLAIMTOBE as the pool user ``condoruser``: root can never own a job). Jobs run in the
chroot's userland (Python 3.13, no host venv): the grid worker case.

One pool per machine: an exclusive ``flock`` guards it, so a second pytest session waits
(bounded) and then fails. What the chroot must see at the submitter's paths (job
directories: the shadow runs in the chroot) lives under ``pool.shared_dir``, bind-mounted
at the same path; ``binds=[...]`` adds read-only host directories for shared-file-system
tests. Stopped by PID; nothing stays mounted (checked from ``/proc/self/mountinfo``), and
nothing under the chroot is deleted while something is mounted in it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tests.services._process import free_port, unavailable

ROOT = os.environ.get("PYLAW_HTCONDOR_ROOT", "/var/lib/pylaw-test/htcondor-trixie")
MARKER = ".pylaw-htcondor-complete"   # written last by install_htcondor.sh
POOL_USER, POOL_UID = "condoruser", 4242
UID_DOMAIN = "minicondor"
PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
LOG_DIR = "/var/log/condor"
LOCK_TIMEOUT_ENV = "PYLAW_HTCONDOR_LOCK_TIMEOUT"   # seconds a second session waits for the pool
# Host kernel settings the master would retune through the bind-mounted /proc (pitfall 1).
KERNEL_SETTINGS = ("kernel/pid_max", "net/ipv4/ip_local_port_range", "fs/pipe-user-pages-soft",
                   "net/core/rmem_max")

# Facts behind the settings (shared/notes/htcondor.md): ENABLE_KERNEL_TUNING must be off
# before the first start; FS authentication does not cross the chroot boundary, so host
# clients use CLAIMTOBE (loopback only: test-only security); no cgroups in the chroot;
# MOUNT_UNDER_SCRATCH without /tmp so that jobs see shared directories under /tmp; 8 slots
# on 2 cores; fast intervals (the first job still waits one negotiation cycle); no startup
# benchmarks (mips/kflops burn a core for ~15 s and delay a graceful shutdown until done).
CONFIG = """\
CONDOR_HOST = 127.0.0.1
COLLECTOR_HOST = $(CONDOR_HOST):{port}
SHARED_PORT_PORT = {port}
use ROLE: CentralManager
use ROLE: Submit
use ROLE: Execute
NETWORK_INTERFACE = 127.0.0.1
BIND_ALL_INTERFACES = False
ENABLE_IPV6 = False
UID_DOMAIN = {domain}
FILESYSTEM_DOMAIN = {domain}
TRUST_UID_DOMAIN = True
ENABLE_KERNEL_TUNING = False
SEC_DEFAULT_AUTHENTICATION = REQUIRED
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, CLAIMTOBE
ALLOW_READ = *
ALLOW_WRITE = *
ALLOW_ADMINISTRATOR = *
ALLOW_NEGOTIATOR = *
ALLOW_DAEMON = *
BASE_CGROUP =
MOUNT_UNDER_SCRATCH = /var/tmp
NUM_CPUS = {cpus}
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_MIN_INTERVAL = 1
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 5
UPDATE_INTERVAL = 5
STARTER_UPDATE_INTERVAL = 5
SHADOW_QUEUE_UPDATE_INTERVAL = 5
JOB_START_DELAY = 0
RUNBENCHMARKS = False
BENCHMARKS_JOBLIST =
"""

# Run by the host venv's Python with the client env: ready when the collector has a startd
# and a schedd ad and the schedd answers a query (what every host client will need).
READY_PROBE = """\
import sys, time, htcondor2
deadline, error = time.monotonic() + float(sys.argv[1]), "no answer"
while time.monotonic() < deadline:
    try:
        collector = htcondor2.Collector()
        if not collector.query(htcondor2.AdTypes.Startd, projection=["Name"]):
            error = "no startd ad yet"
        elif not (schedds := collector.query(htcondor2.AdTypes.Schedd)):
            error = "no schedd ad yet"
        else:
            htcondor2.Schedd(schedds[0]).query(constraint="false", projection=["ClusterId"])
            sys.exit(0)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    time.sleep(0.2)
sys.exit(error)
"""


class PoolBusyError(RuntimeError):
    """Another process (another pytest session) runs the machine's pool."""


def mounts_under(root: str) -> list[str]:
    """Mount points at or under ``root``, in the kernel's order (later mounts last)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == root or point.startswith(root.rstrip("/") + "/"):
                found.append(point)
    return found


def processes_in(root: str) -> list[int]:
    """PIDs of the processes whose root directory is ``root`` (the pool's daemons and jobs)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/root") == root:
                    pids.append(int(entry))
            except OSError:
                pass   # gone meanwhile
    return pids


def kernel_settings() -> dict[str, str]:
    """The host kernel settings the pool must leave alone."""
    values = {}
    for name in KERNEL_SETTINGS:
        with open(f"/proc/sys/{name}") as f:
            values[name.replace("/", ".")] = f.read().strip()
    return values


class HTCondorPool:
    """A running pool in the chroot ``root``; ``client_env()`` addresses it from the host."""

    def __init__(self, root: str = ROOT, binds: Sequence[str] = (), cpus: int = 8,
                 lock_timeout: float | None = None, shared_dir: str = "") -> None:
        self.root = os.path.realpath(root)
        #: a host directory given by the caller is used as the shared directory and kept at stop
        self.keep_shared = os.path.realpath(shared_dir) if shared_dir else ""
        self.binds = [os.path.realpath(path) for path in binds]
        self.cpus = cpus
        self.lock_timeout = float(os.environ.get(LOCK_TIMEOUT_ENV, 300)) if lock_timeout is None else lock_timeout
        self.port = 0
        self.shared_dir = ""
        self.master: subprocess.Popen | None = None
        self.kernel_before: dict[str, str] = {}
        self.start_seconds = 0.0
        self._lock: int | None = None
        self._made: list[str] = []   # mount-point paths we created in the chroot (removed when empty)
        self._counter = 0
        self._made_file = self.root.rstrip("/") + ".mountpoints"

    # -- start ----------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> HTCondorPool:
        """Bring the pool up (bounded by ``timeout``); on any failure everything is undone again."""
        began = time.monotonic()
        if os.geteuid() != 0:
            raise PermissionError("the test HTCondor pool needs root (chroot, mounts)")
        if not os.path.exists(os.path.join(self.root, MARKER)):
            raise FileNotFoundError(f"no complete HTCondor chroot at {self.root}: "
                                    "run tests/services/install_htcondor.sh (root)")
        import htcondor2  # noqa: F401 - fail early (ImportError) without the client bindings

        self._acquire_lock()
        try:
            self._clean_leftovers()
            self._wipe_state()
            self.port = free_port()
            with open(os.path.join(self.root, "etc/condor/config.d/99-pylaw-pool.config"), "w") as f:
                f.write(CONFIG.format(port=self.port, domain=UID_DOMAIN, cpus=self.cpus))
            if self.keep_shared:
                os.makedirs(self.keep_shared, exist_ok=True)
                self.shared_dir = self.keep_shared
            else:
                self.shared_dir = tempfile.mkdtemp(prefix="pylaw-htcondor-")
            os.chmod(self.shared_dir, 0o777)
            self._mount_all()
            self.kernel_before = kernel_settings()
            with open(os.path.join(self.root, LOG_DIR.lstrip("/"), "master.out"), "wb") as out:
                self.master = subprocess.Popen(
                    ["chroot", self.root, "env", "-i", PATH, "/usr/sbin/condor_master", "-f",
                     "-pidfile", "/run/condor/condor_master.pid"],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _acquire_lock(self) -> None:
        fd = os.open(self.root.rstrip("/") + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise PoolBusyError(
                        f"the HTCondor pool in {self.root} is in use by PID {holder} (one pool per "
                        f"machine); waited {self.lock_timeout:.0f} s") from None
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock = fd

    def _clean_leftovers(self) -> None:
        """A session that died (kill -9) leaves daemons and mounts; we hold the lock, so they are stale."""
        if processes_in(self.root) or mounts_under(self.root):
            print(f"htcondor pool: cleaning up a previous pool left in {self.root}", file=sys.stderr)
            self._kill_remaining(signal.SIGKILL, 10.0)
            self._unmount_all()
        if os.path.exists(self._made_file):
            with open(self._made_file) as f:
                self._made = [line.strip() for line in f if line.strip()]
        self._remove_mount_points()

    def _wipe_state(self) -> None:
        """Queue, history, execute dirs and logs survive a restart (pitfall 12), and so would what
        jobs left in the worker's /tmp: start empty. Only while nothing is mounted (pitfall 13)."""
        if mounts_under(self.root):
            raise RuntimeError(f"refusing to delete pool state: something is mounted under {self.root}")
        for sub in ("var/spool/condor", "var/lib/condor/execute", LOG_DIR.lstrip("/"), "run/condor", "run/lock/condor",
                    "tmp", "var/tmp"):
            directory = os.path.join(self.root, sub)
            for entry in os.listdir(directory):
                path = os.path.join(directory, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)

    def _mount(self, target: str, *args: str) -> None:
        subprocess.run(["mount", *args, target], check=True, capture_output=True, text=True)
        subprocess.run(["mount", "--make-private", target], check=True, capture_output=True, text=True)

    def _mount_point(self, host_path: str) -> str:
        """The same path inside the chroot, created (and remembered) if missing."""
        target = self.root + host_path
        if not os.path.lexists(target):
            missing = target
            while not os.path.lexists(os.path.dirname(missing)):
                missing = os.path.dirname(missing)
            if os.path.isdir(host_path):
                os.makedirs(target)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "w").close()
            self._made.append(missing)
            with open(self._made_file, "a") as f:   # for the next session, should this one die
                f.write(missing + "\n")
        return target

    def _mount_all(self) -> None:
        """Non-recursive binds, each made private (pitfall 14); ``/`` a mount point (pitfall 3)."""
        root = self.root
        self._mount(root, "--bind", root)
        self._mount(f"{root}/proc", "-t", "proc", "proc")
        self._mount(f"{root}/sys", "--bind", "/sys")
        self._mount(f"{root}/dev", "--bind", "/dev")
        self._mount(f"{root}/dev/pts", "--bind", "/dev/pts")
        self._mount(f"{root}/dev/shm", "-t", "tmpfs", "-o", "mode=1777", "tmpfs")
        self._mount(self._mount_point(self.shared_dir), "--bind", self.shared_dir)
        for path in self.binds:
            if not os.path.exists(path):
                raise FileNotFoundError(f"cannot bind {path} into the pool: it does not exist")
            existing = self.root + path
            if (os.path.isdir(existing) and os.listdir(existing)) or os.path.isfile(existing):
                raise ValueError(f"cannot bind {path} into the pool: it would hide the chroot's own {existing}")
            target = self._mount_point(path)
            self._mount(target, "--bind", path)
            self._mount(target, "-o", "remount,bind,ro")

    def _wait_ready(self, timeout: float) -> None:
        assert self.master is not None
        deadline = time.monotonic() + 5   # until chroot(1) has entered the chroot and exec'd the master
        while (root := self._root_of(self.master.pid)) != self.root and time.monotonic() < deadline:
            time.sleep(0.01)
        if root != self.root:
            raise RuntimeError(f"condor_master (PID {self.master.pid}) runs in {root!r}, not in {self.root}"
                               f"\n{self.log_tails()}")
        probe = subprocess.Popen([sys.executable, "-c", READY_PROBE, str(timeout)], env=self.client_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while probe.poll() is None and self.master.poll() is None:
            time.sleep(0.1)
        if self.master.poll() is not None:
            probe.kill()
            probe.communicate()
            raise RuntimeError(f"condor_master exited with code {self.master.returncode}\n{self.log_tails()}")
        _, error = probe.communicate()
        if probe.returncode != 0:
            raise RuntimeError(f"the HTCondor pool did not come up within {timeout} s "
                               f"({error.strip()[-500:]})\n{self.log_tails()}")
        if kernel_settings() != self.kernel_before:
            raise RuntimeError(f"the pool changed host kernel settings: {self.kernel_before} -> {kernel_settings()}")

    @staticmethod
    def _root_of(pid: int) -> str:
        try:
            return os.readlink(f"/proc/{pid}/root")
        except OSError:
            return ""   # exited

    def log_tails(self, lines: int = 15) -> str:
        """The end of the daemons' logs: what a failed start or job needs explained."""
        parts = []
        for name in ("master.out", "MasterLog", "CollectorLog", "SchedLog", "StartLog", "StarterLog"):
            path = os.path.join(self.root, LOG_DIR.lstrip("/"), name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    tail = f.readlines()[-lines:]
                parts.append(f"--- {LOG_DIR}/{name} (last {len(tail)} lines)\n{''.join(tail)}")
        return "\n".join(parts)

    # -- use ------------------------------------------------------------------------------

    def client_env(self) -> dict[str, str]:
        """Environment for host clients (no config file at all) to talk to this pool as the pool user."""
        return {"CONDOR_CONFIG": "ONLY_ENV",
                "_CONDOR_COLLECTOR_HOST": f"127.0.0.1:{self.port}",
                "_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS": "CLAIMTOBE",
                "_CONDOR_SEC_CLAIMTOBE_USER": POOL_USER,
                "_CONDOR_UID_DOMAIN": UID_DOMAIN,
                # the submitter stamps its own FileSystemDomain on the job (default: the host
                # name); shared-file-system jobs only match slots of the same domain
                "_CONDOR_FILESYSTEM_DOMAIN": UID_DOMAIN}

    def schedd(self) -> Any:
        """The pool's ``htcondor2.Schedd`` (needs ``client_env()`` applied, as the fixture does)."""
        import htcondor2

        return htcondor2.Schedd(htcondor2.Collector(f"127.0.0.1:{self.port}").locate(htcondor2.DaemonTypes.Schedd))

    def new_dir(self, name: str = "job") -> str:
        """A fresh directory (mode 0777) the host and the chroot see at the same path (pitfall 6)."""
        self._counter += 1
        path = tempfile.mkdtemp(prefix=f"{self._counter:03d}-{name}-", dir=self.shared_dir)
        os.chmod(path, 0o777)
        return path

    def run_inside(self, command: Sequence[str], user: str = POOL_USER, timeout: float = 60.0,
                   check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the chroot's userland as ``user``, with a clean environment."""
        home = "/root" if user == "root" else f"/home/{user}"
        return subprocess.run(["chroot", f"--userspec={user}:{user}", self.root, "env", "-i", PATH,
                               f"HOME={home}", "LANG=C.UTF-8", *command],
                              capture_output=True, text=True, timeout=timeout, check=check, **kwargs)

    def processes(self) -> list[int]:
        """PIDs of everything running in the chroot (daemons, shadows, starters, jobs)."""
        return processes_in(self.root)

    def rss_kib(self) -> int:
        """Resident memory of everything in the chroot, in KiB."""
        total = 0
        for pid in self.processes():
            try:
                with open(f"/proc/{pid}/status") as f:
                    total += sum(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            except OSError:
                pass
        return total

    # -- stop -----------------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the master by PID, then whatever still runs in the chroot; unmount; verify.

        Does nothing unless this object holds the pool's lock (never stops another session's pool).
        """
        if self._lock is None:
            return
        try:
            self._stop_processes(timeout)
            self._unmount_all()
            self._remove_mount_points()
            if self.shared_dir and not self.keep_shared:
                shutil.rmtree(self.shared_dir, ignore_errors=True)   # the host side, unmounted by now
            self.shared_dir = ""
        finally:
            os.close(self._lock)   # releases the flock
            self._lock = None

    def _remove_mount_points(self) -> None:
        """The mount points we created in the chroot, only while empty and with nothing mounted."""
        if mounts_under(self.root):
            raise RuntimeError(f"refusing to remove mount points: something is mounted under {self.root}")
        for path in reversed(self._made):
            if not path.startswith(self.root + "/"):
                continue
            for dirpath, _, _ in os.walk(path, topdown=False):
                with contextlib.suppress(OSError):   # not empty: not only ours
                    os.rmdir(dirpath)
            if os.path.isfile(path) and os.path.getsize(path) == 0:
                os.unlink(path)
        self._made = []
        if os.path.exists(self._made_file):
            os.unlink(self._made_file)

    def _stop_processes(self, timeout: float) -> None:
        master = self.master
        if master is not None and master.poll() is None and self._root_of(master.pid) == self.root:
            master.send_signal(signal.SIGTERM)
            try:
                master.wait(timeout)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait(5)
        self.master = None
        self._kill_remaining(signal.SIGTERM, 5.0)
        self._kill_remaining(signal.SIGKILL, 10.0)

    def _kill_remaining(self, sig: int, timeout: float) -> None:
        pids = processes_in(self.root)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = processes_in(self.root)
        if pids and sig == signal.SIGKILL:
            raise RuntimeError(f"processes still running in {self.root} after SIGKILL: {pids}")

    def _unmount_all(self) -> None:
        """Deepest (and, when stacked, latest) mount first, until mountinfo lists none under the chroot."""
        for _ in range(100):
            points = mounts_under(self.root)
            if not points:
                return
            deepest = points[max(range(len(points)), key=lambda i: (points[i].count("/"), i))]
            result = subprocess.run(["umount", deepest], capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"cannot unmount {deepest}: {result.stderr.strip()}")
        raise RuntimeError(f"still mounted under {self.root}: {mounts_under(self.root)}")


class PoolKeeper:
    """The session's one pool (one per machine: the lock), restarted when a test needs other binds.

    Two pools of one chroot cannot run at once, also not in one process (``flock`` locks
    of two open files conflict), so every test module asks this keeper instead of starting
    its own; a start takes about 2 s. ``os.environ`` carries the running pool's client env.
    """

    def __init__(self) -> None:
        self.pool: HTCondorPool | None = None
        self.previous: dict[str, str | None] = {}

    def get(self, binds: Sequence[str] = ()) -> HTCondorPool:
        """The running pool with exactly ``binds``; without the chroot, bindings or root: skip (fail in CI)."""
        wanted = [os.path.realpath(path) for path in binds]
        if self.pool is not None and self.pool.binds == wanted:
            return self.pool
        self.close()
        pool = HTCondorPool(binds=wanted)
        try:
            pool.start()
        except PoolBusyError as exc:
            pool.stop()
            pytest.fail(str(exc))
        except (OSError, RuntimeError, ImportError, subprocess.SubprocessError) as exc:
            pool.stop()
            unavailable(f"could not start the HTCondor pool: {exc}")
        import htcondor2

        self.previous = {key: os.environ.get(key) for key in pool.client_env()}
        os.environ.update(pool.client_env())
        htcondor2.reload_config()
        self.pool = pool
        return pool

    def close(self) -> None:
        if self.pool is None:
            return
        import htcondor2

        for key, value in self.previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        htcondor2.reload_config()
        pool, self.pool = self.pool, None
        pool.stop()


@pytest.fixture(scope="session")
def htcondor_pools() -> Iterator[PoolKeeper]:
    """The session's :class:`PoolKeeper`; its pool is stopped at the end of the session."""
    keeper = PoolKeeper()
    try:
        yield keeper
    finally:
        keeper.close()


@pytest.fixture
def htcondor_pool(htcondor_pools: PoolKeeper) -> HTCondorPool:
    """A running pool without binds (jobs see nothing of the host but ``shared_dir``)."""
    return htcondor_pools.get()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.services.htcondor --shared DIR -- COMMAND...``: run COMMAND against a pool.

    Starts the test pool with DIR (created, mode 0777, kept afterwards) as its shared
    directory, runs COMMAND with the pool's client environment and ``umask 0`` (jobs run
    as the pool user and write into directories the command creates), stops the pool and
    exits with COMMAND's exit code. Root only, like the pool.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.services.htcondor", description=main.__doc__)
    parser.add_argument("--shared", required=True, help="host directory jobs see at the same path (kept)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    pool = HTCondorPool(shared_dir=args.shared).start()
    try:
        print(f"HTCondor test pool up on 127.0.0.1:{pool.port}, shared directory {pool.shared_dir}", flush=True)
        previous = os.umask(0)
        try:
            return subprocess.run(command, env={**os.environ, **pool.client_env()}).returncode
        finally:
            os.umask(previous)
    finally:
        pool.stop()


if __name__ == "__main__":
    sys.exit(main())
