"""``pylaw provenance PATH_OR_URL`` and ``pylaw reproduce PATH_OR_URL``: records read back.

``provenance`` prints how an output was made and, following the records of the inputs,
how they were made, up the chain. ``reproduce`` prints (and with ``--run`` runs) the one
command that rebuilds the output, and refuses when the code the record names is not what
the current checkout holds: the command would then make something else.
"""

from __future__ import annotations

import datetime
import importlib
import json
import shlex
import subprocess
import sys
from typing import Any

import luigi

from pylaw import provenance
from pylaw.errors import NotReproducibleError, ProvenanceError
from pylaw.staleness import MTIME_SLACK, StalenessChecker, output_mtime


def add_commands(sub: Any) -> None:
    """The ``provenance`` and ``reproduce`` sub-commands of ``pylaw``."""
    show = sub.add_parser("provenance", help="how an output was made, and its inputs, up the chain")
    show.add_argument("location", metavar="PATH_OR_URL", help="an output: a local path or a storage element URL")
    show.add_argument("--json", action="store_true", help="print the records as JSON")
    again = sub.add_parser("reproduce", help="the command that rebuilds an output from its record")
    again.add_argument("location", metavar="PATH_OR_URL", help="an output: a local path or a storage element URL")
    again.add_argument("--run", action="store_true", help="run the command (outputs go to the current store)")


def dispatch(command_name: str, location: str, as_json: bool = False, run: bool = False) -> int:
    """Perform ``pylaw provenance`` or ``pylaw reproduce`` on ``location``; returns the exit code."""
    if command_name == "provenance":
        return print_provenance(location, as_json)
    command = reproduce_command(record_of(location))
    print(shlex.join(command))
    if not run:
        return 0
    sys.stdout.flush()
    from pylaw.cli import main

    return main.run(command[1:])


def record_of(location: str) -> dict[str, Any]:
    """The record of the output at ``location``; a missing one is an error saying why there may be none."""
    target = provenance.target_for(location)
    if not target.exists():
        raise ProvenanceError(f"{location} does not exist: nothing to tell the provenance of")
    record = provenance.find_record(target)
    if record is None:
        raise ProvenanceError(f"no provenance record for {location}: it was not made by a pylaw task run with "
                              f"[provenance] enabled (or it is not the output of a task)")
    written = record.get("copy", {}).get("time") or record["time"]["end"]  # a fetched copy: when it was copied
    if output_mtime(target) > written + MTIME_SLACK:
        print(f"pylaw: warning: {location} was modified after its record was written (by something that "
              f"writes no record?): the record may not describe it", file=sys.stderr)
    return record


# -- pylaw provenance ----------------------------------------------------------------------

def chain(location: str | dict[str, Any], seen: set[str]) -> dict[str, Any]:
    """``{"output", "record", "upstream": [...]}`` for an output and, recursively, its inputs' records."""
    target = provenance.target_for(location)
    name = _name(target)
    node: dict[str, Any] = {"output": name}
    if name in seen:
        node["shown_above"] = True
        return node
    seen.add(name)
    record = provenance.find_record(target)
    run = _run_key(record) if record else None
    if run is not None and run in seen:  # another output of a run shown above (Reconstruction's four files)
        node["shown_above"] = True
        return node
    if run is not None:
        seen.add(run)
    node["record"] = record
    node["upstream"] = [chain(entry, seen) for entry in record.get("inputs", [])] if record else []
    return node


def _run_key(record: dict[str, Any]) -> str:
    return json.dumps([record["task"], record.get("parameters"), record.get("time")], sort_keys=True)


def _name(target: Any) -> str:
    entry = provenance.describe_location(target)
    return entry.get("url") or entry.get("path") or entry.get("repr", "?")


def print_provenance(location: str, as_json: bool) -> int:
    record_of(location)  # the output itself must have a record
    tree = chain(location, set())
    if as_json:
        print(json.dumps(tree, indent=1))
        return 0
    _print_node(tree, 0, top=True)
    return 0


def _print_node(node: dict[str, Any], level: int, top: bool = False) -> None:
    indent = "    " * level
    if node.get("shown_above"):
        print(f"{indent}< {node['output']}  (shown above)")
        return
    record = node.get("record")
    print(f"{indent}{'' if top else '< '}{node['output']}")
    if record is None:
        print(f"{indent}    no record (not made by a recorded pylaw task run)")
        return
    for line in describe_record(record):
        print(f"{indent}    {line}")
    for upstream in node["upstream"]:
        _print_node(upstream, level + 1)


