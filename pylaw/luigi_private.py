"""The one place where pylaw reads Luigi's private attributes, each because no public hook exists.

Luigi 3.x is the host (see STYLE.md): every access below is named here with why, so an
upgrade of Luigi has one module to check.

``Register._Register__instance_cache``
    Luigi's instance cache (``X(1) is X(1)``). Luigi exposes only ``clear_instance_cache()``
    and ``disable_instance_cache()``; pylaw's :class:`~pylaw.task.TaskRegister` must look up
    and fill the *same* dict (keyed exactly as ``Register.__call__`` keys it) after
    :meth:`~pylaw.task.Task.modify_param_values` rewrote the values, and must see ``None``
    when the cache is disabled.

``luigi.worker.Worker.worker_processes`` (:func:`running_worker_processes`)
    A task cannot ask Luigi how many processes its worker runs. ``luigi.build(tasks,
    workers=N)`` passes N straight to the ``Worker`` object, not to the ``[core] workers``
    config that ``--workers`` sets; a local workflow that forks its branch workers must
    honour both routes alike. The running worker is found on the call stack (it stays
    there in a forked task process too).

``luigi.worker.Worker._scheduler`` (:func:`running_worker_scheduler_url`)
    A task cannot ask which scheduler its worker talks to. ``core().local_scheduler`` is
    not the answer: ``luigi.build(..., local_scheduler=True)`` bypasses that config, and
    ``--scheduler-host`` may have been given to ``luigi.build`` as an override. A local
    workflow must know whether a central scheduler (luigid) coordinates the run, and its
    URL, to claim its branches there (:mod:`pylaw.workflow.schedulerclaims`); the worker
    on the call stack knows, as a ``luigi.rpc.RemoteScheduler`` with its ``_url``.

``param_name`` in the frames of Luigi's parameter parsing (:func:`parameter_being_parsed`)
    Luigi's parse errors do not name the parameter; :mod:`pylaw.logs` reads it from the
    traceback to word the one-line error ``luigi --module`` prints.

``LuigiConfigParser._config_paths`` (:func:`config_paths`)
    The files Luigi's config parser reads, in order (its defaults, ``LUIGI_CONFIG_PATH``,
    ``add_config_path()``). ``pylaw config`` shows which of them exist and were read;
    Luigi keeps no public list, and ``reload()`` re-reads them.

``luigi.execution_summary._summary_dict`` / ``_get_external_workers`` (:func:`run_partition`)
    A ``LuigiRunResult`` carries only the status code and the summary *text*; which tasks
    failed, were left pending for a failed requirement, or were held by another worker
    (and which one) is computed by these two from the worker's task history. ``pyl``'s
    summary and its exit code 3 ("held by another worker") need the sets themselves.

The pid file of ``luigi.lock`` (:func:`pid_lock_holders`)
    When Luigi's pid lock refuses a run it prints the holders' pids on stdout and raises
    ``PidLockAlreadyTakenExit`` without them; ``pyl`` names them in its error message, so
    it reads the file (one pid per line) that ``luigi.lock.get_info`` locates.
"""

from __future__ import annotations

import sys
from typing import Any


def instance_cache(task_cls: type) -> dict[tuple, Any] | None:
    """The instance cache ``Register.__call__`` would use for ``task_cls``; ``None`` while disabled.

    Looked up through the metaclass, as Luigi does (``cls.__instance_cache``).
    """
    return getattr(type(task_cls), "_Register__instance_cache", None)


def running_worker_processes() -> int | None:
    """``worker_processes`` of the Luigi worker running the caller, or None outside a worker."""
    worker = _running_worker(sys._getframe(1))
    return None if worker is None else int(worker.worker_processes)


def running_worker_scheduler_url() -> str | None:
    """URL of the central scheduler the Luigi worker running the caller talks to; None for a
    local scheduler or outside a worker."""
    from luigi.rpc import RemoteScheduler

    worker = _running_worker(sys._getframe(1))
    scheduler = getattr(worker, "_scheduler", None)
    if isinstance(scheduler, RemoteScheduler):
        return str(scheduler._url)
    return None


def _running_worker(frame: Any) -> Any:
    from luigi.worker import Worker

    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Worker):
            return candidate
        frame = frame.f_back
    return None


def parameter_being_parsed(tb: Any) -> tuple[str, str, str | None] | None:
    """``(owner, parameter name, command-line value or None)`` of the parse that raised, from its traceback.

    Luigi's parse errors (``int('abc')``) do not say which parameter was being parsed; its
    command-line parser (``CmdlineParser._get_task_kwargs``) and ``Task.get_param_values``
    hold it in the local ``param_name``. Read only to word an error message.
    """
    found = None
    while tb is not None:
        frame, code = tb.tb_frame, tb.tb_frame.f_code
        if code.co_name == "_get_task_kwargs" and "param_name" in frame.f_locals:
            parser = frame.f_locals.get("self")
            owner = getattr(getattr(parser, "known_args", None), "root_task", "?")
            found = (owner, frame.f_locals["param_name"], frame.f_locals.get("attr"))
        elif code.co_name == "get_param_values" and "param_name" in frame.f_locals:
            found = (frame.f_locals.get("task_family", "?"), frame.f_locals["param_name"], None)
        tb = tb.tb_next
    return found

def config_paths() -> list[str]:
    """The paths Luigi's active config parser reads (existing or not), in reading order."""
    import luigi.configuration

    return list(getattr(type(luigi.configuration.get_config()), "_config_paths", []))

def run_partition(result: Any) -> tuple[dict[str, set], dict[str, set]]:
    """Tasks of a ``LuigiRunResult`` by summary status, and ``{other worker id: tasks it held}``."""
    from luigi import execution_summary

    worker = result.worker
    return execution_summary._summary_dict(worker), dict(execution_summary._get_external_workers(worker))


def pid_lock_holders(pid_dir: str) -> list[int]:
    """Pids recorded in the pid lock file of this process's command line, other than this process."""
    import os

    from luigi import lock

    _, _, pid_file = lock.get_info(pid_dir)
    try:
        with open(pid_file) as f:
            pids = [int(line) for line in f.read().split() if line.strip().isdigit()]
    except OSError:
        return []
    return [pid for pid in pids if pid != os.getpid()]
