"""Branch views must equal the real branch tasks, for every way a workflow can be written.

A property over the zoo in :mod:`tests.workflow.view_zoo`: for every class, several
random sets of finished branches, and every branch, the view used by the workflow's
output collection, ``complete()`` and status equals the real branch instance (output
paths, task id, requirements, completeness).
"""

from __future__ import annotations

import random
import shutil

import luigi
import pytest
from luigi.task import flatten
from luigi.task_register import Register

import pylaw
from pylaw.workflow.views import ViewMode, view_mode
from tests.conftest import build
from tests.workflow import view_zoo
from tests.workflow.view_zoo import ZOO, output_paths

EXPECTED_MODES = {
    view_zoo.Plain: ViewMode.COPY, view_zoo.Property: ViewMode.COPY, view_zoo.CachedProperty: ViewMode.COPY,
    view_zoo.Insignificant: ViewMode.COPY, view_zoo.ObjectMap: ViewMode.COPY, view_zoo.TaskIdOutput: ViewMode.COPY,
    view_zoo.Requiring: ViewMode.COPY, view_zoo.CustomComplete: ViewMode.COPY, view_zoo.ShiftedPlain: ViewMode.COPY,
    view_zoo.ModifyParams: ViewMode.COPY, view_zoo.BatchCapable: ViewMode.COPY, view_zoo.Inherits: ViewMode.COPY,
    view_zoo.DynamicMap: ViewMode.COPY,
    view_zoo.SetupInstance: ViewMode.REPLAY, view_zoo.ConditionalSetup: ViewMode.REPLAY,
    view_zoo.BranchStoreParts: ViewMode.REPLAY, view_zoo.SubclassOfSetup: ViewMode.REPLAY,
    view_zoo.InitOverride: ViewMode.REAL, view_zoo.SubclassOfInit: ViewMode.REAL,
}


def cases():
    for cls in ZOO:
        yield pytest.param(cls, {"version": "v1"}, id=cls.__name__)
    yield pytest.param(view_zoo.ShiftedPlain, {"version": "v1", "shift": "jes_up"}, id="ShiftedPlain-jes_up")
    yield pytest.param(view_zoo.Plain, {"version": "v1", "n": 4, "branches": "1-2"}, id="Plain-branches")
    yield pytest.param(view_zoo.BatchCapable, {"version": "v1", "workflow": "slurm", "tasks_per_job": 3},
                       id="BatchCapable-slurm")


def finish(cls, kwargs, numbers):
    """Run the real branch tasks of ``numbers`` (the way a worker would)."""
    for n in numbers:
        branch = cls(**kwargs, branch=n)
        for dep in flatten(branch.requires()):
            if not dep.complete():
                dep.run()
        branch.run()


def branch_kwargs(kwargs):
    """What a user would pass for one branch: no selection, no choice of workflow."""
    return {k: v for k, v in kwargs.items() if k not in ("branches", "workflow")}


def ids(struct):
    return [t.task_id for t in flatten(struct)]


def test_zoo_classes_take_the_expected_view_mode():
    assert {cls: view_mode(cls) for cls in EXPECTED_MODES} == EXPECTED_MODES


@pytest.mark.parametrize(("cls", "kwargs"), list(cases()))
def test_views_equal_real_branch_instances(cls, kwargs, isolated):
    rng = random.Random(f"{cls.__name__}{sorted(kwargs.items())}")
    if cls is view_zoo.DynamicMap:
        assert cls(**kwargs).branch_map_waiting() and not cls(**kwargs).complete()
    total = len(cls(**kwargs).get_branch_map()) if cls is not view_zoo.DynamicMap else len(view_zoo.NAMES)
    subsets = [set(), set(range(total)), {0}, *({b for b in range(total) if rng.random() < 0.5} for _ in range(4))]
    for finished in subsets:
        shutil.rmtree(isolated, ignore_errors=True)
        Register.clear_instance_cache()
        for task in flatten(cls(**kwargs).branch_map_requires()):
            task.run()  # a dynamic branch map needs its upstream output before any branch exists
            Register.clear_instance_cache()
        finish(cls, branch_kwargs(kwargs), sorted(finished))
        Register.clear_instance_cache()
        wf = cls(**kwargs)
        numbers = wf.branch_numbers()
        views = dict(zip(numbers, wf.branch_views(numbers), strict=True))
        collection = wf.output()
        assert list(collection.keys()) == numbers
        completeness = wf.branch_completeness()
        reals = {}
        for n in numbers:
            real = reals[n] = cls(**branch_kwargs(kwargs), branch=n)
            view = views[n]
            where = f"{cls.__name__} branch {n}, finished {sorted(finished)}"
            assert type(view) is type(real), where
            assert output_paths(view.output()) == output_paths(real.output()), where
            assert output_paths(collection[n]) == output_paths(real.output()), where
            assert view.task_id == real.task_id and view == real and hash(view) == hash(real), where
            assert view.param_kwargs == real.param_kwargs and view.branch_data == real.branch_data, where
            assert ids(view.requires()) == ids(real.requires()), where
            assert view.complete() == real.complete() == completeness[n], where
        assert wf.complete() == all(r.complete() for r in reals.values())
        paths = [p for r in reals.values() for p in output_paths(r.output())]
        assert len(paths) == len(set(paths)), "the zoo must give every branch its own outputs"


def test_setup_instance_attribute_after_running_only_branch_0():
    cls, kwargs = view_zoo.SetupInstance, {"version": "v1", "n": 3}
    finish(cls, kwargs, [0])
    Register.clear_instance_cache()
    assert not cls(**kwargs).complete()
    assert build(cls(**kwargs))
    assert [cls(**kwargs, branch=n).complete() for n in range(3)] == [True, True, True]


class ReadAll(pylaw.Task):
    """Downstream of an __init__-override workflow: must read each branch's own file."""

    def requires(self):
        return view_zoo.InitOverride(version=self.version, n=3)

    def output(self):
        return self.local_target("all.json")

    def run(self):
        self.output().dump([target.load()["branch"] for target in self.input().values()])


def test_init_override_collection_lists_every_branch_output():
    wf = view_zoo.InitOverride(version="v1", n=3)
    names = [t.basename for t in wf.output().values()]
    assert names == ["a.json", "b.json", "c.json"]
    assert build(ReadAll(version="v1"))
    assert ReadAll(version="v1").output().load() == [0, 1, 2]


def test_forcing_real_instances_is_still_possible():
    class Forced(view_zoo.Plain):
        light_branch_outputs = False

    assert view_mode(Forced) is ViewMode.REAL
    wf = Forced(version="v1", n=3)
    assert [t.basename for t in wf.output().values()] == ["a.json", "b.json", "c.json"]


def test_a_modify_param_values_that_differs_per_branch_gets_real_instances():
    wf = view_zoo.ModifyParams(version="v1", n=4)
    labels = [view.label for view in wf.branch_views([0, 1, 2, 3])]
    assert labels == ["half0", "half0", "half1", "half1"]
    assert [luigi.task.flatten(v.output())[0].basename for v in wf.branch_views([3])] == ["half1_3.json"]