def describe_record(record: dict[str, Any]) -> list[str]:
    """A record as a few lines for people."""
    task, code, env, where = record["task"], record.get("code", {}), record.get("environment", {}), \
        record.get("location", {})
    params = " ".join(f"--{k.replace('_', '-')} {shlex.quote(v)}" for k, v in record.get("parameters", {}).items()
                      if v not in ("", "False") and (k, v) != ("branch", "-1"))  # no framework defaults
    start, end = record["time"]["start"], record["time"]["end"]
    job = f" job {where['job_id']}" if where.get("job_id") else ""
    packages = ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items())
    lines = [f"made by {task['family']} ({task['module']}) {params}".rstrip(),
             f"code: {code.get('describe') or code.get('error')}"
             f"{' in ' + code['repository'] if code.get('repository') else ''} (pylaw {code.get('pylaw')})"
             f"{', from the code bundle ' + str(code['bundle'].get('name')) if code.get('bundle') else ''}",
             f"ran: {_time(start)} to {_time(end)} ({end - start:.3f} s) on {env.get('host')}, "
             f"{where.get('system', '?')}{job}",
             f"python {env.get('python')}, {packages}"]
    if record.get("copy"):
        lines.append(f"fetched from {record['copy'].get('source')} at {_time(record['copy'].get('time', 0))}")
    if record.get("private_parameters"):
        lines.append(f"private parameters (not recorded): {', '.join(record['private_parameters'])}")
    lines.append(f"inputs: {len(record.get('inputs', []))}")
    return lines


