"""Branch maps built from upstream outputs (``branch_map_requires()``), run locally.

The Slurm side of the same pattern is in test_slurm_chains.py.
"""

import os
import subprocess
import textwrap

import luigi
import pytest

import pylaw
from pylaw.errors import BranchMapNotReadyError
from pylaw.target.collection import PendingCollection
from pylaw.workflow.slurm import SlurmWorkflow
from tests.conftest import PYTHON, build, cli_env

RUNS: list[tuple[str, int]] = []


class ListFiles(pylaw.Task):
    n = luigi.IntParameter(default=3)

    def output(self):
        return self.local_target("files.json")

    def run(self):
        RUNS.append(("ListFiles", -1))
        self.output().dump([f"f{i}.root" for i in range(self.n)])


class PerFile(pylaw.Task, pylaw.LocalWorkflow, SlurmWorkflow):
    n = luigi.IntParameter(default=3)

    def branch_map_requires(self):
        return self.req(ListFiles)

    def create_branch_map(self):
        return self.branch_map_input().load()

    def output(self):
        return self.local_target(f"{self.branch_data.split('.')[0]}.json")

    def run(self):
        RUNS.append(("PerFile", self.branch))
        self.output().dump({"file": self.branch_data})


class Merge(pylaw.Task):
    n = luigi.IntParameter(default=3)

    def requires(self):
        return self.req(PerFile)

    def output(self):
        return self.local_target("merged.json")

    def run(self):
        RUNS.append(("Merge", -1))
        self.output().dump(sorted(t.load()["file"] for t in self.input().values()))


@pytest.fixture(autouse=True)
def clear_runs():
    RUNS.clear()


def test_waiting_workflow_is_incomplete_with_a_pending_output():
    wf = PerFile(version="v1")
    assert wf.complete() is False  # FileNotFoundError before
    output = wf.output()
    assert isinstance(output, PendingCollection) and len(output) == 0 and not output.exists()
    assert output.waiting_for == [ListFiles(version="v1")]
    assert wf.requires() == {"workflow": [], "branch_map": ListFiles(version="v1")}
    assert RUNS == []


def test_pending_output_is_not_cached_once_upstream_is_done():
    wf = PerFile(version="v1", n=4)
    assert isinstance(wf.output(), PendingCollection)
    assert build(ListFiles(version="v1", n=4))
    assert not isinstance(wf.output(), PendingCollection) and len(wf.output()) == 4
    assert wf.output() is wf.output()  # cached now, as any workflow output


def test_branch_while_map_unavailable_is_a_clear_error():
    with pytest.raises(BranchMapNotReadyError, match=r"branch map of PerFile is built from the outputs of "
                                                    r"ListFiles\(.*\), which are not complete yet"):
        PerFile(version="v1", branch=0)


def test_one_build_runs_upstream_then_map_then_branches():
    assert build(Merge(version="v1", n=4))
    assert RUNS[0] == ("ListFiles", -1) and RUNS[-1] == ("Merge", -1)
    assert sorted(RUNS[1:-1]) == [("PerFile", b) for b in range(4)]
    assert Merge(version="v1", n=4).output().load() == [f"f{i}.root" for i in range(4)]
    RUNS.clear()
    assert build(Merge(version="v1", n=4)) and RUNS == []  # make-like


def test_remote_workflow_waits_too_and_requires_the_map_inputs_even_with_pilot():
    wf = PerFile(version="v1", workflow="slurm")
    assert wf.complete() is False  # an empty collection would pass the tolerance count
    pilot = PerFile(version="v1", workflow="slurm", pilot=True)
    assert pilot.requires() == ListFiles(version="v1")
    assert PerFile(version="v1", workflow="slurm", cancel_jobs=True).requires() == []


CLI_TASKS = textwrap.dedent('''
    import luigi
    import pylaw


    class ListFiles(pylaw.Task):
        def output(self):
            return self.local_target("files.json")

        def run(self):
            self.output().dump(["a.root", "b.root", "c.root"])


    class PerFile(pylaw.Task, pylaw.LocalWorkflow):
        def branch_map_requires(self):
            return self.req(ListFiles)

        def create_branch_map(self):
            return self.branch_map_input().load()

        def output(self):
            return self.local_target(f"out_{self.branch}.txt")

        def run(self):
            self.output().dump(self.branch_data)
''')


def pyl(tmp_path, *args):
    exe = os.path.join(os.path.dirname(PYTHON), "pyl")
    return subprocess.run([exe, *args], cwd=tmp_path, env=cli_env(tmp_path), capture_output=True, text=True,
                          timeout=120)


def test_cli_status_while_waiting_then_one_command_runs_everything(tmp_path):
    (tmp_path / "dyntasks.py").write_text(CLI_TASKS)
    (tmp_path / "luigi.cfg").write_text("[pylaw]\nmodules = dyntasks\n[core]\nlog_level = WARNING\n")
    status = pyl(tmp_path, "PerFile", "--version", "v1", "--print-status", "-1")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "Traceback" not in status.stdout + status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == "> PerFile(): waiting for ListFiles()", status.stdout
    assert any(line.strip() == "> ListFiles(): missing" for line in lines), status.stdout
    for action in ("--print-deps", "--print-output"):
        other = pyl(tmp_path, "PerFile", "--version", "v1", action, "-1")
        assert other.returncode == 0 and "Traceback" not in other.stdout + other.stderr, other.stderr

    ran = pyl(tmp_path, "PerFile", "--version", "v1")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    store = tmp_path / "store" / "PerFile" / "v1"
    assert sorted(p.read_text() for p in store.glob("out_*.txt")) == ["a.root", "b.root", "c.root"]
    status = pyl(tmp_path, "PerFile", "--version", "v1", "--print-status", "0")
    assert status.stdout.splitlines()[0] == "> PerFile(): complete", status.stdout


def test_one_build_with_two_workers():
    assert build(Merge(version="v1", n=5), workers=2)  # Luigi forks a process per task here
    assert Merge(version="v1", n=5).output().load() == [f"f{i}.root" for i in range(5)]
