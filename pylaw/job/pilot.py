"""A pilot job: lease branches from a work queue and run them until none are left.

``python -m pylaw.job.pilot --queue LOCATION [--walltime S] --module M Family --name=value ...``
(the rest as for :mod:`pylaw.job.branch`, without ``--branch``). The job wrapper starts
it once per job when ``PYLAW_PILOT`` is set. The pilot's id is ``<job key>.<attempt>``
of the submission state (``PYLAW_JOB_KEY``, ``PYLAW_ATTEMPT``).

Each branch runs in this process through :func:`pylaw.job.branch.run_task`, the runner
of ordinary jobs (one Python start-up per pilot instead of one per branch), with the
branch's own outputs in the local store *staged*: written under
``<store>/.pylaw-staging/<pilot>/<branch>.<lease>/`` and moved into place only after the
pilot won the branch's completion (:meth:`~pylaw.job.workqueue.WorkQueue.complete`). A
pilot that lost (its lease was taken over, another pilot completed first) deletes its
staged result. A thread renews the held leases every third of the lease time.

Exit codes: 0 the pilot ended normally (nothing left, or its walltime nearly up; failed
branches are in the queue, not in the exit code), 2 bad arguments, 3 no queue.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from luigi.task import flatten

from pylaw import config, provenance
from pylaw.errors import PylawError, UsageError
from pylaw.job.branch import EXIT_OK, EXIT_USAGE, make_task, parse, run_task
from pylaw.job.queuestore import open_store
from pylaw.job.workqueue import Lease, WorkQueue
from pylaw.workflow.base import force_workflow_type
from pylaw.workflow.local import LocalWorkflowProxy

EXIT_NO_QUEUE = 3
STAGING = ".pylaw-staging"


class Renewer:
    """Renews the leases a pilot holds, in a thread, until stopped. A pilot frozen or killed stops renewing."""

    def __init__(self, queue: WorkQueue, pilot: str) -> None:
        self.thread = threading.Thread(target=self.run, daemon=True, name="pylaw-lease-renewer")
        self.queue, self.pilot = queue, pilot
        self.held: set[Lease] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.queue.spec.lease / 3):
            with self.lock:
                leases = list(self.held)
            with contextlib.suppress(OSError, PylawError):  # the next round tries again; expiry is the backstop
                self.queue.renew(self.pilot, leases)


@contextlib.contextmanager
def staged(task: Any, stage: str) -> Iterator[str]:
    """Point the task's store directory at ``stage`` while it runs; yields its real store directory.

    ``Task.local_path`` caches the store directory of an instance in ``_store_dir``: setting it
    redirects every ``local_target`` of this task (not of its upstream tasks) into ``stage``.
    """
    real = task.local_path()
    task.__dict__["_store_dir"] = stage
    try:
        yield real
    finally:
        task.__dict__["_store_dir"] = real


def publish(stage: str, real: str) -> None:
    """Move every staged file to the same place under ``real`` (each an atomic rename, same file system),
    then the branch's provenance record, with the staged paths in it made the real ones."""
    for directory, _, names in os.walk(stage):
        target_dir = os.path.join(real, os.path.relpath(directory, stage))
        os.makedirs(target_dir, exist_ok=True)
        for name in names:
            os.replace(os.path.join(directory, name), os.path.join(target_dir, name))
    records = provenance.log_path(stage)
    if os.path.exists(records):
        with open(records) as f:
            text = f.read().replace(stage, real)
        os.makedirs(os.path.dirname(provenance.log_path(real)), exist_ok=True)
        with open(provenance.log_path(real), "a") as f:
            f.write(text)  # one append: lines of concurrent writers never interleave
    discard(stage)


def discard(stage: str) -> None:
    """Remove a staged result and its provenance record (a loser's, or a failed branch's)."""
    shutil.rmtree(stage, ignore_errors=True)
    shutil.rmtree(os.path.dirname(provenance.log_path(stage)), ignore_errors=True)


