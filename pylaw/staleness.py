"""Stale outputs: they exist, but the current checkout and request would make them differently.

Luigi is existence-based: an output that exists is done, whatever code or parameters
made it. From the provenance records (:mod:`pylaw.provenance`) pylaw can tell more,
without recomputing anything. An existing output is *stale* when

* its record names another code version than the checkout of the task's module,
* a recorded parameter value differs from the one requested now (a changed default,
  or a parameter that is not part of the output's path),
* it was made from other inputs than the task requires now (an upstream parameter changed),
* one of its inputs changed after it was made (another mtime or size than recorded), or
* a task it requires is stale (transitively).

Only ``--print-status N --stale`` and ``--remove-output N --stale`` read records; plain
status reads none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import luigi
from luigi.task import flatten

from pylaw import provenance
from pylaw.target.collection import iter_leaves
from pylaw.target.local import LocalTargetMixin

#: an input modified less than this after its reader started is taken as older (clock granularity)
MTIME_SLACK = 1.0


@dataclass
class Verdict:
    """What the records say about one task's existing outputs."""

    stale: list[str] = field(default_factory=list)  # why they are stale (empty: not stale)
    notes: list[str] = field(default_factory=list)  # what cannot be told (no record, ...)
    stale_branches: list[int] = field(default_factory=list)  # of a workflow


class StalenessChecker:
    """Decides staleness task by task, each task and record log once (results are kept)."""

    def __init__(self) -> None:
        self._verdicts: dict[str, Verdict] = {}
        self._logs: dict[str, dict[str, dict[str, Any]]] = {}

    def check(self, task: luigi.Task) -> Verdict:
        verdict = self._verdicts.get(task.task_id)
        if verdict is None:
            is_workflow = getattr(task, "is_workflow", None)
            verdict = self._check_workflow(task) if is_workflow is not None and is_workflow() \
                else self._check_task(task)
            self._verdicts[task.task_id] = verdict
        return verdict

    def _check_workflow(self, task: Any) -> Verdict:
        verdict = Verdict()
        reasons: dict[int, str] = {}
        for number, exists in task.branch_completeness().items():
            if not exists:
                continue
            branch = self.check(task.as_branch(number))
            if branch.stale:
                reasons[number] = branch.stale[0]
            elif branch.notes and not verdict.notes:
                verdict.notes.append(f"branch {number}: {branch.notes[0]}")
        if reasons:
            from pylaw.interactive import describe_keys

            first = min(reasons)
            verdict.stale_branches = sorted(reasons)
            verdict.stale.append(f"{len(reasons)} branches ({describe_keys(sorted(reasons))}), e.g. branch "
                                 f"{first}: {reasons[first]}")
        return verdict

    def _check_task(self, task: luigi.Task) -> Verdict:
        verdict = Verdict()
        output = provenance.anchor(task.output())
        if output is None or not output.exists():
            return verdict
        record = self.record(output)
        if record is None:
            verdict.notes.append("no provenance record")
        else:
            verdict.stale += self._against_record(task, output, record, verdict)
        for dep in flatten(task.requires()):
            if self.check(dep).stale:
                from pylaw.interactive import describe_task

                verdict.stale.append(f"it requires {describe_task(dep)}, which is stale")
                break
        return verdict

    def record(self, output: Any) -> dict[str, Any] | None:
        if isinstance(output, LocalTargetMixin):
            directory = output.path.rpartition("/")[0] or "/"
            log = self._logs.get(directory)
            if log is None:
                log = self._logs[directory] = provenance.read_log(directory)
            return log.get(output.path)
        return provenance.find_record(output)

    @staticmethod
    def _against_record(task: luigi.Task, output: Any, record: dict[str, Any], verdict: Verdict) -> list[str]:
        stale = []
        code, current = record.get("code", {}), provenance.code_version(type(task).__module__)
        if code.get("describe") != current.get("describe"):
            stale.append(f"made with code {code.get('describe') or 'of unknown version'}, the checkout is "
                         f"{current.get('describe') or current.get('error')}")
        elif code.get("dirty"):
            verdict.notes.append(f"made from uncommitted changes ({code['describe']}): cannot tell if they differ")
        values, _ = provenance.parameters(task)
        recorded = record.get("parameters", {})
        for name, param in task.get_params():
            if param.significant and name in values and name in recorded and recorded[name] != values[name]:
                stale.append(f"made with {name}={recorded[name]}, requested {name}={values[name]}")
        stale += _input_changes(task, record)
        if output_mtime(output) > record["time"]["end"] + MTIME_SLACK:
            verdict.notes.append("the output was rewritten after its record (by a run without records?)")
        return stale


def _key(entry: dict[str, Any]) -> str:
    return f"{entry.get('fs', '')}:{entry.get('path', entry.get('repr', ''))}"


def _input_changes(task: luigi.Task, record: dict[str, Any]) -> list[str]:
    recorded = {_key(entry): entry for entry in record.get("inputs", [])}
    leaves = list(iter_leaves(task.input()))
    current = {_key(provenance.describe_location(leaf)): leaf for leaf in leaves}
    if set(current) != set(recorded):
        gone, new = len(set(recorded) - set(current)), len(set(current) - set(recorded))
        return [f"made from other inputs ({gone} of them no longer required, {new} new ones)"]
    started = record["time"]["start"]
    for key, leaf in current.items():
        entry = recorded[key]
        now = provenance.describe_input(leaf)
        if "mtime" not in now:
            continue
        if "mtime" in entry:  # compared with itself: no clock of another host involved
            changed = now["mtime"] != entry["mtime"] or now["size"] != entry.get("size")
        else:
            changed = now["mtime"] > started + MTIME_SLACK
        if changed:
            return [f"its input {now.get('url') or now.get('path')} changed after it was made "
                    f"(newer or other size than recorded)"]
    return []


def output_mtime(target: Any) -> float:
    """The modification time of a local or remote target; 0 when it cannot be had."""
    try:
        return os.stat(target.path).st_mtime if isinstance(target, LocalTargetMixin) else target.stat().mtime
    except Exception:  # unknown: never makes a record look outdated
        return 0.0
