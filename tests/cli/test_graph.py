"""pylaw.cli.graph in-process: colours from the submission state, quoting, one node per workflow."""

from __future__ import annotations

import re

import luigi

import pylaw
from pylaw import monitor
from pylaw.cli.graph import FILL, quote, to_dot
from pylaw.job.state import RecordStatus
from tests.test_monitor import write_state
from tests.workflow.slurm_tasks import Square


class Quoted(pylaw.Task):
    """A parameter value with quotes, a backslash and a newline must not break the DOT text."""

    label = luigi.Parameter(default='say "hi" \\ now\nplease')
    n = luigi.IntParameter(default=3)

    def requires(self):
        return self.req(Square, workflow="slurm")

    def output(self):
        return self.local_target("quoted.txt")


def fill_of(dot: str, task_id: str) -> str:
    match = re.search(rf'^  {re.escape(quote(task_id))} \[.*fillcolor="(#\w+)"', dot, re.M)
    assert match, dot
    return match.group(1)


def test_running_and_failed_come_from_the_submission_state():
    running = Square(version="v1", n=4, workflow="slurm")
    write_state(running, [([0, 1], RecordStatus.RUNNING, "1"), ([2, 3], RecordStatus.PENDING, "2")])
    failed = Square(version="v2", n=4, workflow="slurm")
    write_state(failed, [([0, 1, 2, 3], RecordStatus.GIVEN_UP, "3")], closed=True)
    for task, state in ((running, "running"), (failed, "failed")):
        dot = to_dot(monitor.collect(task))
        assert fill_of(dot, task.task_id) == FILL[state]
        assert dot.count("shape=box3d") == 1  # the workflow is one node, not one per branch
    assert "slurm: 0/4 done, 2 running, 2 pending" in to_dot(monitor.collect(running))
    assert "jobs: 1 given_up" in to_dot(monitor.collect(failed))


def test_values_are_quoted():
    task = Quoted(version="v1")
    dot = to_dot(monitor.collect(task))
    assert 'label=say \\"hi\\" \\\\ now\\nplease' in dot
    assert dot.count(" -> ") == 1
    assert re.search(r'^  "Square[^"]*" -> "Quoted[^"]*";$', dot, re.M), dot
