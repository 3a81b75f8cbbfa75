"""Branch locks: one branch of one workflow never runs in two processes of a machine at once.

luigid locks tasks, but a local workflow runs its branches itself, and two runs with
overlapping ``--branches`` are two different workflow tasks; with a local scheduler
nothing is locked at all. So each branch takes a POSIX record lock on *one byte* (its
number) of a lock file shared by every workflow whose branches are the same tasks (same
family and significant parameters, whatever ``--branches``). Record locks belong to the
process and vanish with it, even on SIGKILL: no stale lock files, no clean-up. The
same byte records that a run made the branch, so only then does the next holder of the
lock check the branch's outputs again. Cost per branch: two ``fcntl`` calls, a one-byte
read and a one-byte write. Where the store is on a shared file system they
hold across machines only if it supports POSIX locks (NFSv4 does).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import struct
import sys
from typing import Any

from pylaw import config

# struct flock on Linux (l_type, l_whence, l_start, l_len, l_pid + padding), for F_GETLK
_FLOCK = "hhqqi4x"


def lock_path(workflow: Any) -> str:
    """The lock file of a workflow's branches (shared by every ``--branches`` selection of it)."""
    params = workflow.to_str_params(only_significant=True)
    identity = "\n".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("branch", "branches"))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
    return os.path.join(config.store_root(), ".pylaw-locks", f"{workflow.get_task_family()}-{digest}.lock")


def held_branches(path: str) -> dict[int, int]:
    """``{branch: pid}`` of the branch locks other processes hold in the lock file at ``path`` (Linux).

    Asks the kernel for the first conflicting lock from a position on (``F_GETLK``) and
    goes on after it: as many calls as locks are held, whatever the number of branches.
    Opened read-only and never locked, so looking changes nothing for the runs.
    """
    held: dict[int, int] = {}
    if not sys.platform.startswith("linux"):
        return held
    fd = os.open(path, os.O_RDONLY)
    try:
        start = 0
        while True:
            # a read lock conflicts with every write lock (branch locks are write locks)
            query = struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET, start, 0, 0)
            l_type, _, l_start, l_len, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
            if l_type == fcntl.F_UNLCK:
                return held
            for branch in range(l_start, l_start + max(l_len, 1)):
                held[branch] = pid
            start = l_start + max(l_len, 1)
    finally:
        os.close(fd)


class BranchLocks:
    """The lock bytes of one workflow's branches, in ``<store>/.pylaw-locks/``."""

    def __init__(self, workflow: Any) -> None:
        self.path = lock_path(workflow)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        # opened once, before branch workers fork: they inherit it (record locks are per process,
        # and closing any descriptor of the file would drop all of this process's locks)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)

    def try_lock(self, branch: int) -> int | None:
        """Take the lock of ``branch``: None on success, else the pid of the holder (0 if unknown)."""
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, branch)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            return self.holder(branch)
        return None

    def lock(self, branch: int) -> None:
        """Wait for the lock of ``branch``."""
        fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, branch)

    def made(self, branch: int) -> bool:
        """Whether some run made ``branch`` since the lock file exists (a hint: outputs may be gone since)."""
        return os.pread(self.fd, 1, branch) == b"\x01"

    def mark_made(self, branch: int) -> None:
        """Record, under the lock, that ``branch`` was made: a run waiting for it checks its outputs then."""
        os.pwrite(self.fd, b"\x01", branch)

    def unlock(self, branch: int) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, branch)

    def holder(self, branch: int) -> int:
        """Pid of the process holding the lock of ``branch`` (Linux), 0 if unknown or free."""
        if not sys.platform.startswith("linux"):
            return 0
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, branch, 1, 0)
        with contextlib.suppress(OSError):
            l_type, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(self.fd, fcntl.F_GETLK, query))
            return pid if l_type != fcntl.F_UNLCK else 0
        return 0

    def close(self) -> None:
        os.close(self.fd)
