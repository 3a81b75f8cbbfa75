import os
import random
import subprocess
import sys
import time

import luigi
import pytest

import pylaw
from pylaw.errors import BranchError, BranchFailuresError, WorkflowChoiceError
from pylaw.workflow.base import unknown_branches
from tests.conftest import ROOT, build, cli_env

RUNS: list[tuple[str, int]] = []


class Count(pylaw.Task, pylaw.LocalWorkflow):
    n = luigi.IntParameter(default=10)
    fail = pylaw.CSVParameter(inner=luigi.IntParameter(), default=())

    def create_branch_map(self):
        return {i: f"payload{i}" for i in range(self.n)}

    def output(self):
        return self.local_target(f"out_{self.branch}.txt")

    def run(self):
        RUNS.append((self.get_task_family(), self.branch))
        if self.branch in self.fail:
            raise ValueError(f"branch {self.branch} is broken")
        self.output().dump(self.branch_data)


class Square(pylaw.Task, pylaw.LocalWorkflow):
    """Each branch needs the matching branch of Count."""

    n = luigi.IntParameter(default=10)

    def create_branch_map(self):
        return list(range(self.n))

    def workflow_requires(self):
        return self.req(Count)

    def requires(self):
        return self.req(Count)

    def output(self):
        return self.local_target(f"sq_{self.branch}.json")

    def run(self):
        RUNS.append(("Square", self.branch))
        self.output().dump({"in": self.input().load(), "sq": self.branch ** 2})


class NoWorkflowRequires(Square):
    """Branch requirements only: the runner must hand them to Luigi itself."""

    def workflow_requires(self):
        return []


class Dynamic(pylaw.Task, pylaw.LocalWorkflow):
    def create_branch_map(self):
        return [0, 1]

    def output(self):
        return self.local_target(f"dyn_{self.branch}.txt")

    def run(self):
        yield Count(version=self.version, branch=self.branch)
        self.output().dump("dyn")


class Lazy(pylaw.Task, pylaw.LocalWorkflow):
    def create_branch_map(self):
        return [0]

    def output(self):
        return self.local_target("lazy.txt")

    def run(self):
        pass


@pytest.fixture(autouse=True)
def clear_runs():
    RUNS.clear()


def test_branch_map_and_branch_data():
    wf = Count(version="v1")
    assert wf.is_workflow() and wf.get_branch_map()[3] == "payload3"
    branch = Count(version="v1", branch=3)
    assert branch.branch_data == "payload3" and branch.as_workflow() is wf


def test_workflow_output_is_the_collection_of_branch_outputs():
    wf = Count(version="v1", n=4)
    output = wf.output()
    assert isinstance(output, pylaw.TargetCollection) and list(output.keys()) == [0, 1, 2, 3]
    assert output[2].path == Count(version="v1", n=4, branch=2).output().path


def test_run_is_make_like():
    assert build(Count(version="v1"))
    assert sorted(b for _, b in RUNS) == list(range(10))
    RUNS.clear()
    assert build(Count(version="v1"))
    assert RUNS == []
    os.remove(Count(version="v1", branch=4).output().path)
    assert build(Count(version="v1"))
    assert RUNS == [("Count", 4)]


def test_branch_selection_runs_only_those():
    assert build(Count(version="v1", branches="2-4,8"))
    assert sorted(b for _, b in RUNS) == [2, 3, 4, 8]
    assert Count(version="v1").output().count() == 4


def test_open_ended_selection():
    assert build(Count(version="v1", branches="7-"))
    assert sorted(b for _, b in RUNS) == [7, 8, 9]


def test_single_branch_runs_as_plain_task():
    assert build(Count(version="v1", branch=5))
    assert RUNS == [("Count", 5)]


def test_branch_out_of_range_is_clear():
    with pytest.raises(BranchError, match=r"branch 10 is not in the branch map of Count \(0-9\)"):
        Count(version="v1", branch=10)
    with pytest.raises(BranchError, match="selects branches 10-14"):
        Count(version="v1", branches="8-14").output()


def test_selection_beyond_the_map_is_refused_without_enumerating_it():
    with pytest.raises(BranchError, match=r"selects branches 10- that Count does not have"):
        Count(version="v1", branches="10-").output()
    started = time.perf_counter()
    with pytest.raises(BranchError, match=r"selects branches 10-1000000000 that"):
        Count(version="v1", branches="0-1000000000").output()
    assert time.perf_counter() - started < 5  # enumerating 10^9 numbers would take minutes


def test_unknown_branches_equal_the_enumerated_answer_on_random_cases():
    """The gap-based check against the plain one (enumerate every selected number)."""
    rng = random.Random(7)
    parse = pylaw.RangeParameter().parse
    for _ in range(3000):
        keys = sorted(rng.sample(range(40), rng.randint(0, 25)))
        items = []
        for _ in range(rng.randint(1, 3)):
            start, kind = rng.randint(0, 45), rng.random()
            items.append(f"{start}-" if kind < 0.2 else str(start) if kind < 0.5
                         else f"{start}-{start + rng.randint(0, 10)}")
        selection = parse(",".join(items))
        numbers, open_starts = set(), []
        for start, stop in selection.intervals:
            if stop is None:
                if not keys or start > keys[-1]:
                    open_starts.append(start)
            else:
                numbers |= {n for n in range(start, stop + 1) if n not in keys}
        found, found_open = set(), []
        for part in filter(None, unknown_branches(selection, keys).split(",")):
            if part.endswith("-"):
                found_open.append(int(part[:-1]))
            else:
                first, _, last = part.partition("-")
                found |= set(range(int(first), int(last or first) + 1))
        assert (found, found_open) == (numbers, open_starts), (keys, str(selection))


