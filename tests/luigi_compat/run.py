"""Run Luigi's own tests against pylaw's Task (or against plain Luigi) and collect the outcomes.

``python -m tests.luigi_compat.run [--plain]`` prints one line per test that did not pass.
:data:`MODULES` are the modules of Luigi's suite about tasks, parameters, the register,
the worker, the scheduler and the command line that need no external service. Left out:

- ``contrib/*``, ``_mysqldb_test``, ``hdfs_client_test``, ``db_task_history_test``,
  ``_test_ftp``, ``test_ssh``, ``customized_run_test`` (Hadoop's mrrunner): external
  services or their client libraries;
- ``server_test``, ``rpc_test``, ``scheduler_api_test``, ``lock_test``, ``mock_test``,
  ``most_common_test``, ``target_test``, ``local_target_test``, config, logging and
  notification tests: Luigi's server, RPC client, targets and configuration, no task class
  involved (``server_test``'s INET tests also wait 60 s each on a port);
- ``import_test`` (imports every contrib module), ``mypy_test`` (type-checks Luigi's sources),
  ``test_sigpipe``, ``visualiser/*`` (a browser).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from tests.luigi_compat.fetch import ROOT, fetch

MODULES = (
    "task_test", "parameter_test", "instance_test", "instance_wrap_test", "task_register_test", "worker_test",
    "scheduler_test", "interface_test", "cmdline_test", "range_test", "util_test", "util_previous_test",
    "execution_summary_test", "event_callbacks_test", "task_bulk_complete_test", "choice_parameter_test",
    "clone_test", "date_parameter_test", "date_interval_test", "decorator_test", "dict_parameter_test",
    "list_parameter_test", "numerical_parameter_test", "factorial_test", "fib_test", "dynamic_import_test",
    "recursion_test", "priority_test", "set_task_name_test", "subtask_test", "task_forwarded_attributes_test",
    "task_progress_percentage_test", "task_running_resources_test", "task_status_message_test",
    "visible_parameters_test", "worker_external_task_test", "worker_keep_alive_test", "worker_multiprocess_test",
    "worker_parallel_scheduling_test", "worker_scheduler_com_test", "worker_task_process_test", "worker_task_test",
    "wrap_test", "simulate_test", "retcodes_test", "scheduler_visualisation_test",
    "scheduler_parameter_visibilities_test", "task_history_test", "helpers_test", "custom_metrics_test",
    "scheduler_message_test", "remote_scheduler_test", "task_serialize_test",
)

SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
#: per-test limit: a hanging test fails instead of stalling CI
TIMEOUT = 120


@dataclass(frozen=True)
class Outcome:
    """One of Luigi's tests: ``test/x_test.py::Class::test``, ``passed``/``failed``/``skipped``, why."""

    nodeid: str
    result: str
    message: str = ""


def run(pylaw: bool, deselect: Sequence[str] = (), select: Sequence[str] = ()) -> list[Outcome]:
    """Run :data:`MODULES` (or only the tests ``select`` names) minus ``deselect`` in a subprocess.

    With ``pylaw``, pylaw's Task is swapped in for ``luigi.Task``; else Luigi runs as shipped.
    """
    suite = fetch()
    with tempfile.TemporaryDirectory(prefix="pylaw-luigi-compat-") as tmp:
        report = os.path.join(tmp, "report.xml")
        ini = os.path.join(tmp, "pytest.ini")  # not pylaw's pytest settings (found upwards otherwise)
        with open(ini, "w") as f:
            f.write("[pytest]\n")
        argv = [sys.executable, "-m", "pytest", "-q", "-c", ini, f"--rootdir={suite}", "-p", "no:cacheprovider",
                f"--timeout={TIMEOUT}",
                f"--junitxml={report}", "-o", "junit_family=xunit1", "-W", "ignore::DeprecationWarning"]
        # the tests, in an @-file: Luigi's failure e-mails quote the command line, and one
        # test bounds their length
        args = os.path.join(tmp, "args.txt")
        with open(args, "w") as f:
            f.writelines(f"--deselect={nodeid}\n" for nodeid in deselect)
            f.writelines(f"{test}\n" for test in list(select) or [f"test/{module}.py" for module in MODULES])
        argv.append(f"@{args}")
        # SITE's sitecustomize swaps in pylaw's Task in every Python process of the run (the
        # command-line tests start `python -m luigi ...`, found on PATH next to this Python)
        paths = [SITE, ROOT] if pylaw else [ROOT]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [*paths, os.environ.get("PYTHONPATH")])),
                   PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
                   PYLAW_STORE=os.path.join(tmp, "store"), PYLAW_INDEX=os.path.join(tmp, "index.json"))
        # cwd: Luigi's tests name files relative to the sdist root (test/testconfig/...)
        subprocess.run(argv, cwd=suite, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, check=False)
        if not os.path.isfile(report):
            raise RuntimeError(f"Luigi's tests wrote no report ({' '.join(argv)} in {suite})")
        return parse_report(report)


def parse_report(path: str) -> list[Outcome]:
    """Outcomes from pytest's JUnit XML report (xunit1: ``file`` names the module)."""
    outcomes = []
    for case in ET.parse(path).iter("testcase"):
        module_file = case.get("file", "")
        module = module_file.removesuffix(".py").replace("/", ".")
        classname = case.get("classname", "").removeprefix(module).lstrip(".")
        nodeid = "::".join(filter(None, [module_file, classname, case.get("name", "")]))
        result, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                result = "skipped" if tag == "skipped" else "failed"
                message = (element.get("message") or "").splitlines()[0][:200] if element.get("message") else ""
                break
        outcomes.append(Outcome(nodeid, result, message))
    return outcomes


if __name__ == "__main__":
    results = run(pylaw="--plain" not in sys.argv)
    for outcome in results:
        if outcome.result != "passed":
            print(f"{outcome.result:8s} {outcome.nodeid}  {outcome.message}")
    counts = {r: sum(o.result == r for o in results) for r in ("passed", "failed", "skipped")}
    print(", ".join(f"{n} {r}" for r, n in counts.items()))
