#!/usr/bin/env python
"""What resolving shifts from requirements costs (pylaw.shift).

Three chains, all built in this process, nothing run:

* ``seed``: Selection -> Reconstruction -> Evaluation -> Inference of the docs (9 shifts);
* ``chain``: 10 ShiftTasks in a line, each implementing 4 of 40 shifts, and a plain task
  combining every shift of the last one (``req_shifts``);
* ``branches``: a workflow of N branches whose branches inherit a shift from a requirement.

For each it prints microseconds (best of ``--repeat``, CPU time) for the first resolution
(empty instance cache: the requirement walk runs) and a cached one (the instance exists),
then the cost of :func:`pylaw.shift.resolve_shift` alone once the walk is cached (what
every further request pays on top of building the task).

    python benchmarks/shift_resolution.py --branches 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import timeit
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("PYLAW_STORE", tempfile.mkdtemp(prefix="pylaw-shifts-"))

from luigi.task import flatten
from luigi.task_register import Register

import pylaw
from pylaw.shift import resolve_shift, validate_shift


def best(function: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None) -> float:
    """Fastest CPU time of ``function`` in seconds, ``setup`` run untimed before each call."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return min(times)


def walk(task: object) -> int:
    """Build every task of the graph (what Luigi's scheduling does); returns how many there are."""
    seen: set[int] = set()
    pending = [task]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        pending.extend(flatten(current.requires()))  # type: ignore[attr-defined]
    return len(seen)


# -- the chains -------------------------------------------------------------------------

class Out(pylaw.ShiftTask):
    def output(self):
        return self.local_target("out.json")


class Selection(Out):
    pass


class Reconstruction(Out):
    shifts = {"jes_up", "jes_down", "jer_up", "jer_down"}

    def requires(self):
        return self.req(Selection)


class Evaluation(Out):
    shifts = {"pdf_up", "pdf_down", "q2_up", "q2_down"}

    def requires(self):
        return self.req(Reconstruction)


class Inference(pylaw.Task):
    def requires(self):
        return pylaw.req_shifts(self, Evaluation)


def make_chain(length: int, per_task: int) -> list[type]:
    """``length`` ShiftTasks in a line, task i implementing ``per_task`` shifts of its own."""
    classes: list[type] = []
    for i in range(length):
        shifts = {f"s{i}x{j}_{d}" for j in range(per_task // 2) for d in ("up", "down")}
        body: dict[str, object] = {"shifts": shifts, "__module__": __name__}
        if classes:
            previous = classes[-1]
            body["requires"] = lambda self, previous=previous: self.req(previous)
        classes.append(type(f"Chain{i}", (Out,), body))
    return classes


CHAIN = make_chain(10, 4)


class CombineChain(pylaw.Task):
    def requires(self):
        return pylaw.req_shifts(self, CHAIN[-1])


class Calibration(Out):
    shifts = {"jes_up", "jes_down"}


def make_workflow(n: int) -> type:
    class Branches(pylaw.ShiftTask, pylaw.LocalWorkflow):
        def create_branch_map(self):
            return list(range(n))

        def requires(self):
            return self.req(Calibration)

        def output(self):
            return self.local_target(f"{self.branch}.json")

    return Branches


def report(name: str, seconds: float, per: int = 1, unit: str = "") -> None:
    print(f"{name:68s} {seconds * 1e6 / per:10.1f} us{unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--branches", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    ns = parser.parse_args()
    clear = Register.clear_instance_cache
    r = ns.repeat

    print("seed chain (Selection -> Reconstruction -> Evaluation -> Inference, 9 shifts)")
    report("  Evaluation(shift=jes_up), first resolution (walks 3 tasks)",
           best(lambda: Evaluation(version="b", shift="jes_up"), r, clear))
    Evaluation(version="b", shift="jes_up")
    report("  Evaluation(shift=jes_up), cached", best(lambda: Evaluation(version="b", shift="jes_up"), r))
    report("  Evaluation(), nominal, cached (no resolution: the baseline)",
           best(lambda: Evaluation(version="b"), r))
    report("  Inference: whole graph built from an empty cache (15 tasks)",
           best(lambda: walk(Inference(version="b")), r, clear))
    report("  Inference: whole graph again, cached", best(lambda: walk(Inference(version="b")), r))

    top = CHAIN[-1]
    print(f"chain of {len(CHAIN)} tasks x 40 shifts (each task implements 4)")
    report("  last task, shift of the first task, first resolution (walks 10)",
           best(lambda: top(version="b", shift="s0x0_up"), r, clear))
    top(version="b", shift="s0x0_up")
    report("  last task, shift of the first task, cached", best(lambda: top(version="b", shift="s0x0_up"), r))
    count = walk(CombineChain(version="b"))
    report(f"  CombineChain: whole graph from an empty cache ({count} tasks)",
           best(lambda: walk(CombineChain(version="b")), r, clear))
    report("  CombineChain: whole graph again, cached", best(lambda: walk(CombineChain(version="b")), r))
    report("  ... per task of the graph, from an empty cache",
           best(lambda: walk(CombineChain(version="b")), r, clear), count)

    n = ns.branches
    workflow_cls = make_workflow(n)
    print(f"workflow of {n} branches, each inheriting jes from its requirement")
    for shift in ("nominal", "jes_up", "pdf_up"):
        def build_branches(shift: str = shift) -> None:
            workflow = workflow_cls(version="b", shift=shift)
            for branch in range(n):
                workflow.as_branch(branch)

        report(f"  build every branch, shift={shift} ({'inherited' if shift == 'jes_up' else 'nominal'})",
               best(build_branches, r, clear), n, " per branch")

    print("resolve_shift() alone, walk cached (timeit)")
    branch = workflow_cls(version="b", shift="jes_up").as_branch(1).param_kwargs
    last = top(version="b", shift="s0x0_up").param_kwargs
    evaluation = Evaluation(version="b", shift="jes_up").param_kwargs
    cases = [
        ("a branch, inherited shift (resolved by its workflow)", lambda: resolve_shift(workflow_cls, branch)),
        ("last task of the 10-task chain, inherited shift", lambda: resolve_shift(top, last)),
        ("Evaluation, inherited jes_up", lambda: resolve_shift(Evaluation, evaluation)),
        ("Evaluation, its own pdf_up", lambda: resolve_shift(Evaluation, {**evaluation, "shift": "pdf_up"})),
        ("Selection, unaffected jes_up (name validated)", lambda: resolve_shift(Selection, evaluation)),
        ("validate_shift() (what the class-based rule paid per request)", lambda: validate_shift("jes_up")),
    ]
    for name, function in cases:
        report(f"  {name}", min(timeit.repeat(function, number=20000, repeat=r)) / 20000)


if __name__ == "__main__":
    main()
