"""Provenance records, in this process: what every task run writes, where, and when not.

The records are read back from the files pylaw wrote (the log of each output directory),
never from pylaw's own state.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys

import luigi
import pytest

import pylaw
from pylaw import interactive, provenance
from pylaw.errors import MissingOutputError
from tests.conftest import build


def log_lines(directory) -> list[dict]:
    """The records filed for a local output directory, straight from the log file."""
    path = provenance.log_path(str(directory))
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class Source(pylaw.Task):
    x = luigi.IntParameter(default=1)
    token = luigi.Parameter(default="s3cr3t-t0ken", significant=False,
                            visibility=luigi.parameter.ParameterVisibility.PRIVATE)

    def output(self):
        return self.local_target("source.txt")

    def run(self):
        self.output().dump(f"x={self.x}", formatter="text")


class Pair(pylaw.Task):
    """Two outputs in two directories, one input: one record."""

    def requires(self):
        return self.req(Source)

    def output(self):
        return {"a": self.local_target("a.txt"), "b": self.local_target("sub/b.txt")}

    def run(self):
        for target in self.output().values():
            target.dump(self.input().load(formatter="text"), formatter="text")


def test_one_record_per_run_with_parameters_code_inputs_and_times(isolated):
    task = Pair(version="v1")
    assert build(task)
    (record,) = log_lines(os.path.dirname(task.output()["a"].path))
    assert log_lines(os.path.dirname(task.output()["b"].path)) == []  # one record, beside the first output
    assert record["task"] == {"family": "Pair", "module": __name__}
    assert record["parameters"]["version"] == "v1"
    assert [o["path"] for o in record["outputs"]] == [task.output()["a"].path, task.output()["b"].path]
    source = Source(version="v1").output().path
    (read,) = record["inputs"]
    stat = os.stat(source)
    assert read == {"path": source, "size": stat.st_size, "mtime": stat.st_mtime}
    assert record["time"]["start"] <= record["time"]["end"]
    assert record["code"]["pylaw"] == pylaw.__version__ and record["code"]["commit"]
    assert record["environment"]["packages"]["luigi"] == luigi.__version__
    assert record["location"] == {"system": "local", "job_id": None}

    (upstream,) = log_lines(os.path.dirname(source))
    assert upstream["parameters"]["x"] == "1"
    assert upstream["private_parameters"] == ["token"]
    with open(provenance.log_path(os.path.dirname(source))) as f:
        assert "s3cr3t" not in f.read()
    assert provenance.find_record(task.output()["b"]) is None  # only outputs in the first one's directory
    assert provenance.find_record(task.output()["a"]) == record


def test_records_never_show_in_output_directories_or_collections(isolated):
    class Many(pylaw.Task, pylaw.LocalWorkflow):
        def create_branch_map(self):
            return list(range(20))

        def output(self):
            return self.local_target(f"out_{self.branch}.txt")

        def run(self):
            self.output().dump(str(self.branch), formatter="text")

    workflow = Many(version="v1")
    assert build(workflow)
    directory = os.path.dirname(workflow.as_branch(0).output().path)
    assert sorted(os.listdir(directory)) == sorted(f"out_{i}.txt" for i in range(20))
    records = log_lines(directory)
    assert sorted(int(r["parameters"]["branch"]) for r in records) == list(range(20))  # one per branch run
    assert workflow.output().count() == 20 and workflow.complete()
    assert pylaw.SiblingFileCollection([workflow.as_branch(i).output() for i in range(3)]).count() == 3
    assert provenance.find_record(workflow.as_branch(7).output())["parameters"]["branch"] == "7"


def test_a_collection_output_gets_one_record(isolated):
    class Files(pylaw.Task):
        def output(self):
            return pylaw.SiblingFileCollection([self.local_target(f"f{i}.txt") for i in range(5)])

        def run(self):
            for target in self.output():
                target.dump("x", formatter="text")

    task = Files(version="v1")
    assert build(task) and task.complete()
    (record,) = log_lines(os.path.dirname(task.output()[0].path))
    assert len(record["outputs"]) == 5
    assert provenance.find_record(task.output()[3]) == record  # found from any of its outputs


def test_the_effective_shift_is_recorded(isolated):
    class Shifted(pylaw.ShiftTask):
        shifts = frozenset({"jes_up", "jes_down"})

        def output(self):
            return self.local_target("s.txt")

        def run(self):
            self.output().dump(self.shift, formatter="text")

    class Unshifted(pylaw.ShiftTask):
        shifts = frozenset()

        def output(self):
            return self.local_target("u.txt")

        def run(self):
            self.output().dump(self.shift, formatter="text")

    shifted, unshifted = Shifted(version="v1", shift="jes_up"), Unshifted(version="v1", shift="jes_up")
    assert build(shifted, unshifted)
    assert provenance.find_record(shifted.output())["shift"] == "jes_up"
    assert provenance.find_record(unshifted.output())["shift"] == "nominal"


def test_no_record_when_the_run_fails(isolated):
    class Crashes(pylaw.Task):
        def output(self):
            return self.local_target("c.txt")

        def run(self):
            self.output().dump("half", formatter="text")
            raise RuntimeError("after writing")

    class Forgets(pylaw.Task):
        def output(self):
            return self.local_target("f.txt")

        def run(self):
            pass

    crash, forget = Crashes(version="v1"), Forgets(version="v1")
    assert not build(crash)
    assert os.path.exists(crash.output().path) and log_lines(os.path.dirname(crash.output().path)) == []
    with pytest.raises(MissingOutputError):
        forget.run()
    assert log_lines(os.path.dirname(forget.output().path)) == []


def test_a_record_that_cannot_be_written_is_a_warning(isolated, caplog):
    task = Source(version="v1", x=5)
    blocked = provenance.record_directory(os.path.dirname(task.output().path))
    os.makedirs(os.path.dirname(blocked), exist_ok=True)
    with open(blocked, "w") as f:  # a file where the record directory must go
        f.write("in the way")
    with caplog.at_level(logging.WARNING, logger="pylaw.provenance"):
        assert build(task)
    assert task.complete() and task.output().load(formatter="text") == "x=5"
    assert any("could not write its provenance record" in r.getMessage() for r in caplog.records)


def test_records_can_be_switched_off(isolated):
    config = luigi.configuration.get_config()
    config.set("provenance", "enabled", "false")
    provenance.settings.cache_clear()  # read once per process: this test stands for a new one
    try:
        task = Source(version="v1", x=2)
        assert build(task)
    finally:
        config.remove_option("provenance", "enabled")
        provenance.settings.cache_clear()
    assert task.complete() and log_lines(os.path.dirname(task.output().path)) == []


def test_a_removed_log_is_reopened(isolated):
    first = Source(version="v1", x=3)
    assert build(first)
    os.remove(provenance.log_path(os.path.dirname(first.output().path)))
    first.output().remove()
    assert build(first)  # the same process: its open log was deleted
    assert len(log_lines(os.path.dirname(first.output().path))) == 1


def test_run_location_from_batch_environments(tmp_path):
    assert provenance.run_location({"SLURM_JOB_ID": "77", "SLURM_ARRAY_JOB_ID": "70", "SLURM_ARRAY_TASK_ID": "7"}) \
        == {"system": "slurm", "job_id": "77", "array_job_id": "70", "array_task_id": "7"}
    ad = tmp_path / ".job.ad"
    ad.write_text('ClusterId = 1234\nProcId = 5\nGlobalJobId = "sched#1234.5#1700000000"\nOwner = "me"\n')
    assert provenance.run_location({"_CONDOR_JOB_AD": str(ad)}) == {
        "system": "htcondor", "job_id": "1234.5", "global_job_id": "sched#1234.5#1700000000"}
    assert provenance.run_location({"PYLAW_JOB_SYSTEM": "arc", "PYLAW_JOB_ID": "gsiftp://ce/jobs/abc"}) == {
        "system": "arc", "job_id": "gsiftp://ce/jobs/abc"}
    assert provenance.run_location({}) == {"system": "local", "job_id": None}


#: paths of record files opened in this process (an audit hook: it sees every open, pylaw's or not)
_record_opens: list[str] = []


def _count_record_opens(event: str, args: tuple) -> None:
    if event == "open" and isinstance(args[0], (str, bytes)) and provenance.RECORD_DIR in os.fsdecode(args[0]):
        _record_opens.append(os.fsdecode(args[0]))


sys.addaudithook(_count_record_opens)  # hooks cannot be removed: it only appends to a list


def test_status_of_100k_branches_reads_no_record_unless_staleness_is_asked(isolated, capsys):
    n = 100_000

    class Wide(pylaw.Task, pylaw.LocalWorkflow):
        def create_branch_map(self):
            return range(n)

        def output(self):
            return self.local_target(f"w_{self.branch}.txt")

    workflow = Wide(version="v1")
    directory = os.path.dirname(workflow.as_branch(0).output().path)
    os.makedirs(directory)
    for i in range(n):
        open(os.path.join(directory, f"w_{i}.txt"), "w").close()
    with provenance.batched_records():  # branches 0-49 have records (as if they ran), the others none
        for i in range(50):
            provenance.write_record(workflow.as_branch(i), 1.0, 2.0)
    assert len(log_lines(directory)) == 50
    before, opened = provenance.reads, len(_record_opens)
    interactive.print_status(workflow, 1, io.StringIO())
    assert provenance.reads == before and _record_opens[opened:] == []  # not a single record read or opened
    small = Wide(version="v1", branches="0-99")
    out = io.StringIO()
    assert interactive.print_status(small, 0, out, stale=True) == 0
    assert provenance.reads == before + 1  # one log for the whole directory
    assert _record_opens[opened:] == [provenance.log_path(directory)]
    assert "0 stale task(s)" in out.getvalue()


class Numbers(pylaw.Task, pylaw.LocalWorkflow):
    n = luigi.IntParameter(default=600)

    def create_branch_map(self):
        return list(range(self.n))

    def output(self):
        return self.local_target(f"n_{self.branch}.txt")

    def run(self):
        self.output().dump(str(self.branch), formatter="text")


@pytest.mark.parametrize("workers", [1, 2])
def test_every_branch_gets_its_record_batched_or_from_forked_workers(isolated, workers):
    """One worker holds records back and writes them in batches (600 > one batch); forked workers write each."""
    workflow = Numbers(version=f"w{workers}")
    assert build(workflow, workers=workers)
    records = log_lines(os.path.dirname(workflow.as_branch(0).output().path))
    # each branch once: none lost, none written twice (as a batch inherited by a forked worker would be)
    assert sorted(int(r["parameters"]["branch"]) for r in records) == list(range(600))