class Pilot:
    """One pilot: claims chunks, runs them, records what it did."""

    def __init__(self, queue: WorkQueue, task_args: tuple[str, str, dict[str, str | bool]], walltime: float,
                 pilot_id: str) -> None:
        self.queue, self.task_args, self.walltime, self.id = queue, task_args, walltime, pilot_id
        self.started = time.time()
        self.record: dict[str, Any] = {
            "id": pilot_id, "host": socket.gethostname(), "pid": os.getpid(), "started": self.started,
            "slurm_job": os.environ.get("SLURM_JOB_ID", ""),
            "completed": [], "failed": [], "discarded": [], "work_end": None, "ended": None, "reason": ""}
        self.durations: list[float] = []
        self.renewer = Renewer(queue, pilot_id)

    def staging(self) -> str:
        return os.path.join(config.store_root(), STAGING, self.id)

    def time_left(self) -> bool:
        """Whether another chunk fits before the walltime (with a margin of a lease and three branches)."""
        if self.walltime <= 0:
            return True
        mean = sum(self.durations) / len(self.durations) if self.durations else 0.0
        margin = max(self.queue.spec.lease, 3 * mean * self.queue.spec.chunk)
        return time.time() - self.started + margin < self.walltime

    def run(self) -> str:
        self.queue.record_pilot(self.id, self.record)
        self.renewer.thread.start()
        try:
            reason = self.loop()
        finally:
            self.renewer.stopped.set()
        for directory in (self.staging(), os.path.dirname(provenance.log_path(self.staging()))):
            shutil.rmtree(directory, ignore_errors=True)  # what is left of this pilot's stages: empty dirs
        self.record.update(ended=time.time(), reason=reason)
        self.queue.record_pilot(self.id, self.record)
        return reason

    def loop(self) -> str:
        while True:
            if not self.time_left():
                return "walltime nearly up"
            leases = self.queue.claim(self.id, self.queue.spec.chunk)
            if not leases:
                if self.queue.snapshot().finished:
                    return "nothing left"
                # others hold live leases: wait, their branches come back if those pilots are lost
                time.sleep(min(5.0, self.queue.spec.lease / 4))
                continue
            with self.renewer.lock:
                self.renewer.held.update(leases)
            for lease in leases:
                self.run_branch(lease)
                with self.renewer.lock:
                    self.renewer.held.discard(lease)
            self.queue.record_pilot(self.id, self.record)

    def run_branch(self, lease: Lease) -> None:
        if self.queue.is_done(lease.branch):
            self.queue.release(self.id, lease)
            return
        start = time.time()
        module, family, values = self.task_args
        task = make_task(module, family, {**values, "branch": str(lease.branch)})
        stage = os.path.join(self.staging(), lease.name)
        with staged(task, stage) as real:
            code = run_task(task)
            unstaged = [str(t) for t in flatten(task.output())
                        if not str(getattr(t, "path", "")).startswith(stage + os.sep)]
        self.durations.append(time.time() - start)
        self.record["work_end"] = time.time()
        if unstaged:  # a path the redirection missed: the result is still correct, just not staged
            print(f"pylaw-pilot: outputs of branch {lease.branch} outside its store dir: {unstaged[:3]}")
        if code != EXIT_OK:
            discard(stage)
            self.queue.fail(self.id, lease, f"exit code {code}")
            self.record["failed"].append(lease.branch)
            print(f"pylaw-pilot: branch {lease.branch} failed rc={code}", flush=True)
        elif not self.queue.superseded(lease) and self.queue.complete(self.id, lease, time.time()):
            publish(stage, real)
            self.record["completed"].append(lease.branch)
            print(f"pylaw-pilot: branch {lease.branch} ok", flush=True)
        else:  # another pilot took the branch over and completed it, or will: its result wins
            discard(stage)
            self.record["discarded"].append(lease.branch)
            print(f"pylaw-pilot: branch {lease.branch} discarded (lease {lease.epoch} superseded)", flush=True)


def parse_pilot(argv: Sequence[str]) -> tuple[str, float, list[str]]:
    """``--queue LOC [--walltime S]`` in front of the branch arguments."""
    args, queue, walltime = list(argv), "", 0.0
    while args and args[0] in ("--queue", "--walltime"):
        if len(args) < 2:
            raise UsageError(f"{args[0]} needs a value")
        option, value, args = args[0], args[1], args[2:]
        if option == "--queue":
            queue = value
        else:
            try:
                walltime = float(value)
            except ValueError:
                raise UsageError(f"--walltime {value!r} is not a number of seconds") from None
    if not queue:
        raise UsageError("usage: python -m pylaw.job.pilot --queue LOCATION [--walltime S] --module M Family ...")
    return queue, walltime, args


def main(argv: Sequence[str]) -> int:
    force_workflow_type("local", LocalWorkflowProxy)
    try:
        location, walltime, rest = parse_pilot(argv)
        task_args = parse(rest)
    except UsageError as exc:
        print(f"pylaw-pilot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    key, attempt = os.environ.get("PYLAW_JOB_KEY"), os.environ.get("PYLAW_ATTEMPT", "1")
    pilot_id = f"{key}.{attempt}" if key else uuid.uuid4().hex[:12]
    queue = WorkQueue(open_store(location))
    try:
        queue.spec  # noqa: B018 - read once, fail early
    except PylawError as exc:
        print(f"pylaw-pilot: {exc}", file=sys.stderr)
        return EXIT_NO_QUEUE
    reason = Pilot(queue, task_args, walltime, pilot_id).run()
    print(f"pylaw-pilot: {pilot_id} ended: {reason}", flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
