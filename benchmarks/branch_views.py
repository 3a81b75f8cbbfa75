#!/usr/bin/env python
"""What each way of writing a workflow costs when its status is checked.

The branch views of :mod:`pylaw.workflow.views` are exact for every pattern, but not
equally cheap: a plain workflow copies one template's state, a ``setup_instance()``
override is replayed on every view, a ``modify_param_values()`` override runs for every
branch, and an ``__init__`` override needs real branch instances. For each pattern of
``tests/workflow/view_zoo.py`` this builds the output collection of N branches and
checks its existence (what ``complete()`` and ``--print-status`` do), in this process,
and prints microseconds per branch (best of ``--repeat``, CPU time) and the memory
held per branch while the collection lives (tracemalloc).

    python benchmarks/branch_views.py --n 100000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("PYLAW_STORE", tempfile.mkdtemp(prefix="pylaw-views-"))

import luigi
from luigi.task_register import Register

import pylaw
from pylaw.workflow.views import view_mode
from tests.workflow import view_zoo


def make_patterns(n: int) -> dict[str, type]:
    """One class per pattern, each with ``n`` branches."""
    def many(cls: type) -> type:
        return type(cls.__name__, (cls,), {"__module__": __name__, "create_branch_map": lambda self: [
            f"f{i}.json" for i in range(n)]})

    patterns = [view_zoo.Plain, view_zoo.Property, view_zoo.SetupInstance, view_zoo.BranchStoreParts,
                view_zoo.InitOverride]
    classes = {cls.__name__: many(cls) for cls in patterns}

    class ModifyParams(pylaw.Task, pylaw.LocalWorkflow):
        label = luigi.Parameter(default="")

        @classmethod
        def modify_param_values(cls, values):
            values = super().modify_param_values(values)
            if values.get("branch", -1) >= 0:
                values["label"] = "same"  # unchanged per branch: views stay possible
            return values

        def create_branch_map(self):
            return list(range(n))

        def output(self):
            return self.local_target(f"m_{self.branch}.json")

    classes["ModifyParams"] = ModifyParams
    return classes


def measure(cls: type, repeat: int) -> tuple[float, float]:
    best = float("inf")
    for _ in range(repeat):
        Register.clear_instance_cache()
        started = time.process_time()
        wf = cls(version="v1")
        wf.output().existence()
        best = min(best, time.process_time() - started)
    Register.clear_instance_cache()
    tracemalloc.start()
    wf = cls(version="v1")
    collection = wf.output()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    total = len(collection)
    return best / total * 1e6, held / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="branches per workflow")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"| pattern | view mode | µs per branch (N = {args.n:,}) | bytes held per branch |")
    print("|---|---|---:|---:|")
    for name, cls in make_patterns(args.n).items():
        micro, held = measure(cls, args.repeat)
        print(f"| {name} | {view_mode(cls).value} | {micro:.1f} | {held:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
