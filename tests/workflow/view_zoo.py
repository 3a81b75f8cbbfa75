"""A zoo of workflows written in every way a user may write one, for the branch-view tests.

Each class has ``n`` branches whose payloads yield distinct output names only if the task
really takes them per branch; a view that copies state from another branch shows up as a
duplicate or wrong path, a wrong task id or a wrong completeness.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import luigi
import luigi.util

import pylaw

NAMES = ["a.json", "b.json", "c.json", "d.json", "e.json", "f.json", "g.json"]


class Plain(pylaw.Task, pylaw.LocalWorkflow):
    """Outputs computed in output() from branch_data: the simple, common case."""

    n = luigi.IntParameter(default=len(NAMES))

    def create_branch_map(self):
        return NAMES[:self.n]

    def output(self):
        return self.local_target(self.branch_data)

    def run(self):
        self.output().dump({"branch": self.branch})


class SetupInstance(Plain):
    """An attribute computed in setup_instance() from branch_data (issue 9, first case)."""

    def setup_instance(self):
        super().setup_instance()
        if self.is_branch():
            self.stem = self.branch_data.split(".")[0]

    def output(self):
        return self.local_target(f"{self.stem}.json")


class ConditionalSetup(Plain):
    """setup_instance() sets an attribute for some branches only: stale copies would leak."""

    def setup_instance(self):
        super().setup_instance()
        if self.is_branch() and self.branch % 2:
            self.odd = "odd"

    def output(self):
        return self.local_target(f"{getattr(self, 'odd', 'even')}_{self.branch}.json")


class InitOverride(Plain):
    """The same attribute computed in an overridden __init__ (the common Luigi idiom)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stem = self.branch_data.split(".")[0] if self.is_branch() else None

    def output(self):
        return self.local_target(f"{self.stem}.json")


class Property(Plain):
    """A property reading branch_data."""

    @property
    def stem(self):
        return self.branch_data.split(".")[0]

    def output(self):
        return self.local_target(f"p_{self.stem}.json")


class CachedProperty(Plain):
    """functools.cached_property stores its value in the instance dict on first use."""

    @functools.cached_property
    def stem(self):
        return self.branch_data.split(".")[0]

    def output(self):
        return self.local_target(f"cp_{self.stem}.json")


class BranchStoreParts(Plain):
    """A branch-dependent store directory: every branch pair in its own subdirectory."""

    def store_parts(self):
        parts = super().store_parts()
        return [*parts, f"group{self.branch // 2}"] if self.is_branch() else parts

    def output(self):
        return self.local_target(f"out_{self.branch}.json")


class ModifyParams(Plain):
    """modify_param_values() derives a significant parameter from the branch number."""

    label = luigi.Parameter(default="")

    @classmethod
    def modify_param_values(cls, values):
        values = super().modify_param_values(values)
        if values.get("branch", -1) >= 0:
            values["label"] = f"half{values['branch'] * 2 // max(1, values.get('n', 1))}"
        return values

    def output(self):
        return self.local_target(f"{self.label}_{self.branch}.json")


class Insignificant(Plain):
    """An insignificant parameter shared by all branches, used in the output name."""

    note = luigi.Parameter(default="x", significant=False)

    def output(self):
        return self.local_target(f"{self.note}_{self.branch_data}")


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    files: int


class ObjectMap(Plain):
    """A branch map of dicts and objects."""

    def create_branch_map(self):
        return {i: ({"name": name, "i": i} if i % 2 else Dataset(name, i)) for i, name in enumerate(NAMES[:self.n])}

    def output(self):
        data = self.branch_data
        name = data["name"] if isinstance(data, dict) else data.name
        return {"main": self.local_target(f"obj_{name}"), "aux": self.local_target(f"aux_{self.branch}.json")}

    def run(self):
        for target in self.output().values():
            target.dump({"branch": self.branch})


class TaskIdOutput(Plain):
    """Outputs named after the task id."""

    def output(self):
        return self.local_target(f"{self.task_id}.json")


class Requiring(Plain):
    """Each branch requires the matching branch of Plain and of SetupInstance."""

    def requires(self):
        return {"plain": self.req(Plain, branch=self.branch), "setup": self.req(SetupInstance, branch=self.branch)}

    def output(self):
        return self.local_target(f"req_{self.branch}.json")


class CustomComplete(Plain):
    """complete() demands more than the output's existence: its content must say "ok"."""

    def output(self):
        return self.local_target(f"cc_{self.branch}.json")

    def complete(self):
        out = self.output()
        return out.exists() and out.load().get("ok") is True

    def run(self):
        self.output().dump({"ok": self.branch % 3 != 0})


class SubclassOfSetup(SetupInstance):
    """A workflow subclassing another workflow, extending its setup_instance."""

    suffix = luigi.Parameter(default="s")

    def setup_instance(self):
        super().setup_instance()
        if self.is_branch():
            self.stem = f"{self.stem}_{self.suffix}{self.branch}"


class SubclassOfInit(InitOverride):
    """A workflow subclassing one that overrides __init__."""

    def output(self):
        return self.local_target(f"sub_{self.stem}.json")


class ShiftedPlain(pylaw.ShiftTask, pylaw.LocalWorkflow):
    """A shifted workflow: the shift is part of every branch's output path."""

    shifts = {"jes_up", "jes_down"}

    def create_branch_map(self):
        return NAMES[:4]

    def output(self):
        return self.local_target(f"{self.shift}_{self.branch_data}")

    def run(self):
        self.output().dump(self.shift)


class BatchCapable(pylaw.Task, pylaw.LocalWorkflow, pylaw.SlurmWorkflow):
    """A workflow that may run on Slurm: its many submission parameters are no branch's."""

    def create_branch_map(self):
        return NAMES[:5]

    def output(self):
        return self.local_target(f"batch_{self.branch_data}")

    def run(self):
        self.output().dump(self.branch)


@luigi.util.inherits(Plain)
class Inherits(pylaw.Task, pylaw.LocalWorkflow):
    """Parameters and requirements wired by Luigi's own decorators."""

    def create_branch_map(self):
        return NAMES[:self.n]

    def requires(self):
        return self.clone(Plain, branch=self.branch)

    def output(self):
        return self.local_target(f"inh_{self.branch_data}")

    def run(self):
        self.output().dump(self.input().load())


class ListNames(pylaw.Task):
    """Upstream of a dynamic branch map: writes the list of names to process."""

    n = luigi.IntParameter(default=len(NAMES))

    def output(self):
        return self.local_target("names.json")

    def run(self):
        self.output().dump(NAMES[:self.n])


class DynamicMap(Plain):
    """A branch map read from an upstream output (branch_map_requires)."""

    def branch_map_requires(self):
        return self.req(ListNames)

    def create_branch_map(self):
        return self.branch_map_input().load()

    def output(self):
        return self.local_target(f"dyn_{self.branch_data}")


ZOO = [Plain, SetupInstance, ConditionalSetup, InitOverride, Property, CachedProperty, BranchStoreParts,
       ModifyParams, Insignificant, ObjectMap, TaskIdOutput, Requiring, CustomComplete, SubclassOfSetup,
       SubclassOfInit, ShiftedPlain, BatchCapable, Inherits, DynamicMap]


def output_paths(output: Any) -> list[str]:
    return sorted(os.path.relpath(t.path, os.environ["PYLAW_STORE"]) for t in luigi.task.flatten(output))
