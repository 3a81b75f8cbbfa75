"""Tasks measured by ``benchmarks/local_workflow.py``.

``Branches`` is a :class:`pylaw.LocalWorkflow` with ``n`` trivial branches, each writing
one small text file; ``LuigiLeaf``/``LuigiCollect`` are the same work as plain Luigi
tasks (one task requiring ``n`` leaves), for comparison. The plain Luigi tasks write
below ``$PYLAW_STORE`` as well, so both kinds of run use the same temporary directory.
"""

from __future__ import annotations

import os

import luigi

import pylaw


class Branches(pylaw.Task, pylaw.LocalWorkflow):
    """``n`` branches; branch ``i`` writes ``out_i.txt``."""

    n = luigi.IntParameter(default=1000)

    def create_branch_map(self):
        return range(self.n)

    def output(self):
        return self.local_target(f"out_{self.branch}.txt")

    def run(self):
        with self.output().open("w") as f:
            f.write(f"{self.branch}\n")


def _luigi_dir(n: int) -> str:
    return os.path.join(os.environ["PYLAW_STORE"], "luigi", f"n{n}")


class LuigiLeaf(luigi.Task):
    """One plain Luigi task per file."""

    n = luigi.IntParameter()
    i = luigi.IntParameter()

    def output(self):
        return luigi.LocalTarget(os.path.join(_luigi_dir(self.n), f"out_{self.i}.txt"))

    def run(self):
        with self.output().open("w") as f:
            f.write(f"{self.i}\n")


class LuigiCollect(luigi.Task):
    """Requires ``n`` leaves, then writes a marker file."""

    n = luigi.IntParameter(default=1000)

    def requires(self):
        return [LuigiLeaf(n=self.n, i=i) for i in range(self.n)]

    def output(self):
        return luigi.LocalTarget(os.path.join(_luigi_dir(self.n), "done.txt"))

    def run(self):
        with self.output().open("w") as f:
            f.write("done\n")
