"""``--workflow`` through chains of tasks that support it, do not, or are no workflows at all.

A second workflow type ("batch", running branches in this process but recording that it
ran) stands in for a batch system here; test_slurm_chains.py does the same on real Slurm.
"""

import logging

import luigi
import pytest
from luigi.task_register import Register

import pylaw
from pylaw.errors import WorkflowChoiceError
from pylaw.job import branch as job_branch
from pylaw.workflow.base import BaseWorkflow, force_workflow_type
from pylaw.workflow.local import LocalWorkflowProxy
from tests.conftest import build

#: families whose workflow ran as "batch"
BATCH_RUNS: list[str] = []


class BatchProxy(LocalWorkflowProxy):
    def run(self):
        BATCH_RUNS.append(self.task.get_task_family())
        yield from super().run()


class BatchWorkflow(BaseWorkflow):
    workflow_type = "batch"
    workflow_proxy_cls = BatchProxy


class Up(pylaw.Task, pylaw.LocalWorkflow, BatchWorkflow):
    n = luigi.IntParameter(default=3)

    def create_branch_map(self):
        return list(range(self.n))

    def output(self):
        return self.local_target(f"up_{self.branch}.json")

    def run(self):
        self.output().dump(self.branch_data)


class LocalMid(pylaw.Task, pylaw.LocalWorkflow):
    """Local only, between two workflows that support "batch"."""

    n = luigi.IntParameter(default=3)

    def create_branch_map(self):
        return list(range(self.n))

    def workflow_requires(self):
        return self.req(Up)

    def requires(self):
        return self.req(Up)

    def output(self):
        return self.local_target(f"mid_{self.branch}.json")

    def run(self):
        self.output().dump(self.input().load() + 1)


class Down(pylaw.Task, pylaw.LocalWorkflow, BatchWorkflow):
    n = luigi.IntParameter(default=3)

    def create_branch_map(self):
        return list(range(self.n))

    def workflow_requires(self):
        return self.req(LocalMid)

    def requires(self):
        return self.req(LocalMid)

    def output(self):
        return self.local_target(f"down_{self.branch}.json")

    def run(self):
        self.output().dump(self.input().load() * 10)


class Root(pylaw.ShiftTask):
    """No workflow: carries --workflow to what it requires."""

    n = luigi.IntParameter(default=3)

    def requires(self):
        return self.req(Down)

    def output(self):
        return self.local_target("root.json")

    def run(self):
        self.output().dump(sum(t.load() for t in self.input().values()))


class BatchOnly(pylaw.Task, BatchWorkflow):
    def create_branch_map(self):
        return [0, 1]

    def output(self):
        return self.local_target(f"only_{self.branch}.json")

    def run(self):
        self.output().dump(self.branch)


class NeedsBatchOnly(pylaw.Task, pylaw.LocalWorkflow):
    """Each branch needs the whole of a workflow whose only type is "batch"."""

    def create_branch_map(self):
        return [0]

    def requires(self):
        return self.req(BatchOnly, branch=-1)

    def output(self):
        return self.local_target("needs.json")

    def run(self):
        self.output().dump(len(self.input()))


@pytest.fixture(autouse=True)
def reset():
    BATCH_RUNS.clear()
    yield
    force_workflow_type("", None)


def fallback_records(caplog):
    return [r.getMessage() for r in caplog.records if "does not support --workflow" in r.getMessage()]


def test_type_reaches_every_workflow_supporting_it_through_a_local_only_one(caplog):
    caplog.set_level(logging.WARNING, logger="pylaw.workflow")
    assert build(Down(version="v1", workflow="batch"))
    assert sorted(BATCH_RUNS) == ["Down", "Up"]
    assert Down(version="v1", branch=2).output().load() == 30
    mid = Down(version="v1", workflow="batch").requires()
    assert mid.workflow == "local" and mid.param_kwargs["workflow"] == "batch"  # runs local, passes batch on
    assert mid.requires().workflow == "batch"
    assert fallback_records(caplog) == [
        "LocalMid does not support --workflow batch (it supports: local): it runs with local"]


def test_fallback_is_logged_once_per_class(caplog):
    class FreshMid(LocalMid):
        pass

    class FreshDown(Down):
        def workflow_requires(self):
            return self.req(FreshMid)

    caplog.set_level(logging.WARNING, logger="pylaw.workflow")
    for n in (5, 6, 7):
        assert FreshDown(version="v2", n=n, workflow="batch").requires().workflow == "local"
    assert fallback_records(caplog) == [
        "FreshMid does not support --workflow batch (it supports: local): it runs with local"]


def test_root_that_is_no_workflow_carries_the_type():
    root = Root(version="v1", workflow="batch", shift="nominal")
    assert build(root)
    assert sorted(BATCH_RUNS) == ["Down", "Up"]
    assert root.output().load() == 10 + 20 + 30


def test_without_workflow_everything_runs_locally():
    assert build(Root(version="v1"))
    assert BATCH_RUNS == []


def test_explicit_unsupported_type_is_still_an_error():
    with pytest.raises(WorkflowChoiceError, match=r"LocalMid cannot run on --workflow 'batch': it supports local"):
        LocalMid(version="v1", workflow="batch")

    class Explicit(Down):
        def workflow_requires(self):
            return self.req(LocalMid, workflow="batch")  # asked for by name: not a wish

    with pytest.raises(WorkflowChoiceError):
        Explicit(version="v1").requires()


def test_forced_type_wins_over_any_choice():
    force_workflow_type("local", LocalWorkflowProxy)
    assert type(Up(version="v1", workflow="batch").workflow_proxy) is LocalWorkflowProxy
    only = BatchOnly(version="v1")
    assert only.workflow == "local" and type(only.workflow_proxy) is LocalWorkflowProxy


def test_a_job_runs_a_required_batch_only_workflow_locally():
    # without the job's forcing, BatchOnly would run with its only type, "batch"
    assert BatchOnly(version="v1").workflow == "batch"
    Register.clear_instance_cache()  # a job process starts without any instance
    code = job_branch.main(["--module", __name__, "NeedsBatchOnly", "--version=v1", "--branch=0"])
    assert code == job_branch.EXIT_OK
    assert BATCH_RUNS == [] and BatchOnly(version="v1").output().count() == 2
