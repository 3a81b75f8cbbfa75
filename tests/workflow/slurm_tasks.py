"""Tasks that the Slurm end-to-end tests run in real batch jobs (imported by the workers).

Their behaviour is steered by parameters, so one class covers every scenario: ``flaky``
branches fail on their first attempt only (a marker file remembers the attempt),
``broken`` branches always fail, ``sleep`` keeps jobs running long enough to kill the
submitter or cancel them, and ``text`` is written into the output verbatim.
"""

from __future__ import annotations

import os
import time

import luigi

import pylaw
from pylaw.parameter import CSVParameter
from pylaw.workflow.local import LocalWorkflow
from pylaw.workflow.slurm import SlurmWorkflow


# the ignores below: LocalWorkflow.workflow_proxy_cls is inferred as type[LocalWorkflowProxy] (invariant)
class Square(pylaw.Task, LocalWorkflow, SlurmWorkflow):
    n = luigi.IntParameter(default=50)
    # CSVParameter's annotation only knows string items; these hold ints
    flaky = CSVParameter(inner=luigi.IntParameter(), significant=False)  # type: ignore[arg-type]
    broken = CSVParameter(inner=luigi.IntParameter(), significant=False)  # type: ignore[arg-type]
    marker_dir = luigi.Parameter(default="", significant=False)
    sleep = luigi.FloatParameter(default=0.0, significant=False)
    text = luigi.Parameter(default="", significant=False)

    def create_branch_map(self) -> list[int]:
        return list(range(self.n))

    def output(self):
        return self.local_target(f"square_{self.branch}.json")

    def run(self) -> None:
        if self.branch in self.broken:  # type: ignore[operator]
            raise RuntimeError(f"branch {self.branch} is broken on purpose")
        if self.branch in self.flaky:  # type: ignore[operator]
            marker = os.path.join(self.marker_dir, f"flaky_{self.branch}")
            if not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError(f"branch {self.branch} fails on its first attempt on purpose")
        time.sleep(self.sleep)
        self.output().dump({"branch": self.branch, "square": self.branch_data**2, "text": self.text,
                            "pid": os.getpid(), "slurm_job": os.environ.get("SLURM_JOB_ID", "")})


class Cube(pylaw.Task, LocalWorkflow, SlurmWorkflow):
    """Needs Square's branch of the same number: for --pilot, where jobs run missing upstream tasks."""

    n = luigi.IntParameter(default=4)

    def create_branch_map(self) -> list[int]:
        return list(range(self.n))

    def workflow_requires(self):
        return self.req(Square, branch=-1)

    def requires(self):
        return self.req(Square, branch=self.branch)

    def output(self):
        return self.local_target(f"cube_{self.branch}.json")

    def run(self) -> None:
        square = self.input().load()["square"]
        self.output().dump({"cube": square * self.branch_data})


def where() -> str:
    """The Slurm job an output was written in ("" outside Slurm)."""
    return os.environ.get("SLURM_JOB_ID", "")


class FileList(pylaw.Task):
    """Not a workflow: lists the "files" a dynamic branch map is built from."""

    n = luigi.IntParameter(default=3)

    def output(self):
        return self.local_target("files.json")

    def run(self) -> None:
        self.output().dump([f"file{i}.root" for i in range(self.n)])


class PerFile(pylaw.Task, LocalWorkflow, SlurmWorkflow):
    """One branch per file that FileList lists: the map exists only once FileList ran."""

    n = luigi.IntParameter(default=3)

    def branch_map_requires(self):
        return self.req(FileList)

    def create_branch_map(self) -> list[str]:
        return self.branch_map_input().load()

    def output(self):
        return self.local_target(f"per_{self.branch}.json")

    def run(self) -> None:
        self.output().dump({"file": self.branch_data, "slurm_job": where()})


class LocalOnlyStage(pylaw.Task, LocalWorkflow):
    """A workflow that cannot run on Slurm, upstream of one that can."""

    n = luigi.IntParameter(default=3)

    def create_branch_map(self) -> list[int]:
        return list(range(self.n))

    def output(self):
        return self.local_target(f"local_{self.branch}.json")

    def run(self) -> None:
        self.output().dump({"value": self.branch_data + 10, "slurm_job": where()})


class AfterLocal(pylaw.Task, LocalWorkflow, SlurmWorkflow):
    n = luigi.IntParameter(default=3)

    def create_branch_map(self) -> list[int]:
        return list(range(self.n))

    def workflow_requires(self):
        return self.req(LocalOnlyStage)

    def requires(self):
        return self.req(LocalOnlyStage)

    def output(self):
        return self.local_target(f"after_{self.branch}.json")

    def run(self) -> None:
        self.output().dump({"value": self.input().load()["value"] * 2, "slurm_job": where()})


class SumSquares(pylaw.Task):
    """Not a workflow, at the root: ``--workflow slurm`` must reach Square through it."""

    n = luigi.IntParameter(default=3)

    def requires(self):
        return self.req(Square)

    def output(self):
        return self.local_target("sum.json")

    def run(self) -> None:
        self.output().dump(sum(t.load()["square"] for t in self.input().values()))


class SlurmOnlyStage(pylaw.Task, SlurmWorkflow):
    """Stage 1 of a two-stage chain; its only type is slurm (so its default is slurm)."""

    n = luigi.IntParameter(default=3)

    def create_branch_map(self) -> list[int]:
        return list(range(self.n))

    def output(self):
        return self.local_target(f"stage1_{self.branch}.json")

    def run(self) -> None:
        self.output().dump({"value": self.branch_data, "slurm_job": where()})


class Stage2(pylaw.Task, LocalWorkflow, SlurmWorkflow):
    """Stage 2: every branch needs the whole of stage 1 (a workflow requirement met in the job)."""

    n = luigi.IntParameter(default=3)

    def create_branch_map(self) -> list[int]:
        return list(range(self.n))

    def workflow_requires(self):
        return self.req(SlurmOnlyStage)

    def requires(self):
        return self.req(SlurmOnlyStage, branch=-1)

    def output(self):
        return self.local_target(f"stage2_{self.branch}.json")

    def run(self) -> None:
        total = sum(t.load()["value"] for t in self.input().values())
        self.output().dump({"value": total + self.branch_data, "slurm_job": where()})
