"""The fast paths of provenance records against plainly built records, on many cases.

A record's text is pasted together from pieces cached per process (code version,
environment, run location) and per workflow (the encoded head, reused while branches
follow each other). Here every record of a mixed, shuffled sequence of task runs is
compared with a record built from scratch: values serialised one by one, the code
version and environment computed afresh (the uncached functions), ``json`` doing the
encoding.
"""

from __future__ import annotations

import json
import os
import random

import luigi

import pylaw
from pylaw import provenance


class Leaf(pylaw.Task):
    x = luigi.IntParameter(default=1)

    def output(self):
        return self.local_target("leaf.txt")

    def run(self):
        self.output().dump(str(self.x), formatter="text")


class Cells(pylaw.Task, pylaw.LocalWorkflow):
    n = luigi.IntParameter(default=40)
    label = luigi.Parameter(default="a \"quoted\" \\ label \u00e9")
    cuts = luigi.ListParameter(default=[1, 2])  # unhashable in Luigi's eyes: no head cache by key
    token = luigi.Parameter(default="secret", significant=False,
                            visibility=luigi.parameter.ParameterVisibility.PRIVATE)

    def create_branch_map(self):
        return list(range(self.n))

    def requires(self):
        return self.req(Leaf, x=self.branch % 3)

    def output(self):
        return self.local_target(f"cell_{self.branch}.txt")


class Pairs(pylaw.ShiftTask, pylaw.LocalWorkflow):
    shifts = frozenset({"jes_up", "jes_down"})

    def create_branch_map(self):
        return {i: i * 2 for i in range(30)}

    def output(self):
        return {"a": self.local_target(f"a_{self.branch}.txt"), "b": self.local_target(f"b/b_{self.branch}.txt")}


def fresh_static(module: str) -> dict:
    """The code version, environment and location of this process, computed without any cache."""
    directory = provenance.module_directory(module)
    code = provenance.read_git_version(directory)
    packages = {name: provenance._package_version.__wrapped__(name)  # type: ignore[attr-defined]
                for name in ["luigi", *(n for n in provenance.KEY_PACKAGES if n in __import__("sys").modules)]}
    return {"code": {**code, "pylaw": pylaw.__version__},
            "environment": {**provenance.host.__wrapped__(), "packages": packages},  # type: ignore[attr-defined]
            "location": provenance.run_location()}


def plain_record(task, started: float, ended: float, static: dict) -> dict:
    values, private = {}, []
    for name, param in task.get_params():
        if param.visibility == luigi.parameter.ParameterVisibility.PRIVATE:
            private.append(name)
        else:
            values[name] = param.serialize(getattr(task, name))
    record = {"pylaw_provenance": provenance.FORMAT,
              "task": {"family": task.get_task_family(), "module": type(task).__module__},
              "parameters": values, "private_parameters": private}
    if "shift" in values:
        record["shift"] = values["shift"]
    outputs = luigi.task.flatten(task.output())
    inputs = luigi.task.flatten(task.input())
    record.update(time={"start": started, "end": ended},
                  outputs=[{"path": target.path} for target in outputs],
                  inputs=[{"path": t.path, "size": os.stat(t.path).st_size, "mtime": os.stat(t.path).st_mtime}
                          for t in inputs],
                  **static)
    return json.loads(json.dumps(record))  # the same types as read back (tuples become lists)


def test_every_cached_record_equals_the_plainly_built_one(isolated):
    assert luigi.build([Leaf(version=v, x=x) for v in ("v1", "v2") for x in range(3)], local_scheduler=True,
                       log_level="ERROR")
    tasks = []
    for version in ("v1", "v2"):
        cells = Cells(version=version)
        tasks += [cells.as_branch(i) for i in range(cells.n)]
        tasks += [Cells(version=version, n=5, cuts=[3]).as_branch(i) for i in range(5)]
        for shift in ("nominal", "jes_up", "jes_down"):
            tasks += [Pairs(version=version, shift=shift).as_branch(i) for i in range(30)]
    tasks += [Leaf(version="v1", x=x) for x in range(3)]
    order = tasks + random.Random(15).sample(tasks, len(tasks))  # in sequence (memo hits), then mixed
    assert len(order) > 500
    statics = {module: fresh_static(module) for module in {type(task).__module__ for task in order}}
    for index, task in enumerate(order):
        started, ended = 1.7e9 + index / 7, 1.7e9 + index / 3
        text = provenance.record_text(task, started, ended, task.output())
        assert "\n" not in text
        assert json.loads(text) == plain_record(task, started, ended, statics[type(task).__module__]), task


def test_the_cached_environment_equals_a_fresh_one(isolated):
    for module in (__name__, "pylaw.task", "luigi"):
        cached = json.loads("{" + provenance._static_part(module) + "}")
        assert cached == json.loads(json.dumps(fresh_static(module)))


def test_records_held_back_in_a_batch_equal_the_plainly_built_ones(isolated):
    """Inside batched_records() a record is composed when the batch is written, not after its run."""
    assert luigi.build([Leaf(version="v1", x=x) for x in range(3)], local_scheduler=True, log_level="ERROR")
    cells, pairs = Cells(version="v1", n=300), Pairs(version="v1", shift="jes_up")
    tasks = [cells.as_branch(i) for i in range(300)] + [pairs.as_branch(i) for i in range(30)]
    order = random.Random(7).sample(tasks, len(tasks))  # more than one batch (256), two directories interleaved
    expected = {}
    with provenance.batched_records():
        for index, task in enumerate(order):
            started = 1.7e9 + index
            provenance.write_record(task, started, started + 0.5, outputs=task.output())
            expected[started] = task
    statics = {__name__: fresh_static(__name__)}
    written = []
    for directory in {os.path.dirname(provenance.anchor(task.output()).path) for task in tasks}:
        with open(provenance.log_path(directory)) as f:
            written += [json.loads(line) for line in f if line.strip()]
    assert len(written) == len(order)
    for record in written:
        task = expected[record["time"]["start"]]
        assert record == plain_record(task, record["time"]["start"], record["time"]["end"], statics[__name__])