def _time(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- pylaw reproduce -----------------------------------------------------------------------

def reproduce_command(record: dict[str, Any]) -> list[str]:
    """``["pyl", "--module", M, Family, "--param", value, ...]`` that rebuilds the recorded output.

    Refused (:class:`NotReproducibleError`) unless the task's module comes from a clean
    checkout of exactly the recorded commit.
    """
    task = record["task"]
    module, family = task["module"], task["family"]
    check_code_version(record)
    cls = _task_class(module, family)
    recorded = record.get("parameters", {})
    argv = ["pyl", "--module", module, family]
    for name, param in cls.get_params():
        value = recorded.get(name)
        if value is None or not (param.significant or name == "version"):
            continue
        if (name, value) in (("branch", "-1"), ("branches", "")):
            continue  # the defaults of every workflow: saying them adds nothing
        argv += [f"--{name.replace('_', '-')}", value]
    argv += upstream_options(record, {name for name, _ in cls.get_params()})
    if record.get("private_parameters"):
        print(f"pylaw: warning: the private parameters {', '.join(record['private_parameters'])} are not "
              f"recorded: the command uses their defaults unless you add them", file=sys.stderr)
    return argv


#: parameters of workflows that say which branches run how, never a choice of the analysis
_FRAMEWORK = frozenset({"branch", "branches", "workflow", "local", "ce"})


def upstream_options(record: dict[str, Any], own: set[str]) -> list[str]:
    """``--Family-name value`` for what upstream tasks ran with that the command line must set again.

    ``pyl Plot --Selection-min-jets 4`` leaves ``min_jets`` out of Plot's record: only the
    records upstream know it. Taken from them: a significant parameter the top task does not
    have itself (it passes those down), with one value in the whole chain (a shift or a
    branch differs from record to record: the tasks set it themselves) other than its
    default in the code. Inputs without a record (the store is gone) are named on stderr.
    """
    values: dict[tuple[str, str], set[str]] = {}
    modules: dict[str, str] = {}
    missing = _collect_upstream(record, values, modules, StalenessChecker(), set())
    if missing:
        print(f"pylaw: warning: {missing} inputs upstream have no record here: parameters set for their tasks "
              f"on the command line (--Family-name) cannot be recovered from them", file=sys.stderr)
    options = []
    top = record["task"]["family"]
    for (family, name), seen in sorted(values.items()):
        if family == top or name in own or name in _FRAMEWORK or len(seen) != 1:
            continue
        importlib.import_module(modules[family])  # the top task's module imported it, mostly
        param = dict(_task_class(modules[family], family).get_params()).get(name)
        if param is None or not param.significant:
            continue
        (value,) = seen
        default = getattr(param, "_default", None)
        if default is luigi.parameter._no_value or param.serialize(default) != value:
            options += [f"--{family}-{name.replace('_', '-')}", value]
    return options


def _collect_upstream(record: dict[str, Any], values: dict[tuple[str, str], set[str]], modules: dict[str, str],
                      records: StalenessChecker, seen: set[str]) -> int:
    """Gather the parameter values of the records upstream of ``record``; returns how many inputs had none."""
    missing = 0
    for entry in record.get("inputs", []):
        key = f"{entry.get('fs', '')}:{entry.get('path')}"
        if key in seen:
            continue
        seen.add(key)
        try:
            target = provenance.target_for(entry)
            upstream = records.record(target) if target.exists() else None
        except (OSError, ProvenanceError):
            upstream = None
        if upstream is None:
            missing += 1
            continue
        family = upstream["task"]["family"]
        modules[family] = upstream["task"]["module"]
        for name, value in upstream.get("parameters", {}).items():
            values.setdefault((family, name), set()).add(value)
        missing += _collect_upstream(upstream, values, modules, records, seen)
    return missing


def check_code_version(record: dict[str, Any]) -> None:
    """Raise :class:`NotReproducibleError` unless the current checkout is the recorded code version."""
    task, code = record["task"], record.get("code", {})
    what = f"{task['family']} ({task['module']})"
    if task["module"] == "__main__":
        raise NotReproducibleError(f"{what} was defined in a script run as __main__: no module to rerun it from")
    if "commit" not in code:
        raise NotReproducibleError(f"the code version of {what} is unknown: it ran outside a git checkout "
                                   f"({code.get('error', 'no version recorded')})")
    if code.get("dirty"):
        raise NotReproducibleError(f"{what} ran from a checkout with uncommitted changes ({code['describe']} in "
                                   f"{code.get('repository')}): that code is in no commit, so the output cannot "
                                   f"be rebuilt exactly; commit your changes before the runs you want to keep"
                                   + _bundle_hint(code))
    try:
        importlib.import_module(task["module"])
    except ImportError as exc:
        raise NotReproducibleError(f"cannot import {task['module']} ({exc}); check out commit {code['commit']} "
                                   f"of {code.get('repository')} and run from there") from exc
    directory = provenance.module_directory(task["module"])
    current = provenance.git_version(directory) if directory else {"error": "no file"}
    if "commit" not in current:
        raise NotReproducibleError(f"{task['module']} is not in a git checkout here ({current['error']}): "
                                   f"check out commit {code['commit']} of {code.get('repository')}")
    repository = current["repository"]
    if not _has_commit(repository, code["commit"]):
        raise NotReproducibleError(f"commit {code['commit']} ({code['describe']}) of {what} is not in the "
                                   f"repository {repository}: fetch it (git -C {shlex.quote(repository)} fetch), "
                                   f"then check it out")
    if current["commit"] != code["commit"] or current["dirty"]:
        state = f"at {current['describe']}" + (" (with uncommitted changes)" if current["dirty"] else "")
        raise NotReproducibleError(
            f"the checkout {repository} is {state}, the record needs {code['describe']} ({code['commit']}): "
            f"git -C {shlex.quote(repository)} checkout {code['commit']}, or run from a worktree: "
            f"git -C {shlex.quote(repository)} worktree add ../rebuild {code['commit']}")


def _bundle_hint(code: dict[str, Any]) -> str:
    bundle = code.get("bundle")
    if not bundle:
        return ""
    return (f" (it ran from the code bundle {bundle.get('name')}, which holds that working tree, if it is still "
            f"in the bundle cache)")


def _has_commit(repository: str, commit: str) -> bool:
    result = subprocess.run(["git", "-C", repository, "cat-file", "-e", f"{commit}^{{commit}}"],
                            capture_output=True, timeout=30)
    return result.returncode == 0


def _task_class(module: str, family: str) -> Any:
    from luigi.task_register import Register, TaskClassException

    try:
        return Register.get_task_cls(family)
    except TaskClassException as exc:
        raise NotReproducibleError(f"{module} defines no task {family} (any more?): {exc}") from exc
