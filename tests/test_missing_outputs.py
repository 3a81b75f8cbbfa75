"""A task whose run() returns without writing its declared outputs fails, naming them."""

import luigi
import pytest

import pylaw
from pylaw.errors import MissingOutputError

FAILURES: list[BaseException] = []


@luigi.Task.event_handler(luigi.Event.FAILURE)
def _record(task, exc):
    FAILURES.append(exc)


@pytest.fixture(autouse=True)
def _clean():
    FAILURES.clear()


def build(task) -> bool:
    return luigi.build([task], local_scheduler=True, log_level="CRITICAL")


class MissingOutWritesOne(pylaw.Task):
    def output(self):
        return {"a": self.local_target("a.txt"), "b": self.local_target("b.txt")}

    def run(self):
        self.output()["a"].dump("a")


class MissingOutWritesTheRest(MissingOutWritesOne):
    def run(self):
        super().run()  # the check waits for the outermost run()
        self.output()["b"].dump("b")


class MissingOutDynamic(pylaw.Task):
    def output(self):
        return self.local_target("dyn.txt")

    def run(self):
        yield MissingOutWritesTheRest(version=self.version)


class MissingOutOwnComplete(pylaw.Task):
    def output(self):
        return self.local_target("never.txt")

    def complete(self):
        return getattr(self, "ran", False)

    def run(self):
        self.ran = True


def test_missing_output_fails_naming_it():
    task = MissingOutWritesOne(version="v1")
    assert not build(task)
    (error,) = FAILURES
    assert isinstance(error, MissingOutputError)
    missing = task.output()["b"].path
    assert str(error) == f"MissingOutWritesOne.run() returned without writing 1 of its outputs: {missing}"


def test_writing_after_super_run_is_fine():
    assert build(MissingOutWritesTheRest(version="v1")), FAILURES


def test_generator_run_is_checked_when_it_ends():
    task = MissingOutDynamic(version="v1")
    assert not build(task)
    assert [type(e) for e in FAILURES] == [MissingOutputError] and task.output().path in str(FAILURES[0])
    assert MissingOutWritesTheRest(version="v1").complete(), "the dynamic requirement ran before the check"


def test_own_complete_decides_itself():
    assert build(MissingOutOwnComplete(version="v1")), FAILURES