def test_failures_are_reported_per_branch_and_others_finish(caplog):
    wf = Count(version="v1", fail=(3, 6))
    with pytest.raises(BranchFailuresError) as info:
        list(wf.run())
    assert sorted(info.value.failures) == [3, 6]
    assert "2 of 10 branches of Count failed: 3,6" in str(info.value)
    assert "branch 3 is broken" in info.value.failures[3]
    assert wf.output().count() == 8


def test_failed_workflow_is_reported_to_luigi():
    assert not build(Count(version="v1", fail=(1,)))


class Pids(pylaw.Task, pylaw.LocalWorkflow):
    """Each branch records the pid of the process that ran it (and takes a moment)."""

    n = luigi.IntParameter(default=12)

    def create_branch_map(self):
        return list(range(self.n))

    def output(self):
        return self.local_target(f"pid_{self.branch}.json")

    def run(self):
        time.sleep(0.05)  # long enough that every pool worker gets branches
        self.output().dump(os.getpid())


def branch_pids(**kwargs) -> list[int]:
    return [target.load() for target in Pids(version="v1", **kwargs).output().values()]


@pytest.mark.parametrize("workers", [2, 3])
def test_luigi_build_workers_run_branches_in_parallel_processes(workers):
    assert build(Pids(version="v1"), workers=workers)
    pids = branch_pids()
    assert len(set(pids)) == workers and os.getpid() not in pids


def test_luigi_build_one_worker_runs_branches_in_this_process():
    assert build(Pids(version="v1", n=4), workers=1)
    assert set(branch_pids(n=4)) == {os.getpid()}


def test_command_line_workers_run_branches_in_parallel_processes(tmp_path, monkeypatch):
    (tmp_path / "luigi.cfg").write_text("[core]\nlog_level = WARNING\n")
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "pyl"), "Pids", "--module",
                             "tests.workflow.test_local", "--version", "v1", "--workers", "2"],
                            cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("PYLAW_STORE", str(tmp_path / "store"))
    pids = branch_pids()
    assert len(set(pids)) == 2


def test_workflow_requires_upstream_then_branches_read_their_inputs():
    assert build(Square(version="v1"))
    assert Square(version="v1", branch=3).output().load() == {"in": "payload3", "sq": 9}


def test_branch_requirements_missing_are_scheduled_dynamically():
    assert build(NoWorkflowRequires(version="v1", n=3))
    assert sorted(RUNS) == [("Count", 0), ("Count", 1), ("Count", 2), ("Square", 0), ("Square", 1),
                            ("Square", 2)]


def test_branches_with_dynamic_dependencies_go_through_luigi():
    assert build(Dynamic(version="v1"))
    assert Dynamic(version="v1").output().count() == 2 and Count(version="v1").output().count() == 2


def test_branch_that_writes_nothing_fails():
    wf = Lazy(version="v1")
    with pytest.raises(BranchFailuresError, match="returned without writing 1 of its outputs"):
        list(wf.run())


def test_workflow_choice():
    assert Count(version="v1", local=True).workflow == "local"
    assert Count(version="v1", workflow="local") is Count(version="v1", local=True)
    with pytest.raises(WorkflowChoiceError,
                       match=r"cannot run on --workflow 'slurm': it supports local; add pylaw.SlurmWorkflow"):
        Count(version="v1", workflow="slurm")


def test_new_workflow_type_registers_without_touching_the_base():
    from pylaw.workflow.base import BaseWorkflow, WorkflowProxy

    class EchoProxy(WorkflowProxy):
        def run(self):
            self.task.output()[0].dump("echo")

    class EchoWorkflow(BaseWorkflow):
        workflow_type = "echo"
        workflow_proxy_cls = EchoProxy

    class Both(pylaw.Task, pylaw.LocalWorkflow, EchoWorkflow):
        def create_branch_map(self):
            return [0]

        def output(self):
            return self.local_target("both.txt")

    assert list(Both.workflow_types()) == ["local", "echo"]
    wf = Both(version="v1", workflow="echo")
    assert isinstance(wf.workflow_proxy, EchoProxy)
    assert build(wf) and wf.output()[0].load() == "echo"


def test_branch_tasks_do_not_depend_on_workflow_choice_or_selection():
    a = Count(version="v1", branch=2, workflow="local", branches="0-5")
    assert a is Count(version="v1", branch=2)


class Gather(pylaw.Task):
    """Reads every branch output of Count by iterating over its collection."""

    def requires(self):
        return Count(version=self.version, n=4)

    def output(self):
        return self.local_target("gathered.json")

    def run(self):
        collection = self.input()
        self.output().dump({"iterated": [t.load() for t in collection], "keys": list(collection.keys()),
                            "len": len(collection), "third": collection[2].load()})


def test_downstream_iterates_over_a_workflow_collection():
    assert build(Gather(version="v1"))
    assert Gather(version="v1").output().load() == {
        "iterated": ["payload0", "payload1", "payload2", "payload3"], "keys": [0, 1, 2, 3], "len": 4,
        "third": "payload2"}


@pytest.mark.parametrize("branch", [-2, -5, -1000])
def test_negative_branches_other_than_minus_one_are_refused(branch):
    with pytest.raises(BranchError, match=rf"--branch {branch} is not a branch of Count: use -1"):
        Count(version="v1", branch=branch)
