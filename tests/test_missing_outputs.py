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


class WritesOne(pylaw.Task):
    def output(self):
        return {"a": self.local_target("a.txt"), "b": self.local_target("b.txt")}

    def run(self):
        self.output()["a"].dump("a")


class WritesTheRest(WritesOne):
    def run(self):
        super().run()  # the check waits for the outermost run()
        self.output()["b"].dump("b")


class Dynamic(pylaw.Task):
    def output(self):
        return self.local_target("dyn.txt")

    def run(self):
        yield WritesTheRest(version=self.version)


class OwnComplete(pylaw.Task):
    def output(self):
        return self.local_target("never.txt")

    def complete(self):
        return getattr(self, "ran", False)

    def run(self):
        self.ran = True


def test_missing_output_fails_naming_it():
    task = WritesOne(version="v1")
    assert not build(task)
    (error,) = FAILURES
    assert isinstance(error, MissingOutputError)
    assert str(error) == f"WritesOne.run() returned without writing 1 of its outputs: {task.output()['b'].path}"


def test_writing_after_super_run_is_fine():
    assert build(WritesTheRest(version="v1")), FAILURES


def test_generator_run_is_checked_when_it_ends():
    task = Dynamic(version="v1")
    assert not build(task)
    assert [type(e) for e in FAILURES] == [MissingOutputError] and task.output().path in str(FAILURES[0])
    assert WritesTheRest(version="v1").complete(), "the dynamic requirement ran before the check"


def test_own_complete_decides_itself():
    assert build(OwnComplete(version="v1")), FAILURES
